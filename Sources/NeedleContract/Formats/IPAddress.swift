/// An IPv4 or IPv6 address, parsed without Foundation so the proxy can use it.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    case v6(high: UInt64, low: UInt64)

    public static let acceptedFormat = "an IPv4 address like 10.0.0.1 or an IPv6 address like fd00::1"

    public init(parsing text: String) throws(FormatError) {
        if let v4 = Self.parseV4(Substring(text)) {
            self = .v4(v4)
        } else if let v6 = Self.parseV6(Substring(text)) {
            self = v6
        } else {
            throw FormatError(value: text, expected: Self.acceptedFormat)
        }
    }

    public var isIPv4: Bool { if case .v4 = self { return true } else { return false } }
    public var bitWidth: Int { isIPv4 ? 32 : 128 }

    /// Dotted quad, each part 0-255 without leading zeros (which some parsers read as octal).
    static func parseV4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard part.count <= 3, !(part.count > 1 && part.first == "0"), let octet = parseDecimal(part, max: 255) else {
                return nil
            }
            value = value << 8 | UInt32(octet)
        }
        return value
    }

    static func parseV6(_ text: Substring) -> IPAddress? {
        guard text.count >= 2, text.count <= 45 else { return nil }
        var groups: [UInt16] = []
        var gapIndex: Int? = nil
        var rest = text
        if rest.hasPrefix("::") {
            gapIndex = 0
            rest = rest.dropFirst(2)
        }
        while !rest.isEmpty {
            let end = rest.firstIndex(of: ":") ?? rest.endIndex
            let piece = rest[rest.startIndex..<end]
            if end == rest.endIndex, piece.contains(".") {
                // Embedded IPv4 tail, as in ::ffff:10.0.0.1.
                guard let v4 = parseV4(piece) else { return nil }
                groups.append(UInt16(v4 >> 16))
                groups.append(UInt16(v4 & 0xFFFF))
                rest = rest[end...]
                break
            }
            guard (1...4).contains(piece.count), let group = UInt16(piece, radix: 16) else { return nil }
            groups.append(group)
            rest = rest[end...]
            if rest.hasPrefix("::") {
                guard gapIndex == nil else { return nil }
                gapIndex = groups.count
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix(":") {
                rest = rest.dropFirst()
                guard !rest.isEmpty else { return nil }
            }
        }
        if let gapIndex {
            guard groups.count <= 7 else { return nil }
            groups.insert(contentsOf: repeatElement(0, count: 8 - groups.count), at: gapIndex)
        }
        guard groups.count == 8 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for group in groups[0..<4] { high = high << 16 | UInt64(group) }
        for group in groups[4..<8] { low = low << 16 | UInt64(group) }
        return .v6(high: high, low: low)
    }

    /// RFC 5952 text: lower case, the longest run of two or more zero groups written `::`.
    public var description: String {
        switch self {
        case .v4(let value):
            return "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
        case .v6(let high, let low):
            var groups: [UInt16] = []
            for shift in stride(from: 48, through: 0, by: -16) { groups.append(UInt16(truncatingIfNeeded: high >> UInt64(shift))) }
            for shift in stride(from: 48, through: 0, by: -16) { groups.append(UInt16(truncatingIfNeeded: low >> UInt64(shift))) }
            var bestStart = -1, bestLength = 1, runStart = -1
            for index in 0...8 {
                if index < 8, groups[index] == 0 {
                    if runStart < 0 { runStart = index }
                } else if runStart >= 0 {
                    if index - runStart > bestLength { bestStart = runStart; bestLength = index - runStart }
                    runStart = -1
                }
            }
            func hex(_ slice: ArraySlice<UInt16>) -> String { slice.map { String($0, radix: 16) }.joined(separator: ":") }
            if bestStart < 0 { return hex(groups[...]) }
            return hex(groups[0..<bestStart]) + "::" + hex(groups[(bestStart + bestLength)...])
        }
    }
}

/// An address with a port: `IP:PORT`, or `[IPv6]:PORT`.
public struct ListenAddress: Hashable, Sendable, CustomStringConvertible {
    public static let acceptedFormat = "IP:PORT like 0.0.0.0:4143, or [IPv6]:PORT like [::]:4143"

