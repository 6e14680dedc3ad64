import NIOCore
import NIOHTTP1

/// The requests of one client connection, from its raw bytes: heads (parsed strictly, rewritten for the
/// upstream), body payload slices and ends. After a request that asks to switch protocols (`Upgrade`, or
/// `CONNECT`) it stops parsing: what follows belongs to the tunnel if the switch is granted.
struct HTTP1RequestDecoder {
    enum Event {
        case head(HTTP1RequestHead)
        case body(ByteBuffer)
        case end(trailers: ByteBuffer?)
        /// The connection cannot go on: answer with the error's status and close.
        case invalid(HTTP1WireError)
    }

    private enum State {
        case head
        case body(HTTP1BodyDecoder, pausesAfter: Bool)
        /// After an upgrade or CONNECT request: later bytes are kept for a tunnel.
        case paused
        case failed
    }

    static var maximumHeadBytes: Int { HTTPLimits.maximumHeaderBytes }

    private var unread = HTTP1Syntax.emptyBuffer
    private var state = State.head
    private var scanner = HTTP1HeadScanner(limit: maximumHeadBytes)
    private let clientIdentity: ClientIdentityField

    init(clientIdentity: ClientIdentityField = .untouched) {
        self.clientIdentity = clientIdentity
    }

    mutating func received(_ bytes: ByteBuffer) {
        if unread.readableBytes == 0 {
            unread = bytes
        } else {
            var bytes = bytes
            unread.writeBuffer(&bytes)
        }
    }

    /// The next request event from the bytes received so far, or nil when more are needed.
    mutating func next() -> Event? {
        guard let event = nextEvent() else {
            // Let go of a read buffer that is used up: NIO reuses it for the next read only if nothing else holds it.
            if unread.readableBytes == 0 { unread = HTTP1Syntax.emptyBuffer }
            return nil
        }
        return event
    }

    private mutating func nextEvent() -> Event? {
        switch state {
        case .paused, .failed:
            return nil
        case .head:
            return nextHead()
        case .body(var body, let pausesAfter):
            let event = body.next(&unread)
            switch event {
            case .needMore:
                state = .body(body, pausesAfter: pausesAfter)
                return nil
            case .data(let payload):
                state = .body(body, pausesAfter: pausesAfter)
                return .body(payload)
            case .end(var trailers):
                // A trailer is a field too: a peer must not write the identity there either.
                if clientIdentity != .untouched, let section = trailers {
                    trailers = HTTP1HeadWriter.trailers(section, without: ClientIdentityField.name)
                }
                state = pausesAfter ? .paused : .head
                return .end(trailers: trailers)
            case .invalid(let reason):
                state = .failed
                return .invalid(.badRequest(reason))
            }
        }
    }

    /// Bytes received and not yet parsed: only grows while parsing waits for an upgrade decision.
    var unparsedBytes: Int { unread.readableBytes }

    /// The bytes not parsed (after an upgrade request): the first bytes of the tunnel.
    mutating func takeUnparsed() -> ByteBuffer {
        defer { unread = HTTP1Syntax.emptyBuffer }
        return unread
    }

    private mutating func nextHead() -> Event? {
        if scanner.atStart {
            // RFC 9112 §2.2: an empty line before a request line is ignored (some clients send CRLF after a body).
            while unread.readableBytes >= 2, unread.getInteger(at: unread.readerIndex, as: UInt16.self) == 0x0D0A {
                unread.moveReaderIndex(forwardBy: 2)
            }
            if unread.readableBytes == 1, unread.getInteger(at: unread.readerIndex, as: UInt8.self) == HTTP1Syntax.cr {
                return nil  // perhaps the first half of such a line
            }
        }
        guard unread.readableBytes > 0 else { return nil }
        switch scanner.scan(unread) {
        case .incomplete:
            return nil
        case .invalid(let error):
            state = .failed
            return .invalid(error)
        case .complete(let length):
            let head = unread.readSlice(length: length) ?? ByteBuffer()
            let parsed = head.withUnsafeReadableBytes { bytes in
                Result { () throws(HTTP1WireError) in try Self.request(bytes, clientIdentity: clientIdentity, raw: head) }
            }
            switch parsed {
            case .success(let request):
                let pausesAfter = request.upgrade != nil || request.method.isCONNECT
                state = .body(HTTP1BodyDecoder(request.framing), pausesAfter: pausesAfter)
                return .head(request)
            case .failure(let error):
                state = .failed
                return .invalid(error)
            }
        }
    }

    /// Parses a complete request head and checks its framing (RFC 9112 §6.1, §6.3). `raw`, the same bytes in
    /// a buffer, is sent on as it is when the upstream head would be identical (the common case: HTTP/1.1,
    /// no hop-by-hop or identity field to drop or add), which saves a copy per request.
    static func request(_ head: UnsafeRawBufferPointer, clientIdentity: ClientIdentityField = .untouched,
                        raw: ByteBuffer? = nil) throws(HTTP1WireError) -> HTTP1RequestHead {
        let line = try HTTP1HeadParser.requestLine(head)
        // Inbound, a granted tunnel would carry later bytes to the app unparsed: an app that answers CONNECT
        // with 200 but goes on reading HTTP would take forged identity fields from them.
        if clientIdentity != .untouched, line.method.isCONNECT {
            throw HTTP1WireError(status: .methodNotAllowed, reason: "CONNECT is not accepted by a meshed pod's inbound proxy")
        }
        let facts = try HTTP1HeadParser.fields(head, from: line.fieldsOffset)
        let framing: HTTP1BodyFraming
        if facts.transferCodings > 0 {
            guard line.version == .http1_1 else {
                throw .badRequest("Transfer-Encoding in an HTTP/1.0 request: send Content-Length")
            }
            guard facts.contentLength == nil else {
                throw .badRequest("both Content-Length and Transfer-Encoding: send one of them")
            }
            guard facts.transferCoding == .chunkedLast else {
                throw .badRequest("unsupported Transfer-Encoding: a request body must end with exactly one \"chunked\" coding")
            }
            framing = .chunked
        } else if let length = facts.contentLength {
            framing = .length(length)
        } else {
            framing = .none
        }
        let keepAlive = line.version == .http1_1 ? !facts.connectionClose : (facts.connectionKeepAlive && !facts.connectionClose)
        var upgrade = facts.connectionUpgrade ? facts.upgrade.flatMap { $0.isEmpty ? nil : $0 } : nil
        // Inbound, a switch to HTTP (h2c) would carry later requests to the app unparsed, identity fields
        // included: the upgrade is dropped and the request answered as HTTP/1.1 (a server may ignore
        // Upgrade, RFC 9110 §7.8). WebSocket and other protocols still switch.
        if clientIdentity != .untouched, let asked = upgrade, HTTP1Syntax.namesHTTP(upgrade: asked) { upgrade = nil }
        let upstreamHead: ByteBuffer
        if let raw, line.version == .http1_1, facts.hopByHopFields == 0, upgrade == nil,
           clientIdentity == .untouched || clientIdentity == .removed && facts.clientIdentityFields == 0 {
            upstreamHead = raw
        } else {
            var rewritten = ByteBufferAllocator().buffer(capacity: head.count + 48)
            HTTP1HeadWriter.upstreamRequest(head, line: line, nominated: facts.nominated, upgrade: upgrade,
                                            clientIdentity: clientIdentity, into: &rewritten)
            upstreamHead = rewritten
        }
        return HTTP1RequestHead(method: line.method, version: line.version, keepAlive: keepAlive, upgrade: upgrade,
                                framing: framing, upstreamHead: upstreamHead)
    }
}
