import NIOCore
import NIOHTTP1

/// Proxies the HTTP/1.1 exchanges of one client connection to upstream connections from an
/// `HTTP1UpstreamProvider`, on raw bytes: `HTTP1RequestDecoder` parses, `HTTP1ServerExchange` decides, and
/// this handler performs what it says, writing bytes the machine has already framed. It is the only
/// handler of an HTTP/1.1 connection: it also runs the header-read timer and counts the connection's
/// bytes, since every extra handler costs a pipeline hop per read, write and flush.
final class HTTP1ProxyHandler: ChannelInboundHandler, RemovableChannelHandler, HTTP1UpstreamDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Called when a 101 response is out: the HTTP handlers step aside and the two channels are spliced.
    /// `pending` holds client bytes read after the upgrade request: the tunnel's first bytes upstream.
    typealias TunnelStarter = (_ client: any Channel, _ upstream: HTTP1UpstreamConnection, _ pending: ByteBuffer) -> Void

    private var machine = HTTP1ServerExchange<HTTP1UpstreamConnection>()
    private var decoder: HTTP1RequestDecoder
    private let upstreams: any HTTP1UpstreamProvider
    private var metrics: RequestMetrics
    /// Response bytes for the client: a short response's head and body leave in one write.
    private var responseBytes = WriteCoalescer()
    private let headerTimer: HeaderReadTimer?
    private let headBytesAlreadyRead: Bool
    private let startTunnel: TunnelStarter
    private var context: ChannelHandlerContext?
    /// Actions are performed by the outermost call only; events raised while performing (a write that
    /// changes writability) queue theirs behind.
    private var performing = false

    /// `headBytesAlreadyRead`: protocol detection already read the start of the first head (its clock runs).
    init(upstreams: any HTTP1UpstreamProvider, metrics: RequestMetrics, headerTimer: HeaderReadTimer?,
         headBytesAlreadyRead: Bool = false, clientIdentity: ClientIdentityField = .untouched,
         startTunnel: @escaping TunnelStarter) {
        decoder = HTTP1RequestDecoder(clientIdentity: clientIdentity)
        self.upstreams = upstreams
        self.metrics = metrics
        self.headerTimer = headerTimer
        self.headBytesAlreadyRead = headBytesAlreadyRead
        self.startTunnel = startTunnel
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        headerTimer?.start(on: context.eventLoop, bytesAlreadyRead: headBytesAlreadyRead) { [weak self] in
            self?.headTimedOut()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headerTimer?.stop()
        self.context = nil
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        metrics.target.readBytes.increment(by: Int64(bytes.readableBytes))
        headerTimer?.bytesArrived()
        decoder.received(bytes)
        while let event = decoder.next() {
            switch event {
            case .head(let head): machine.requestHead(head, now: .now())
            case .body(let buffer): machine.requestBody(buffer)
            case .end(let trailers): machine.requestEnd(trailers: trailers)
            case .invalid(let error): machine.requestMalformed(status: error.status, reason: error.reason, now: .now())
            }
            perform()
        }
        if decoder.unparsedBytes > HTTP1RequestDecoder.maximumHeadBytes {
            // After an upgrade request the client should wait for the 101; it may not fill memory meanwhile.
            try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        }
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
        headerTimer?.stop()
        machine.clientClosed()
        perform()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
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

    // MARK: Upstream side (HTTP1UpstreamDelegate)

    func upstreamResponse(_ event: HTTP1ResponseDecoder.Event) {
        switch event {
        case .head(let head): machine.responseHead(head)
        case .body(let buffer): machine.responseBody(buffer)
        case .end(let trailers): machine.responseEnd(trailers: trailers)
        case .invalid(let reason): machine.upstreamInvalid(reason)
        }
        perform()
    }

    func upstreamReadComplete() {
        machine.upstreamReadComplete()
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

    private func run(_ action: HTTP1ServerExchange<HTTP1UpstreamConnection>.Action) {
        switch action {
        case .startExchange(let id):
            headerTimer?.headReceived()
            metrics.requestStarted()
            acquire(id)
        case .acquireUpstream(let id):
            acquire(id)
        case .sendRequestHead(let upstream, let bytes, let method):
            upstream.handler.writeHead(bytes, method: method)
        case .sendUpstream(let upstream, let bytes):
            upstream.handler.write(bytes)
        case .flushUpstream(let upstream):
            upstream.handler.flush()
        case .releaseUpstream(let upstream, let reusable):
            upstreams.release(upstream, reusable: reusable)
        case .setUpstreamReading(let upstream, let enabled):
            upstream.setReading(enabled)
        case .respondHead(let bytes, _, let flush):
            write(bytes)
            if flush { flushClient() }
        case .respondBody(let bytes):
            write(bytes)
        case .respondEnd(let last, let close):
            endResponse(last, close: close)
        case .completeExchange(let status, let started, let upstream, let reusable, let last):
            metrics.responseCompleted(status: status, since: started)
            upstreams.release(upstream, reusable: reusable)
            endResponse(last, close: false)
        case .flushClient:
            flushClient()
        case .respondWithError(let status, let reason, let version, let close):
            guard let context else { return }
            writeHeld()
            let bytes = ProxyErrorResponse.http1(status, reason: reason, version: version, close: close,
                                                 allocator: context.channel.allocator)
            metrics.target.writeBytes.increment(by: Int64(bytes.readableBytes))
            let written = context.writeAndFlush(wrapOutboundOut(bytes))
            if close { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
        case .setClientReading(let enabled):
            guard let context else { return }
            try? context.channel.syncOptions?.setOption(.autoRead, value: enabled)
            if enabled { context.read() }
        case .awaitRequestHead:
            headerTimer?.awaitNextHead()
        case .countRequest:
            metrics.requestStarted()
        case .countResponse(let status, let started):
            metrics.responseCompleted(status: status, since: started)
        case .startTunnel(let upstream):
            guard let context else { return }
            flushClient()
            upstreams.detach(upstream)
            upstream.handler.delegate = nil
            headerTimer?.stop()
            startTunnel(context.channel, upstream, decoder.takeUnparsed())
        case .close:
            context?.close(promise: nil)
        }
    }

    /// A response's last bytes (the last chunk, if any), flushed; with `close`, the connection closes once
    /// they are out.
    private func endResponse(_ last: ByteBuffer?, close: Bool) {
        guard let context else { return }
        if let last { write(last) }
        guard close else {
            flushClient()
            return
        }
        let held = responseBytes.take() ?? context.channel.allocator.buffer(capacity: 0)
        metrics.target.writeBytes.increment(by: Int64(held.readableBytes))
        context.writeAndFlush(wrapOutboundOut(held)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    private func write(_ bytes: ByteBuffer) {
        responseBytes.add(bytes) { writeNow($0) }
    }

    private func writeHeld() {
        if let held = responseBytes.take() { writeNow(held) }
    }

    private func flushClient() {
        writeHeld()
        context?.flush()
    }

    private func writeNow(_ bytes: ByteBuffer) {
        metrics.target.writeBytes.increment(by: Int64(bytes.readableBytes))
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    /// A request head did not arrive in time: a bare 408, then close. Nothing of it went upstream.
    private func headTimedOut() {
        guard let context else { return }
        writeHeld()
        var response = context.channel.allocator.buffer(capacity: 80)
        response.writeStaticString("HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
        metrics.target.writeBytes.increment(by: Int64(response.readableBytes))
        context.writeAndFlush(wrapOutboundOut(response)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
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

    private func attach(_ id: ExchangeID, _ upstream: HTTP1UpstreamConnection) {
        upstream.handler.delegate = self
        metrics.upstreamKnown(upstream.endpointMetrics)
        machine.upstreamAcquired(id, upstream, reused: upstream.reused, writable: upstream.isWritable)
    }
}

@available(*, unavailable)
extension HTTP1ProxyHandler: Sendable {}
