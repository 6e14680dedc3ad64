#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleInjection

/// The Kubernetes objects a namespace list and watch carry, decoded narrowly.
struct NamespaceObject: Decodable {
    struct Metadata: Decodable {
        var name: String?
        var resourceVersion: String?
        var annotations: [String: String]?
        var labels: [String: String]?
    }
    var metadata: Metadata?

    var namespaceMetadata: NamespaceMetadata? {
        guard let name = metadata?.name, !name.isEmpty else { return nil }
        return NamespaceMetadata(name: name, annotations: metadata?.annotations ?? [:], labels: metadata?.labels ?? [:])
    }
}

struct NamespaceList: Decodable {
    struct ListMetadata: Decodable {
        var resourceVersion: String?
        /// The next page's token when the list is paginated.
        var `continue`: String?
    }
    var metadata: ListMetadata?
    var items: [NamespaceObject]?
}

/// One line of a watch stream: `{"type": "ADDED", "object": {...}}`. An `ERROR` event carries a Status.
struct WatchEvent: Decodable {
    var type: String
    var object: WatchObject

    struct WatchObject: Decodable {
        var metadata: NamespaceObject.Metadata?
        var code: Int?
        var reason: String?
        var message: String?
    }
}

/// The namespace cache's contents and the watch bookkeeping, without I/O: the client feeds it the list
/// and each watch line and does what it answers.
struct NamespaceWatchState {
    private(set) var namespaces: [String: NamespaceMetadata] = [:]
    /// Where the next watch resumes.
    private(set) var resourceVersion: String?
    private(set) var synced = false

    enum Next: Equatable {
        case keepWatching
        /// The resource version is too old (410 Gone) or the stream is unusable: list again.
        case relist(String)
    }

    /// Replaces the contents with a complete list (all pages); the last page's resource version is where
    /// the watch resumes.
    mutating func replace(with pages: [NamespaceList]) {
        var fresh: [String: NamespaceMetadata] = [:]
        for page in pages {
            for item in page.items ?? [] {
                if let namespace = item.namespaceMetadata { fresh[namespace.name] = namespace }
            }
        }
        namespaces = fresh
        resourceVersion = pages.last?.metadata?.resourceVersion
        synced = true
    }

    mutating func remember(_ namespace: NamespaceMetadata) {
        namespaces[namespace.name] = namespace
    }

    /// Applies one line of the watch stream. Blank lines (keep-alive) are ignored.
    mutating func apply(line: some Collection<UInt8>) -> Next {
        if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { return .keepWatching }
        let event: WatchEvent
        do {
            event = try JSONDecoder().decode(WatchEvent.self, from: Data(line))
        } catch {
            return .relist("undecodable watch event")
        }
        switch event.type {
        case "ADDED", "MODIFIED":
            let object = NamespaceObject(metadata: event.object.metadata)
            if let namespace = object.namespaceMetadata { namespaces[namespace.name] = namespace }
        case "DELETED":
            if let name = event.object.metadata?.name { namespaces[name] = nil }
        case "BOOKMARK":
            break
        case "ERROR":
            let code = event.object.code.map(String.init) ?? "?"
            return .relist("watch error \(code) \(event.object.reason ?? ""): \(event.object.message ?? "")")
        default:
            return .relist("unknown watch event type \(event.type)")
        }
        if let version = event.object.metadata?.resourceVersion, !version.isEmpty { resourceVersion = version }
        return .keepWatching
    }
}

/// Splits a byte stream into newline-terminated lines, keeping a partial line for the next chunk.
struct LineSplitter {
    private var pending: [UInt8] = []
    /// A single watch event larger than this is not a namespace; refuse to buffer without bound.
    let maximumLineLength: Int

    init(maximumLineLength: Int = 4 * 1024 * 1024) {
        self.maximumLineLength = maximumLineLength
    }

    struct LineTooLong: Error {}

    mutating func append(_ bytes: some Sequence<UInt8>) throws -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                lines.append(pending)
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
                if pending.count > maximumLineLength { throw LineTooLong() }
            }
        }
        return lines
    }
}
