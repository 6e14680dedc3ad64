import NIOCore
import NIOHTTP1
import NIOHTTP2
import NeedleContract

/// HTTP/2 with prior knowledge: the server HTTP/2 handler with the proxy's limits, connection management
/// (a drain sends GOAWAY and lets streams finish), and one `HTTP2StreamProxyHandler` per client stream.
struct HTTP2Forwarder {
    let connectTimeout: TimeAmount
    /// nil: identity off.
    var meshTLS: MeshTLSClient? = nil

    /// `balancing`: when discovery named the destination's endpoints, its lookups (each stream is balanced
    /// over them) and each endpoint's metrics; nil sends every stream to `target`.
    func start(context: ChannelHandlerContext, after detector: any ChannelHandler, target: ListenAddress,
               balancing: OutboundBalancing? = nil,
               metrics: TargetMetrics, clientIdentity: ClientIdentityField, buffered: ByteBuffer) throws {
        let channel = context.channel
        let upstreams: NIOLoopBound<any UpstreamProvider & ClosableUpstreams>
        if let balancing {
            upstreams = NIOLoopBound(BalancedHTTP2Provider(eventLoop: channel.eventLoop, destination: target, lookups: balancing.lookups,
                                                           connectTimeout: connectTimeout, meshTLS: meshTLS, metrics: balancing.metrics),
                                     eventLoop: channel.eventLoop)
        } else {
            upstreams = NIOLoopBound(HTTP2UpstreamProvider(eventLoop: channel.eventLoop, target: UpstreamEndpoint(target),
                                                           connectTimeout: connectTimeout, meshTLS: meshTLS),
                                     eventLoop: channel.eventLoop)
        }
        channel.closeFuture.whenComplete { _ in upstreams.value.close() }
        let management = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(maxIdleTime: nil, maxAge: nil, maxGraceTime: nil, keepalive: nil))
        let http2 = NIOHTTP2Handler(
            mode: .server, eventLoop: channel.eventLoop,
            connectionConfiguration: HTTPLimits.http2Server, streamConfiguration: .init(),
            streamDelegate: management.http2StreamDelegate
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try stream.pipeline.syncOperations.addHandler(
                    HTTP2StreamProxyHandler(upstreams: upstreams.value, metrics: RequestMetrics(target: metrics),
                                            clientIdentity: clientIdentity))
            }
        }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(http2, position: .after(detector))
        try sync.addHandler(management, position: .after(http2))
        try sync.addHandler(HTTP2ConnectionCloser(), position: .after(management))
        // HTTP/2 stream channels copy the parent's autoRead when they are created, so it must be on before
        // the buffered bytes (which may already hold a request) are replayed.
        try? channel.syncOptions?.setOption(.autoRead, value: true)
        context.fireChannelRead(NIOAny(buffered))
        context.fireChannelReadComplete()
        _ = sync.removeHandler(context: context)
    }
}

/// Ends a client HTTP/2 connection that cannot go on: after a connection error (nio-http2 has sent GOAWAY
/// with the error code; RFC 9113 §5.4.1 says close then), and when the client half-closes (it can no longer
/// send the acknowledgements a stream needs).
final class HTTP2ConnectionCloser: ChannelInboundHandler {
    typealias InboundIn = Any

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Connection-level frames end here; nothing after this handler wants them.
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A stream error resets that stream only; anything else is a connection error.
        if error is NIOHTTP2Errors.StreamError { return }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

@available(*, unavailable)
extension HTTP2ConnectionCloser: Sendable {}
