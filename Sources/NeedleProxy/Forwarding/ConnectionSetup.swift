import Logging
import NIOCore
import NeedleContract

/// Sets up an accepted connection: route it, count it, detect its protocol if the port is not opaque,
/// then hand it to the forwarder the `ForwardingPlan` names.
final class ConnectionSetup: Sendable {
    let environment: ProxyEnvironment
    let policy: RoutePolicy
    let metrics: ProxyMetrics
    let pools: UpstreamPools
    let logger: Logger

    init(environment: ProxyEnvironment, metrics: ProxyMetrics, pools: UpstreamPools, logger: Logger) {
        self.environment = environment
        self.policy = RoutePolicy(environment: environment)
        self.metrics = metrics
        self.pools = pools
        self.logger = logger
    }

    func connectTimeout(_ direction: Direction) -> TimeAmount {
        let duration = direction == .inbound ? environment.inboundConnectTimeout : environment.outboundConnectTimeout
        return .milliseconds(Int64(max(duration.milliseconds, 1)))
    }

    /// Runs in the child-channel initializer, on the connection's event loop.
    func accept(_ channel: any Channel, direction: Direction) -> EventLoopFuture<Void> {
        return OriginalDestination.read(channel).assumeIsolated().flatMap { [self] destination -> EventLoopFuture<Void> in
            switch policy.route(direction, originalDestination: destination) {
            case .refuse(let reason):
                metrics.recordRefused(direction)
                logger.debug("connection refused", metadata: ["direction": "\(direction.rawValue)", "reason": "\(reason)",
                                                              "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
                return channel.close()
            case .forward(let target, let skipDetection):
                logger.trace("connection accepted", metadata: ["direction": "\(direction.rawValue)", "target": "\(target)",
                                                               "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
                return channel.eventLoop.makeCompletedFuture {
                    try self.prepare(channel, direction: direction, target: target, skipDetection: skipDetection)
                }
            }
        }.flatMapErrorThrowing { [logger] error in
            logger.warning("cannot set up an accepted connection", metadata: ["direction": "\(direction.rawValue)", "error": "\(error)"])
            throw error
        }.nonisolated()
    }

    private func prepare(_ channel: any Channel, direction: Direction, target: ListenAddress, skipDetection: Bool) throws {
        let targetMetrics = metrics.target(direction, address: target, tls: false)
        targetMetrics.connectionOpened()
        channel.closeFuture.whenComplete { _ in targetMetrics.connectionClosed() }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(ByteCounter(metrics: targetMetrics))
        let tcp = TCPForwarder(connectTimeout: connectTimeout(direction), logger: logger)
        if skipDetection {
            metrics.recordDetection(.opaque, timedOut: false)
            tcp.start(channel, target: target, initial: channel.allocator.buffer(capacity: 0))
            return
        }
        let http1 = HTTP1Forwarder(pools: pools, headerReadTimeout: HeaderReadTimer.defaultTimeout)
        let http2 = HTTP2Forwarder(connectTimeout: connectTimeout(direction))
        let timeout = TimeAmount.milliseconds(Int64(environment.detectTimeout.milliseconds))
        try sync.addHandler(DetectionHandler(timeout: timeout) { [self] context, detected, buffered, timedOut, inputClosed in
            metrics.recordDetection(detected, timedOut: timedOut)
            logger.trace("protocol detected", metadata: ["protocol": "\(detected.metricLabel)", "timed_out": "\(timedOut)",
                                                         "target": "\(target)"])
            let detector = context.handler
            let plan = ForwardingPlan.plan(for: detected)
            do {
                switch plan {
                case .http1:
                    try http1.start(context: context, after: detector, target: target, metrics: targetMetrics, buffered: buffered)
                case .http2:
                    try http2.start(context: context, after: detector, target: target, metrics: targetMetrics, buffered: buffered)
                case .tcp:
                    _ = context.pipeline.syncOperations.removeHandler(context: context)
                    tcp.start(context.channel, target: target, initial: buffered, clientInputClosed: inputClosed)
                }
                if inputClosed, plan != .tcp {
                    context.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
                }
            } catch {
                logger.warning("cannot set up the connection", metadata: ["error": "\(error)"])
                context.close(promise: nil)
            }
        })
    }
}
