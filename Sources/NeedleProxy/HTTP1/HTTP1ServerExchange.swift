import NIOCore
import NIOHTTP1

/// Tells one exchange from the next on the same connection, so a late callback (an upstream that connects
/// after its request was already answered) is recognised and handed back.
typealias ExchangeID = UInt64

/// Why an upstream could not be had for a request; decides between 502 and 504.
enum UpstreamUnavailable: Equatable, Sendable {
    case connectFailed
    case connectTimedOut
}

/// The HTTP/1.1 server side of one client connection, as a value: it takes what happens on the client and
/// on the upstream connection and says what to do. The handler (`HTTP1ProxyHandler`) only performs the
/// actions, so every rule below is tested without sockets.
///
/// Rules: requests are answered in order (pipelined ones wait, and the client is paused once too many
/// parts wait); informational responses are forwarded (not to HTTP/1.0 clients, RFC 9110 §15.2); a
/// bodiless idempotent request that finds its pooled connection closed before any response is sent again
/// once on a fresh one; after a `101` both sides become a tunnel; a failure before the response head is
/// answered 502/504, after it the client is cut off; `Connection: close`, a client FIN, a framing error and
/// a drain all end the connection after the exchange in flight.
struct HTTP1ServerExchange<Upstream> {
    enum Action {
        /// Get an upstream connection, then report `upstreamAcquired` or `upstreamUnavailable` with this id.
        case acquireUpstream(ExchangeID)
        case sendUpstream(Upstream, HTTPClientRequestPart)
        case flushUpstream(Upstream)
        case releaseUpstream(Upstream, reusable: Bool)
        case setUpstreamReading(Upstream, Bool)
        case respond(HTTPServerResponsePart, flush: Bool)
        /// Write the part, then close the connection once it is out.
        case respondThenClose(HTTPServerResponsePart)
        /// A response of the proxy's own (errors): status, a one-line reason, and whether to close after it.
        case respondWithError(HTTPResponseStatus, reason: String, version: HTTPVersion, close: Bool)
        case setClientReading(Bool)
        /// A complete request head arrived: the header-read timer stops.
        case requestHeadReceived
        /// Nothing in flight and nothing queued: the next request head must arrive within the header timeout.
        case awaitRequestHead
        case countRequest
        case countResponse(status: Int?, started: NIODeadline)
        /// The 101 is out: splice client and upstream as raw byte streams; this machine is done.
        case startTunnel(Upstream)
        case close
    }

    private struct Exchange {
        let id: ExchangeID
        let version: HTTPVersion
        let method: HTTPMethod
        let upgrade: String?
        let started: NIODeadline
        /// What is sent upstream first, and again for the one retry while no body was sent.
        let upstreamHead: HTTPRequestHead
        var requestEnded = false
        var sentBody = false
        var retried = false
        var upstream = UpstreamLink<Upstream>.connecting
        /// The upstream came from the pool (a failure on it may be a stale keep-alive connection).
        var reusedUpstream = false
        var response: ResponseProgress = .awaitingHead
    }

    private enum ResponseProgress {
        case awaitingHead
        case streaming(status: Int, upstreamKeepAlive: Bool, switchingProtocols: Bool)
    }

    /// Whether the connection stays open after the exchange in flight.
    private enum Persistence {
        case keepAlive
        case closeAfterExchange
        /// Closed, closing, or handed to a tunnel: every further event is ignored.
        case done
    }

    /// A part of a pipelined request waiting for the responses before it; a head keeps its arrival time,
    /// so its latency includes the wait.
    private enum QueuedPart {
        case head(HTTPRequestHead, arrived: NIODeadline)
        case body(ByteBuffer)
        case end(HTTPHeaders?)

        var isHead: Bool {
            if case .head = self { return true }
            return false
        }
    }

    /// Parts of pipelined requests held before the client is asked to stop sending.
    static var maximumQueuedParts: Int { 64 }
    /// Request bytes held while the upstream connection is being made, before the client is paused.
    static var maximumPendingBytes: Int { 256 * 1024 }

    private var exchange: Exchange?
    private var queued = CircularBuffer<QueuedPart>()
    private var persistence = Persistence.keepAlive
    private var nextID: ExchangeID = 1
    private var clientReading = true
    private var clientWritable = true
    private var actions: CircularBuffer<Action> = CircularBuffer(initialCapacity: 8)

    init() {}

