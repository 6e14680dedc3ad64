import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOHTTP2
import NIOSSL
import NIOTLS
import NeedleServerKit

/// What the server reports about its connections, and the text of its `/metrics`.
public protocol ServerMetrics: Sendable {
    func connectionOpened()
    func connectionClosed()
    func render() -> [UInt8]
}

/// The HTTPS listener of a `RequestService` (the injector's webhook, the controller's identity API) and the
/// plain-HTTP admin listener, with a cap on connections and a graceful shutdown (NIO's quiesce, through
/// `ConnectionDrain`) that lets requests in flight finish.
public final class HTTPSServer: Sendable {
    public struct Configuration: Sendable {
        public var listenHost = "0.0.0.0"
        public var listenPort = 8443
        public var adminHost = "0.0.0.0"
        public var adminPort = 9995
        /// False for a second service of the same process, whose admin endpoints the first one serves.
        public var servesAdmin = true
        public var headerTimeout = TimeAmount.seconds(10)
        public var bodyTimeout = TimeAmount.seconds(10)
        public var maxConnections = 512
        /// How long requests in flight may take to finish after SIGTERM.
        public var shutdownGracePeriod = Duration.seconds(20)
        /// Serve HTTP/2 to clients that ask for it by ALPN (the TLS context must offer `h2`): each stream is a
        /// request, so many long-lived answers (the destination API's lookups) share one connection.
        public var servesHTTP2 = false
        /// Streams one HTTP/2 client may have open at once (its SETTINGS_MAX_CONCURRENT_STREAMS).
        public var maxConcurrentStreams = 100

        public init() {}
    }

    private struct State {
        var adminChannel: (any Channel)?
        var ready = false
        var draining = false
    }

    public let configuration: Configuration
    private let service: any RequestService
    /// The TLS context for each new connection: a certificate swapped on disk or renewed in memory takes
    /// effect without a restart.
    private let tlsContext: @Sendable () -> NIOSSLContext
    private let metrics: any ServerMetrics
    /// Extra readiness beyond "listening and not draining" (the controller: an issuer is loaded).
    private let ready: @Sendable () -> Bool
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())
    private let limit: ConnectionLimit
    private let connections: ConnectionDrain

    public init(configuration: Configuration, service: any RequestService, tlsContext: @escaping @Sendable () -> NIOSSLContext,
                metrics: any ServerMetrics, ready: @escaping @Sendable () -> Bool = { true }, logger: Logger,
                group: any EventLoopGroup) {
        self.configuration = configuration
        self.service = service
        self.tlsContext = tlsContext
        self.metrics = metrics
        self.ready = ready
        self.logger = logger
        self.group = group
        self.limit = ConnectionLimit(maximum: configuration.maxConnections)
        self.connections = ConnectionDrain(group: group)
    }

    public var isReady: Bool { state.withLockedValue { $0.ready && !$0.draining } && ready() }
    private var isServing: Bool { state.withLockedValue { $0.ready && !$0.draining } }
    public var openConnections: Int { limit.openConnections }

    /// Binds the listeners; returns the bound service address and the admin one (nil when not served).
    public func start() async throws -> (service: SocketAddress, admin: SocketAddress?) {
        let admin = configuration.servesAdmin ? try await bindAdmin() : nil
        let service = try await bindService()
        state.withLockedValue {
            $0.adminChannel = admin
            $0.ready = true
        }
        guard let serviceAddress = service.localAddress else {
            throw HTTPSServerError(description: "the service listener bound without a local address")
        }
        if let admin, admin.localAddress == nil {
            throw HTTPSServerError(description: "the admin listener bound without a local address")
        }
        return (serviceAddress, admin?.localAddress)
    }

    private func bindService() async throws -> any Channel {
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
                    try sync.addHandler(NIOSSLServerHandler(context: self.tlsContext()))
                    guard configuration.servesHTTP2 else {
                        try self.configureHTTP1(sync)
                        return
                    }
                    try sync.addHandler(HandshakeDeadline(timeout: configuration.headerTimeout))
                    try sync.addHandler(ApplicationProtocolNegotiationHandler { [self] result, channel in
                        channel.eventLoop.makeCompletedFuture {
                            if case .negotiated("h2") = result {
                                try self.configureHTTP2(channel)
                            } else {
                                try self.configureHTTP1(channel.pipeline.syncOperations)
                            }
                        }
                    })
                }
            }
            .bind(host: configuration.listenHost, port: configuration.listenPort)
            .get()
    }

    private var timeouts: RequestHandler.Timeouts {
        .init(header: configuration.headerTimeout, body: configuration.bodyTimeout)
    }

    private func configureHTTP1(_ sync: ChannelPipeline.SynchronousOperations) throws {
        // The pipeline handler also answers NIO's quiesce: an idle connection closes at once, one with a
        // request in flight closes once its response is out.
        try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
        try sync.addHandler(RequestHandler(service: service, timeouts: timeouts))
    }

    /// HTTP/2: a `RequestHandler` per stream, behind a codec that shows it the stream as HTTP/1-style parts.
    /// NIO's connection management answers a quiesce with a graceful GOAWAY: streams in flight finish.
    private func configureHTTP2(_ channel: any Channel) throws {
        let (service, timeouts) = (self.service, self.timeouts)
        var connectionConfiguration = NIOHTTP2Handler.ConnectionConfiguration()
        connectionConfiguration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: configuration.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 16 * 1024),  // NIO's default
        ]
        let management = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            // A connection without a stream for 5 minutes closes (a proxy with no lookup left reconnects when it
            // has one); the connection cap is not held by idle clients.
            configuration: .init(maxIdleTime: .minutes(5), maxAge: nil, maxGraceTime: nil, keepalive: nil))
        let sync = channel.pipeline.syncOperations
        _ = try sync.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connectionConfiguration, streamConfiguration: .init(),
            streamDelegate: management.http2StreamDelegate
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try stream.pipeline.syncOperations.addHandler(RequestHandler(service: service, timeouts: timeouts))
            }
        }
        try sync.addHandler(management)
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
        guard isServing else { return false }
        let metrics = self.metrics
        guard limit.admit(channel, onClose: { metrics.connectionClosed() }) else { return false }
        metrics.connectionOpened()
        return true
    }

    /// Stop accepting, let requests in flight finish (up to the grace period); whatever is still open after
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

public struct HTTPSServerError: Error, CustomStringConvertible {
    public let description: String
}
