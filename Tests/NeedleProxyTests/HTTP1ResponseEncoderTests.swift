import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import NeedleProxy

@Suite("HTTP/1.1 response encoder")
struct HTTP1ResponseEncoderTests {
    static func head(_ status: HTTPResponseStatus, _ headers: [(String, String)] = [], version: HTTPVersion = .http1_1) -> HTTPServerResponsePart {
        .head(HTTPResponseHead(version: version, status: status, headers: HTTPHeaders(headers)))
    }

    static func body(_ text: String) -> HTTPServerResponsePart {
        .body(.byteBuffer(ByteBuffer(string: text)))
    }

    /// Everything `handler` writes for `parts`, answering requests with `method`.
    static func output(_ handler: any ChannelHandler, method: HTTPMethod, _ parts: [HTTPServerResponsePart]) throws -> String {
        (handler as? HTTP1ResponseEncoder)?.requestHeadReceived(method)
        let channel = EmbeddedChannel(handler: handler)
        for part in parts { try channel.writeOutbound(part) }
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { continue }
            text += String(buffer: buffer)
        }
        _ = try channel.finish()
        return text
    }

    static let sameAsNIO: [(String, [HTTPServerResponsePart])] = [
        ("content-length", [head(.ok, [("Content-Length", "5"), ("X-A", "1")]), body("hello"), .end(nil)]),
        ("chunked when there is no length", [head(.ok, [("Content-Type", "text/plain")]), body("abc"), body("defghijklmnopq"), .end(nil)]),
        ("chunked with trailers", [head(.ok), body("x"), .end(HTTPHeaders([("X-Checksum", "1")]))]),
        ("Content-Length wins over Transfer-Encoding", [head(.ok, [("Content-Length", "1"), ("Transfer-Encoding", "chunked")]), body("x"), .end(nil)]),
        ("204 drops framing headers", [head(.noContent, [("Content-Length", "0")]), .end(nil)]),
        ("100 then 200", [head(.continue), head(.created, [("Content-Length", "2")]), body("ok"), .end(nil)]),
        ("103 then 200", [head(HTTPResponseStatus(statusCode: 103), [("Link", "</a.css>; rel=preload")]), head(.ok, [("Content-Length", "0")]), .end(nil)]),
        ("HTTP/1.0 without a length", [head(.ok, [], version: .http1_0), body("until close"), .end(nil)]),
        ("unknown status", [head(HTTPResponseStatus(statusCode: 299, reasonPhrase: "Fine"), [("Content-Length", "0")]), .end(nil)]),
        ("101", [head(.switchingProtocols, [("Connection", "upgrade"), ("Upgrade", "websocket")]), .end(nil)]),
        ("an empty body part", [head(.ok), body(""), body("a"), .end(nil)]),
    ]

    @Test("writes the same bytes as NIO's HTTPResponseEncoder for GET requests", arguments: sameAsNIO.map(\.0))
    func matchesNIO(_ name: String) throws {
        let parts = try #require(Self.sameAsNIO.first { $0.0 == name }).1
        let ours = try Self.output(HTTP1ResponseEncoder(), method: .GET, parts)
        let nio = try Self.output(HTTPResponseEncoder(), method: .GET, parts)
        #expect(ours == nio)
    }

    @Test("the answer to HEAD has no body and no chunk terminator, and the next answer is framed normally")
    func head() throws {
        let encoder = HTTP1ResponseEncoder()
        let channel = EmbeddedChannel(handler: encoder)
        encoder.requestHeadReceived(.HEAD)
        encoder.requestHeadReceived(.GET)
        try channel.writeOutbound(Self.head(.ok, [("Transfer-Encoding", "chunked")]))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        try channel.writeOutbound(Self.head(.ok))
        try channel.writeOutbound(Self.body("abc"))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        var text = ""
        while case .byteBuffer(let buffer)? = try channel.readOutbound(as: IOData.self) { text += String(buffer: buffer) }
        #expect(text == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        _ = try channel.finish()
    }

    @Test("304 keeps the headers that describe the resource")
    func notModified() throws {
        let text = try Self.output(HTTP1ResponseEncoder(), method: .GET,
                                   [Self.head(.notModified, [("Content-Length", "120"), ("ETag", "\"a\"")]), .end(nil)])
        #expect(text == "HTTP/1.1 304 Not Modified\r\nContent-Length: 120\r\nETag: \"a\"\r\n\r\n")
    }
}
