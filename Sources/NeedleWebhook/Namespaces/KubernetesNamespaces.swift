#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AsyncHTTPClient
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL
import NeedleContract
import NeedleInjection
import NeedleKubernetes

/// Namespaces from the Kubernetes API: a list+watch (`ResourceWatch`) keeps a cache; a namespace the cache
/// lacks is fetched directly.
public final class KubernetesNamespaces: NamespaceDirectory, Sendable {
    private let client: KubernetesClient
    private let logger: Logger
    private let state = NIOLockedValueBox(NamespaceWatchState())

    public init(access: KubernetesAPIAccess, group: any EventLoopGroup, logger: Logger) throws {
        self.logger = logger
        client = KubernetesClient(access: access, group: group, userAgent: "needle-injector",
                                  readTimeout: .seconds(Int64(ResourceWatch<NamespaceObject>.watchTimeoutSeconds + 30)))
    }

    public var isSynced: Bool { state.withLockedValue { $0.synced } }

    public func namespaceAtHand(named name: String) -> Result<NamespaceMetadata, any Error>? {
        state.withLockedValue { $0.namespaces[name] }.map { .success($0) }
    }

    public func namespace(named name: String) async throws -> NamespaceMetadata {
        if let cached = state.withLockedValue({ $0.namespaces[name] }) { return cached }
        // The name comes from the review: it goes into a URL path only when it is a namespace name.
        guard DNSName.isLabel(name) else {
            throw KubernetesAPIError(description: "\"\(name)\" is not a namespace name: \(DNSName.labelFormat)")
        }
        logger.debug("kubernetes api request", metadata: ["namespace": "\(name)"])
        let object = try await client.getJSON(NamespaceObject.self, path: "/api/v1/namespaces/\(name)", timeout: .seconds(5),
                                              limit: ResourceWatch<NamespaceObject>.maximumObjectBytes)
        guard let namespace = object.namespaceMetadata else {
            throw KubernetesAPIError(description: "namespace \(name): the API answered without metadata.name")
        }
        state.withLockedValue { $0.remember(namespace) }
        return namespace
    }

    /// Keeps the cache in step until the task is cancelled.
    public func run() async {
        let watch = ResourceWatch<NamespaceObject>(client: client, collectionPath: "/api/v1/namespaces", kind: "namespace", logger: logger)
        await watch.run(replace: { [state] objects in state.withLockedValue { $0.replace(with: objects) } },
                        apply: { [state] event in state.withLockedValue { $0.apply(event) } })
    }

    public func shutdown() async {
        await client.shutdown()
    }
}
