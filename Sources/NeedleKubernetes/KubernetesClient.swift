#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// How to reach the Kubernetes API: in a pod, from the service-account mount and the service env vars.
public struct KubernetesAPIAccess: Sendable {
    public var server: String
    public var caFile: String?
    public var tokenFile: String?

    public init(server: String, caFile: String?, tokenFile: String?) {
        self.server = server
        self.caFile = caFile
        self.tokenFile = tokenFile
    }

    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// nil when not running in a pod.
    public static func inCluster(environment: [String: String]) -> KubernetesAPIAccess? {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
              let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty,
              FileManager.default.fileExists(atPath: serviceAccountDirectory + "/token")
        else { return nil }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return KubernetesAPIAccess(server: "https://\(hostPart):\(port)", caFile: serviceAccountDirectory + "/ca.crt",
                                   tokenFile: serviceAccountDirectory + "/token")
    }
}

public struct KubernetesAPIError: Error, CustomStringConvertible {
    public let description: String

    public init(description: String) {
        self.description = description
    }
}

/// An HTTP client for the Kubernetes API: the server's CA, the service-account token (re-read for every
/// request, since the kubelet rotates projected tokens), JSON in and out.
public final class KubernetesClient: Sendable {
    public let access: KubernetesAPIAccess
    private let client: HTTPClient
    private let userAgent: String

    public init(access: KubernetesAPIAccess, group: any EventLoopGroup, userAgent: String, readTimeout: TimeAmount) {
        self.access = access
        self.userAgent = userAgent
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let caFile = access.caFile {
            tls.trustRoots = .file(caFile)
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: .seconds(5), read: readTimeout)
        client = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration)
    }

    /// A request for `path` with the headers every call carries.
    public func request(_ path: String, method: HTTPMethod = .GET) throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: access.server + path)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: userAgent)
        if let tokenFile = access.tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw KubernetesAPIError(description: "cannot read the service-account token \(tokenFile)")
            }
            let token = String(String(decoding: data, as: UTF8.self).filter { !$0.isWhitespace })
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        return request
    }

    public func execute(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        try await client.execute(request, timeout: timeout)
    }

    /// GETs `path` and decodes the JSON answer (at most `limit` bytes); anything but 200 is an error naming
    /// the path and status.
    public func getJSON<Value: Decodable>(_ type: Value.Type, path: String, timeout: TimeAmount, limit: Int) async throws -> Value {
        let response = try await client.execute(try request(path), timeout: timeout)
        guard response.status == .ok else {
            throw KubernetesAPIError(description: "GET \(path) answered HTTP \(response.status.code)")
        }
        var body = try await response.body.collect(upTo: limit)
        return try JSONDecoder().decode(type, from: Data(body.readBytes(length: body.readableBytes) ?? []))
    }

    /// POSTs a JSON object; returns the status and at most `limit` bytes of the answer.
    public func post(_ path: String, json: [UInt8], timeout: TimeAmount, limit: Int) async throws -> (status: Int, body: [UInt8]) {
        var request = try request(path, method: .POST)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(json)
        let response = try await client.execute(request, timeout: timeout)
        var body = try await response.body.collect(upTo: limit)
        return (Int(response.status.code), body.readBytes(length: body.readableBytes) ?? [])
    }

    public func shutdown() async {
        try? await client.shutdown()
    }
}
