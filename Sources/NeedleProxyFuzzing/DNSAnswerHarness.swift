@testable import NeedleProxy

/// Properties of the DNS answer parser for any datagram that reaches the proxy's resolver port: it never
/// traps, an answer with addresses has at least one, and the name it was asked for survives encoding.
public enum DNSAnswerHarness {
    public static func check(_ bytes: [UInt8]) -> [String] {
        var violations: [String] = []
        let id = bytes.count >= 2 ? UInt16(bytes[0]) << 8 | UInt16(bytes[1]) : 0
        // As the resolver would ask: for the name the message's own question names, and for a fixed one.
        var reader = DNSMessage.Reader(bytes: bytes, offset: 12)
        let asked = (try? reader.name()) ?? "svc.example"
        for name in [asked, "svc.example"] {
            for type in [DNSMessage.RecordType.a, .aaaa] {
                if case .addresses(let addresses, _)? = try? DNSMessage.answer(bytes, id: id, name: name, type: type), addresses.isEmpty {
                    violations.append("an answer with addresses but none in it for \(name) \(type)")
                }
            }
        }
        // A name made of the input's letters encodes, and reads back the same.
        let letters = bytes.prefix(40).map { byte -> Character in
            let scalar = byte % 38
            switch scalar {
            case 0..<26: return Character(Unicode.Scalar(UInt8(ascii: "a") + scalar))
            case 26..<36: return Character(Unicode.Scalar(UInt8(ascii: "0") + scalar - 26))
            case 36: return "-"
            default: return "."
            }
        }
        let name = String(letters)
        if let encoded = DNSMessage.encodeName(name) {
            var back = DNSMessage.Reader(bytes: encoded)
            let decoded = try? back.name()
            if decoded != name.trimmingTrailingDot { violations.append("\(name) encoded and read back as \(decoded ?? "nothing")") }
        }
        return violations
    }
}
