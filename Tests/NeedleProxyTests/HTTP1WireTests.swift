import NIOCore
import NIOHTTP1
@testable import NeedleProxy
import Testing

/// Feeds `bytes` to a request decoder in pieces of `step` bytes and collects what it says.
func decodeRequests(_ bytes: String, step: Int = .max) -> [String] {
    var decoder = HTTP1RequestDecoder()
    var events: [String] = []
    let all = Array(bytes.utf8)
    var offset = 0
    while offset < all.count {
        let end = min(all.count, offset + min(step, all.count))
        decoder.received(ByteBuffer(bytes: all[offset..<end]))
        offset = end
        while let event = decoder.next() {
            switch event {
            case .head(let head): events.append("head \(head.method.rawValue) \(head.framing)")
            case .body(let body):
                // Adjacent payload slices are one body, however the bytes were split.
                if let last = events.last, last.hasPrefix("body ") {
                    events[events.count - 1] = last + String(buffer: body)
                } else {
                    events.append("body " + String(buffer: body))
                }
            case .end(let trailers): events.append("end" + (trailers.map { " " + String(buffer: $0) } ?? ""))
            case .invalid(let error): events.append("invalid \(error.status.code)")
            }
        }
    }
    return events
}

func parsedRequest(_ head: String) -> Result<HTTP1RequestHead, HTTP1WireError> {
    ByteBuffer(string: head).withUnsafeReadableBytes { bytes in
        Result { () throws(HTTP1WireError) in try HTTP1RequestDecoder.request(bytes) }
    }
}

func parsedResponse(_ head: String, answering method: HTTPMethod = .GET) -> Result<HTTP1ResponseHead, HTTP1WireError> {
    let raw = ByteBuffer(string: head)
    return raw.withUnsafeReadableBytes { bytes in
        Result { () throws(HTTP1WireError) in try HTTP1ResponseDecoder.response(bytes, raw: raw, answering: method) }
    }
}

@Suite("HTTP/1.1 wire codec")
struct HTTP1WireTests {
    // MARK: Request heads

    /// The head the upstream gets when the decoder reads `head` as one buffer, and whether it is that buffer's
    /// own bytes (forwarded without a copy).
    private func forwarded(_ head: String, clientIdentity: ClientIdentityField) -> (text: String, shared: Bool)? {
        var decoder = HTTP1RequestDecoder(clientIdentity: clientIdentity)
        let received = ByteBuffer(string: head)
        decoder.received(received)
        guard case .head(let parsed)? = decoder.next() else { return nil }
        let receivedStart = received.withUnsafeReadableBytes { $0.baseAddress }
        let forwardedStart = parsed.upstreamHead.withUnsafeReadableBytes { $0.baseAddress }
        return (String(buffer: parsed.upstreamHead), receivedStart == forwardedStart)
    }