    /// The next action to perform, in order; the handler drains these after every event.
    mutating func nextAction() -> Action? { actions.popFirst() }

    var isIdle: Bool { exchange == nil && queued.isEmpty }

    // MARK: Client events

    mutating func requestHead(_ head: HTTPRequestHead, now: NIODeadline) {
        guard persistence != .done else { return }
        if isIdle {
            start(head, now: now)
        } else {
            enqueue(.head(head, arrived: now))
        }
    }

    mutating func requestBody(_ buffer: ByteBuffer) {
        guard persistence != .done else { return }
        if takesRequestParts {
            deliverBody(buffer)
        } else if !isIdle {
            enqueue(.body(buffer))
        }
        // Otherwise the part belongs to a request that was already answered and closed: drop it.
    }

    mutating func requestEnd(_ trailers: HTTPHeaders?) {
        guard persistence != .done else { return }
        if takesRequestParts {
            deliverEnd(trailers)
        } else if !isIdle {
            enqueue(.end(trailers))
        }
    }

    /// The request could not be parsed (malformed or smuggling framing, or a header block over the limit).
    mutating func requestMalformed(status: HTTPResponseStatus, reason: String, now: NIODeadline) {
        guard persistence != .done else { return }
        guard let current = exchange else {
            persistence = .done
            actions.append(.countRequest)
            actions.append(.countResponse(status: Int(status.code), started: now))
            actions.append(.respondWithError(status, reason: reason, version: .http1_1, close: true))
            return
        }
        if current.requestEnded || !queued.isEmpty {
            // The error is in a later, pipelined request: the one in flight is still answered, then the
            // connection closes. The requests queued behind it get no answer, which tells the client to
            // send them again on a new connection.
            persistence = .closeAfterExchange
            queued.removeAll()
            return
        }
        persistence = .done
        exchange = nil
        if let upstream = current.upstream.upstream {
            actions.append(.releaseUpstream(upstream, reusable: false))
        }
        if case .awaitingHead = current.response {
            actions.append(.countResponse(status: Int(status.code), started: current.started))
            actions.append(.respondWithError(status, reason: reason, version: current.version, close: true))
        } else {
            // Part of a response is out already: cutting the connection is all that is left.
            actions.append(.countResponse(status: nil, started: current.started))
            actions.append(.close)
        }
    }

    /// The client sent FIN: answer what is in flight, then close.
    mutating func clientInputClosed() {
        closeAfterExchange()
    }

    /// The proxy drains: the exchange in flight completes with `Connection: close`; an idle connection closes now.
    mutating func quiesce() {
        closeAfterExchange()
    }

    /// The client's read burst is over: what was forwarded upstream goes out in one flush.
    mutating func clientReadComplete() {
        guard takesRequestParts, let upstream = exchange?.upstream.upstream else { return }
        actions.append(.flushUpstream(upstream))
    }

    mutating func clientWritabilityChanged(_ writable: Bool) {
        clientWritable = writable
        guard let upstream = exchange?.upstream.upstream else { return }
        actions.append(.setUpstreamReading(upstream, writable))
    }

    mutating func clientClosed() {
        persistence = .done
        queued.removeAll()
        guard let current = exchange else { return }
        exchange = nil
        if let upstream = current.upstream.upstream {
            actions.append(.releaseUpstream(upstream, reusable: false))
        }
        actions.append(.countResponse(status: nil, started: current.started))
    }

    // MARK: Upstream events

    mutating func upstreamAcquired(_ id: ExchangeID, _ upstream: Upstream, reused: Bool, writable: Bool) {
        guard var current = exchange, current.id == id, case .acquiring(let pending, _) = current.upstream else {
            // Nobody wants it any more; nothing was written to it, so it can serve someone else.
            actions.append(.releaseUpstream(upstream, reusable: true))
            return
        }
        current.upstream = .attached(upstream, writable: writable)
        current.reusedUpstream = reused
        exchange = current
        actions.append(.sendUpstream(upstream, .head(current.upstreamHead)))
        for part in pending { actions.append(.sendUpstream(upstream, part)) }
        actions.append(.flushUpstream(upstream))
        actions.append(.setUpstreamReading(upstream, clientWritable))
        if !current.requestEnded { setClientReading(writable) }
    }

