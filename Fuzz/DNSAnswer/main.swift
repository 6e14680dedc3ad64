// Fuzzes the proxy's DNS answer parser (see DNSAnswerHarness); Fuzz/run builds and runs it.
#if canImport(Glibc)
import Glibc
#endif
import NeedleProxyFuzzing

/// libFuzzer's entry point; also handed to its driver when SwiftPM's own `main` runs first.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let violations = DNSAnswerHarness.check(FuzzMain.bytes(data, size))
    if let first = violations.first { preconditionFailure("DNSMessage: \(first)") }
    return 0
}

exit(FuzzMain.run(target: fuzzOneInput, check: DNSAnswerHarness.check))