    @Test("a head that needs no change goes upstream as the very bytes received; any change still rewrites it")
    func unchangedHeadIsNotCopied() throws {
        let plain = "GET /a HTTP/1.1\r\nHost: app\r\nUser-Agent: h2load\r\nAccept: */*\r\n\r\n"
        for identity in [ClientIdentityField.untouched, .removed] {
            let sent = try #require(forwarded(plain, clientIdentity: identity))
            #expect(sent.text == plain)
            #expect(sent.shared, "\(identity): an unchanged head is forwarded without a copy")
        }
        // Inbound from an authenticated peer the identity field is added: never the received bytes.
        let meshed = try #require(forwarded(plain, clientIdentity: .set("web.demo.serviceaccount.identity.needle.cluster.local")))
        #expect(!meshed.shared)
        #expect(meshed.text == "GET /a HTTP/1.1\r\nHost: app\r\nUser-Agent: h2load\r\nAccept: */*\r\n"
            + "needle-client-id: web.demo.serviceaccount.identity.needle.cluster.local\r\n\r\n")
        // A forged identity field from an unauthenticated client is dropped, whatever its case.
        let forged = try #require(forwarded("GET / HTTP/1.1\r\nHost: app\r\nNeedle-Client-ID: admin\r\n\r\n", clientIdentity: .removed))
        #expect(forged.text == "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        #expect(!forged.shared)
        // Outbound the same field is the app's own business and goes on as sent.
        let outbound = try #require(forwarded("GET / HTTP/1.1\r\nHost: app\r\nNeedle-Client-ID: x\r\n\r\n", clientIdentity: .untouched))
        #expect(outbound.shared)
        // A hop-by-hop field, or HTTP/1.0, means a rewrite.
        let hop = try #require(forwarded("GET / HTTP/1.1\r\nHost: app\r\nConnection: keep-alive\r\n\r\n", clientIdentity: .untouched))
        #expect(hop.text == "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        #expect(!hop.shared)
        let old = try #require(forwarded("GET / HTTP/1.0\r\nHost: app\r\n\r\n", clientIdentity: .untouched))
        #expect(old.text == "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        #expect(!old.shared)
    }

    @Test("a request head: framing, keep-alive, and the head the upstream gets (HTTP/1.1, hop-by-hop fields gone)")
    func requestHead() throws {
        let head = try parsedRequest("""
            POST /a?b=1 HTTP/1.0\r\nHost: app\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n\
            X-Secret: 1\r\nContent-Length: 3\r\nTE: trailers\r\nProxy-Authorization: basic x\r\nAccept: */*\r\n\r\n
            """).get()
        #expect(head.method == .POST)
        #expect(head.version == .http1_0)
        #expect(head.keepAlive)
        #expect(head.framing == .length(3))
        #expect(head.upgrade == nil)
        #expect(String(buffer: head.upstreamHead) == "POST /a?b=1 HTTP/1.1\r\nHost: app\r\nContent-Length: 3\r\nAccept: */*\r\n\r\n")
    }

    @Test("keep-alive by version and Connection", arguments: [
        ("HTTP/1.1", "", true), ("HTTP/1.1", "Connection: close\r\n", false), ("HTTP/1.0", "", false),
        ("HTTP/1.0", "Connection: Keep-Alive\r\n", true), ("HTTP/1.1", "Connection: keep-alive, close\r\n", false),
    ])
    func keepAlive(version: String, field: String, expected: Bool) throws {
        #expect(try parsedRequest("GET / \(version)\r\nHost: a\r\n\(field)\r\n").get().keepAlive == expected)
    }

    @Test("Connection cannot make the proxy drop the fields that frame the body or name the host")
    func nominatedFramingKept() throws {
        let head = try parsedRequest("POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length, host, x-a\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n").get()
        #expect(String(buffer: head.upstreamHead) == "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
        #expect(head.framing == .length(2))
    }

    @Test("an upgrade request keeps Upgrade and Connection: upgrade; Upgrade alone is not an upgrade")
    func upgradeRequest() throws {
        let upgrade = try parsedRequest("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").get()
        #expect(upgrade.upgrade == "websocket")
        #expect(String(buffer: upgrade.upstreamHead) == "GET /ws HTTP/1.1\r\nHost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
        let plain = try parsedRequest("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").get()
        #expect(plain.upgrade == nil)
        #expect(String(buffer: plain.upstreamHead) == "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    }

    @Test("unambiguous framing is accepted", arguments: [
        ("Content-Length: 5\r\n", HTTP1BodyFraming.length(5)),
        ("Content-Length: 5\r\nContent-Length: 5\r\n", .length(5)),
        ("Content-Length: 5, 5\r\n", .length(5)),
        ("Transfer-Encoding: gzip, chunked\r\n", .chunked),
        ("Transfer-Encoding: Chunked\r\n", .chunked),
        ("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", .chunked),
        ("", .none),
    ])
    func acceptedFraming(fields: String, framing: HTTP1BodyFraming) throws {
        #expect(try parsedRequest("POST / HTTP/1.1\r\nHost: a\r\n\(fields)\r\n").get().framing == framing)
    }

    @Test("framing that could smuggle a request is refused with 400", arguments: [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 0x5\r\n",
        "Content-Length: \r\n",
        "Content-Length: 99999999999999999999999\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
    ])
    func smuggling(fields: String) {
        #expect(decodeRequests("POST / HTTP/1.1\r\nHost: a\r\n\(fields)\r\nhello") == ["invalid 400"])
    }

    @Test("Transfer-Encoding in an HTTP/1.0 request is refused")
    func transferEncodingInHTTP10() {
        #expect(decodeRequests("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == ["invalid 400"])
    }

    @Test("malformed heads are refused", arguments: [
        ("GET / HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX-A: a\nb: c\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX-A: a\u{0}b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nX-A : a\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n: a\r\n\r\n", 400),
        ("GET /a b HTTP/1.1\r\n\r\n", 400),
        ("GET  / HTTP/1.1\r\n\r\n", 400),
        ("G(T / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1 \r\n\r\n", 400),
        ("GET / HTTP/2.0\r\n\r\n", 505),
        ("GET / http/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\n\n", 400),
    ])
    func malformed(head: String, status: Int) {
        #expect(decodeRequests(head) == ["invalid \(status)"])
    }

    @Test("limits: more than 512 fields, or a head over 64 KiB, is 431 (even before the head ends)")
    func limits() {
        let fields = (0..<513).map { "X-\($0): 1\r\n" }.joined()
        #expect(decodeRequests("GET / HTTP/1.1\r\n\(fields)\r\n") == ["invalid 431"])
        let big = "GET / HTTP/1.1\r\nX-Pad: \(String(repeating: "a", count: 70_000))"
        #expect(decodeRequests(big) == ["invalid 431"])
    }

    // MARK: Request streams

    @Test("pipelined requests with bodies, split at every byte or not at all, decode the same")
    func pipelinedStream() {
        let stream = "\r\nGET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
            + "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
            + "POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-t: 1\r\n\r\n"
            + "GET /4 HTTP/1.1\r\nHost: a\r\n\r\n"
        let expected = ["head GET none", "end", "head POST length(5)", "body hello", "end", "head POST chunked",
                        "body abc0123456789abcdef", "end x-t: 1\r\n", "head GET none", "end"]
        #expect(decodeRequests(stream) == expected)
        #expect(decodeRequests(stream, step: 1) == expected)
        #expect(decodeRequests(stream, step: 7) == expected)
    }

    @Test("after an upgrade request nothing more is parsed: the bytes wait for the tunnel")
    func upgradePauses() {
        var decoder = HTTP1RequestDecoder()
        decoder.received(ByteBuffer(string: "GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\nGET /not-a-request"))
        var events = 0
        while decoder.next() != nil { events += 1 }
        #expect(events == 2)
        #expect(String(buffer: decoder.takeUnparsed()) == "GET /not-a-request")
    }

    @Test("bad chunked framing is refused after the head", arguments: [
        "zz\r\n", "10000000000000000\r\n\r\n", "3\r\nabcX", "3\nabc\r\n", "3;\u{1}\r\nabc\r\n", "\r\n",
        "0\r\nbad trailer\r\n\r\n",
    ])
    func badChunks(body: String) {
        let events = decodeRequests("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\(body)")
        #expect(events.first == "head POST chunked")
        #expect(events.last == "invalid 400")
    }

    // MARK: Responses

    @Test("response framing follows RFC 9112 §6.3", arguments: [
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", HTTPMethod.GET, HTTP1BodyFraming.length(5), true),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", .HEAD, .none, true),
        ("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", .GET, .none, true),
        ("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", .GET, .none, true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", .GET, .chunked, true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", .GET, .untilClose, false),
        ("HTTP/1.1 200 OK\r\n\r\n", .GET, .untilClose, false),
        ("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", .GET, .length(1), false),
        ("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n", .GET, .length(1), true),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n", .GET, .length(1), false),
        ("HTTP/1.1 200 Connection established\r\n\r\n", .CONNECT, .none, true),
        ("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", .GET, .length(0), true),
    ])
    func responseFraming(head: String, method: HTTPMethod, framing: HTTP1BodyFraming, keepAlive: Bool) throws {
        let response = try parsedResponse(head, answering: method).get()
        #expect(response.framing == framing)
        #expect(response.keepAlive == keepAlive)
    }

    @Test("a response stream: 1xx heads, then the final response's chunked body with trailers, split anywhere")
    func responseStream() {
        let stream = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nx-sum: 9\r\n\r\n"
        for step in [1, 5, stream.utf8.count] {
            var decoder = HTTP1ResponseDecoder()
            decoder.requestSent(.POST)
            var events: [String] = []
            let bytes = Array(stream.utf8)
            for start in stride(from: 0, to: bytes.count, by: step) {
                decoder.received(ByteBuffer(bytes: bytes[start..<min(bytes.count, start + step)]))
                while let event = decoder.next() {
                    switch event {
                    case .head(let head): events.append("head \(head.status)")
                    case .body(let body): events.append("body \(String(buffer: body))")
                    case .end(let trailers): events.append("end \(trailers.map { String(buffer: $0) } ?? "")")
                    case .invalid(let reason): events.append("invalid \(reason)")
                    }
                }
            }
            let joined = events.reduce(into: [String]()) { result, event in
                if event.hasPrefix("body "), let last = result.last, last.hasPrefix("body ") {
                    result[result.count - 1] = last + event.dropFirst(5)
                } else {
                    result.append(event)
                }
            }
            #expect(joined == ["head 100", "head 103", "head 200", "body abcd", "end x-sum: 9\r\n"], "step \(step)")
        }
    }

    @Test("a body delimited by the close ends at EOF; a length-delimited one cut short is an error")
    func responseEOF() {
        var untilClose = HTTP1ResponseDecoder()
        untilClose.requestSent(.GET)
        untilClose.received(ByteBuffer(string: "HTTP/1.0 200 OK\r\n\r\nabc"))
        _ = untilClose.next()
        _ = untilClose.next()
        guard case .end? = untilClose.inputClosed() else {
            Issue.record("no end at EOF")
            return
        }
        var short = HTTP1ResponseDecoder()
        short.requestSent(.GET)
        short.received(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
        _ = short.next()
        _ = short.next()
        guard case .invalid? = short.inputClosed() else {
            Issue.record("a short body was not reported")
            return
        }
    }

    @Test("malformed responses are reported, not guessed at", arguments: [
        "HTTP/1.1 20 OK\r\n\r\n", "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nX: a\u{0}\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "ICY 200 OK\r\n\r\n",
    ])
    func malformedResponse(head: String) {
        var decoder = HTTP1ResponseDecoder()
        decoder.requestSent(.GET)
        decoder.received(ByteBuffer(string: head))
        guard case .invalid? = decoder.next() else {
            Issue.record("accepted: \(head)")
            return
        }
    }

    @Test("the client's response head: its version, hop-by-hop fields dropped, Connection and framing as decided")
    func clientResponseHead() throws {
        let response = try parsedResponse("HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nServer: app\r\n\r\n").get()
        var buffer = ByteBuffer()
        HTTP1HeadWriter.clientResponse(response, version: .http1_0, connection: .keepAlive, framing: .init(), into: &buffer)
        #expect(String(buffer: buffer) == "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nServer: app\r\nconnection: keep-alive\r\n\r\n")
        buffer.clear()
        HTTP1HeadWriter.clientResponse(response, version: .http1_1, connection: .close,
                                       framing: .init(dropContentLength: true, addChunked: true), into: &buffer)
        #expect(String(buffer: buffer) == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: app\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n")
    }

    @Test("with nothing nominated, every hop-by-hop field is dropped from the client's response and fields of the same lengths are kept")
    func clientResponseDropsEveryHopByHopName() throws {
        // Same lengths as the hop-by-hop names (2, 7, 10, 16, 18, 19), so the length test lets them through to the name test.
        let kept = ["Xy: 1", "X-Seven: 1", "User-Agent: 1", "X-Sixteen-Letter: 1", "X-Eighteen-Letters: 1", "X-Nineteen-Letters!: 1"]
        let hopByHop = HTTP1Syntax.HopByHop.allCases.map { "\($0.name.description): " + ($0 == .connection ? "keep-alive" : "1") }
        let head = "HTTP/1.1 200 OK\r\n" + zip(hopByHop, kept + kept).map { "\($0)\r\n\($1)\r\n" }.joined() + "Content-Length: 0\r\n\r\n"
        let response = try parsedResponse(head).get()
        #expect(response.nominated.isEmpty)
        var buffer = ByteBuffer()
        HTTP1HeadWriter.clientResponse(response, version: .http1_1, connection: .none, framing: .init(), into: &buffer)
        let expected = "HTTP/1.1 200 OK\r\n" + zip(hopByHop, kept + kept).map { "\($1)\r\n" }.joined() + "Content-Length: 0\r\n\r\n"
        #expect(String(buffer: buffer) == expected)
    }

    @Test("body framing for the next hop: chunks in lower-case hex, the last chunk with its trailers", arguments: [1, 15, 16, 255, 4096, 65537])
    func chunkEncoding(size: Int) {
        let chunk = HTTP1BodyEncoder.body(ByteBuffer(repeating: 0x61, count: size), framing: .chunked, allocator: ByteBufferAllocator())
        #expect(chunk.map { String(buffer: $0) } == String(size, radix: 16) + "\r\n" + String(repeating: "a", count: size) + "\r\n")
        #expect(HTTP1BodyEncoder.body(ByteBuffer(), framing: .chunked, allocator: ByteBufferAllocator()) == nil)
        let last = HTTP1BodyEncoder.end(trailers: ByteBuffer(string: "x-t: 1\r\n"), framing: .chunked, allocator: ByteBufferAllocator())
        #expect(last.map { String(buffer: $0) } == "0\r\nx-t: 1\r\n\r\n")
        #expect(HTTP1BodyEncoder.end(trailers: nil, framing: .raw, allocator: ByteBufferAllocator()) == nil)
    }
}
