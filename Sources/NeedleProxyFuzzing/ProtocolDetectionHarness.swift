import NeedleProxy

/// Properties of protocol detection that must hold for any bytes a client sends.
public enum ProtocolDetectionHarness {
    /// The violated properties for one input (empty when all hold).
    public static func check(_ bytes: [UInt8]) -> [String] {
        var violations: [String] = []
        for reading in [RequestLineReading.strict, .lenient] {
            let result = ProtocolDetector.detect(bytes, reading: reading)
            if bytes.count >= ProtocolDetector.maximumBytes, result == .needMoreData {
                violations.append("\(reading): still waiting for data after \(bytes.count) bytes (limit \(ProtocolDetector.maximumBytes))")
            }
            // The handler stops at the first verdict, so more bytes must never change one: whatever a prefix
            // decided, the whole decides the same.
            for cut in [1, 5, 16, bytes.count / 2, bytes.count - 1] where cut > 0 && cut < bytes.count {
                if case .detected(let early) = ProtocolDetector.detect(bytes[0..<cut], reading: reading), result != .detected(early) {
                    violations.append("\(reading): the first \(cut) bytes detected \(early) but all \(bytes.count) give \(result)")
                }
            }
            // Read leniently, whatever a strict reading takes for a request is one too (inbound never
            // passes through what outbound would parse).
            if case .detected(.http1) = ProtocolDetector.detect(bytes, reading: .strict), reading == .lenient,
               result != .detected(.http1) {
                violations.append("a well-formed request line is \(result) when read leniently")
            }
        }
        // The SNI reader takes any handshake bytes, including truncated or lying length fields.
        _ = TLSClientHello.serverName(inHandshake: bytes)
        return violations
    }
}
