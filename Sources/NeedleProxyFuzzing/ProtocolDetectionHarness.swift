import NeedleProxy

/// Properties of protocol detection that must hold for any bytes a client sends.
public enum ProtocolDetectionHarness {
    /// The violated properties for one input (empty when all hold).
    public static func check(_ bytes: [UInt8]) -> [String] {
        var violations: [String] = []
        let result = ProtocolDetector.detect(bytes)
        if bytes.count >= ProtocolDetector.maximumBytes, result == .needMoreData {
            violations.append("still waiting for data after \(bytes.count) bytes (limit \(ProtocolDetector.maximumBytes))")
        }
        // The handler stops at the first verdict, so more bytes must never change one: whatever a prefix
        // decided, the whole decides the same.
        for cut in [1, 5, 16, bytes.count / 2, bytes.count - 1] where cut > 0 && cut < bytes.count {
            if case .detected(let early) = ProtocolDetector.detect(bytes[0..<cut]), result != .detected(early) {
                violations.append("the first \(cut) bytes detected \(early) but all \(bytes.count) give \(result)")
            }
        }
        // The SNI reader takes any handshake bytes, including truncated or lying length fields.
        _ = TLSClientHello.serverName(inHandshake: bytes)
        return violations
    }
}
