import NIOCore
import NIOHTTP1
import NeedleContract

/// Proxies HTTP exchanges from a client (an HTTP/1.1 connection, or one HTTP/2 stream seen as HTTP/1-style
/// parts) to upstream connections handed out by an `UpstreamProvider`. Requests and responses are streamed
/// part by part; each side reads only while the other can take more (autoRead is switched off and on).
/// HTTP/1.1 requests arrive one at a time: parts of a pipelined next request wait until this one is done.
final class HTTPProxyHandler: ChannelInboundHandler, RemovableChannelHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private final class Exchange {
        let requestHead: HTTPRequestHead
        let upgrade: String?
        let started: NIODeadline
        var requestEnded = false
        var upstream: UpstreamConnection?
        var pending: [HTTPClientRequestPart] = []
        var responseStatus: Int?
        var responseEnded = false
        var upstreamKeepAlive = true
        var switchingProtocols = false
        /// What was sent upstream; kept for a retry while the request is a bodiless one.
        var upstreamHead: HTTPRequestHead?
        var sentBody = false
        var retried = false
        var pendingBytes = 0

        init(requestHead: HTTPRequestHead, upgrade: String?) {
            self.requestHead = requestHead
            self.upgrade = upgrade
            self.started = .now()
        }
    }

    /// Called when a 101 response completes: the handler has stepped aside; splice the two channels.
    typealias TunnelStarter = (_ client: any Channel, _ upstream: UpstreamConnection) -> Void

    private let upstreams: any UpstreamProvider
    private let metrics: RequestMetrics
    private let isHTTP2Stream: Bool
    private let startTunnel: TunnelStarter?
    private var context: ChannelHandlerContext?
    private var exchange: Exchange?
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var closeAfterExchange = false
    private var draining = false
    private var clientPaused = false

    /// Parts of pipelined requests held before the client is asked to stop sending.
    static let maximumQueuedParts = 64
    /// Request bytes held while the upstream connection is being set up.
    static let maximumPendingBytes = 256 * 1024

    init(upstreams: any UpstreamProvider, metrics: RequestMetrics, isHTTP2Stream: Bool, startTunnel: TunnelStarter?) {
        self.upstreams = upstreams
        self.metrics = metrics
        self.isHTTP2Stream = isHTTP2Stream
        self.startTunnel = startTunnel
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if let exchange, !exchange.requestEnded {
            handle(part, in: exchange, context: context)
        } else if exchange == nil && queued.isEmpty {
            handle(part, in: nil, context: context)
        } else {
            queued.append(part)
            if queued.count >= Self.maximumQueuedParts { setClientReading(false, context: context) }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        exchange?.upstream?.handler.flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Response bytes flow only as fast as the client takes them.
        if let upstream = exchange?.upstream, !(exchange?.responseEnded ?? true) {
            upstream.setReading(context.channel.isWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let exchange {
            self.exchange = nil
            if let upstream = exchange.upstream {
                upstreams.release(upstream, reusable: false)
            }
            if !exchange.responseEnded {
                metrics.responseCompleted(status: nil, since: exchange.started)
            }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed request: answer 400 if nothing was sent yet, then close.
        if exchange == nil, error is HTTPParserError {
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
            writeError(.badRequest, "malformed HTTP request\n", requestHead: head, close: true, context: context)
            return
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ProxyShutdownEvent {
            draining = true
            if exchange == nil && !isHTTP2Stream { context.close(promise: nil) }
        } else if let event = event as? ChannelEvent, case .inputClosed = event, !isHTTP2Stream {
            // The client sent FIN: answer what is in flight, then close; an idle connection closes now.
            closeAfterExchange = true
            if exchange == nil && queued.isEmpty { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func handle(_ part: HTTPServerRequestPart, in current: Exchange?, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            start(head, context: context)
        case .body(let buffer):
            guard let current else { return }
            send(.body(.byteBuffer(buffer)), in: current)
            if current.upstream == nil {
                current.pendingBytes += buffer.readableBytes
                if current.pendingBytes > Self.maximumPendingBytes { setClientReading(false, context: context) }
            } else if current.upstream?.isWritable == false {
                setClientReading(false, context: context)
            }
        case .end(let trailers):
            guard let current else { return }
            current.requestEnded = true
            send(.end(trailers), in: current)
            current.upstream?.handler.flush()
        }
    }

    private func start(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let (headers, upgrade) = HeaderFilter.forwardable(head.headers)
        let exchange = Exchange(requestHead: head, upgrade: isHTTP2Stream ? nil : upgrade)
        self.exchange = exchange
        metrics.requestStarted()
        if !head.isKeepAlive { closeAfterExchange = true }
        var upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: headers)
        if isHTTP2Stream { upstreamHead.version = head.version }
        exchange.upstreamHead = upstreamHead
        exchange.pending.append(.head(upstreamHead))
        if let pooled = upstreams.acquireImmediately() {
            attach(pooled, to: exchange, context: context)
            return
        }
        upstreams.acquire().assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let upstream):
                guard self.exchange === exchange, let context = self.context else {
                    upstreams.release(upstream, reusable: false)
                    return
                }
                attach(upstream, to: exchange, context: context)
            case .failure(let error):
                guard self.exchange === exchange, let context = self.context else { return }
                let timedOut: Bool
                if case .connectTimeout = error as? UpstreamFailure { timedOut = true } else { timedOut = false }
                failBeforeResponse(exchange, status: timedOut ? .gatewayTimeout : .badGateway,
                                   message: timedOut ? "upstream connect timed out\n" : "upstream connection failed\n",
                                   context: context)
            }
        }
    }

    private func attach(_ upstream: UpstreamConnection, to exchange: Exchange, context: ChannelHandlerContext) {
        exchange.upstream = upstream
        upstream.handler.delegate = self
        for part in exchange.pending { upstream.handler.write(part) }
        exchange.pending = []
        upstream.handler.flush()
        upstream.setReading(context.channel.isWritable)
        if !exchange.requestEnded { setClientReading(upstream.isWritable, context: context) }
        exchange.pendingBytes = 0
    }

    private func send(_ part: HTTPClientRequestPart, in exchange: Exchange) {
        if case .body = part { exchange.sentBody = true }
        if let upstream = exchange.upstream {
            upstream.handler.write(part)
        } else {
            exchange.pending.append(part)
        }
    }

    // MARK: Upstream side

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let exchange, let context else { return }
        switch part {
        case .head(let head):
            exchange.responseStatus = Int(head.status.code)
            var (headers, _) = HeaderFilter.forwardable(head.headers)
            if head.status == .switchingProtocols, let upgrade = exchange.upgrade, startTunnel != nil {
                exchange.switchingProtocols = true
                headers.replaceOrAdd(name: "connection", value: "upgrade")
                headers.replaceOrAdd(name: "upgrade", value: upgrade)
            } else if !isHTTP2Stream {
                exchange.upstreamKeepAlive = head.isKeepAlive
                if closeAfterExchange || draining {
                    headers.replaceOrAdd(name: "connection", value: "close")
                    closeAfterExchange = true
                } else if exchange.requestHead.version == .http1_0 {
                    headers.replaceOrAdd(name: "connection", value: "keep-alive")
                }
            }
            let version = isHTTP2Stream ? head.version : exchange.requestHead.version
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: head.status, headers: headers))), promise: nil)
        case .body(let buffer):
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            context.flush()
            if !context.channel.isWritable { exchange.upstream?.setReading(false) }
        case .end(let trailers):
            exchange.responseEnded = true
            if exchange.switchingProtocols, let upstream = exchange.upstream, let startTunnel {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                self.exchange = nil
                upstream.handler.delegate = nil
                metrics.responseCompleted(status: exchange.responseStatus, since: exchange.started)
                startTunnel(context.channel, upstream)
                return
            }
            let written = context.writeAndFlush(wrapOutboundOut(.end(trailers)))
            finish(exchange, context: context, written: written)
        }
    }

    func upstreamFailed(_ error: any Error) {
        guard let exchange, !exchange.responseEnded, let context else { return }
        if canRetry(exchange), let upstream = exchange.upstream, let head = exchange.upstreamHead {
            // A pooled keep-alive connection the server had already closed: a race every HTTP/1.1 client
            // meets. A request without a body that got no response is safe to send again, once.
            exchange.retried = true
            exchange.upstream = nil
            upstreams.release(upstream, reusable: false)
            exchange.pending = [.head(head)] + (exchange.requestEnded ? [.end(nil)] : [])
            upstreams.acquire().assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(let fresh):
                    guard self.exchange === exchange, let context = self.context else {
                        upstreams.release(fresh, reusable: false)
                        return
                    }
                    attach(fresh, to: exchange, context: context)
                case .failure:
                    guard self.exchange === exchange, let context = self.context else { return }
                    failBeforeResponse(exchange, status: .badGateway, message: "upstream connection failed\n", context: context)
                }
            }
            return
        }
        if exchange.responseStatus == nil {
            failBeforeResponse(exchange, status: .badGateway, message: "upstream closed the connection\n", context: context)
        } else {
            // Part of the response is out: all that is honest now is to cut the client off.
            self.exchange = nil
            if let upstream = exchange.upstream { upstreams.release(upstream, reusable: false) }
            metrics.responseCompleted(status: exchange.responseStatus, since: exchange.started)
            context.close(promise: nil)
        }
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        guard let exchange, !exchange.requestEnded, let context else { return }
        setClientReading(writable, context: context)
    }

    private func canRetry(_ exchange: Exchange) -> Bool {
        guard !isHTTP2Stream, !exchange.retried, exchange.responseStatus == nil, !exchange.sentBody,
              exchange.upstream?.reused == true else { return false }
        switch exchange.requestHead.method {
        case .GET, .HEAD, .OPTIONS: return exchange.upgrade == nil
        default: return false
        }
    }

    // MARK: Completion

    private func finish(_ exchange: Exchange, context: ChannelHandlerContext, written: EventLoopFuture<Void>) {
        self.exchange = nil
        metrics.responseCompleted(status: exchange.responseStatus, since: exchange.started)
        if let upstream = exchange.upstream {
            upstreams.release(upstream, reusable: exchange.requestEnded && exchange.upstreamKeepAlive)
        }
        // A response that ends before its request did: the rest of that request cannot be skipped safely.
        if !exchange.requestEnded { closeAfterExchange = true }
        if isHTTP2Stream { return }
        if closeAfterExchange || draining {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        startQueuedRequests(context: context)
    }

    /// Starts the pipelined requests that waited for the previous response, in order, until one is in flight.
    private func startQueuedRequests(context: ChannelHandlerContext) {
        while self.exchange == nil, let part = queued.popFirst() {
            handle(part, in: nil, context: context)
            // Body and end parts of the request just started go to it directly.
            while let current = self.exchange, !current.requestEnded, let next = queued.first, !isHead(next) {
                _ = queued.popFirst()
                handle(next, in: current, context: context)
            }
        }
        if self.exchange == nil { setClientReading(true, context: context) }
    }

    private func isHead(_ part: HTTPServerRequestPart) -> Bool {
        if case .head = part { return true } else { return false }
    }

    private func failBeforeResponse(_ exchange: Exchange, status: HTTPResponseStatus, message: String, context: ChannelHandlerContext) {
        self.exchange = nil
        if let upstream = exchange.upstream { upstreams.release(upstream, reusable: false) }
        metrics.responseCompleted(status: Int(status.code), since: exchange.started)
        let close = !exchange.requestEnded || closeAfterExchange || draining
        writeError(status, message, requestHead: exchange.requestHead, close: close, context: context)
        if !close { startQueuedRequests(context: context) }
    }

    private func writeError(_ status: HTTPResponseStatus, _ message: String, requestHead: HTTPRequestHead, close: Bool,
                            context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(message.utf8.count))
        if close && !isHTTP2Stream { headers.add(name: "connection", value: "close") }
        headers.add(name: "l5d-proxy-error", value: message.trimmingSuffixNewline)
        let version = isHTTP2Stream ? requestHead.version : (requestHead.version.major == 1 ? requestHead.version : .http1_1)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: message)))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Flow control toward the client. Switching autoRead costs system calls, so it changes only when needed.
    private func setClientReading(_ enabled: Bool, context: ChannelHandlerContext) {
        guard clientPaused == enabled else { return }
        clientPaused = !enabled
        try? context.channel.syncOptions?.setOption(.autoRead, value: enabled)
        // HTTP/2 stream channels do not deliver frames they already hold when autoRead is switched back on.
        if enabled { context.read() }
    }
}

@available(*, unavailable)
extension HTTPProxyHandler: Sendable {}

/// Sent down every connection's pipeline when the proxy starts draining.
struct ProxyShutdownEvent {}

extension String {
    var trimmingSuffixNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
}
