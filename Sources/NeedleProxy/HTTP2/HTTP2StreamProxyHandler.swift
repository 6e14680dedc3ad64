import NIOCore
import NIOHTTP1

/// Proxies one client HTTP/2 stream (seen as HTTP/1-style parts) to an upstream stream. Every decision is
/// `HTTP2StreamExchange`'s; this handler turns callbacks into its events and performs its actions.
final class HTTP2StreamProxyHandler: ChannelInboundHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var machine: HTTP2StreamExchange<UpstreamConnection>
    private let upstreams: any UpstreamProvider
    private var metrics: RequestMetrics
    private var context: ChannelHandlerContext?
    private var performing = false

    init(upstreams: any UpstreamProvider, metrics: RequestMetrics, clientIdentity: ClientIdentityField = .untouched) {
        machine = HTTP2StreamExchange(clientIdentity: clientIdentity)
        self.upstreams = upstreams
        self.metrics = metrics
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): machine.requestHead(head, now: .now())
        case .body(let buffer): machine.requestBody(buffer)
        case .end(let trailers): machine.requestEnd(trailers)
        }
        perform()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        machine.clientReadComplete()
        perform()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        machine.clientWritabilityChanged(context.channel.isWritable)
        perform()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        machine.clientClosed()
        perform()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A stream-level protocol error: the stream is reset by closing it.
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A drain reaches every stream; a stream in flight simply completes (the connection sends GOAWAY).
        if event is ChannelShouldQuiesceEvent { return }
        context.fireUserInboundEventTriggered(event)
    }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let head): machine.responseHead(head)
        case .body(let buffer): machine.responseBody(buffer)
        case .end(let trailers): machine.responseEnd(trailers)
        }
        perform()
    }

    func upstreamFailed(_ error: any Error) {
        machine.upstreamClosed()
        perform()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        machine.upstreamWritabilityChanged(writable)
        perform()
    }

    private func perform() {
        guard !performing else { return }
        performing = true
        defer { performing = false }
        while let action = machine.nextAction() {
            run(action)
        }
    }

    private func run(_ action: HTTP2StreamExchange<UpstreamConnection>.Action) {
        switch action {
        case .acquireUpstream:
            upstreams.acquire().assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(let upstream):
                    upstream.handler.delegate = self
                    metrics.upstreamKnown(upstream.endpointMetrics)
                    machine.upstreamAcquired(upstream, writable: upstream.isWritable)
                case .failure(let error):
                    machine.upstreamUnavailable(UpstreamFailure.classify(error))
                }
                perform()
            }
        case .sendUpstream(let upstream, let part):
            upstream.handler.write(part)
        case .flushUpstream(let upstream):
            upstream.handler.flush()
        case .releaseUpstream(let upstream, let reusable):
            upstreams.release(upstream, reusable: reusable)
        case .setUpstreamReading(let upstream, let enabled):
            upstream.setReading(enabled)
        case .respond(let part, let flush):
            guard let context else { return }
            context.write(wrapOutboundOut(part), promise: nil)
            if flush { context.flush() }
        case .respondWithError(let status, let reason, let version):
            guard let context else { return }
            ProxyErrorResponse.write(status, reason: reason, version: version, close: false, context: context, wrap: wrapOutboundOut)
        case .setClientReading(let enabled):
            guard let context else { return }
            try? context.channel.syncOptions?.setOption(.autoRead, value: enabled)
            // HTTP/2 stream channels do not deliver frames they already hold when autoRead is switched back on.
            if enabled { context.read() }
        case .countRequest:
            metrics.requestStarted()
        case .countResponse(let status, let started):
            metrics.responseCompleted(status: status, since: started)
        case .close:
            context?.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension HTTP2StreamProxyHandler: Sendable {}
