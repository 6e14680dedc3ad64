import Yams

/// A YAML tree whose maps keep their key order, so rendered manifests read the way people write them.
public indirect enum YAMLValue: Equatable, Sendable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case list([YAMLValue])
    case map([(String, YAMLValue)])

    public static func == (lhs: YAMLValue, rhs: YAMLValue) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.list(let a), .list(let b)): return a == b
        case (.map(let a), .map(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> YAMLValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }

    public var node: Node {
        switch self {
        case .string(let text) where text.hasSuffix("\n") && !text.contains(where: { $0 == "\t" || $0 == "\r" }):
            // Files carried in a ConfigMap (configuration, PEM bundles) read as they are, as a block.
            return Node(text, Tag(.str), .literal)
        case .string(let text):
            // Quote anything YAML would read as another type (true, 10, 1.0, null, ...).
            let plainSafe = (try? Yams.load(yaml: text) as? String) == text && !text.isEmpty
            return Node(text, Tag(.str), plainSafe ? .any : .doubleQuoted)
        case .int(let value):
            return Node(String(value), Tag(.int))
        case .bool(let value):
            return Node(value ? "true" : "false", Tag(.bool))
        case .list(let items):
            return .sequence(Node.Sequence(items.map(\.node)))
        case .map(let pairs):
            return .mapping(Node.Mapping(pairs.map { (Node($0.0), $0.1.node) }))
        }
    }

    /// Several objects as one multi-document YAML stream.
    public static func stream(_ documents: [YAMLValue]) throws -> String {
        try documents.map { try Yams.serialize(node: $0.node, sortKeys: false) }.joined(separator: "---\n")
    }
}

extension YAMLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: YAMLValue...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, YAMLValue)...) { self = .map(elements) }
}
