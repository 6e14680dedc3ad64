import NIOCore
import NIOHTTP1
@testable import NeedleProxy

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

extension HTTP1ServerExchange where Upstream == String {
    mutating func drain() -> [String] {
        var out: [String] = []
        while let action = nextAction() {
            switch action {
            case .acquireUpstream(let id): out.append("acquire \(id)")
            case .sendUpstream(let u, let part): out.append("send \(u) \(text(part))")
            case .flushUpstream(let u): out.append("flush \(u)")
            case .releaseUpstream(let u, let reusable): out.append("release \(u) \(reusable ? "reusable" : "closed")")
            case .setUpstreamReading(let u, let on): out.append("upstream-reading \(u) \(on)")
            case .respond(let part, let flush): out.append("respond \(text(part))\(flush ? " flush" : "")")
            case .respondThenClose(let part): out.append("respond \(text(part)) then close")
            case .respondWithError(let status, _, _, let close): out.append("error \(status.code)\(close ? " close" : "")")
            case .setClientReading(let on): out.append("client-reading \(on)")
            case .requestHeadReceived: out.append("head-received")
            case .awaitRequestHead: out.append("await-head")
            case .countRequest: out.append("count-request")
            case .countResponse(let status, _): out.append("count-response \(status.map(String.init) ?? "none")")
            case .startTunnel(let u): out.append("tunnel \(u)")
            case .close: out.append("close")
            }
        }
        return out
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
