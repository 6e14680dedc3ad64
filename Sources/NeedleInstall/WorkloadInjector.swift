#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleContract
import NeedleInjection
import Yams

/// `needle inject`: adds `needle.dev/inject: enabled` to the pod templates of workloads in a YAML stream,
/// or (manual) applies the webhook's own patch to them. Other documents are copied through byte for byte.
public struct WorkloadInjector {
    public enum Mode: Sendable { case annotate, manual }

    public let injector: Injector
    public let mode: Mode

    public init(injector: Injector, mode: Mode) {
        self.injector = injector
        self.mode = mode
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Where the pod template sits in each workload kind.
    static let templatePaths: [String: [String]] = [
        "Pod": [],
        "Deployment": ["spec", "template"], "ReplicaSet": ["spec", "template"], "ReplicationController": ["spec", "template"],
        "StatefulSet": ["spec", "template"], "DaemonSet": ["spec", "template"], "Job": ["spec", "template"],
        "CronJob": ["spec", "jobTemplate", "spec", "template"],
    ]

    /// Returns the new stream and one report line per workload.
    public func inject(_ text: String) throws -> (output: String, report: [String]) {
        var report: [String] = []
        var output = ""
        for (index, document) in Self.splitDocuments(text).enumerated() {
            output += document.separator
            let node: Node?
            do {
                node = try Yams.compose(yaml: document.body)
            } catch {
                throw Failure(description: "document \(index + 1) is not valid YAML: \(error)")
            }
            guard let node, case .mapping = node, let kind = node.mapping?["kind"]?.string,
                  kind == "List" || Self.templatePaths[kind] != nil
            else {
                output += document.body
                continue
            }
            var changed = false
            let updated = try transform(node, report: &report, changed: &changed)
            output += changed ? try Yams.serialize(node: updated) : document.body
        }
        return (output, report)
    }

    private func transform(_ node: Node, report: inout [String], changed: inout Bool) throws -> Node {
        guard let kind = node.mapping?["kind"]?.string else { return node }
        if kind == "List" {
            guard var mapping = node.mapping, let items = mapping["items"]?.sequence else { return node }
            var newItems: [Node] = []
            for item in items { newItems.append(try transform(item, report: &report, changed: &changed)) }
            mapping["items"] = .sequence(Node.Sequence(newItems, items.tag, items.style))
            return .mapping(mapping)
        }
        guard let templatePath = Self.templatePaths[kind] else { return node }
        let name = node.mapping?["metadata"]?.mapping?["name"]?.string ?? "<unnamed>"
        let namespace = node.mapping?["metadata"]?.mapping?["namespace"]?.string ?? "default"
        let label = "\(kind.lowercased())/\(name)"
        guard let template = Self.node(at: templatePath, in: node), case .mapping = template else {
            report.append("\(label): skipped (no pod template)")
            return node
        }
        let annotations = template.mapping?["metadata"]?.mapping?["annotations"]?.mapping
        if let value = annotations?[MeshKey.inject]?.string, value != InjectMode.enabled.rawValue {
            report.append("\(label): skipped (\(MeshKey.inject): \(value))")
            return node
        }

        var newTemplate = try Self.adding(YAMLValue.string(InjectMode.enabled.rawValue).node,
                                          at: ["metadata", "annotations", MeshKey.inject], to: template)
        if mode == .manual {
            let pod = try Self.jsonValue(newTemplate)
            let subject = AdmissionSubject(kindGroup: "", kind: "Pod", subResource: "", operation: "CREATE",
                                           namespace: namespace, object: pod)
            let result: InjectionResult
            switch injector.evaluate(subject, namespace: NamespaceMetadata(name: namespace)) {
            case .done(let done): result = done
            case .malformed(let problem): throw Failure(description: "\(label): \(problem)")
            case .needsNamespace: throw Failure(description: "\(label): the decision needed a namespace")
            }
            guard result.decision.outcome == Outcome.injected else {
                report.append("\(label): skipped (\(result.decision.reason.rawValue))")
                return node
            }
            for operation in result.patch {
                let tokens = operation.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map {
                    String($0).replacing("~1", with: "/").replacing("~0", with: "~")
                }
                newTemplate = try Self.adding(Self.node(operation.value), at: tokens, to: newTemplate)
            }
            for warning in result.warnings { report.append("\(label): warning: \(warning)") }
            report.append("\(label): injected")
        } else {
            report.append("\(label): annotated \(MeshKey.inject): enabled")
        }
        changed = true
        return try Self.replacing(at: templatePath, in: node, with: newTemplate)
    }

    // MARK: Documents

    struct Document {
        var separator: String
        var body: String
    }

    /// Splits on `---` lines, keeping each separator line so the output keeps the input's layout.
    static func splitDocuments(_ text: String) -> [Document] {
        var documents: [Document] = []
        var separator = ""
        var body = ""
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for line in lines.enumerated() {
            let isLast = line.offset == lines.count - 1
            let content = line.element + (isLast ? "" : "\n")
            if line.element == "---" || line.element.hasPrefix("--- ") {
                if !body.isEmpty || !separator.isEmpty { documents.append(Document(separator: separator, body: body)) }
                separator = content
                body = ""
            } else {
                body += content
            }
        }
        if !body.isEmpty || !separator.isEmpty { documents.append(Document(separator: separator, body: body)) }
        return documents
    }

    // MARK: Node editing

    static func node(at path: [String], in node: Node) -> Node? {
        var current: Node? = node
        for key in path { current = current?.mapping?[key] }
        return current
    }

    static func replacing(at path: [String], in node: Node, with value: Node) throws -> Node {
        guard let key = path.first else { return value }
        guard var mapping = node.mapping, let child = mapping[key] else {
            throw Failure(description: "missing \(key) while rewriting the pod template")
        }
        mapping[key] = try replacing(at: Array(path.dropFirst()), in: child, with: value)
        return .mapping(mapping)
    }

    /// RFC 6902 `add` on a YAML node; missing (or null) maps on the way are created, like the webhook's patch does.
    static func adding(_ value: Node, at tokens: [String], to node: Node) throws -> Node {
        guard let token = tokens.first else { return value }
        let rest = Array(tokens.dropFirst())
        switch node {
        case .mapping(var mapping):
            if rest.isEmpty {
                mapping[token] = value
            } else {
                let child = mapping[token].flatMap { $0.isNull ? nil : $0 } ?? .mapping(Node.Mapping([]))
                mapping[token] = try adding(value, at: rest, to: child)
            }
            return .mapping(mapping)
        case .sequence(var sequence):
            if rest.isEmpty {
                if token == "-" {
                    sequence.append(value)
                } else if let index = Int(token), index >= 0, index <= sequence.count {
                    sequence.insert(value, at: index)
                } else {
                    throw Failure(description: "bad list index \(token)")
                }
            } else {
                guard let index = Int(token), sequence.indices.contains(index) else { throw Failure(description: "bad list index \(token)") }
                sequence[index] = try adding(value, at: rest, to: sequence[index])
            }
            return .sequence(sequence)
        default:
            if node.isNull, !rest.isEmpty || token != "-" {
                return try adding(value, at: tokens, to: .mapping(Node.Mapping([])))
            }
            throw Failure(description: "cannot add into a scalar")
        }
    }

    static func node(_ value: JSONValue) -> Node {
        switch value {
        case .null: return Node("null", Tag(.null))
        case .bool(let flag): return Node(flag ? "true" : "false", Tag(.bool))
        case .integer(let number): return Node(String(number), Tag(.int))
        case .double(let number): return Node(String(number), Tag(.float))
        case .string(let text): return YAMLValue.string(text).node
        case .array(let items): return .sequence(Node.Sequence(items.map(node)))
        case .object(let members):
            return .mapping(Node.Mapping(members.sorted { $0.key < $1.key }.map { (Node($0.key), node($0.value)) }))
        }
    }

    static func jsonValue(_ node: Node) throws -> JSONValue {
        switch node {
        case .scalar:
            if node.isNull { return .null }
            let tag = node.tag.rawValue
            if tag == Tag.Name.bool.rawValue, let flag = node.bool { return .bool(flag) }
            if tag == Tag.Name.int.rawValue, let number = node.int { return .integer(Int64(number)) }
            if tag == Tag.Name.float.rawValue, let number = node.float { return .double(number) }
            return .string(node.string ?? "")
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (key, value) in mapping { members[key.string ?? ""] = try jsonValue(value) }
            return .object(members)
        case .sequence(let sequence):
            return .array(try sequence.map(jsonValue))
        case .alias:
            throw Failure(description: "YAML aliases are not supported in workloads")
        }
    }
}

extension Node {
    var isNull: Bool {
        if case .scalar = self { return tag.rawValue == Tag.Name.null.rawValue }
        return false
    }
}
