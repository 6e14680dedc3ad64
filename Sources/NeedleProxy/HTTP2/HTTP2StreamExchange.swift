import NIOCore
import NIOHTTP1

/// One client HTTP/2 stream carried to one upstream stream, as a value (the handler,
/// `HTTP2StreamProxyHandler`, performs its actions). A stream holds exactly one exchange: no pipelining,
/// no upgrade, no keep-alive; the stream ends when both messages have.
struct HTTP2StreamExchange<Upstream> {
    enum Action {
        case acquireUpstream
        case sendUpstream(Upstream, HTTPClientRequestPart)
        case flushUpstream(Upstream)
        case releaseUpstream(Upstream, reusable: Bool)
        case setUpstreamReading(Upstream, Bool)
        case respond(HTTPServerResponsePart, flush: Bool)
        case respondWithError(HTTPResponseStatus, reason: String, version: HTTPVersion)
        case setClientReading(Bool)
        case countRequest
        case countResponse(status: Int?, started: NIODeadline)
        /// Reset the client stream (the response was cut short).
        case close
    }

    private enum State {
        case awaitingRequest
        case active(Exchange)
        case finished
    }

    private struct Exchange {
        let version: HTTPVersion
        let started: NIODeadline
        let upstreamHead: HTTPRequestHead
        var requestEnded = false
        var upstream = UpstreamLink<Upstream, HTTPClientRequestPart>.connecting
        var responseStatus: Int?
    }

    static var maximumPendingBytes: Int { 256 * 1024 }

    private var state = State.awaitingRequest
    private var clientReading = true
    private var clientWritable = true
    private var actions = ActionQueue<Action>()
    private let clientIdentity: ClientIdentityField

    init(clientIdentity: ClientIdentityField = .untouched) {
        self.clientIdentity = clientIdentity
    }

    mutating func nextAction() -> Action? { actions.popFirst() }

    // MARK: Client stream

    mutating func requestHead(_ head: HTTPRequestHead, now: NIODeadline) {
        guard case .awaitingRequest = state else { return }
        var (headers, _) = HeaderFilter.forwardable(head.headers)
        if clientIdentity != .untouched { headers.remove(name: ClientIdentityField.name) }
        if case .set(let peer) = clientIdentity { headers.add(name: ClientIdentityField.name, value: peer) }
        let upstreamHead = HTTPRequestHead(version: head.version, method: head.method, uri: head.uri, headers: headers)
        state = .active(Exchange(version: head.version, started: now, upstreamHead: upstreamHead))
        actions.append(.countRequest)
        actions.append(.acquireUpstream)
    }

    mutating func requestBody(_ buffer: ByteBuffer) {
        guard case .active(var exchange) = state, !exchange.requestEnded else { return }
        let part = HTTPClientRequestPart.body(.byteBuffer(buffer))
        switch exchange.upstream.forward(part, bytes: buffer.readableBytes) {
        case .send(let upstream, let writable):
            actions.append(.sendUpstream(upstream, part))
            if !writable { setClientReading(false) }
        case .held(let bytes):
            if bytes > Self.maximumPendingBytes { setClientReading(false) }
        }
        state = .active(exchange)
    }

    mutating func requestEnd(_ trailers: HTTPHeaders?) {
        guard case .active(var exchange) = state, !exchange.requestEnded else { return }
        exchange.requestEnded = true
        // A trailer is a field too: a peer must not write the identity there either.
        var trailers = trailers
        if clientIdentity != .untouched { trailers?.remove(name: ClientIdentityField.name) }
        if case .send(let upstream, _) = exchange.upstream.forward(.end(trailers), bytes: 0) {
            actions.append(.sendUpstream(upstream, .end(trailers)))
            actions.append(.flushUpstream(upstream))
        }
        state = .active(exchange)
    }

    mutating func clientReadComplete() {
        guard case .active(let exchange) = state, !exchange.requestEnded, let upstream = exchange.upstream.upstream else { return }
        actions.append(.flushUpstream(upstream))
    }

    mutating func clientWritabilityChanged(_ writable: Bool) {
        clientWritable = writable
        guard case .active(let exchange) = state, let upstream = exchange.upstream.upstream else { return }
        actions.append(.setUpstreamReading(upstream, writable))
    }

