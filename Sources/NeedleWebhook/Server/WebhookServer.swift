import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The HTTPS listener for `/inject` and the plain-HTTP admin listener, with a cap on connections and a
/// graceful shutdown that lets reviews in flight finish.
public final class WebhookServer: Sendable {
    public struct Configuration: Sendable {
        public var listenHost = "0.0.0.0"
        public var listenPort = 8443
        public var adminHost = "0.0.0.0"
        public var adminPort = 9995
        /// DESIGN §4: 4 MiB; the API server caps request bodies at 3 MiB.
        public var bodyLimit = 4 * 1024 * 1024
        public var headerTimeout = TimeAmount.seconds(10)
        public var bodyTimeout = TimeAmount.seconds(10)
        public var maxConnections = 512
        /// How long in-flight reviews may take to finish after SIGTERM.
        public var shutdownGracePeriod = Duration.seconds(20)

        public init() {}
    }

    private struct State {
        var connections: [ObjectIdentifier: any Channel] = [:]
        var serverChannel: (any Channel)?
        var adminChannel: (any Channel)?
        var ready = false
    }

    public let configuration: Configuration
    private let service: WebhookService
    private let certificate: ServingCertificate
    private let metrics: WebhookMetrics
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    public init(configuration: Configuration, service: WebhookService, certificate: ServingCertificate,
                metrics: WebhookMetrics, logger: Logger, group: any EventLoopGroup) {
        self.configuration = configuration
        self.service = service
        self.certificate = certificate
        self.metrics = metrics
        self.logger = logger
        self.group = group
    }

    public var isReady: Bool { state.withLockedValue { $0.ready } }
    public var openConnections: Int { state.withLockedValue { $0.connections.count } }

    /// Binds both listeners; returns the bound webhook and admin addresses.
    public func start() async throws -> (webhook: SocketAddress, admin: SocketAddress) {
        let admin = try await bindAdmin()
        let webhook = try await bindWebhook()
        state.withLockedValue {
            $0.adminChannel = admin
            $0.serverChannel = webhook
            $0.ready = true
        }
        guard let webhookAddress = webhook.localAddress, let adminAddress = admin.localAddress else {
            throw ServerError(description: "listeners bound without a local address")
        }
        return (webhookAddress, adminAddress)
    }

    private func bindWebhook() async throws -> any Channel {
        let configuration = self.configuration
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                guard self.register(channel) else {
                    self.logger.warning("connection refused: at the connection limit",
                                        metadata: ["limit": "\(configuration.maxConnections)"])
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: self.certificate.context))
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try sync.addHandler(WebhookHTTPHandler(
                        service: self.service, bodyLimit: configuration.bodyLimit,
                        timeouts: .init(header: configuration.headerTimeout, body: configuration.bodyTimeout)))
                }
            }
            .bind(host: configuration.listenHost, port: configuration.listenPort)
            .get()
    }

    private func bindAdmin() async throws -> any Channel {
        let metrics = self.metrics
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHTTPHandler(
                        metrics: metrics, readiness: { [weak self] in self?.isReady ?? false }))
                }
            }
            .bind(host: configuration.adminHost, port: configuration.adminPort)
            .get()
    }

    /// Counts the connection in, unless the cap is reached.
    private func register(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLockedValue { state -> Bool in
            guard state.connections.count < configuration.maxConnections, state.ready else { return false }
            state.connections[id] = channel
            return true
        }
        guard accepted else { return false }
        metrics.connectionOpened()
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLockedValue { $0.connections.removeValue(forKey: id) }
            metrics.connectionClosed()
        }
        return true
    }

    /// Stop accepting, let reviews in flight finish (up to the grace period), then close everything.
    public func shutdown() async {
        let (server, admin, connections) = state.withLockedValue { state in
            state.ready = false
            return (state.serverChannel, state.adminChannel, Array(state.connections.values))
        }
        try? await server?.close()
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(ConnectionEvent.shutdownRequested)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.shutdownGracePeriod
        while openConnections > 0, clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let leftovers = state.withLockedValue { Array($0.connections.values) }
        if !leftovers.isEmpty {
            logger.warning("closing connections still open after the grace period", metadata: ["count": "\(leftovers.count)"])
        }
        for connection in leftovers { try? await connection.close() }
        try? await admin?.close()
    }
}

public struct ServerError: Error, CustomStringConvertible {
    public let description: String
}

/// `/metrics`, `/ready`, `/live` on the admin port.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: WebhookMetrics
    private let readiness: @Sendable () -> Bool
    private var head: HTTPRequestHead?

    init(metrics: WebhookMetrics, readiness: @escaping @Sendable () -> Bool) {
        self.metrics = metrics
        self.readiness = readiness
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let reply = Self.route(method: head.method, path: head.uri, metrics: metrics, ready: readiness())
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: reply.contentType)
            headers.add(name: "content-length", value: String(reply.body.count))
            let keepAlive = head.isKeepAlive
            headers.add(name: "connection", value: keepAlive ? "keep-alive" : "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version,
                                                                 status: HTTPResponseStatus(statusCode: reply.status),
                                                                 headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: reply.body)))), promise: nil)
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }

    static func route(method: HTTPMethod, path: String, metrics: WebhookMetrics, ready: Bool) -> HTTPReply {
        guard method == .GET || method == .HEAD else { return .text(405, "use GET\n") }
        switch path.split(separator: "?").first.map(String.init) ?? path {
        case "/metrics":
            return HTTPReply(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.render())
        case "/ready":
            return ready ? .text(200, "ready\n") : .text(503, "not ready\n")
        case "/live":
            return .text(200, "live\n")
        default:
            return .text(404, "not found; try /metrics, /ready or /live\n")
        }
    }
}

@available(*, unavailable)
extension AdminHTTPHandler: Sendable {}
