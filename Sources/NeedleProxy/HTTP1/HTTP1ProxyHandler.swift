import NIOCore
import NIOHTTP1

/// Proxies the HTTP/1.1 exchanges of one client connection to upstream connections from an
/// `UpstreamProvider`. Every decision is `HTTP1ServerExchange`'s; this handler turns NIO callbacks into its
/// events and performs the actions it returns.
final class HTTP1ProxyHandler: ChannelInboundHandler, RemovableChannelHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Called when a 101 response is out: the HTTP handlers step aside and the two channels are spliced.
    typealias TunnelStarter = (_ client: any Channel, _ upstream: UpstreamConnection) -> Void

    private var machine = HTTP1ServerExchange<UpstreamConnection>()
    private let upstreams: any UpstreamProvider
    private let metrics: RequestMetrics
    private let headerTimer: HeaderReadTimeoutHandler?
    private let responseEncoder: HTTP1ResponseEncoder?
    private let startTunnel: TunnelStarter
    private var context: ChannelHandlerContext?
    /// Actions are performed by the outermost call only; events raised while performing (a write that
    /// changes writability) queue theirs behind.
    private var performing = false

    init(upstreams: any UpstreamProvider, metrics: RequestMetrics, headerTimer: HeaderReadTimeoutHandler?,
         responseEncoder: HTTP1ResponseEncoder? = nil, startTunnel: @escaping TunnelStarter) {
        self.upstreams = upstreams
        self.metrics = metrics
        self.headerTimer = headerTimer
        self.responseEncoder = responseEncoder
        self.startTunnel = startTunnel
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            responseEncoder?.requestHeadReceived(head.method)
            machine.requestHead(head, now: .now())
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
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        if case .headerOverflow = parserError {
            machine.requestMalformed(status: .requestHeaderFieldsTooLarge,
                                     reason: "request header block over \(HTTPLimits.maximumHeaderBytes) bytes", now: .now())
        } else {
            machine.requestMalformed(status: .badRequest, reason: "malformed HTTP request (\(parserError))", now: .now())
        }
        perform()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            machine.quiesce()
            perform()
        } else if let event = event as? ChannelEvent, case .inputClosed = event {
            machine.clientInputClosed()
            perform()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: Upstream side (UpstreamDelegate)

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

    // MARK: Performing actions

    private func perform() {
        guard !performing else { return }
        performing = true
        defer { performing = false }
        while let action = machine.nextAction() {
            run(action)
        }
    }

    private func run(_ action: HTTP1ServerExchange<UpstreamConnection>.Action) {
        switch action {
        case .acquireUpstream(let id):
            acquire(id)
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
        case .respondThenClose(let part):
            guard let context else { return }
            context.writeAndFlush(wrapOutboundOut(part)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        case .respondWithError(let status, let reason, let version, let close):
            guard let context else { return }
            ProxyErrorResponse.write(status, reason: reason, version: version, close: close, context: context, wrap: wrapOutboundOut)
        case .setClientReading(let enabled):
            guard let context else { return }
            try? context.channel.syncOptions?.setOption(.autoRead, value: enabled)
            if enabled { context.read() }
        case .requestHeadReceived:
            headerTimer?.headReceived()
        case .awaitRequestHead:
            headerTimer?.awaitNextHead()
        case .countRequest:
            metrics.requestStarted()
        case .countResponse(let status, let started):
            metrics.responseCompleted(status: status, since: started)
        case .startTunnel(let upstream):
            guard let context else { return }
            upstream.handler.delegate = nil
            startTunnel(context.channel, upstream)
        case .close:
            context?.close(promise: nil)
        }
    }

    private func acquire(_ id: ExchangeID) {
        if let pooled = upstreams.acquireImmediately() {
            attach(id, pooled)
            return
        }
        upstreams.acquire().assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let upstream):
                attach(id, upstream)
            case .failure(let error):
                machine.upstreamUnavailable(id, UpstreamFailure.classify(error))
            }
            perform()
        }
    }

    private func attach(_ id: ExchangeID, _ upstream: UpstreamConnection) {
        upstream.handler.delegate = self
        machine.upstreamAcquired(id, upstream, reused: upstream.reused, writable: upstream.isWritable)
    }
}

@available(*, unavailable)
extension HTTP1ProxyHandler: Sendable {}
