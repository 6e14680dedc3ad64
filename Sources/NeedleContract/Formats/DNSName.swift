/// A DNS name as Kubernetes names things: lowercase letters, digits and `-` in dot-separated labels of 1 to
/// 63 characters that start and end with a letter or digit, 253 characters at most, with no trailing dot.
/// Namespaces, service accounts, trust domains and the names built from them are all of this form.
public struct DNSName: Hashable, Sendable, CustomStringConvertible, Comparable {
    public static let acceptedFormat = "a lowercase DNS name like cluster.local: labels of a-z, 0-9 and '-', 1-63 characters each, 253 in all"
    public static let labelFormat = "a lowercase DNS label like default: a-z, 0-9 and '-', 1-63 characters, starting and ending with a letter or digit"

    public let description: String

    public init(parsing text: String) throws(FormatError) {
        guard Self.isValid(text) else { throw FormatError(value: text, expected: Self.acceptedFormat) }
        description = text
    }

    /// Whether `text` is one label (a namespace name, for example).
    public static func isLabel<S: StringProtocol>(_ text: S) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...63).contains(bytes.count), let first = bytes.first, let last = bytes.last,
              isAlphanumeric(first), isAlphanumeric(last) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    public static func isValid(_ text: String) -> Bool {
        guard (1...253).contains(text.utf8.count) else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel($0) }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    public static func < (lhs: DNSName, rhs: DNSName) -> Bool { lhs.description < rhs.description }
}

/// Where a control-plane service is reached: a DNS name or an IP address, and a port. A trailing dot on the
/// name is kept: it marks the name as absolute, so a resolver does not try the pod's search domains first.
public struct ServiceAddress: Hashable, Sendable, CustomStringConvertible {
    public static let acceptedFormat = "HOST:PORT like needle-identity.needle.svc.cluster.local.:8080, 10.96.0.20:8080 or [fd00::20]:8080"

    public enum Host: Hashable, Sendable {
        case name(String)
        case ip(IPAddress)
    }

    public let host: Host
    public let port: Int

    public init(host: Host, port: Int) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws(FormatError) {
        if let address = try? ListenAddress(parsing: text) {
            self.init(host: .ip(address.ip), port: address.port)
            return
        }
        guard let colon = text.lastIndex(of: ":") else { throw FormatError(value: text, expected: Self.acceptedFormat) }
        var name = String(text[..<colon])
        guard let port = parseDecimal(text[text.index(after: colon)...], max: 65535), port > 0 else {
            throw FormatError(value: text, expected: Self.acceptedFormat, detail: "bad port")
        }
        let absolute = name.hasSuffix(".")
        if absolute { name.removeLast() }
        guard DNSName.isValid(name) else {
            throw FormatError(value: text, expected: Self.acceptedFormat, detail: "bad host name")
        }
        self.init(host: .name(absolute ? name + "." : name), port: port)
    }

    public var description: String {
        switch host {
        case .name(let name): return "\(name):\(port)"
        case .ip(let ip): return ListenAddress(ip: ip, port: port).description
        }
    }
}
