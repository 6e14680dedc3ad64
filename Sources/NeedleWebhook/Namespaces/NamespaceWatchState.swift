#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleInjection
import NeedleKubernetes

/// The Kubernetes objects a namespace list and watch carry, decoded narrowly.
struct NamespaceObject: Decodable, Sendable {
    struct Metadata: Decodable, Sendable {
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

/// The namespace cache's contents, without I/O: `ResourceWatch` hands it the complete list and then each
/// watch event.
struct NamespaceWatchState {
    private(set) var namespaces: [String: NamespaceMetadata] = [:]
    private(set) var synced = false

    /// Replaces the contents with a complete list.
    mutating func replace(with objects: [NamespaceObject]) {
        var fresh: [String: NamespaceMetadata] = [:]
        for object in objects {
            if let namespace = object.namespaceMetadata { fresh[namespace.name] = namespace }
        }
        namespaces = fresh
        synced = true
    }

    mutating func remember(_ namespace: NamespaceMetadata) {
        namespaces[namespace.name] = namespace
    }

    mutating func apply(_ event: WatchEvent<NamespaceObject>) {
        switch event {
        case .added(let object), .modified(let object):
            if let namespace = object.namespaceMetadata { namespaces[namespace.name] = namespace }
        case .deleted(let object):
            if let name = object.metadata?.name { namespaces[name] = nil }
        }
    }
}
