import NIOCore
import NIOHTTP1
@testable import NeedleProxy
import Testing

/// Actions as short text, so a test states the expected sequence in one readable array.
func text(_ part: HTTPClientRequestPart) -> String {
    switch part {
    case .head(let head): return "head \(head.method) \(head.uri)"
    case .body(let body): return "body \(body.readableBytes)"
    case .end: return "end"
    }
}

func text(_ part: HTTPServerResponsePart) -> String {
    switch part {
    case .head(let head):
        let connection = head.headers.first(name: "connection").map { " connection=\($0)" } ?? ""
        return "head \(head.status.code)\(connection)"
    case .body(let body): return "body \(body.readableBytes)"
    case .end: return "end"
    }
}

/// Wire bytes as short text: a head by its status (and `Connection`), the last chunk as "end", else the size.
func text(_ bytes: ByteBuffer) -> String {
    let string = String(buffer: bytes)
    if string.hasPrefix("HTTP/1.") {
        let status = string.dropFirst(9).prefix(3)
        let connection = string.split(separator: "\r\n").first { $0.lowercased().hasPrefix("connection: ") }
        return "head \(status)" + (connection.map { " connection=\($0.dropFirst(12))" } ?? "")
    }
    if string.hasPrefix("0\r\n") { return "end" }
    return "body \(bytes.readableBytes)"
}

extension HTTP1ServerExchange where Upstream == String {
    mutating func drain() -> [String] {
        var out: [String] = []
        while let action = nextAction() {
            switch action {
            // The combined actions read as the steps they stand for.
            case .startExchange(let id): out += ["head-received", "count-request", "acquire \(id)"]
            case .completeExchange(let status, _, let u, let reusable, let last):
                out += ["count-response \(status)", "release \(u) \(reusable ? "reusable" : "closed")",
                        "respond end" + (last.map { $0.readableBytes > 5 ? " with trailers" : "" } ?? "") + " flush"]
            case .acquireUpstream(let id): out.append("acquire \(id)")
            case .sendRequestHead(let u, let head, _):
                out.append("send \(u) head " + String(buffer: head).split(separator: " ").prefix(2).joined(separator: " "))
            case .sendUpstream(let u, let bytes): out.append("send \(u) \(text(bytes))")
            case .flushUpstream(let u): out.append("flush \(u)")
            case .releaseUpstream(let u, let reusable): out.append("release \(u) \(reusable ? "reusable" : "closed")")
            case .setUpstreamReading(let u, let on): out.append("upstream-reading \(u) \(on)")
            case .respondHead(let bytes, _, let flush): out.append("respond \(text(bytes))\(flush ? " flush" : "")")
            case .respondBody(let bytes): out.append("respond \(text(bytes))")
            case .respondEnd(let bytes, let close):
                out.append("respond end" + (bytes.map { $0.readableBytes > 5 ? " with trailers" : "" } ?? "") + (close ? " then close" : " flush"))
            case .flushClient: out.append("flush-client")
            case .respondWithError(let status, _, _, let close): out.append("error \(status.code)\(close ? " close" : "")")
            case .setClientReading(let on): out.append("client-reading \(on)")
            case .awaitRequestHead: out.append("await-head")
            case .countRequest: out.append("count-request")
            case .countResponse(let status, _): out.append("count-response \(status.map(String.init) ?? "none")")
            case .startTunnel(let u): out.append("tunnel \(u)")
            case .close: out.append("close")
            }
        }
        return out
    }

    /// The test's request head, as bytes parsed the way the proxy parses them.
    mutating func requestHead(_ head: HTTPRequestHead, now: NIODeadline) {
        switch parseRequest(head) {
        case .success(let parsed): requestHead(parsed, now: now)
        case .failure(let error): Issue.record("the test's request head does not parse: \(error)")
        }
    }

    mutating func requestEnd(_ trailers: HTTPHeaders?) {
        requestEnd(trailers: trailers.map { ByteBuffer(string: fieldLines($0)) })
    }

    /// The test's response head as bytes, parsed as the answer to `method`.
    mutating func responseHead(_ head: HTTPResponseHead, answering method: HTTPMethod = .GET) {
        switch parseResponse(head, answering: method) {
        case .success(let parsed): responseHead(parsed)
        case .failure(let error): Issue.record("the test's response head does not parse: \(error)")
        }
    }

    mutating func responseEnd(_ trailers: HTTPHeaders?) {
        responseEnd(trailers: trailers.map { ByteBuffer(string: fieldLines($0)) })
    }
}

func fieldLines(_ headers: HTTPHeaders) -> String {
    headers.map { "\($0.name): \($0.value)\r\n" }.joined()
}

func wire(_ head: HTTPRequestHead) -> String {
    "\(head.method.rawValue) \(head.uri) HTTP/\(head.version.major).\(head.version.minor)\r\n\(fieldLines(head.headers))\r\n"
}

func parseRequest(_ head: HTTPRequestHead) -> Result<HTTP1RequestHead, HTTP1WireError> {
    ByteBuffer(string: wire(head)).withUnsafeReadableBytes { bytes in
        Result { () throws(HTTP1WireError) in try HTTP1RequestDecoder.request(bytes) }
    }
}

func parseResponse(_ head: HTTPResponseHead, answering method: HTTPMethod = .GET) -> Result<HTTP1ResponseHead, HTTP1WireError> {
    let raw = ByteBuffer(string: "HTTP/\(head.version.major).\(head.version.minor) \(head.status.code) \(head.status.reasonPhrase)\r\n"
        + fieldLines(head.headers) + "\r\n")
    return raw.withUnsafeReadableBytes { bytes in
        Result { () throws(HTTP1WireError) in try HTTP1ResponseDecoder.response(bytes, raw: raw, answering: method) }
    }
}

extension HTTP2StreamExchange where Upstream == String {
    mutating func drain() -> [String] {
        var out: [String] = []
        while let action = nextAction() {
            switch action {
            case .acquireUpstream: out.append("acquire")
            case .sendUpstream(let u, let part): out.append("send \(u) \(text(part))")
            case .flushUpstream(let u): out.append("flush \(u)")
            case .releaseUpstream(let u, let reusable): out.append("release \(u) \(reusable ? "reusable" : "closed")")
            case .setUpstreamReading(let u, let on): out.append("upstream-reading \(u) \(on)")
            case .respond(let part, let flush): out.append("respond \(text(part))\(flush ? " flush" : "")")
            case .respondWithError(let status, _, _): out.append("error \(status.code)")
            case .setClientReading(let on): out.append("client-reading \(on)")
            case .countRequest: out.append("count-request")
            case .countResponse(let status, _): out.append("count-response \(status.map(String.init) ?? "none")")
            case .close: out.append("close")
            }
        }
        return out
    }
}

func request(_ method: HTTPMethod = .GET, _ uri: String = "/", version: HTTPVersion = .http1_1,
             _ headers: [(String, String)] = []) -> HTTPRequestHead {
    HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
}

func response(_ code: UInt, _ headers: [(String, String)] = [], version: HTTPVersion = .http1_1) -> HTTPResponseHead {
    HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: Int(code)), headers: HTTPHeaders(headers))
}

func bytes(_ count: Int) -> ByteBuffer {
    ByteBuffer(repeating: 0x61, count: count)
}