    mutating func upstreamUnavailable(_ id: ExchangeID, _ why: UpstreamUnavailable) {
        guard let current = exchange, current.id == id, current.upstream.isAcquiring else { return }
        switch why {
        case .connectTimedOut: failBeforeResponse(.gatewayTimeout, reason: "upstream connect timed out")
        case .connectFailed: failBeforeResponse(.badGateway, reason: "upstream connection failed")
        }
    }

    mutating func upstreamWritabilityChanged(_ writable: Bool) {
        guard var current = exchange, let upstream = current.upstream.upstream else { return }
        current.upstream = .attached(upstream, writable: writable)
        exchange = current
        if !current.requestEnded { setClientReading(writable) }
    }

    mutating func responseHead(_ head: HTTPResponseHead) {
        guard var current = exchange, !current.upstream.isAcquiring, case .awaitingHead = current.response else { return }
        var (headers, _) = HeaderFilter.forwardable(head.headers)
        let code = Int(head.status.code)
        if (100..<200).contains(code) && code != 101 {
            // 100 Continue, 103 Early Hints: forwarded as they come; an HTTP/1.0 client must not get them.
            if current.version != .http1_0 {
                actions.append(.respond(.head(HTTPResponseHead(version: current.version, status: head.status, headers: headers)), flush: true))
            }
            return
        }
        let switching = code == 101 && current.upgrade != nil
        if !switching, current.version == .http1_0, current.method != .HEAD, head.status.mayHaveResponseBody,
           !headers.contains(name: "content-length"), persistence == .keepAlive {
            // A body without a length reaches an HTTP/1.0 client unframed: only the close can end it.
            persistence = .closeAfterExchange
        }
        if switching, let upgrade = current.upgrade {
            headers.replaceOrAdd(name: "connection", value: "upgrade")
            headers.replaceOrAdd(name: "upgrade", value: upgrade)
        } else if persistence != .keepAlive {
            headers.replaceOrAdd(name: "connection", value: "close")
        } else if current.version == .http1_0 {
            headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        current.response = .streaming(status: code, upstreamKeepAlive: head.isKeepAlive, switchingProtocols: switching)
        exchange = current
        actions.append(.respond(.head(HTTPResponseHead(version: current.version, status: head.status, headers: headers)), flush: false))
    }

    mutating func responseBody(_ buffer: ByteBuffer) {
        guard let current = exchange, case .streaming = current.response else { return }
        actions.append(.respond(.body(.byteBuffer(buffer)), flush: true))
    }

    mutating func responseEnd(_ trailers: HTTPHeaders?) {
        guard let current = exchange, let upstream = current.upstream.upstream,
              case .streaming(let status, let upstreamKeepAlive, let switching) = current.response
        else { return }
        exchange = nil
        actions.append(.countResponse(status: status, started: current.started))
        if switching {
            persistence = .done
            queued.removeAll()
            actions.append(.respond(.end(nil), flush: true))
            actions.append(.startTunnel(upstream))
            return
        }
        actions.append(.releaseUpstream(upstream, reusable: current.requestEnded && upstreamKeepAlive))
        // A response that ends before its request did: the rest of that request cannot be skipped safely.
        if !current.requestEnded { persistence = .closeAfterExchange }
        if persistence == .keepAlive {
            actions.append(.respond(.end(trailers), flush: true))
            startQueuedRequests()
        } else {
            persistence = .done
            queued.removeAll()
            actions.append(.respondThenClose(.end(trailers)))
        }
    }

    /// The upstream connection closed or failed while this exchange used it.
    mutating func upstreamClosed() {
        guard var current = exchange, let upstream = current.upstream.upstream else { return }
        guard case .awaitingHead = current.response else {
            // Part of the response is out: all that is honest now is to cut the client off.
            exchange = nil
            persistence = .done
            queued.removeAll()
            actions.append(.releaseUpstream(upstream, reusable: false))
            actions.append(.countResponse(status: nil, started: current.started))
            actions.append(.close)
            return
        }
        guard canRetry(current) else {
            failBeforeResponse(.badGateway, reason: "upstream closed the connection")
            return
        }
        // A pooled keep-alive connection the server had closed in the meantime: a race every HTTP/1.1
        // client meets. A request with no body and no response yet is safe to send again, once.
        current.retried = true
        current.upstream = .acquiring(pending: current.requestEnded ? [.end(nil)] : [], pendingBytes: 0)
        exchange = current
        actions.append(.releaseUpstream(upstream, reusable: false))
        actions.append(.acquireUpstream(current.id))
    }

    // MARK: Internals

    /// Request parts go to the exchange in flight (rather than the queue) while its request is unfinished.
    private var takesRequestParts: Bool {
        guard queued.isEmpty, let current = exchange else { return false }
        return !current.requestEnded
    }

    private mutating func closeAfterExchange() {
        guard persistence != .done else { return }
        persistence = .closeAfterExchange
        if isIdle {
            persistence = .done
            actions.append(.close)
        }
    }

    private mutating func deliverBody(_ buffer: ByteBuffer) {
        guard var current = exchange else { return }
        current.sentBody = true
        let part = HTTPClientRequestPart.body(.byteBuffer(buffer))
        switch current.upstream.forward(part) {
        case .send(let upstream, let writable):
            actions.append(.sendUpstream(upstream, part))
            if !writable { setClientReading(false) }
        case .held(let bytes):
            if bytes > Self.maximumPendingBytes { setClientReading(false) }
        }
        exchange = current
    }

    private mutating func deliverEnd(_ trailers: HTTPHeaders?) {
        guard var current = exchange else { return }
        current.requestEnded = true
        if case .send(let upstream, _) = current.upstream.forward(.end(trailers)) {
            actions.append(.sendUpstream(upstream, .end(trailers)))
            actions.append(.flushUpstream(upstream))
        }
        exchange = current
    }

    private mutating func enqueue(_ part: QueuedPart) {
        queued.append(part)
        if queued.count >= Self.maximumQueuedParts { setClientReading(false) }
    }

    private mutating func start(_ head: HTTPRequestHead, now: NIODeadline) {
        actions.append(.requestHeadReceived)
        actions.append(.countRequest)
        if let problem = RequestFraming.problem(in: head) {
            persistence = .done
            queued.removeAll()
            actions.append(.countResponse(status: 400, started: now))
            actions.append(.respondWithError(.badRequest, reason: problem, version: .http1_1, close: true))
            return
        }
        let (headers, upgrade) = HeaderFilter.forwardable(head.headers)
        if !head.isKeepAlive { persistence = .closeAfterExchange }
        let id = nextID
        nextID &+= 1
        exchange = Exchange(id: id, version: head.version, method: head.method, upgrade: upgrade, started: now,
                            upstreamHead: HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: headers))
        actions.append(.acquireUpstream(id))
    }

