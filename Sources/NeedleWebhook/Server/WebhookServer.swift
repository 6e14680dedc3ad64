import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NeedleServerKit

/// The HTTPS listener for `/inject` and the plain-HTTP admin listener, with a cap on connections and a
/// graceful shutdown (NIO's quiesce, through `ConnectionDrain`) that lets reviews in flight finish.
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
        var adminChannel: (any Channel)?
        var ready = false
        var draining = false
    }

    public let configuration: Configuration
    private let service: WebhookService
    private let certificate: ServingCertificate
    private let metrics: WebhookMetrics
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())
    private let limit: ConnectionLimit
    private let connections: ConnectionDrain

    public init(configuration: Configuration, service: WebhookService, certificate: ServingCertificate,
                metrics: WebhookMetrics, logger: Logger, group: any EventLoopGroup) {
        self.configuration = configuration
        self.service = service
        self.certificate = certificate
        self.metrics = metrics
        self.logger = logger
        self.group = group
        self.limit = ConnectionLimit(maximum: configuration.maxConnections)
        self.connections = ConnectionDrain(group: group)
    }

    public var isReady: Bool { state.withLockedValue { $0.ready && !$0.draining } }
    public var openConnections: Int { limit.openConnections }

    /// Binds both listeners; returns the bound webhook and admin addresses.
    public func start() async throws -> (webhook: SocketAddress, admin: SocketAddress) {
        let admin = try await bindAdmin()
        let webhook = try await bindWebhook()
        state.withLockedValue {
            $0.adminChannel = admin
            $0.ready = true
        }
        guard let webhookAddress = webhook.localAddress, let adminAddress = admin.localAddress else {
            throw ServerError(description: "listeners bound without a local address")
        }
        return (webhookAddress, adminAddress)
    }

    private func bindWebhook() async throws -> any Channel {
        let configuration = self.configuration
        let connections = self.connections
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(connections.makeListenerHandler(channel: channel))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                guard self.admit(channel) else {
                    self.logger.warning("connection refused: at the connection limit",
                                        metadata: ["limit": "\(configuration.maxConnections)"])
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: self.certificate.context))
                    // The pipeline handler also answers NIO's quiesce: an idle connection closes at once, one
                    // with a review in flight closes once its response is out.
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
        let adminState = AdminHandler.State(
            ready: { [weak self] in self?.isReady ?? false },
            draining: { [weak self] in self?.state.withLockedValue { $0.draining } ?? true },
            shutdownEnabled: false,
            metrics: { metrics.render() },
            requestShutdown: {}
        )
        return try await AdminListener.bind(group: group, host: configuration.adminHost, port: configuration.adminPort,
                                            state: adminState)
    }

    /// Counts the connection in, unless the server is not serving or the cap is reached.
    private func admit(_ channel: any Channel) -> Bool {
        guard isReady else { return false }
        let metrics = self.metrics
        guard limit.admit(channel, onClose: { metrics.connectionClosed() }) else { return false }
        metrics.connectionOpened()
        return true
    }

    /// Stop accepting, let reviews in flight finish (up to the grace period); whatever is still open after
    /// it closes with the event loop group.
    public func shutdown() async {
        state.withLockedValue { $0.draining = true }
        let finished = await connections.drain(gracePeriod: configuration.shutdownGracePeriod)
        if !finished {
            logger.warning("connections still open after the grace period are closed",
                           metadata: ["count": "\(limit.openConnections)"])
        }
        if let admin = state.withLockedValue({ $0.adminChannel }) { try? await admin.close() }
    }
}

public struct ServerError: Error, CustomStringConvertible {
    public let description: String
}