    /// The client stream closed (finished, reset, or its connection went away).
    mutating func clientClosed() {
        guard case .active(let exchange) = state else {
            state = .finished
            return
        }
        state = .finished
        if let upstream = exchange.upstream.upstream {
            actions.append(.releaseUpstream(upstream, reusable: false))
        }
        actions.append(.countResponse(status: nil, started: exchange.started))
    }

    // MARK: Upstream stream

    mutating func upstreamAcquired(_ upstream: Upstream, writable: Bool) {
        guard case .active(var exchange) = state, case .acquiring(let pending, _) = exchange.upstream else {
            actions.append(.releaseUpstream(upstream, reusable: false))
            return
        }
        exchange.upstream = .attached(upstream, writable: writable)
        state = .active(exchange)
        actions.append(.sendUpstream(upstream, .head(exchange.upstreamHead)))
        for part in pending { actions.append(.sendUpstream(upstream, part)) }
        actions.append(.flushUpstream(upstream))
        actions.append(.setUpstreamReading(upstream, clientWritable))
        if !exchange.requestEnded { setClientReading(writable) }
    }

    mutating func upstreamUnavailable(_ why: UpstreamUnavailable) {
        guard case .active(let exchange) = state, exchange.upstream.isAcquiring else { return }
        switch why {
        case .connectTimedOut: fail(exchange, .gatewayTimeout, reason: "upstream connect timed out")
        case .connectFailed: fail(exchange, .badGateway, reason: "upstream connection failed")
        }
    }

    mutating func upstreamWritabilityChanged(_ writable: Bool) {
        guard case .active(var exchange) = state, let upstream = exchange.upstream.upstream else { return }
        exchange.upstream = .attached(upstream, writable: writable)
        state = .active(exchange)
        if !exchange.requestEnded { setClientReading(writable) }
    }

    mutating func responseHead(_ head: HTTPResponseHead) {
        guard case .active(var exchange) = state, !exchange.upstream.isAcquiring, exchange.responseStatus == nil else { return }
        let (headers, _) = HeaderFilter.forwardable(head.headers)
        let forwarded = HTTPResponseHead(version: exchange.version, status: head.status, headers: headers)
        if (100..<200).contains(Int(head.status.code)) {
            actions.append(.respond(.head(forwarded), flush: true))
            return
        }
        exchange.responseStatus = Int(head.status.code)
        state = .active(exchange)
        actions.append(.respond(.head(forwarded), flush: false))
    }

    mutating func responseBody(_ buffer: ByteBuffer) {
        guard case .active(let exchange) = state, exchange.responseStatus != nil else { return }
        actions.append(.respond(.body(.byteBuffer(buffer)), flush: true))
    }

    mutating func responseEnd(_ trailers: HTTPHeaders?) {
        guard case .active(let exchange) = state, let upstream = exchange.upstream.upstream,
              let status = exchange.responseStatus else { return }
        state = .finished
        actions.append(.respond(.end(trailers), flush: true))
        actions.append(.releaseUpstream(upstream, reusable: exchange.requestEnded))
        actions.append(.countResponse(status: status, started: exchange.started))
    }

    /// The upstream stream was reset or its connection went away.
    mutating func upstreamClosed() {
        guard case .active(let exchange) = state, let upstream = exchange.upstream.upstream else { return }
        if exchange.responseStatus == nil {
            fail(exchange, .badGateway, reason: "upstream closed the stream")
        } else {
            state = .finished
            actions.append(.releaseUpstream(upstream, reusable: false))
            actions.append(.countResponse(status: nil, started: exchange.started))
            actions.append(.close)
        }
    }

    private mutating func fail(_ exchange: Exchange, _ status: HTTPResponseStatus, reason: String) {
        state = .finished
        if let upstream = exchange.upstream.upstream {
            actions.append(.releaseUpstream(upstream, reusable: false))
        }
        actions.append(.countResponse(status: Int(status.code), started: exchange.started))
        actions.append(.respondWithError(status, reason: reason, version: exchange.version))
    }

    private mutating func setClientReading(_ enabled: Bool) {
        guard clientReading != enabled else { return }
        clientReading = enabled
        actions.append(.setClientReading(enabled))
    }
}
