import CNeedleFuzzer

/// The shared `main` of the fuzz executables. Built for fuzzing (Fuzz/run), it runs libFuzzer with
/// `target` (a violated property traps, and libFuzzer saves the input); in a plain build it replays the
/// files named on the command line and exits non-zero when one violates a property.
public enum FuzzMain {
    public typealias Target = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

    public static func run(target: Target, check: ([UInt8]) -> [String]) -> Int32 {
        if needle_fuzzer_available() == 1 {
            var argc = CommandLine.argc
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
            return needle_fuzzer_run(&argc, &argv, target)
        }
        var failed = false
        for path in CommandLine.arguments.dropFirst() {
            guard let bytes = RegressionFiles.contents(of: path) else {
                print("\(path): cannot read it")
                failed = true
                continue
            }
            let violations = check(bytes)
            print("\(path): \(violations.isEmpty ? "ok" : violations.joined(separator: "; "))")
            failed = failed || !violations.isEmpty
        }
        return failed ? 1 : 0
    }

    /// The bytes libFuzzer hands over.
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }
}
