// Fuzzes the injector's JSON parser and writer (see JSONReviewHarness); Fuzz/run builds and runs it.
#if canImport(Glibc)
import Glibc
#endif
import NeedleProxyFuzzing

/// libFuzzer's entry point; also handed to its driver when SwiftPM's own `main` runs first.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let violations = JSONReviewHarness.check(FuzzMain.bytes(data, size))
    if let first = violations.first { preconditionFailure("JSONParser: \(first)") }
    return 0
}

exit(FuzzMain.run(target: fuzzOneInput, check: JSONReviewHarness.check))
