import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NeedleContract
import NeedleServerKit

/// The three listeners and the shutdown sequence of needle-proxy.
public final class ProxyServer: Sendable {
    public let environment: ProxyEnvironment
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let metrics = ProxyMetrics()
    private let pools: UpstreamPools
    private let setup: ConnectionSetup
    /// Tracks the forwarding listeners' connections; on drain sends them `ChannelShouldQuiesceEvent` and
    /// reports when the last one has closed.
    private let connections: ConnectionDrain
    /// nil: identity off (plaintext, ready once listening).
    private let identity: ProxyIdentity?
    /// nil: discovery off (outbound traffic goes to its original destination).
    private let lookups: DestinationLookups?
    /// Forgets lookups no connection has used for a while.
    private let lookupSweep = NIOLockedValueBox<RepeatedTask?>(nil)

    private struct State {
        var admin: (any Channel)?
        var ready = false
        var draining = false
    }

    private let state = NIOLockedValueBox(State())
    private let shutdownRequests: AsyncStream<String>
    private let shutdownContinuation: AsyncStream<String>.Continuation

    /// Throws `ProxyStartError` when the identity settings cannot be used (trust anchors that do not parse).
    public init(environment: ProxyEnvironment, logger: Logger) throws(ProxyStartError) {
        self.environment = environment
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: environment.workers)
        if let settings = environment.identity, let workload = environment.workloadIdentity {
            do {
                identity = try ProxyIdentity(settings: settings, workload: workload, group: group, metrics: metrics, logger: logger)
            } catch {
                try? group.syncShutdownGracefully()
                throw ProxyStartError(description: error.description)
            }
        } else {
            identity = nil
        }
        let connectTimeout = TimeAmount.milliseconds(Int64(max(1, environment.outboundConnectTimeout.milliseconds)))
        pools = UpstreamPools(group: group, connectTimeout: connectTimeout, meshTLS: identity.map { MeshTLSClient(identity: $0) })
        if let identity, let service = environment.destination {
            lookups = Self.destinationLookups(service: service, identity: identity, group: group)
        } else {
            lookups = nil
        }
        setup = ConnectionSetup(environment: environment, metrics: metrics, pools: pools, identity: identity, lookups: lookups,
                                logger: logger)
        connections = ConnectionDrain(group: group)
        (shutdownRequests, shutdownContinuation) = AsyncStream.makeStream(of: String.self)
    }

    public var metricsText: [UInt8] { metrics.render() }

    /// Lookups streamed from the destination service over mutual TLS with this proxy's certificate.
    private static func destinationLookups(service: ControlPlaneService, identity: ProxyIdentity,
                                           group: MultiThreadedEventLoopGroup) -> DestinationLookups {
        let loop = group.next()
        let client = DestinationStreamClient(connector: ControlPlaneConnector(service: service, group: group,
                                                                              resolver: DNSResolver.system(group: group)),
                                             loop: loop, context: { identity.controlPlaneContext })
        return DestinationLookups(opener: { address, onEvents, onEnd in
            client.lookup(address, onEvents: onEvents, onEnd: onEnd)
        }, timers: loop)
    }

    /// Asks the proxy to drain and stop (SIGTERM, or POST /shutdown).
    public func requestShutdown(_ reason: String) {
        shutdownContinuation.yield(reason)
    }

    /// Binds, serves until asked to shut down, drains for up to the grace period, and returns.
    public func run() async throws {
        let admin = try await bindAdmin()
        state.withLockedValue { $0.admin = admin }
        // With identity on, the listeners are bound now but accept only once the first certificate is in
        // use: connections wait in the backlog, and nothing reaches the app or leaves the pod before.
        let accepting = identity == nil
        let inbound = try await bindForwarding(environment.inboundListenAddress, direction: .inbound, accepting: accepting)
        let outbound = try await bindForwarding(environment.outboundListenAddress, direction: .outbound, accepting: accepting)
        let companions = await bindDualStackCompanions(accepting: accepting)
        state.withLockedValue { $0.ready = true }
        if let identity {
            let logger = self.logger
            identity.whenFirstCertified {
                for listener in [inbound, outbound] + companions {
                    listener.setOption(.autoRead, value: true).whenFailure { error in
                        logger.error("cannot start accepting", metadata: ["error": "\(error)"])
                    }
                }
                logger.info("accepting connections", metadata: ["identity": "\(identity.workload.tlsName)"])
            }
            identity.start()
        }
        if let lookups {
            let loop = group.next()
            let sweep = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in lookups.sweep() }
            lookupSweep.withLockedValue { $0 = sweep }
        }
        logger.info(identity == nil ? "ready" : "listening; accepting once certified", metadata: [
            "inbound": "\(environment.inboundListenAddress)", "outbound": "\(environment.outboundListenAddress)",
            "admin": "\(environment.adminListenAddress)", "workers": "\(environment.workers)",
        ])
        var requests = shutdownRequests.makeAsyncIterator()
        let reason = await requests.next() ?? "stream ended"
        await drain(reason: reason)
    }

    /// Stops accepting, asks every connection to finish (HTTP/1 answers get `Connection: close`, HTTP/2
    /// clients a GOAWAY), and returns as soon as the last one has closed or the grace period is over.
    private func drain(reason: String) async {
        logger.info("draining", metadata: ["reason": "\(reason)", "grace_period": "\(environment.shutdownGracePeriod)"])
        state.withLockedValue { $0.draining = true }
        identity?.stop()
        lookupSweep.withLockedValue { $0?.cancel() }
        let finished = await connections.drain(gracePeriod: .milliseconds(environment.shutdownGracePeriod.milliseconds))
        if !finished {
            logger.info("grace period over; closing the remaining connections")
        }
        await pools.closeIdle()
        if let admin = state.withLockedValue({ $0.admin }) { try? await admin.close() }
        // Closes whatever is still open.
        try? await group.shutdownGracefully()
        logger.info("stopped")
    }

    /// needle-init redirects a dual-stack pod's IPv6 too (to the pod's IPv6 address and to ::1), so the
    /// default listeners get IPv6 twins on the same ports. A kernel without IPv6 has nothing to redirect:
    /// then the twin is skipped, with a log line.
    private func bindDualStackCompanions(accepting: Bool) async -> [any Channel] {
        var bound: [any Channel] = []
        for (address, direction) in [(environment.inboundListenAddress, Direction.inbound),
                                      (environment.outboundListenAddress, Direction.outbound)] {
            guard let companion = address.dualStackCompanion else { continue }
            do {
                bound.append(try await bindForwarding(companion, direction: direction, accepting: accepting))
            } catch {
                logger.info("no IPv6 listener", metadata: ["address": "\(companion)", "error": "\(error)"])
            }
        }
        return bound
    }

    private func bindForwarding(_ address: ListenAddress, direction: Direction, accepting: Bool) async throws -> any Channel {
        let setup = self.setup
        let logger = self.logger
        let connections = self.connections
        let bootstrap = ServerBootstrap(group: group)
        if !address.ip.isIPv4 {
            // An IPv6 listener takes IPv6 only, so it can share its port with the IPv4 one.
            _ = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        return try await bootstrap
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    // Out of descriptors, accepting again at once would only fail again: pause, log once.
                    try sync.addHandler(AcceptFailureHandler(logger: logger, direction: direction))
                    try sync.addHandler(connections.makeListenerHandler(channel: channel))
                }
            }
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.autoRead, value: accepting)
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
            ready: { [weak self] in
                guard let self else { return false }
                return self.state.withLockedValue { $0.ready } && (self.identity?.isReady ?? true)
            },
            draining: { [weak self] in self?.state.withLockedValue { $0.draining } ?? true },
            shutdownEnabled: environment.shutdownEndpointEnabled,
            metrics: { [weak self] in self?.metrics.render() ?? [] },
            requestShutdown: { [weak self] in self?.requestShutdown("POST /shutdown") }
        )
        return try await AdminListener.bind(group: group, host: environment.adminListenAddress.ip.description,
                                            port: environment.adminListenAddress.port, state: adminState)
    }
}

/// The proxy cannot start with its configuration (beyond what `ProxyEnvironment` checks).
public struct ProxyStartError: Error, CustomStringConvertible {
    public let description: String
}
