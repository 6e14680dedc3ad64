import Logging
import NIOCore
import NIOHTTP1

/// Keeps a local copy of one kind of Kubernetes object in step with the API: a paginated list, then a
/// watch that resumes from the last resource version when it ends; 410 Gone (or anything unusable)
/// relists; errors back off from 1 s to 30 s. The caller keeps the objects: it is told the complete list
/// (replace everything) and then each event.
public struct ResourceWatch<Object: Decodable & Sendable>: Sendable {
    public let client: KubernetesClient
    /// The collection, e.g. `/api/v1/namespaces` or `/apis/discovery.k8s.io/v1/endpointslices`.
    public let collectionPath: String
    /// For logs: "namespace", "pod", ...
    public let kind: String
    public let logger: Logger

    public static var pageSize: Int { 500 }
    public static var watchTimeoutSeconds: Int { 300 }
    public static var maximumObjectBytes: Int { 4 * 1024 * 1024 }

    public init(client: KubernetesClient, collectionPath: String, kind: String, logger: Logger) {
        self.client = client
        self.collectionPath = collectionPath
        self.kind = kind
        self.logger = logger
    }

    /// Runs until the task is cancelled.
    public func run(replace: @Sendable ([Object]) -> Void, apply: @Sendable (WatchEvent<Object>) -> Void) async {
        var backoff = Duration.seconds(1)
        var cursor: WatchCursor?
        while !Task.isCancelled {
            do {
                if cursor == nil {
                    let (objects, version) = try await list()
                    replace(objects)
                    cursor = WatchCursor(resourceVersion: version)
                    logger.info("\(kind) cache synced", metadata: ["count": "\(objects.count)"])
                }
                guard cursor != nil else { continue }
                let relistReason = try await watch(&cursor, apply: apply)
                if let relistReason {
                    cursor = nil
                    // An API server in trouble answers watches with errors at once: a relist waits the
                    // backoff, so it is not asked for the whole collection in a tight loop.
                    logger.info("relisting \(kind)s", metadata: ["reason": "\(relistReason)", "in": "\(backoff)"])
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(30))
                } else {
                    backoff = .seconds(1)
                }
            } catch {
                if Task.isCancelled { break }
                // A watch cut short (a connection closed, a proxy timing it out) resumes from the last version it
                // delivered: only 410 Gone or an unusable event costs a relist of the whole collection.
                logger.warning("\(kind) watch failed; retrying", metadata: ["error": "\(error)", "retry_in": "\(backoff)",
                                                                            "resume": "\(cursor == nil ? "relist" : "watch")"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }

    private func list() async throws -> ([Object], String?) {
        var objects: [Object] = []
        var version: String?
        var token: String?
        var pages = 0
        repeat {
            var path = "\(collectionPath)?limit=\(Self.pageSize)"
            if let token { path += "&continue=\(percentEncoded(token))" }
            let page = try await client.getJSON(ResourceList<Object>.self, path: path, timeout: .seconds(30),
                                                limit: Self.maximumObjectBytes * 16)
            objects += page.items ?? []
            version = page.metadata?.resourceVersion
            token = page.metadata?.continue.flatMap { $0.isEmpty ? nil : $0 }
            pages += 1
        } while token != nil && pages < 10_000
        return (objects, version)
    }

    /// Streams one watch until it ends (normally after `watchTimeoutSeconds`): nil, or why to relist.
    /// `cursor` follows every event delivered, also when the watch fails part way.
    private func watch(_ cursor: inout WatchCursor?, apply: @Sendable (WatchEvent<Object>) -> Void) async throws -> String? {
        guard var current = cursor, let version = current.resourceVersion else { return "no resource version" }
        defer { cursor = current }
        let path = "\(collectionPath)?watch=1&allowWatchBookmarks=true&timeoutSeconds=\(Self.watchTimeoutSeconds)"
            + "&resourceVersion=\(percentEncoded(version))"
        let response = try await client.execute(try client.request(path), timeout: .seconds(Int64(Self.watchTimeoutSeconds + 30)))
        if response.status == .gone { return "410 Gone" }
        guard response.status == .ok else {
            throw KubernetesAPIError(description: "\(kind) watch answered HTTP \(response.status.code)")
        }
        var splitter = LineSplitter(maximumLineLength: Self.maximumObjectBytes)
        for try await chunk in response.body {
            for line in try splitter.append(chunk.readableBytesView) {
                switch current.decode(line: line, as: Object.self) {
                case .event(let event): apply(event)
                case .nothing: continue
                case .relist(let reason): return reason
                }
            }
        }
        return nil
    }
}