    public let ip: IPAddress
    public let port: Int

    public init(ip: IPAddress, port: Int) {
        self.ip = ip
        self.port = port
    }

    /// Where the proxy also listens so dual-stack pods' redirected IPv6 reaches it: the IPv6 wildcard beside
    /// the IPv4 one, IPv6 loopback beside IPv4 loopback. nil for any other address, which an operator chose.
    public var dualStackCompanion: ListenAddress? {
        switch ip {
        case .v4(0): ListenAddress(ip: .v6(high: 0, low: 0), port: port)
        case .v4(0x7F00_0001): ListenAddress(ip: .v6(high: 0, low: 1), port: port)
        default: nil
        }
    }

    public init(parsing text: String) throws(FormatError) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw FormatError(value: text, expected: Self.acceptedFormat)
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
            guard IPAddress.parseV6(hostPart) != nil else { throw FormatError(value: text, expected: Self.acceptedFormat) }
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw FormatError(value: text, expected: Self.acceptedFormat) }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            guard IPAddress.parseV4(hostPart) != nil else { throw FormatError(value: text, expected: Self.acceptedFormat) }
        }
        guard let port = parseDecimal(portPart, max: 65535), port > 0, let ip = try? IPAddress(parsing: String(hostPart)) else {
            throw FormatError(value: text, expected: Self.acceptedFormat)
        }
        self.init(ip: ip, port: port)
    }

    public var description: String { ip.isIPv4 ? "\(ip):\(port)" : "[\(ip)]:\(port)" }
}

/// An IP network in CIDR notation, like `10.0.0.0/8` or `fd00::/8`. Host bits must be zero, so a typo
/// such as `10.0.0.1/8` is reported rather than silently widened.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public static let acceptedFormat = "a CIDR like 10.0.0.0/8 or fd00::/8 (host bits zero)"

    public let address: IPAddress
    public let prefixLength: Int

    public init(parsing text: String) throws(FormatError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = try? IPAddress(parsing: String(parts[0])),
              let length = parseDecimal(parts[1], max: address.bitWidth)
        else { throw FormatError(value: text, expected: Self.acceptedFormat) }
        guard Self.hostBitsAreZero(address, length) else {
            throw FormatError(value: text, expected: Self.acceptedFormat, detail: "host bits set")
        }
        self.address = address
        self.prefixLength = length
    }

    public func contains(_ ip: IPAddress) -> Bool {
        switch (address, ip) {
        case (.v4(let net), .v4(let candidate)):
            let mask: UInt32 = prefixLength == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefixLength)
            return net & mask == candidate & mask
        case (.v6(let netHigh, let netLow), .v6(let high, let low)):
            let (maskHigh, maskLow) = Self.v6Mask(prefixLength)
            return netHigh & maskHigh == high & maskHigh && netLow & maskLow == low & maskLow
        default:
            return false
        }
    }

    static func v6Mask(_ length: Int) -> (UInt64, UInt64) {
        let high: UInt64 = length >= 64 ? ~0 : (length == 0 ? 0 : ~UInt64(0) << UInt64(64 - length))
        let low: UInt64 = length <= 64 ? 0 : (length == 128 ? ~0 : ~UInt64(0) << UInt64(128 - length))
        return (high, low)
    }

    static func hostBitsAreZero(_ address: IPAddress, _ length: Int) -> Bool {
        switch address {
        case .v4(let value):
            let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length)
            return value & ~mask == 0
        case .v6(let high, let low):
            let (maskHigh, maskLow) = v6Mask(length)
            return high & ~maskHigh == 0 && low & ~maskLow == 0
        }
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

extension Array where Element == CIDR {
    public static let acceptedListFormat = "comma-separated CIDRs like 10.0.0.0/8,fd00::/8 (host bits zero)"

    /// Parses a comma list of CIDRs; the empty string is the empty list.
    public init(parsingCIDRList text: String) throws(FormatError) {
        self = []
        if text.isEmpty { return }
        for item in text.commaItems() {
            guard let cidr = try? CIDR(parsing: String(item)) else {
                throw FormatError(value: text, expected: Self.acceptedListFormat, detail: "bad item \"\(item)\"")
            }
            if !contains(cidr) { append(cidr) }
        }
    }
}
