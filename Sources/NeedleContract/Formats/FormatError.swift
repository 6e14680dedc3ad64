/// A value that does not have the accepted format. The message names the value and what is accepted.
public struct FormatError: Error, Equatable, Sendable, CustomStringConvertible {
    public var value: String
    public var expected: String
    public var detail: String?

    public init(value: String, expected: String, detail: String? = nil) {
        self.value = value
        self.expected = expected
        self.detail = detail
    }

    public var description: String {
        var text = "\"\(value)\" is not valid"
        if let detail { text += " (\(detail))" }
        return text + "; expected \(expected)"
    }
}

extension StringProtocol {
    /// Splits a comma list, trimming spaces and tabs around items (HTTP's optional whitespace too); empty
    /// items are kept so callers can reject them.
    public func commaItems() -> [Substring] {
        split(separator: ",", omittingEmptySubsequences: false).map { Substring($0).trimmingSpacesAndTabs() }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    public func trimmingSpacesAndTabs() -> Substring {
        var slice = self
        while slice.first == " " || slice.first == "\t" { slice.removeFirst() }
        while slice.last == " " || slice.last == "\t" { slice.removeLast() }
        return slice
    }
}

/// Parses a non-negative decimal integer made only of ASCII digits (no sign, no spaces), guarding overflow.
func parseDecimal<S: StringProtocol>(_ text: S, max: Int) -> Int? {
    guard !text.isEmpty, text.utf8.count <= 19 else { return nil }
    var value = 0
    for byte in text.utf8 {
        guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
        value = value * 10 + Int(byte - UInt8(ascii: "0"))
        if value > max { return nil }
    }
    return value
}
