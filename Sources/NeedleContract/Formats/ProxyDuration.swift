/// A duration written `<integer><ms|s|m|h|d>` or `0` (DESIGN §3.4), kept in milliseconds.
public struct ProxyDuration: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let acceptedFormat = "a duration like 100ms, 10s, 5m, 1h, 1d or 0 (<integer><ms|s|m|h|d>)"
    /// A week is far beyond any timeout or grace period a sidecar needs; larger values are surely typos.
    public static let maximumMilliseconds = 7 * 86_400_000

    public let milliseconds: Int

    public init(milliseconds: Int) { self.milliseconds = milliseconds }
    public static func seconds(_ s: Int) -> ProxyDuration { ProxyDuration(milliseconds: s * 1000) }
    public static func milliseconds(_ ms: Int) -> ProxyDuration { ProxyDuration(milliseconds: ms) }

    public init(parsing text: String) throws(FormatError) {
        if text == "0" { self.milliseconds = 0; return }
        let units: [(suffix: String, factor: Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let digits = text.dropLast(suffix.count)
            // "5ms" also ends in "s": the "ms" entry comes first, and "5m" + "s" is rejected because "5m" is not digits.
            guard let number = parseDecimal(digits, max: Self.maximumMilliseconds) else { continue }
            let total = number.multipliedReportingOverflow(by: factor)
            guard !total.overflow, total.partialValue <= Self.maximumMilliseconds else {
                throw FormatError(value: text, expected: Self.acceptedFormat, detail: "longer than 7d")
            }
            self.milliseconds = total.partialValue
            return
        }
        throw FormatError(value: text, expected: Self.acceptedFormat)
    }

    /// The shortest exact rendering in the largest whole unit.
    public var description: String {
        if milliseconds == 0 { return "0" }
        for (suffix, factor) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where milliseconds % factor == 0 {
            return "\(milliseconds / factor)\(suffix)"
        }
        return "\(milliseconds)ms"
    }

    public static func < (lhs: ProxyDuration, rhs: ProxyDuration) -> Bool { lhs.milliseconds < rhs.milliseconds }
}
