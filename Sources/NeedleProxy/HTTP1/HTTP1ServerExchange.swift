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
        /// A complete request head starts an exchange: the header-read timer stops, the request is counted and
        /// an upstream connection is acquired (as `acquireUpstream`). One action for what every request does.
        case startExchange(ExchangeID)
        /// Get an upstream connection, then report `upstreamAcquired` or `upstreamUnavailable` with this id.
        case acquireUpstream(ExchangeID)
        /// A request head; its method tells the upstream's decoder how the answer is framed.
        case sendRequestHead(Upstream, ByteBuffer, method: HTTPMethod)
        /// Request body bytes, already framed for the upstream.
        case sendUpstream(Upstream, ByteBuffer)
        case flushUpstream(Upstream)
        case releaseUpstream(Upstream, reusable: Bool)
        case setUpstreamReading(Upstream, Bool)
        /// A response head for the client (a 1xx is flushed at once; a final one goes out with its body).
        case respondHead(ByteBuffer, status: Int, flush: Bool)
        /// Response body bytes, already framed for the client; flushed at the end of the upstream's read burst.
        case respondBody(ByteBuffer)
        /// The response is complete: write its last bytes (the last chunk), flush, and close once they are
        /// out when `close`.
        case respondEnd(ByteBuffer?, close: Bool)
        /// A response on a connection that stays open is complete: count it, hand its upstream back, then as
        /// `respondEnd(last, close: false)`. One action for what every keep-alive request does.
        case completeExchange(status: Int, started: NIODeadline, upstream: Upstream, reusable: Bool, last: ByteBuffer?)
        case flushClient
        /// A response of the proxy's own (errors): status, a one-line reason, and whether to close after it.
        case respondWithError(HTTPResponseStatus, reason: String, version: HTTPVersion, close: Bool)
        case setClientReading(Bool)
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
        let upstreamHead: ByteBuffer
        /// How the request body is framed towards the upstream (as the client framed it).
        let requestFraming: HTTP1BodyEncoder.Framing
        var requestEnded = false
        var sentBody = false
        var retried = false
        var upstream = UpstreamLink<Upstream, ByteBuffer>.connecting
        /// The upstream came from the pool (a failure on it may be a stale keep-alive connection).
        var reusedUpstream = false
        var response: ResponseProgress = .awaitingHead
    }

    private enum ResponseProgress {
        case awaitingHead
        case streaming(status: Int, upstreamKeepAlive: Bool, switchingProtocols: Bool, framing: HTTP1BodyEncoder.Framing)
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
        case head(HTTP1RequestHead, arrived: NIODeadline)
        case body(ByteBuffer)
        case end(trailers: ByteBuffer?)

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
    /// Response bytes were written without a flush (flushed at the end of the upstream's read burst).
    private var clientUnflushed = false
    /// Request bytes were written upstream without a flush. Writes made while the client's bytes are being
    /// read go out in one flush: at the request's end or when the read burst is over.
    private var upstreamUnflushed = false
    private var readingClient = false
    private let allocator = ByteBufferAllocator()
    private var actions = ActionQueue<Action>()

    init() {}

    /// The next action to perform, in order; the handler drains these after every event.
    mutating func nextAction() -> Action? { actions.popFirst() }

    var isIdle: Bool { exchange == nil && queued.isEmpty }

    // MARK: Client events

    mutating func requestHead(_ head: HTTP1RequestHead, now: NIODeadline) {
        guard persistence != .done else { return }
        readingClient = true
        if isIdle {
            start(head, now: now)
        } else {
            enqueue(.head(head, arrived: now))
        }
    }

    mutating func requestBody(_ buffer: ByteBuffer) {
        guard persistence != .done else { return }
        readingClient = true
        if takesRequestParts {
            deliverBody(buffer)
        } else if !isIdle {
            enqueue(.body(buffer))
        }
        // Otherwise the part belongs to a request that was already answered and closed: drop it.
    }

    mutating func requestEnd(trailers: ByteBuffer?) {
        guard persistence != .done else { return }
        readingClient = true
        if takesRequestParts {
            deliverEnd(trailers)
        } else if !isIdle {
            enqueue(.end(trailers: trailers))
        }
    }

    /// The request could not be parsed (malformed or smuggling framing, or a head over the limit).
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
        readingClient = false
        guard let upstream = exchange?.upstream.upstream else { return }
        flushUpstreamIfWritten(upstream)
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
        // Fields are read in place, not through a copy of the exchange: this runs for every request.
        guard exchange?.id == id, case .acquiring(let pending, _)? = exchange?.upstream,
              let head = exchange?.upstreamHead, let method = exchange?.method, let requestEnded = exchange?.requestEnded
        else {
            // Nobody wants it any more; nothing was written to it, so it can serve someone else.
            actions.append(.releaseUpstream(upstream, reusable: true))
            return
        }
        exchange?.upstream = .attached(upstream, writable: writable)
        exchange?.reusedUpstream = reused
        actions.append(.sendRequestHead(upstream, head, method: method))
        for part in pending { actions.append(.sendUpstream(upstream, part)) }
        upstreamUnflushed = true
        // Mid-read, the rest of the request is likely in the same read: its end (or the read's) flushes.
        if requestEnded || !readingClient { flushUpstreamIfWritten(upstream) }
        // Pooled and new connections read; only a client that cannot take more pauses this one.
        if !clientWritable { actions.append(.setUpstreamReading(upstream, false)) }
        if !requestEnded { setClientReading(writable) }
    }

    mutating func upstreamUnavailable(_ id: ExchangeID, _ why: UpstreamUnavailable) {
        guard let current = exchange, current.id == id, current.upstream.isAcquiring else { return }
        switch why {
        case .connectTimedOut: failBeforeResponse(.gatewayTimeout, reason: "upstream connect timed out")
        case .connectFailed: failBeforeResponse(.badGateway, reason: "upstream connection failed")
        }
    }

    mutating func upstreamWritabilityChanged(_ writable: Bool) {
        guard let upstream = exchange?.upstream.upstream else { return }
        exchange?.upstream = .attached(upstream, writable: writable)
        if exchange?.requestEnded == false { setClientReading(writable) }
    }

    mutating func responseHead(_ head: HTTP1ResponseHead) {
        // Fields are read in place, not through a copy of the exchange: this runs for every request.
        guard exchange?.upstream.isAcquiring == false, case .awaitingHead? = exchange?.response,
              let version = exchange?.version, let method = exchange?.method
        else { return }
        let upgrade = exchange?.upgrade
        if head.isInformational {
            // 100 Continue, 103 Early Hints: forwarded as they come; an HTTP/1.0 client must not get them.
            if version != .http1_0 {
                actions.append(.respondHead(clientHead(head, version: version, connection: .none, framing: .init()),
                                            status: head.status, flush: true))
            }
            return
        }
        guard head.status != 101 || upgrade != nil else {
            upstreamInvalid("101 Switching Protocols to a request that asked for no upgrade")
            return
        }
        let switching = head.status == 101 || method.isCONNECT && (200..<300).contains(head.status)
        let (framing, fields) = clientFraming(for: head, version: version, switching: switching)
        if !switching, upgrade != nil || method.isCONNECT, persistence == .keepAlive {
            // A switch that was refused: the client may already be sending the new protocol, so the
            // connection ends after this answer, and the answer says so.
            persistence = .closeAfterExchange
        }
        if framing == .raw, !fields.keepsLength, persistence == .keepAlive {
            // A body without a length reaches the client delimited by the close (HTTP/1.0, or codings
            // other than chunked): only the close can end it.
            persistence = .closeAfterExchange
        }
        let connection: HTTP1HeadWriter.ConnectionField
        if switching, let upgrade = upgrade {
            connection = .upgrade(upgrade)
        } else if switching {
            connection = .none  // CONNECT
        } else if persistence != .keepAlive {
            connection = .close
        } else if version == .http1_0 {
            connection = .keepAlive
        } else {
            connection = .none
        }
        exchange?.response = .streaming(status: head.status, upstreamKeepAlive: head.keepAlive, switchingProtocols: switching,
                                        framing: framing)
        actions.append(.respondHead(clientHead(head, version: version, connection: connection, framing: fields),
                                    status: head.status, flush: false))
        clientUnflushed = true
    }

    mutating func responseBody(_ buffer: ByteBuffer) {
        guard case .streaming(_, _, _, let framing)? = exchange?.response,
              let bytes = HTTP1BodyEncoder.body(buffer, framing: framing, allocator: allocator)
        else { return }
        actions.append(.respondBody(bytes))
        clientUnflushed = true
    }

    /// The upstream's read burst is over: what was written to the client goes out in one flush.
    mutating func upstreamReadComplete() {
        guard clientUnflushed else { return }
        clientUnflushed = false
        actions.append(.flushClient)
    }

    mutating func responseEnd(trailers: ByteBuffer?) {
        // Fields are read in place and the exchange taken out, not copied: this runs for every request.
        guard case .streaming(let status, let upstreamKeepAlive, let switching, let framing)? = exchange?.response,
              let upstream = exchange?.upstream.upstream, let current = exchange.take()
        else { return }
        let last = HTTP1BodyEncoder.end(trailers: trailers, framing: framing, allocator: allocator)
        clientUnflushed = false
        if switching {
            actions.append(.countResponse(status: status, started: current.started))
            persistence = .done
            queued.removeAll()
            actions.append(.respondEnd(last, close: false))
            actions.append(.startTunnel(upstream))
            return
        }
        let reusable = current.requestEnded && upstreamKeepAlive
        // A response that ends before its request did: the rest of that request cannot be skipped safely.
        if !current.requestEnded { persistence = .closeAfterExchange }
        if persistence == .keepAlive {
            actions.append(.completeExchange(status: status, started: current.started, upstream: upstream, reusable: reusable,
                                             last: last))
            startQueuedRequests()
        } else {
            actions.append(.countResponse(status: status, started: current.started))
            actions.append(.releaseUpstream(upstream, reusable: reusable))
            persistence = .done
            queued.removeAll()
            actions.append(.respondEnd(last, close: true))
        }
    }

    /// The upstream sent something that is not HTTP/1.1: as if it had closed, but never retried.
    mutating func upstreamInvalid(_ reason: String) {
        guard let response = exchange?.response, exchange?.upstream.upstream != nil else { return }
        exchange?.retried = true
        if case .awaitingHead = response {
            failBeforeResponse(.badGateway, reason: "upstream sent an invalid response: \(reason)")
        } else {
            upstreamClosed()
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
        let end = current.requestEnded ? HTTP1BodyEncoder.end(trailers: nil, framing: current.requestFraming, allocator: allocator) : nil
        current.upstream = .acquiring(pending: end.map { [$0] } ?? [], pendingBytes: 0)
        exchange = current
        actions.append(.releaseUpstream(upstream, reusable: false))
        actions.append(.acquireUpstream(current.id))
    }

    // MARK: Internals

    /// Request parts go to the exchange in flight (rather than the queue) while its request is unfinished.
    private var takesRequestParts: Bool {
        queued.isEmpty && exchange?.requestEnded == false
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
        guard let framing = exchange?.requestFraming,
              let bytes = HTTP1BodyEncoder.body(buffer, framing: framing, allocator: allocator)
        else { return }
        exchange?.sentBody = true
        switch exchange?.upstream.forward(bytes, bytes: bytes.readableBytes) {
        case .send(let upstream, let writable)?:
            actions.append(.sendUpstream(upstream, bytes))
            upstreamUnflushed = true
            if !readingClient { flushUpstreamIfWritten(upstream) }
            if !writable { setClientReading(false) }
        case .held(let held)?:
            if held > Self.maximumPendingBytes { setClientReading(false) }
        case nil:
            break
        }
    }

    private mutating func deliverEnd(_ trailers: ByteBuffer?) {
        guard let framing = exchange?.requestFraming else { return }
        exchange?.requestEnded = true
        if let trailers, trailers.readableBytes > 0 { exchange?.sentBody = true }
        let last = HTTP1BodyEncoder.end(trailers: trailers, framing: framing, allocator: allocator)
        if let upstream = exchange?.upstream.upstream {
            if let last {
                actions.append(.sendUpstream(upstream, last))
                upstreamUnflushed = true
            }
            flushUpstreamIfWritten(upstream)
        } else if let last {
            _ = exchange?.upstream.forward(last, bytes: 0)
        }
    }

    private mutating func enqueue(_ part: QueuedPart) {
        queued.append(part)
        if queued.count >= Self.maximumQueuedParts { setClientReading(false) }
    }

    private mutating func start(_ head: HTTP1RequestHead, now: NIODeadline) {
        if !head.keepAlive { persistence = .closeAfterExchange }
        let id = nextID
        nextID &+= 1
        upstreamUnflushed = false
        exchange = Exchange(id: id, version: head.version, method: head.method, upgrade: head.upgrade, started: now,
                            upstreamHead: head.upstreamHead, requestFraming: head.framing == .chunked ? .chunked : .raw)
        actions.append(.startExchange(id))
    }

    /// How the response body is framed for the client, and what that does to its framing fields
    /// (RFC 9112 §6.3): no body after HEAD, 1xx, 204 and 304 (whose fields still describe the resource, so a
    /// 304 and a HEAD answer keep them); a length as it came; chunks for an HTTP/1.1 client otherwise; for
    /// an HTTP/1.0 client, or codings other than chunked, a body ended by the close.
    private func clientFraming(for head: HTTP1ResponseHead, version: HTTPVersion,
                               switching: Bool) -> (HTTP1BodyEncoder.Framing, HTTP1HeadWriter.ClientFraming) {
        switch head.framing {
        case .none:
            let keepsFields = head.status == 304 || exchange?.method.isHEAD == true || switching
            return (.none, keepsFields ? .init() : .init(dropContentLength: true, dropTransferEncoding: true))
        case .length:
            return (.raw, .init())
        case .chunked:
            if version == .http1_1 { return (.chunked, .init(dropContentLength: true)) }
            return (.raw, .init(dropContentLength: true, dropTransferEncoding: true))
        case .untilClose:
            if version == .http1_1, !head.hasTransferEncoding { return (.chunked, .init(dropContentLength: true, addChunked: true)) }
            return (.raw, .init(dropContentLength: true))
        }
    }

    private func clientHead(_ head: HTTP1ResponseHead, version: HTTPVersion, connection: HTTP1HeadWriter.ConnectionField,
                            framing: HTTP1HeadWriter.ClientFraming) -> ByteBuffer {
        var capacity = head.raw.readableBytes + 48
        // A short body joins the head in one write (`WriteCoalescer`): room for it now saves a reallocation.
        if case .length(let length) = head.framing, length <= WriteCoalescer.maximumHeldBytes { capacity += length }
        var buffer = allocator.buffer(capacity: capacity)
        HTTP1HeadWriter.clientResponse(head, version: version, connection: connection, framing: framing, into: &buffer)
        return buffer
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

    private mutating func flushUpstreamIfWritten(_ upstream: Upstream) {
        guard upstreamUnflushed else { return }
        upstreamUnflushed = false
        actions.append(.flushUpstream(upstream))
    }

    private mutating func setClientReading(_ enabled: Bool) {
        guard clientReading != enabled else { return }
        clientReading = enabled
        actions.append(.setClientReading(enabled))
    }
}
