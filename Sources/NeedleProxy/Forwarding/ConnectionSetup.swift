import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NeedleContract

/// Everything needed to set up an accepted connection: route it, detect its protocol, and build the
/// pipeline that forwards it (TCP splice, HTTP/1.1 proxy, or HTTP/2 stream proxy).
final class ConnectionSetup: Sendable {
    let environment: ProxyEnvironment
    let policy: RoutePolicy
    let metrics: ProxyMetrics
    let pools: LoopLocal<UpstreamPool>
    let registry: ConnectionRegistry
    let logger: Logger

    init(environment: ProxyEnvironment, metrics: ProxyMetrics, pools: LoopLocal<UpstreamPool>, registry: ConnectionRegistry, logger: Logger) {
        self.environment = environment
        self.policy = RoutePolicy(environment: environment)
        self.metrics = metrics
        self.pools = pools
        self.registry = registry
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
        registry.add(channel)
        channel.closeFuture.whenComplete { [registry] _ in
            targetMetrics.connectionClosed()
            registry.remove(channel)
        }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(ByteCounter(metrics: targetMetrics))
        if skipDetection {
            metrics.recordDetection(.opaque, timedOut: false)
            startTCP(channel, direction: direction, target: target, initial: channel.allocator.buffer(capacity: 0))
            return
        }
        let timeout = TimeAmount.milliseconds(Int64(environment.detectTimeout.milliseconds))
        try sync.addHandler(DetectionHandler(timeout: timeout) { [self] context, detected, buffered, timedOut, inputClosed in
            metrics.recordDetection(detected, timedOut: timedOut)
            logger.trace("protocol detected", metadata: ["protocol": "\(detected.metricLabel)", "timed_out": "\(timedOut)",
                                                         "target": "\(target)"])
            let detector = context.handler
            do {
                switch detected {
                case .http1:
                    try startHTTP1(context: context, after: detector, direction: direction, target: target, metrics: targetMetrics, buffered: buffered)
                case .http2:
                    try startHTTP2(context: context, after: detector, direction: direction, target: target, metrics: targetMetrics, buffered: buffered)
                case .tls, .opaque:
                    _ = context.pipeline.syncOperations.removeHandler(context: context)
                    startTCP(context.channel, direction: direction, target: target, initial: buffered, clientInputClosed: inputClosed)
                }
                if inputClosed, detected == .http1 || detected == .http2 {
                    context.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
                }
            } catch {
                logger.warning("cannot set up the connection", metadata: ["error": "\(error)"])
                context.close(promise: nil)
            }
        })
    }

    // MARK: Opaque TCP

    func startTCP(_ client: any Channel, direction: Direction, target: ListenAddress, initial: ByteBuffer, clientInputClosed: Bool = false) {
        let address: SocketAddress
        do {
            address = try OriginalDestination.socketAddress(target)
        } catch {
            client.close(promise: nil)
            return
        }
        ClientBootstrap(group: client.eventLoop)
            .connectTimeout(connectTimeout(direction))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connect(to: address)
            .assumeIsolated()
            .whenComplete { [logger] result in
                switch result {
                case .success(let upstream):
                    guard client.isActive else {
                        upstream.close(promise: nil)
                        return
                    }
                    Self.splice(client, upstream, initial: initial, clientInputClosed: clientInputClosed)
                case .failure(let error):
                    // A clean close is all a TCP client can be told.
                    logger.debug("upstream connect failed", metadata: ["target": "\(target)", "error": "\(error)"])
                    client.close(promise: nil)
                }
            }
    }

    /// Glues two connected channels on the same event loop, first sending `initial` (bytes read while detecting).
    static func splice(_ client: any Channel, _ upstream: any Channel, initial: ByteBuffer, clientInputClosed: Bool = false) {
        let (clientGlue, upstreamGlue) = GlueHandler.pair()
        do {
            try client.pipeline.syncOperations.addHandler(clientGlue)
            try upstream.pipeline.syncOperations.addHandler(upstreamGlue)
        } catch {
            client.close(promise: nil)
            upstream.close(promise: nil)
            return
        }
        upstream.closeFuture.whenComplete { _ in client.close(promise: nil) }
        if initial.readableBytes > 0 || clientInputClosed {
            let written = upstream.writeAndFlush(initial)
            // The client's FIN came during detection: pass it on once its bytes are out.
            if clientInputClosed { written.whenComplete { _ in upstream.close(mode: .output, promise: nil) } }
        }
        try? client.syncOptions?.setOption(.autoRead, value: true)
        try? upstream.syncOptions?.setOption(.autoRead, value: true)
    }

    // MARK: HTTP/1.1

