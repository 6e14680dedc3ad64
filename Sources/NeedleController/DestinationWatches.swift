import Logging
import NeedleDiscovery
import NeedleKubernetes

/// The three list+watches that keep the `DestinationCatalog` (DESIGN §8): Services, EndpointSlices
/// (`discovery.k8s.io/v1`) and pods, cluster-wide. Each object is turned into its record as it is decoded.
public struct DestinationWatches: Sendable {
    let client: KubernetesClient
    let catalog: DestinationCatalog
    let logger: Logger

    public init(client: KubernetesClient, catalog: DestinationCatalog, logger: Logger) {
        self.client = client
        self.catalog = catalog
        self.logger = logger
    }

    /// Runs until cancelled.
    public func run() async {
        let catalog = self.catalog
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await ResourceWatch<ServiceObject>(client: client, collectionPath: "/api/v1/services", kind: "service", logger: logger).run(
                    replace: { objects in catalog.replace(.services, with: .allServices(objects.compactMap(\.record))) },
                    apply: { event in Self.change(event, record: \.record, upsert: { .service($0) }, delete: { .serviceDeleted($0) }).map(catalog.apply) })
            }
            group.addTask {
                await ResourceWatch<EndpointSliceObject>(client: client, collectionPath: "/apis/discovery.k8s.io/v1/endpointslices",
                                                         kind: "endpointslice", logger: logger).run(
                    replace: { objects in catalog.replace(.endpointSlices, with: .allEndpointSlices(objects.compactMap(\.record))) },
                    apply: { event in
                        Self.change(event, record: \.record, upsert: { .endpointSlice($0) }, delete: { .endpointSliceDeleted($0) }).map(catalog.apply)
                    })
            }
            group.addTask {
                await ResourceWatch<PodObject>(client: client, collectionPath: "/api/v1/pods", kind: "pod", logger: logger).run(
                    replace: { objects in catalog.replace(.pods, with: .allPods(objects.compactMap(\.record))) },
                    apply: { event in Self.change(event, record: \.record, upsert: { .pod($0) }, delete: { .podDeleted($0) }).map(catalog.apply) })
            }
        }
    }

    /// A watch event as an index change; an object without a name or namespace changes nothing.
    static func change<Object, Record: KeyedRecord>(_ event: WatchEvent<Object>, record: KeyPath<Object, Record?>,
                                                    upsert: (Record) -> DestinationIndex.Change,
                                                    delete: (ObjectKey) -> DestinationIndex.Change) -> DestinationIndex.Change? {
        switch event {
        case .added(let object), .modified(let object):
            return object[keyPath: record].map(upsert)
        case .deleted(let object):
            return object[keyPath: record].map { delete($0.key) }
        }
    }
}
