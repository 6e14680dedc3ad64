import NIOCore
import NIOHTTP1
import NeedleContract

/// HTTP/1.1: the server codec (NIO's request decoder, our response encoder), the header-read timeout and `HTTP1ProxyHandler` go where detection was;
/// after a `101` the connection becomes a TCP splice.
struct HTTP1Forwarder {
    let pools: UpstreamPools
    let headerReadTimeout: TimeAmount

    func start(context: ChannelHandlerContext, after detector: any ChannelHandler, target: ListenAddress,
               metrics: TargetMetrics, buffered: ByteBuffer) throws {
        let channel = context.channel
        let pool = try pools.pool(on: channel.eventLoop)
        let encoder = HTTP1ResponseEncoder()
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes,
                                                              informationalResponseStrategy: .drop,
                                                              limitConfiguration: HTTPLimits.http1Decoder))
        let timer = HeaderReadTimeoutHandler(timeout: headerReadTimeout, bytesAlreadyRead: buffered.readableBytes > 0)
        let proxy = HTTP1ProxyHandler(
            upstreams: pool.provider(for: target), metrics: RequestMetrics(target: metrics), headerTimer: timer,
            responseEncoder: encoder, startTunnel: { client, upstream in
                Self.startTunnel(client: client, timer: timer, encoder: encoder, decoder: decoder, upstream: upstream)
            })
        let sync = channel.pipeline.syncOperations
        try sync.addHandlers([timer, encoder, decoder, proxy], position: .after(detector))
        // Reading on from here is the new handlers' call (they switch autoRead off while their other side is busy).
        try? channel.syncOptions?.setOption(.autoRead, value: true)
        context.fireChannelRead(NIOAny(buffered))
        context.fireChannelReadComplete()
        _ = sync.removeHandler(context: context)
    }

    /// WebSocket and other upgrades: after the 101 both sides become plain byte streams. The order matters:
    /// every HTTP codec must be gone from a pipeline before raw bytes are written through it, and each
    /// decoder hands the bytes it already read past the 101 to the glue when it is removed.
    static func startTunnel(client: any Channel, timer: HeaderReadTimeoutHandler, encoder: HTTP1ResponseEncoder,
                            decoder: ByteToMessageHandler<HTTPRequestDecoder>, upstream: UpstreamConnection) {
        let (clientGlue, upstreamGlue) = GlueHandler.pair()
        let clientSync = client.pipeline.syncOperations
        let upstreamSync = upstream.channel.pipeline.syncOperations
        do {
            try clientSync.addHandler(clientGlue)
            if let proxy = try? clientSync.context(handlerType: HTTP1ProxyHandler.self) {
                _ = clientSync.removeHandler(context: proxy)
            }
            _ = clientSync.removeHandler(encoder)
            _ = clientSync.removeHandler(timer)
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
}
