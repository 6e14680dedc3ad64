import NIOCore
import NeedleContract

/// HTTP/1.1: the header-read timeout and `HTTP1ProxyHandler` (which parses and frames the bytes itself) go
/// where detection was; after a `101` the connection becomes a TCP splice.
struct HTTP1Forwarder {
    let pools: UpstreamPools
    let headerReadTimeout: TimeAmount

    func start(context: ChannelHandlerContext, after detector: any ChannelHandler, target: ListenAddress,
               metrics: TargetMetrics, buffered: ByteBuffer) throws {
        let channel = context.channel
        let pool = try pools.pool(on: channel.eventLoop)
        let timer = HeaderReadTimeoutHandler(timeout: headerReadTimeout, bytesAlreadyRead: buffered.readableBytes > 0)
        let proxy = HTTP1ProxyHandler(
            upstreams: pool.provider(for: target), metrics: RequestMetrics(target: metrics), headerTimer: timer,
            startTunnel: { client, upstream, pending in
                Self.startTunnel(client: client, timer: timer, upstream: upstream, pending: pending)
            })
        let sync = channel.pipeline.syncOperations
        try sync.addHandlers([timer, proxy], position: .after(detector))
        // Reading on from here is the new handlers' call (they switch autoRead off while their other side is busy).
        try? channel.syncOptions?.setOption(.autoRead, value: true)
        context.fireChannelRead(NIOAny(buffered))
        context.fireChannelReadComplete()
        _ = sync.removeHandler(context: context)
    }

    /// WebSocket and other upgrades (and CONNECT): after the 101 both sides become plain byte streams. The
    /// bytes each side sent past the switch, already read by the HTTP handlers, go first.
    static func startTunnel(client: any Channel, timer: HeaderReadTimeoutHandler, upstream: HTTP1UpstreamConnection,
                            pending: ByteBuffer) {
        let (clientGlue, upstreamGlue) = GlueHandler.pair()
        let clientSync = client.pipeline.syncOperations
        let upstreamSync = upstream.channel.pipeline.syncOperations
        let fromUpstream = upstream.handler.takeUnparsed()
        do {
            try clientSync.addHandler(clientGlue)
            if let proxy = try? clientSync.context(handlerType: HTTP1ProxyHandler.self) {
                _ = clientSync.removeHandler(context: proxy)
            }
            _ = clientSync.removeHandler(timer)
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
