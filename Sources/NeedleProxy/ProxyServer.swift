import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NeedleContract

/// The three listeners and the shutdown sequence of needle-proxy.
public final class ProxyServer: Sendable {
    public let environment: ProxyEnvironment
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let metrics = ProxyMetrics()
    private let registry = ConnectionRegistry()
    private let pools: LoopLocal<UpstreamPool>
    private let setup: ConnectionSetup

    private struct State {
        var listeners: [any Channel] = []
        var admin: (any Channel)?
        var ready = false
        var draining = false
    }

    private let state = NIOLockedValueBox(State())
    private let shutdownRequests: AsyncStream<String>
    private let shutdownContinuation: AsyncStream<String>.Continuation

    public init(environment: ProxyEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: environment.workers)
        let connectTimeout = TimeAmount.milliseconds(Int64(max(1, environment.outboundConnectTimeout.milliseconds)))
        pools = LoopLocal(group: group) { UpstreamPool(eventLoop: $0, connectTimeout: connectTimeout) }
        setup = ConnectionSetup(environment: environment, metrics: metrics, pools: pools, registry: registry, logger: logger)
        (shutdownRequests, shutdownContinuation) = AsyncStream.makeStream(of: String.self)
    }

    public var metricsText: [UInt8] { metrics.render() }

    /// Asks the proxy to drain and stop (SIGTERM, or POST /shutdown).
    public func requestShutdown(_ reason: String) {
        shutdownContinuation.yield(reason)
    }

    /// Binds, serves until asked to shut down, drains for up to the grace period, and returns.
    public func run() async throws {
        let admin = try await bindAdmin()
        state.withLockedValue { $0.admin = admin }
        let inbound = try await bindForwarding(environment.inboundListenAddress, direction: .inbound)
        let outbound = try await bindForwarding(environment.outboundListenAddress, direction: .outbound)
        state.withLockedValue {
            $0.listeners = [inbound, outbound]
            $0.ready = true
        }
        logger.info("ready", metadata: [
            "inbound": "\(environment.inboundListenAddress)", "outbound": "\(environment.outboundListenAddress)",
            "admin": "\(environment.adminListenAddress)", "workers": "\(environment.workers)",
        ])
        var requests = shutdownRequests.makeAsyncIterator()
        let reason = await requests.next() ?? "stream ended"
        await drain(reason: reason)
    }

    private func drain(reason: String) async {
        let grace = Duration.milliseconds(environment.shutdownGracePeriod.milliseconds)
        logger.info("draining", metadata: ["reason": "\(reason)", "grace_period": "\(environment.shutdownGracePeriod)",
                                           "open_connections": "\(registry.count)"])
        let listeners = state.withLockedValue { state -> [any Channel] in
            state.draining = true
            return state.listeners
        }
        for listener in listeners { try? await listener.close() }
        for channel in registry.all {
            channel.pipeline.fireUserInboundEventTriggered(ProxyShutdownEvent())
        }
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        while registry.count > 0, clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let leftover = registry.all
        if !leftover.isEmpty {
            logger.info("grace period over; closing remaining connections", metadata: ["count": "\(leftover.count)"])
        }
        for channel in leftover { try? await channel.close() }
        for loop in group.makeIterator() {
            try? await loop.submit { self.pools.value(on: loop)?.closeIdle() }.get()
        }
        if let admin = state.withLockedValue({ $0.admin }) { try? await admin.close() }
        try? await group.shutdownGracefully()
        logger.info("stopped")
    }

    private func bindForwarding(_ address: ListenAddress, direction: Direction) async throws -> any Channel {
        let setup = self.setup
        let logger = self.logger
        return try await ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptErrorLogger(logger: logger, direction: direction))
                }
            }
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            // Reads start only when a handler asks: detection, then the forwarding side, which reads only
            // while its partner can take more.
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { channel in setup.accept(channel, direction: direction) }
            .bind(host: address.ip.description, port: address.port)
            .get()
    }

    private func bindAdmin() async throws -> any Channel {
        let adminState = AdminHandler.State(
            ready: { [weak self] in self?.state.withLockedValue { $0.ready } ?? false },
            draining: { [weak self] in self?.state.withLockedValue { $0.draining } ?? true },
            shutdownEnabled: environment.shutdownEndpointEnabled,
            metrics: { [weak self] in self?.metrics.render() ?? [] },
            requestShutdown: { [weak self] in self?.requestShutdown("POST /shutdown") }
        )
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(state: adminState))
                }
            }
            .bind(host: environment.adminListenAddress.ip.description, port: environment.adminListenAddress.port)
            .get()
    }
}

/// Logs what goes wrong while accepting (descriptor limits, a connection that could not be set up).
final class AcceptErrorLogger: ChannelInboundHandler {
    typealias InboundIn = Any

    let logger: Logger
    let direction: Direction

    init(logger: Logger, direction: Direction) {
        self.logger = logger
        self.direction = direction
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.warning("accept failed", metadata: ["direction": "\(direction.rawValue)", "error": "\(error)"])
    }
}

@available(*, unavailable)
extension AcceptErrorLogger: Sendable {}
