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
import NeedleInjection
import NeedleKubernetes

/// Namespaces from the Kubernetes API: a list+watch keeps a cache; a namespace the cache lacks is fetched
/// directly. A watch that ends is resumed from its resource version; 410 Gone (or anything unusable)
/// relists. Errors back off from 1 s to 30 s.
public final class KubernetesNamespaces: NamespaceDirectory, Sendable {
    private let client: KubernetesClient
    private let logger: Logger
    private let state = NIOLockedValueBox(NamespaceWatchState())

    static let pageSize = 500
    static let watchTimeoutSeconds = 300
    static let maximumObjectBytes = 4 * 1024 * 1024

    public init(access: KubernetesAPIAccess, group: any EventLoopGroup, logger: Logger) throws {
        self.logger = logger
        client = KubernetesClient(access: access, group: group, userAgent: "needle-injector",
                                  readTimeout: .seconds(Int64(Self.watchTimeoutSeconds + 30)))
    }

    public var isSynced: Bool { state.withLockedValue { $0.synced } }

    public func namespace(named name: String) async throws -> NamespaceMetadata {
        if let cached = state.withLockedValue({ $0.namespaces[name] }) { return cached }
        let body = try await get("/api/v1/namespaces/\(name)", timeout: .seconds(5))
        let object = try JSONDecoder().decode(NamespaceObject.self, from: body)
        guard let namespace = object.namespaceMetadata else {
            throw KubernetesAPIError(description: "namespace \(name): the API answered without metadata.name")
        }
        state.withLockedValue { $0.remember(namespace) }
        return namespace
    }

    /// Keeps the cache in step until the task is cancelled.
    public func run() async {
        var backoff = Duration.seconds(1)
        var needsList = true
        while !Task.isCancelled {
            do {
                if needsList {
                    try await list()
                    logger.info("namespace cache synced", metadata: ["count": "\(state.withLockedValue { $0.namespaces.count })"])
                }
                switch try await watch() {
                case .keepWatching:
                    needsList = false
                case .relist(let reason):
                    logger.info("relisting namespaces", metadata: ["reason": "\(reason)"])
                    needsList = true
                }
                backoff = .seconds(1)
            } catch {
                if Task.isCancelled { break }
                logger.warning("namespace watch failed; retrying", metadata: ["error": "\(error)", "retry_in": "\(backoff)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(30))
                needsList = true
            }
        }
    }

    public func shutdown() async {
        await client.shutdown()
    }

    private func list() async throws {
        var pages: [NamespaceList] = []
        var token: String? = nil
        repeat {
            var path = "/api/v1/namespaces?limit=\(Self.pageSize)"
            if let token { path += "&continue=\(Self.percentEncoded(token))" }
            let page = try JSONDecoder().decode(NamespaceList.self, from: try await get(path, timeout: .seconds(30)))
            pages.append(page)
            token = page.metadata?.continue.flatMap { $0.isEmpty ? nil : $0 }
        } while token != nil && pages.count < 10_000
        state.withLockedValue { $0.replace(with: pages) }
    }

    /// Streams one watch until it ends (normally after `timeoutSeconds`) or asks for a relist.
    private func watch() async throws -> NamespaceWatchState.Next {
        guard let version = state.withLockedValue({ $0.resourceVersion }) else { return .relist("no resource version") }
        let path = "/api/v1/namespaces?watch=1&allowWatchBookmarks=true&timeoutSeconds=\(Self.watchTimeoutSeconds)"
            + "&resourceVersion=\(Self.percentEncoded(version))"
        let response = try await client.execute(try client.request(path), timeout: .seconds(Int64(Self.watchTimeoutSeconds + 30)))
        if response.status == .gone { return .relist("410 Gone") }
        guard response.status == .ok else {
            throw KubernetesAPIError(description: "watch answered HTTP \(response.status.code)")
        }
        var splitter = LineSplitter(maximumLineLength: Self.maximumObjectBytes)
        for try await chunk in response.body {
            for line in try splitter.append(chunk.readableBytesView) {
                let next = state.withLockedValue { $0.apply(line: line) }
                if next != .keepWatching { return next }
            }
        }
        return .keepWatching
    }

    private func get(_ path: String, timeout: TimeAmount) async throws -> Data {
        logger.debug("kubernetes api request", metadata: ["path": "\(path)"])
        let response = try await client.execute(try client.request(path), timeout: timeout)
        logger.debug("kubernetes api response", metadata: ["path": "\(path)", "status": "\(response.status.code)"])
        guard response.status == .ok else {
            throw KubernetesAPIError(description: "GET \(path) answered HTTP \(response.status.code)")
        }
        var body = try await response.body.collect(upTo: Self.maximumObjectBytes * 4)
        return Data(body.readBytes(length: body.readableBytes) ?? [])
    }

    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            let scalar = Unicode.Scalar(byte)
            if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || "-._~".unicodeScalars.contains(scalar) {
                result.unicodeScalars.append(scalar)
            } else {
                result += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return result
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
