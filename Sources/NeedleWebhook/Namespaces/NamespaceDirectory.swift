#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleInjection
import Yams

/// Where the injector learns a namespace's annotations: the Kubernetes API in a cluster, a file offline.
public protocol NamespaceDirectory: Sendable {
    func namespace(named name: String) async throws -> NamespaceMetadata
    /// The answer when it is at hand without waiting (a cache, a file); nil when only `namespace(named:)`
    /// can tell. Lets a review run where the request arrived, without a hop to another thread.
    func namespaceAtHand(named name: String) -> Result<NamespaceMetadata, any Error>?
}

extension NamespaceDirectory {
    public func namespaceAtHand(named name: String) -> Result<NamespaceMetadata, any Error>? { nil }
}

public struct NamespaceNotFound: Error, CustomStringConvertible {
    public let name: String
    public let source: String
    public var description: String { "namespace \"\(name)\" is not in \(source)" }
}

/// Offline, with no namespace information: every namespace reads as having no annotations, so only the
/// pod's own annotations count (what `needle review` does without `--namespaces`).
public struct NoNamespaces: NamespaceDirectory {
    public init() {}
    public func namespace(named name: String) async throws -> NamespaceMetadata { NamespaceMetadata(name: name) }
    public func namespaceAtHand(named name: String) -> Result<NamespaceMetadata, any Error>? { .success(NamespaceMetadata(name: name)) }
}

/// Namespaces read once from a file, as `kubectl get ns -o yaml` (or `-o json`) prints them.
public struct NamespaceFile: NamespaceDirectory {
    public let path: String
    public let namespaces: [String: NamespaceMetadata]

    public init(path: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw NamespaceFileError(path: path, detail: "cannot read it: \(error)")
        }
        self.path = path
        self.namespaces = try Self.parse(text, path: path)
    }

    public init(path: String, namespaces: [NamespaceMetadata]) {
        self.path = path
        self.namespaces = Dictionary(namespaces.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
    }

    public func namespace(named name: String) async throws -> NamespaceMetadata {
        guard let namespace = namespaces[name] else { throw NamespaceNotFound(name: name, source: path) }
        return namespace
    }

    public func namespaceAtHand(named name: String) -> Result<NamespaceMetadata, any Error>? {
        guard let namespace = namespaces[name] else { return .failure(NamespaceNotFound(name: name, source: path)) }
        return .success(namespace)
    }

    /// Accepts a `List`/`NamespaceList` with `items`, a single Namespace, or several YAML documents.
    static func parse(_ text: String, path: String) throws -> [String: NamespaceMetadata] {
        let documents: [Any]
        do {
            documents = try Array(Yams.load_all(yaml: text)).compactMap { $0 }
        } catch {
            throw NamespaceFileError(path: path, detail: "not YAML or JSON: \(error)")
        }
        var result: [String: NamespaceMetadata] = [:]
        func add(_ object: Any) throws {
            guard let map = object as? [String: Any] else {
                throw NamespaceFileError(path: path, detail: "expected a Namespace or a List of Namespaces")
            }
            let kind = map["kind"] as? String ?? ""
            if kind == "List" || kind == "NamespaceList" {
                for item in map["items"] as? [Any] ?? [] { try add(item) }
                return
            }
            guard kind == "Namespace", let metadata = map["metadata"] as? [String: Any],
                  let name = metadata["name"] as? String, !name.isEmpty
            else {
                throw NamespaceFileError(path: path, detail: "expected kind Namespace with metadata.name, got kind \"\(kind)\"")
            }
            result[name] = NamespaceMetadata(name: name, annotations: stringMap(metadata["annotations"]),
                                             labels: stringMap(metadata["labels"]))
        }
        for document in documents { try add(document) }
        return result
    }

    static func stringMap(_ value: Any?) -> [String: String] {
        guard let map = value as? [String: Any] else { return [:] }
        return map.compactMapValues { value in
            switch value {
            case let text as String: return text
            case let flag as Bool: return flag ? "true" : "false"
            case let number as Int: return String(number)
            default: return nil
            }
        }
    }
}

public struct NamespaceFileError: Error, CustomStringConvertible {
    public let path: String
    public let detail: String
    public var description: String { "namespace file \(path): \(detail)" }
}