    private func startHTTP1(context: ChannelHandlerContext, after detector: any ChannelHandler, direction: Direction,
                            target: ListenAddress, metrics targetMetrics: TargetMetrics, buffered: ByteBuffer) throws {
        let channel = context.channel
        guard let pool = pools.value(on: channel.eventLoop) else { throw ProxySetupError(description: "no upstream pool on this event loop") }
        let encoder = HTTPResponseEncoder()
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        let proxy = HTTPProxyHandler(
            upstreams: pool.provider(for: target), metrics: RequestMetrics(target: targetMetrics), isHTTP2Stream: false,
            startTunnel: { client, upstream in
                Self.startTunnel(client: client, encoder: encoder, decoder: decoder, upstream: upstream)
            })
        let sync = channel.pipeline.syncOperations
        try sync.addHandlers([encoder, decoder, proxy], position: .after(detector))
        // Reading on from here is the new handlers' call (they switch autoRead off while their other side is
        // busy). HTTP/2 stream channels copy the parent's autoRead when they are created, so it must be on
        // before the buffered bytes (which may already hold a request) are replayed.
        try? channel.syncOptions?.setOption(.autoRead, value: true)
        context.fireChannelRead(NIOAny(buffered))
        context.fireChannelReadComplete()
        _ = sync.removeHandler(context: context)
    }

    /// WebSocket and other upgrades: after the 101 both sides become plain byte streams. The order matters:
    /// every HTTP codec must be gone from a pipeline before raw bytes are written through it, and each
    /// decoder hands the bytes it already read past the 101 to the glue when it is removed.
    static func startTunnel(client: any Channel, encoder: HTTPResponseEncoder, decoder: ByteToMessageHandler<HTTPRequestDecoder>,
                            upstream: UpstreamConnection) {
        let (clientGlue, upstreamGlue) = GlueHandler.pair()
        let clientSync = client.pipeline.syncOperations
        let upstreamSync = upstream.channel.pipeline.syncOperations
        do {
            try clientSync.addHandler(clientGlue)
            if let proxy = try? clientSync.context(handlerType: HTTPProxyHandler.self) {
                _ = clientSync.removeHandler(context: proxy)
            }
            _ = clientSync.removeHandler(encoder)
            try upstreamSync.addHandler(upstreamGlue)
            _ = upstreamSync.removeHandler(upstream.handler)
            for handler in upstream.codecHandlers { _ = upstreamSync.removeHandler(handler) }
            _ = clientSync.removeHandler(decoder)
        } catch {
            client.close(promise: nil)
            upstream.channel.close(promise: nil)
            return
        }
        upstream.channel.closeFuture.whenComplete { _ in client.close(promise: nil) }
        try? client.syncOptions?.setOption(.autoRead, value: true)
        try? upstream.channel.syncOptions?.setOption(.autoRead, value: true)
    }

    // MARK: HTTP/2 (prior knowledge)

    private func startHTTP2(context: ChannelHandlerContext, after detector: any ChannelHandler, direction: Direction,
                            target: ListenAddress, metrics targetMetrics: TargetMetrics, buffered: ByteBuffer) throws {
        let channel = context.channel
        let upstreams = NIOLoopBound(
            HTTP2UpstreamProvider(eventLoop: channel.eventLoop, target: target, connectTimeout: connectTimeout(direction)),
            eventLoop: channel.eventLoop)
        channel.closeFuture.whenComplete { _ in upstreams.value.close() }
        let sync = channel.pipeline.syncOperations
        _ = try sync.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: .init(), streamConfiguration: .init(), position: .last
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try stream.pipeline.syncOperations.addHandler(HTTPProxyHandler(
                    upstreams: upstreams.value, metrics: RequestMetrics(target: targetMetrics), isHTTP2Stream: true, startTunnel: nil))
            }
        }
        try sync.addHandler(CloseOnInputClosed())
        // Reading on from here is the new handlers' call (they switch autoRead off while their other side is
        // busy). HTTP/2 stream channels copy the parent's autoRead when they are created, so it must be on
        // before the buffered bytes (which may already hold a request) are replayed.
        try? channel.syncOptions?.setOption(.autoRead, value: true)
        context.fireChannelRead(NIOAny(buffered))
        context.fireChannelReadComplete()
        _ = sync.removeHandler(context: context)
    }
}

/// An HTTP/2 client that half-closes its connection sends nothing more, not even the acknowledgements a
/// stream needs: close the connection (and with it the upstream one).
final class CloseOnInputClosed: ChannelInboundHandler {
    typealias InboundIn = Any

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

@available(*, unavailable)
extension CloseOnInputClosed: Sendable {}

/// One value per event loop, reachable only from that loop.
final class LoopLocal<Value>: @unchecked Sendable {
    private let values: [ObjectIdentifier: Value]

    init(group: any EventLoopGroup, make: (any EventLoop) -> Value) {
        var values: [ObjectIdentifier: Value] = [:]
        for loop in group.makeIterator() { values[ObjectIdentifier(loop)] = make(loop) }
        self.values = values
    }

    /// The caller must be on `eventLoop`; nil for a loop outside the group.
    func value(on eventLoop: any EventLoop) -> Value? {
        eventLoop.assertInEventLoop()
        return values[ObjectIdentifier(eventLoop)]
    }

    var all: [Value] { Array(values.values) }
}

struct ProxySetupError: Error, CustomStringConvertible {
    let description: String
}
