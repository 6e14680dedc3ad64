/// A Kubernetes resource quantity (`100m`, `0.5`, `64Mi`, `1e3`), checked against the API server's grammar
/// and kept as written so the injected pod shows the operator's own spelling. Negative amounts are rejected:
/// they are never a valid request or limit.
public struct ResourceQuantity: Hashable, Sendable, CustomStringConvertible {
    public static let acceptedFormat = "a Kubernetes quantity like 100m, 0.5, 64Mi or 1G"

    public let text: String

    public init(parsing text: String) throws(FormatError) {
        guard Self.isValid(text) else { throw FormatError(value: text, expected: Self.acceptedFormat) }
        self.text = text
    }

    /// Skips validation; only for values already validated elsewhere.
    package init(unchecked text: String) { self.text = text }

    public var description: String { text }

    /// The amount as a number (cores or bytes), precise enough to compare a request with a limit.
    public var approximateValue: Double {
        let suffixes: [(String, Double)] = [
            ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776),
            ("Pi", 1_125_899_906_842_624), ("Ei", 1_152_921_504_606_846_976),
            ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15), ("E", 1e18),
        ]
        for (suffix, factor) in suffixes where text.hasSuffix(suffix) {
            return (Double(text.dropLast(suffix.count)) ?? 0) * factor
        }
        // Plain numbers and the decimal-exponent form ("1e3") both parse as a Double.
        return Double(text) ?? 0
    }

    static func isValid(_ text: String) -> Bool {
        var bytes = Substring(text).utf8[...]
        if bytes.first == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
        guard let numberEnd = consumeNumber(&bytes) else { return false }
        _ = numberEnd
        let suffix = String(Substring(bytes))
        switch suffix {
        case "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei":
            return true
        default:
            guard let marker = bytes.first, marker == UInt8(ascii: "e") || marker == UInt8(ascii: "E") else { return false }
            var exponent = bytes.dropFirst()
            if let sign = exponent.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { exponent = exponent.dropFirst() }
            guard consumeNumber(&exponent) != nil, exponent.isEmpty else { return false }
            return true
        }
    }

    /// Consumes `digits`, `digits.`, `digits.digits` or `.digits`; returns nil when no number is there.
    private static func consumeNumber(_ bytes: inout Substring.UTF8View.SubSequence) -> Int? {
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        var digits = 0
        while let byte = bytes.first, isDigit(byte) { digits += 1; bytes = bytes.dropFirst() }
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            while let byte = bytes.first, isDigit(byte) { digits += 1; bytes = bytes.dropFirst() }
        }
        return digits > 0 ? digits : nil
    }
}

/// The proxy's log level.
public enum LogLevel: String, Sendable, CaseIterable {
    case trace, debug, info, warning, error
    public static let acceptedFormat = "one of trace, debug, info, warning, error"

    public init(parsing text: String) throws(FormatError) {
        guard let level = LogLevel(rawValue: text) else { throw FormatError(value: text, expected: Self.acceptedFormat) }
        self = level
    }
}

/// The proxy's log line format.
public enum LogFormat: String, Sendable, CaseIterable {
    case plain, json
    public static let acceptedFormat = "plain or json"

    public init(parsing text: String) throws(FormatError) {
        guard let format = LogFormat(rawValue: text) else { throw FormatError(value: text, expected: Self.acceptedFormat) }
        self = format
    }
}

/// Booleans are spelled `true` or `false` only: `yes`, `1` or `True` are typos worth reporting.
public func parseBool(_ text: String) throws(FormatError) -> Bool {
    switch text {
    case "true": return true
    case "false": return false
    default: throw FormatError(value: text, expected: "true or false")
    }
}

/// `enabled` or `disabled`, as the `proxy-await` and `proxy-admin-shutdown` annotations are spelled.
public func parseEnabled(_ text: String) throws(FormatError) -> Bool {
    switch text {
    case "enabled": return true
    case "disabled": return false
    default: throw FormatError(value: text, expected: "enabled or disabled")
    }
}
