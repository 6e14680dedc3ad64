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
        /// What is sent upstream, kept for the one retry while no body was sent.
        let upstreamHead: HTTPRequestHead
        var requestEnded = false
        var sentBody = false
        var retried = false
        var upstream: UpstreamLink
        var response: ResponseProgress = .awaitingHead
    }

    private enum UpstreamLink {
        /// Parts wait here while the connection is being made.
        case acquiring(pending: [HTTPClientRequestPart], pendingBytes: Int)
        case attached(Upstream, reused: Bool, writable: Bool)
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

    /// Parts of pipelined requests held before the client is asked to stop sending.
    static var maximumQueuedParts: Int { 64 }
    /// Request bytes held while the upstream connection is being made, before the client is paused.
    static var maximumPendingBytes: Int { 256 * 1024 }

    private var exchange: Exchange?
    private var queued = CircularBuffer<HTTPServerRequestPart>()
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
        if exchange != nil || !queued.isEmpty {
            enqueue(.head(head))
        } else {
            start(head, now: now)
        }
    }

    mutating func requestBody(_ buffer: ByteBuffer) {
        guard persistence != .done else { return }
        if queued.isEmpty, let current = exchange, !current.requestEnded {
            deliverBody(buffer)
        } else if exchange != nil || !queued.isEmpty {
            enqueue(.body(buffer))
        }
        // Otherwise the part belongs to a request that was already answered and closed: drop it.
    }

    mutating func requestEnd(_ trailers: HTTPHeaders?) {
        guard persistence != .done else { return }
        if queued.isEmpty, let current = exchange, !current.requestEnded {
            deliverEnd(trailers)
        } else if exchange != nil || !queued.isEmpty {
            enqueue(.end(trailers))
        }
    }

    /// The request could not be parsed (malformed or smuggling framing, or a header block over the limit).
    mutating func requestMalformed(status: HTTPResponseStatus, reason: String) {
        guard persistence != .done else { return }
        persistence = .done
        queued.removeAll()
        guard let current = exchange else {
            actions.append(.respondWithError(status, reason: reason, version: .http1_1, close: true))
            return
        }
        exchange = nil
        if case .attached(let upstream, _, _) = current.upstream {
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
        guard queued.isEmpty, let current = exchange, !current.requestEnded,
              case .attached(let upstream, _, _) = current.upstream else { return }
        actions.append(.flushUpstream(upstream))
    }

    mutating func clientWritabilityChanged(_ writable: Bool) {
        clientWritable = writable
        guard let current = exchange, case .attached(let upstream, _, _) = current.upstream else { return }
        actions.append(.setUpstreamReading(upstream, writable))
    }

    mutating func clientClosed() {
        persistence = .done
        queued.removeAll()
        guard let current = exchange else { return }
        exchange = nil
        if case .attached(let upstream, _, _) = current.upstream {
            actions.append(.releaseUpstream(upstream, reusable: false))
        }
        actions.append(.countResponse(status: nil, started: current.started))
    }

    // MARK: Upstream events

    mutating func upstreamAcquired(_ id: ExchangeID, _ upstream: Upstream, reused: Bool, writable: Bool) {
        guard var current = exchange, current.id == id, case .acquiring(let pending, _) = current.upstream
        else {
            // Nobody wants it any more; nothing was written to it, so it can serve someone else.
            actions.append(.releaseUpstream(upstream, reusable: true))
            return
        }
        current.upstream = .attached(upstream, reused: reused, writable: writable)
        exchange = current
        for part in pending { actions.append(.sendUpstream(upstream, part)) }
        actions.append(.flushUpstream(upstream))
        actions.append(.setUpstreamReading(upstream, clientWritable))
        if !current.requestEnded { setClientReading(writable) }
    }

    mutating func upstreamUnavailable(_ id: ExchangeID, _ why: UpstreamUnavailable) {
        guard let current = exchange, current.id == id, case .acquiring = current.upstream else { return }
        switch why {
        case .connectTimedOut: failBeforeResponse(.gatewayTimeout, reason: "upstream connect timed out")
        case .connectFailed: failBeforeResponse(.badGateway, reason: "upstream connection failed")
        }
    }

    mutating func upstreamWritabilityChanged(_ writable: Bool) {
        guard var current = exchange, case .attached(let upstream, let reused, _) = current.upstream else { return }
        current.upstream = .attached(upstream, reused: reused, writable: writable)
        exchange = current
        if !current.requestEnded { setClientReading(writable) }
    }

    mutating func responseHead(_ head: HTTPResponseHead) {
        guard var current = exchange, case .attached = current.upstream, case .awaitingHead = current.response else { return }
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
        guard let current = exchange, case .attached(let upstream, _, _) = current.upstream,
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
        guard var current = exchange, case .attached(let upstream, let reused, _) = current.upstream else { return }
        if case .awaitingHead = current.response, canRetry(current, reused: reused) {
            // A pooled keep-alive connection the server had closed in the meantime: a race every HTTP/1.1
            // client meets. A request with no body and no response yet is safe to send again, once.
            current.retried = true
            var pending: [HTTPClientRequestPart] = [.head(current.upstreamHead)]
            if current.requestEnded { pending.append(.end(nil)) }
            current.upstream = .acquiring(pending: pending, pendingBytes: 0)
            exchange = current
            actions.append(.releaseUpstream(upstream, reusable: false))
            actions.append(.acquireUpstream(current.id))
            return
        }
        if case .awaitingHead = current.response {
            failBeforeResponse(.badGateway, reason: "upstream closed the connection")
        } else {
            // Part of the response is out: all that is honest now is to cut the client off.
            exchange = nil
            persistence = .done
            queued.removeAll()
            actions.append(.releaseUpstream(upstream, reusable: false))
            actions.append(.countResponse(status: nil, started: current.started))
            actions.append(.close)
        }
    }

    // MARK: Internals

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
        switch current.upstream {
        case .attached(let upstream, _, let writable):
            actions.append(.sendUpstream(upstream, .body(.byteBuffer(buffer))))
            if !writable { setClientReading(false) }
        case .acquiring(var pending, var bytes):
            pending.append(.body(.byteBuffer(buffer)))
            bytes += buffer.readableBytes
            current.upstream = .acquiring(pending: pending, pendingBytes: bytes)
            if bytes > Self.maximumPendingBytes { setClientReading(false) }
        }
        exchange = current
    }

    private mutating func deliverEnd(_ trailers: HTTPHeaders?) {
        guard var current = exchange else { return }
        current.requestEnded = true
        switch current.upstream {
        case .attached(let upstream, _, _):
            actions.append(.sendUpstream(upstream, .end(trailers)))
            actions.append(.flushUpstream(upstream))
        case .acquiring(var pending, let bytes):
            pending.append(.end(trailers))
            current.upstream = .acquiring(pending: pending, pendingBytes: bytes)
        }
        exchange = current
    }

    private mutating func enqueue(_ part: HTTPServerRequestPart) {
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
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: headers)
        let id = nextID
        nextID &+= 1
        exchange = Exchange(id: id, version: head.version, method: head.method, upgrade: upgrade, started: now,
                            upstreamHead: upstreamHead, upstream: .acquiring(pending: [.head(upstreamHead)], pendingBytes: 0))
        actions.append(.acquireUpstream(id))
    }

    private func canRetry(_ exchange: Exchange, reused: Bool) -> Bool {
        guard reused, !exchange.retried, !exchange.sentBody, exchange.upgrade == nil else { return false }
        switch exchange.method {
        case .GET, .HEAD, .OPTIONS: return true
        default: return false
        }
    }

    private mutating func failBeforeResponse(_ status: HTTPResponseStatus, reason: String) {
        guard let current = exchange else { return }
        exchange = nil
        if case .attached(let upstream, _, _) = current.upstream {
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

    /// Starts the pipelined requests that waited for the previous response, until one is in flight.
    private mutating func startQueuedRequests() {
        while exchange == nil, persistence == .keepAlive, let part = queued.popFirst() {
            switch part {
            case .head(let head): start(head, now: .now())
            case .body, .end: continue  // parts of a request that was answered before it ended; never forwarded
            }
            // The body and end of the request just started go to it directly.
            while exchange != nil, let next = queued.first {
                if case .head = next { break }
                _ = queued.popFirst()
                switch next {
                case .body(let buffer): deliverBody(buffer)
                case .end(let trailers): deliverEnd(trailers)
                case .head: break
                }
            }
        }
        if persistence != .keepAlive { return }
        if exchange == nil {
            setClientReading(true)
            actions.append(.awaitRequestHead)
        } else if queued.count < Self.maximumQueuedParts, !clientReading, exchange?.requestEnded == true {
            setClientReading(true)
        }
    }

    private mutating func setClientReading(_ enabled: Bool) {
        guard clientReading != enabled else { return }
        clientReading = enabled
        actions.append(.setClientReading(enabled))
    }
}
