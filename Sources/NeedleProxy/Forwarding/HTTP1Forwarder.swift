import NIOCore
import NeedleContract

/// HTTP/1.1: `HTTP1ProxyHandler` (which parses and frames the bytes, times request heads and counts bytes
/// itself) goes where detection and the byte counter were; after a `101` the connection becomes a TCP
/// splice, counted again by a `ByteCounter`.
struct HTTP1Forwarder {
    let pools: UpstreamPools
    let headerReadTimeout: TimeAmount

    /// `balancing`: when discovery named the destination's endpoints, its lookups (requests are balanced over
    /// them) and each endpoint's metrics; nil sends every request to `target`.
    func start(context: ChannelHandlerContext, after detector: any ChannelHandler, target: ListenAddress,
               balancing: OutboundBalancing? = nil,
               metrics: TargetMetrics, clientIdentity: ClientIdentityField, buffered: ByteBuffer) throws {
        let channel = context.channel
        let pool = try pools.pool(on: channel.eventLoop)
        let upstreams: any HTTP1UpstreamProvider
        if let balancing {
            upstreams = BalancedHTTP1Provider(pool: pool, destination: target, lookups: balancing.lookups, metrics: balancing.metrics)
        } else {
            upstreams = pool.provider(for: UpstreamEndpoint(target))
        }
        let proxy = HTTP1ProxyHandler(
            upstreams: upstreams, metrics: RequestMetrics(target: metrics),
            headerTimer: HeaderReadTimer(timeout: headerReadTimeout), headBytesAlreadyRead: buffered.readableBytes > 0,
            clientIdentity: clientIdentity,
            startTunnel: { client, upstream, pending in
                Self.startTunnel(client: client, upstream: upstream, pending: pending, metrics: metrics)
            })
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(proxy, position: .after(detector))
        // The proxy handler counts the connection's bytes itself (one handler, no extra hops per request).
        if let counter = try? sync.handler(type: ByteCounter.self) { _ = sync.removeHandler(counter) }
        // Reading on from here is the new handler's call (it switches autoRead off while the other side is busy).
        try? channel.syncOptions?.setOption(.autoRead, value: true)
        context.fireChannelRead(NIOAny(buffered))
        context.fireChannelReadComplete()
        _ = sync.removeHandler(context: context)
    }

    /// WebSocket and other upgrades (and CONNECT): after the 101 both sides become plain byte streams. The
    /// bytes each side sent past the switch, already read by the HTTP handlers, go first.
    static func startTunnel(client: any Channel, upstream: HTTP1UpstreamConnection, pending: ByteBuffer,
                            metrics: TargetMetrics) {
        let (clientGlue, upstreamGlue) = GlueHandler.pair()
        let clientSync = client.pipeline.syncOperations
        let upstreamSync = upstream.channel.pipeline.syncOperations
        let fromUpstream = upstream.handler.takeUnparsed()
        do {
            try clientSync.addHandler(ByteCounter(metrics: metrics), position: .first)
            try clientSync.addHandler(clientGlue)
            if let proxy = try? clientSync.context(handlerType: HTTP1ProxyHandler.self) {
                _ = clientSync.removeHandler(context: proxy)
            }
            try upstreamSync.addHandler(upstreamGlue)
            _ = upstreamSync.removeHandler(upstream.handler)
        } catch {
            client.close(promise: nil)
            upstream.channel.close(promise: nil)
            return
        }
        if fromUpstream.readableBytes > 0 { client.writeAndFlush(fromUpstream, promise: nil) }
        if pending.readableBytes > 0 { upstream.channel.writeAndFlush(pending, promise: nil) }
        upstream.channel.closeFuture.whenComplete { _ in client.close(promise: nil) }
        try? client.syncOptions?.setOption(.autoRead, value: true)
        try? upstream.channel.syncOptions?.setOption(.autoRead, value: true)
    }
}