    private func canRetry(_ exchange: Exchange) -> Bool {
        guard exchange.reusedUpstream, !exchange.retried, !exchange.sentBody, exchange.upgrade == nil else { return false }
        switch exchange.method {
        case .GET, .HEAD, .OPTIONS: return true
        default: return false
        }
    }

    private mutating func failBeforeResponse(_ status: HTTPResponseStatus, reason: String) {
        guard let current = exchange else { return }
        exchange = nil
        if let upstream = current.upstream.upstream {
            actions.append(.releaseUpstream(upstream, reusable: false))
        }
        actions.append(.countResponse(status: Int(status.code), started: current.started))
        // The rest of an unfinished request cannot be told apart from the next request: close after answering.
        if !current.requestEnded { persistence = .closeAfterExchange }
        let close = persistence != .keepAlive
        actions.append(.respondWithError(status, reason: reason, version: current.version, close: close))
        if close {
            persistence = .done
            queued.removeAll()
        } else {
            startQueuedRequests()
        }
    }

    /// Starts the pipelined requests that waited for the previous response, until one is in flight. The
    /// queue always begins with a head: parts are queued only behind a request whose end has arrived.
    private mutating func startQueuedRequests() {
        while exchange == nil, persistence == .keepAlive, case .head(let head, let arrived)? = queued.first {
            queued.removeFirst()
            start(head, now: arrived)
            while exchange != nil, let next = queued.first, !next.isHead {
                queued.removeFirst()
                if case .body(let buffer) = next { deliverBody(buffer) }
                if case .end(let trailers) = next { deliverEnd(trailers) }
            }
        }
        guard persistence == .keepAlive else { return }
        if exchange == nil {
            setClientReading(true)
            actions.append(.awaitRequestHead)
        } else if queued.count < Self.maximumQueuedParts, exchange?.requestEnded == true {
            setClientReading(true)
        }
    }

    private mutating func setClientReading(_ enabled: Bool) {
        guard clientReading != enabled else { return }
        clientReading = enabled
        actions.append(.setClientReading(enabled))
    }
}
