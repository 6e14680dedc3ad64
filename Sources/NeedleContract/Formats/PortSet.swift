/// An inclusive TCP port range; a single port has `lower == upper`.
public struct PortRange: Hashable, Sendable, CustomStringConvertible {
    public let lower: Int
    public let upper: Int

    public init?(_ lower: Int, _ upper: Int) {
        guard (1...65535).contains(lower), (1...65535).contains(upper), lower <= upper else { return nil }
        self.lower = lower
        self.upper = upper
    }

    public var isSinglePort: Bool { lower == upper }
    public func contains(_ port: Int) -> Bool { lower <= port && port <= upper }
    public var description: String { isSinglePort ? "\(lower)" : "\(lower)-\(upper)" }
}

/// A set of ports written as a comma list of `N` and `LO-HI` (DESIGN §3.4). Order is kept as written
/// (duplicates dropped), so what the injector renders is what an operator wrote.
public struct PortSet: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public static let acceptedFormat = "comma-separated ports (1-65535) and LO-HI ranges, like 25,8000-8100"

    public private(set) var ranges: [PortRange]

    /// Exact repeats dropped, order kept; linear, so a pod with thousands of ports costs little.
    public init(_ ranges: [PortRange] = []) {
        var seen = Set<PortRange>()
        self.ranges = ranges.filter { seen.insert($0).inserted }
    }

    public init(arrayLiteral ports: Int...) {
        self.init(ports.compactMap { PortRange($0, $0) })
    }

    /// Parses `""` as the empty set; any bad item makes the whole value invalid.
    public init(parsing text: String) throws(FormatError) {
        self.init()
        if text.isEmpty { return }
        var parsed: [PortRange] = []
        for item in text.commaItems() {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            let range: PortRange?
            switch bounds.count {
            case 1:
                range = parseDecimal(bounds[0], max: 99_999).flatMap { PortRange($0, $0) }
            case 2:
                if let lower = parseDecimal(bounds[0], max: 99_999), let upper = parseDecimal(bounds[1], max: 99_999) {
                    range = PortRange(lower, upper)
                } else {
                    range = nil
                }
            default:
                range = nil
            }
            guard let range else {
                throw FormatError(value: text, expected: Self.acceptedFormat, detail: "bad item \"\(item)\"")
            }
            parsed.append(range)
        }
        self = PortSet(parsed)
    }

    public mutating func insert(_ range: PortRange) {
        if !ranges.contains(range) { ranges.append(range) }
    }

    public mutating func formUnion(_ other: PortSet) {
        self = PortSet(ranges + other.ranges)
    }

    public var isEmpty: Bool { ranges.isEmpty }
    public func contains(_ port: Int) -> Bool { ranges.contains { $0.contains(port) } }
    public var description: String { ranges.map(\.description).joined(separator: ",") }
}
