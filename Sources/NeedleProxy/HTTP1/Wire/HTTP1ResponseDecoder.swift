import NIOCore
import NIOHTTP1

/// The responses on one upstream connection, from its raw bytes. It must be told each request's method as
/// the request goes out: the answer to a HEAD has no body whatever its fields say, and a 2xx to CONNECT (like
/// a 101 to an upgrade) turns the connection into a tunnel, after which nothing more is parsed.
struct HTTP1ResponseDecoder {
    enum Event {
        case head(HTTP1ResponseHead)
        case body(ByteBuffer)
        case end(trailers: ByteBuffer?)
        /// The upstream broke the protocol: the connection cannot be used any more.
        case invalid(String)
    }

    private enum State {
        /// Waiting for the (next) head of the answer to the request sent, if one was.
        case head
        case body(HTTP1BodyDecoder)
        /// A `101` (or a 2xx to CONNECT) arrived: its end comes next, then the tunnel.
        case switching
        /// Switched protocols: later bytes belong to the tunnel.
        case tunnel
        case failed
    }

    static var maximumHeadBytes: Int { HTTPLimits.maximumHeaderBytes }

    private var unread = HTTP1Syntax.emptyBuffer
    private var state = State.head
    private var scanner = HTTP1HeadScanner(limit: maximumHeadBytes)
    /// The method of the request being answered; nil between exchanges.
    private var answering: HTTPMethod?

    init() {}

    /// A request went out on this connection: the next final response answers it.
    mutating func requestSent(_ method: HTTPMethod) {
        answering = method
    }

    mutating func received(_ bytes: ByteBuffer) {
        if unread.readableBytes == 0 {
            unread = bytes
        } else {
            var bytes = bytes
            unread.writeBuffer(&bytes)
        }
    }

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
        case .tunnel, .failed:
            return nil
        case .switching:
            state = .tunnel
            answering = nil
            return .end(trailers: nil)
        case .head:
            guard unread.readableBytes > 0 else { return nil }
            guard let method = answering else {
                state = .failed
                return .invalid("the upstream sent bytes while no request was outstanding")
            }
            return nextHead(answering: method)
        case .body(var body):
            switch body.next(&unread) {
            case .needMore:
                state = .body(body)
                return nil
            case .data(let payload):
                state = .body(body)
                return .body(payload)
            case .end(let trailers):
                state = .head
                answering = nil
                return .end(trailers: trailers)
            case .invalid(let reason):
                state = .failed
                return .invalid(reason)
            }
        }
    }

    /// The upstream closed its side: ends a body delimited by the close, or reports what was cut short.
    mutating func inputClosed() -> Event? {
        switch state {
        case .body(var body):
            state = .failed
            switch body.inputClosed() {
            case .end(let trailers): return .end(trailers: trailers)
            case .invalid(let reason): return .invalid(reason)
            default: return nil
            }
        case .head where answering != nil:
            state = .failed
            return .invalid("the upstream closed the connection before a complete response")
        default:
            state = .failed
            return nil
        }
    }

    /// The bytes after a `101` (or a 2xx to CONNECT): the first bytes of the tunnel.
    mutating func takeUnparsed() -> ByteBuffer {
        defer { unread = HTTP1Syntax.emptyBuffer }
        return unread
    }

    private mutating func nextHead(answering method: HTTPMethod) -> Event? {
        switch scanner.scan(unread) {
        case .incomplete:
            return nil
        case .invalid(let error):
            state = .failed
            return .invalid("malformed response head: \(error.reason)")
        case .complete(let length):
            let raw = unread.readSlice(length: length) ?? ByteBuffer()
            let parsed = raw.withUnsafeReadableBytes { bytes in
                Result { () throws(HTTP1WireError) in try Self.response(bytes, raw: raw, answering: method) }
            }
            switch parsed {
            case .success(let head):
                if head.isInformational {
                    state = .head
                } else if head.status == 101 || (method.isCONNECT && (200..<300).contains(head.status)) {
                    state = .switching
                } else {
                    state = .body(HTTP1BodyDecoder(head.framing))
                }
                return .head(head)
            case .failure(let error):
                state = .failed
                return .invalid("malformed response head: \(error.reason)")
            }
        }
    }

    /// Parses a complete response head; its framing follows RFC 9112 §6.3 in order.
    static func response(_ bytes: UnsafeRawBufferPointer, raw: ByteBuffer,
                         answering method: HTTPMethod) throws(HTTP1WireError) -> HTTP1ResponseHead {
        let line = try HTTP1HeadParser.statusLine(bytes)
        let facts = try HTTP1HeadParser.fields(bytes, from: line.fieldsOffset)
        let status = line.status
        let framing: HTTP1BodyFraming
        if method.isHEAD || (100..<200).contains(status) || status == 204 || status == 304
            || (method.isCONNECT && (200..<300).contains(status)) {
            framing = .none
        } else if facts.transferCodings > 0 {
            framing = facts.transferCoding == .chunkedLast ? .chunked : .untilClose
        } else if let length = facts.contentLength {
            framing = .length(length)
        } else {
            framing = .untilClose
        }
        var keepAlive = line.version == .http1_1 ? !facts.connectionClose : (facts.connectionKeepAlive && !facts.connectionClose)
        if framing == .untilClose { keepAlive = false }
        return HTTP1ResponseHead(status: status, version: line.version, keepAlive: keepAlive, framing: framing,
                                 hasContentLength: facts.contentLength != nil, hasTransferEncoding: facts.transferCodings > 0,
                                 raw: raw, statusOffset: line.statusOffset, fieldsOffset: line.fieldsOffset,
                                 nominated: facts.nominated)
    }
}
