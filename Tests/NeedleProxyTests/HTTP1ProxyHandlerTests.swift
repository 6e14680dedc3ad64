import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import NeedleProxy
import NeedleContract
import Testing

/// Hands out HTTP/2 upstream streams made of `EmbeddedChannel`s, when and how the test says.
final class FakeStreamUpstreams: UpstreamProvider {
    let loop: EmbeddedEventLoop
    var pending: [EventLoopPromise<UpstreamConnection>] = []
    var released: [(UpstreamConnection, Bool)] = []

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    func acquireImmediately() -> UpstreamConnection? { nil }

    func acquire() -> EventLoopFuture<UpstreamConnection> {
        let promise = loop.makePromise(of: UpstreamConnection.self)
        pending.append(promise)
        return promise.futureResult
    }

    func release(_ connection: UpstreamConnection, reusable: Bool) {
        connection.handler.delegate = nil
        released.append((connection, reusable))
    }

    /// Completes the oldest acquisition with a new upstream channel.
    func connect() throws -> (UpstreamConnection, EmbeddedChannel) {
        let handler = UpstreamHandler()
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        let connection = UpstreamConnection(channel: channel, handler: handler)
        pending.removeFirst().assumeIsolated().succeed(connection)
        return (connection, channel)
    }
}

/// Hands out HTTP/1.1 upstream connections made of `EmbeddedChannel`s, when and how the test says.
final class FakeHTTP1Upstreams: HTTP1UpstreamProvider {
    let loop: EmbeddedEventLoop
    var pending: [EventLoopPromise<HTTP1UpstreamConnection>] = []
    var released: [(HTTP1UpstreamConnection, Bool)] = []

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    func acquireImmediately() -> HTTP1UpstreamConnection? { nil }

    func acquire() -> EventLoopFuture<HTTP1UpstreamConnection> {
        let promise = loop.makePromise(of: HTTP1UpstreamConnection.self)
        pending.append(promise)
        return promise.futureResult
    }

    func release(_ connection: HTTP1UpstreamConnection, reusable: Bool) {
        connection.handler.delegate = nil
        released.append((connection, reusable))
    }

    var detached: [HTTP1UpstreamConnection] = []

    func detach(_ connection: HTTP1UpstreamConnection) {
        detached.append(connection)
    }

    func connect() throws -> (HTTP1UpstreamConnection, EmbeddedChannel) {
        let handler = HTTP1UpstreamHandler()
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        let connection = HTTP1UpstreamConnection(channel: channel, handler: handler, endpoint: UpstreamEndpoint(try ListenAddress(parsing: "127.0.0.1:8080")))
        pending.removeFirst().assumeIsolated().succeed(connection)
        return (connection, channel)
    }
}

/// Everything written to a channel so far, as one string.
func written(_ channel: EmbeddedChannel) throws -> String {
    var text = ""
    while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
    return text
}

@Suite("HTTP/1.1 proxy handler (EmbeddedChannel)")
struct HTTP1ProxyHandlerTests {
    let loop = EmbeddedEventLoop()

    func makeClient(_ upstreams: FakeHTTP1Upstreams,
                    tunnel: @escaping HTTP1ProxyHandler.TunnelStarter = { _, _, _ in }) throws -> EmbeddedChannel {
        let metrics = ProxyMetrics().target(.inbound, address: ListenAddress(ip: .v4(0x7F00_0001), port: 8080), tls: .disabled)
        let handler = HTTP1ProxyHandler(upstreams: upstreams, metrics: RequestMetrics(target: metrics), headerTimer: nil,
                                        startTunnel: tunnel)
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test("a request goes upstream byte for byte once connected; 1xx and the response come back as sent; the connection is reused")
    func roundTrip() throws {
        let upstreams = FakeHTTP1Upstreams(loop: loop)
        let client = try makeClient(upstreams)
        try client.writeInbound(ByteBuffer(string: "GET /hello HTTP/1.1\r\nHost: app\r\nConnection: keep-alive\r\n\r\n"))
        #expect(upstreams.pending.count == 1)
        let (_, upstream) = try upstreams.connect()
        #expect(try written(upstream) == "GET /hello HTTP/1.1\r\nHost: app\r\n\r\n")
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        #expect(try written(client) == "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(upstreams.released.count == 1 && upstreams.released.first?.1 == true)
        #expect(client.isActive)
    }

    @Test("a short response leaves in one write; a large body is not copied into its head's buffer")
    func responseWrites() throws {
        let upstreams = FakeHTTP1Upstreams(loop: loop)
        let client = try makeClient(upstreams)
        try client.writeInbound(ByteBuffer(string: "GET /small HTTP/1.1\r\nHost: app\r\n\r\n"))
        let (_, upstream) = try upstreams.connect()
        _ = try written(upstream)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        var writes: [String] = []
        while let buffer = try client.readOutbound(as: ByteBuffer.self) { writes.append(String(buffer: buffer)) }
        #expect(writes == ["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])

        let large = String(repeating: "z", count: WriteCoalescer.maximumHeldBytes + 1)
        try client.writeInbound(ByteBuffer(string: "GET /large HTTP/1.1\r\nHost: app\r\n\r\n"))
        let (_, another) = try upstreams.connect()
        _ = try written(another)
        try another.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: \(large.utf8.count)\r\n\r\n\(large)"))
        writes = []
        while let buffer = try client.readOutbound(as: ByteBuffer.self) { writes.append(String(buffer: buffer)) }
        #expect(writes.count == 2 && writes.first == "HTTP/1.1 200 OK\r\nContent-Length: \(large.utf8.count)\r\n\r\n" && writes.last == large)
    }

    @Test("a request and its response split across reads at every byte arrive intact (re-chunked as the bytes came)")
    func splitReads() throws {
        let request = "POST /p HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n"
        let response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n1\r\n!\r\n0\r\n\r\n"
        let upstreams = FakeHTTP1Upstreams(loop: loop)
        let client = try makeClient(upstreams)
        for byte in request.utf8 { try client.writeInbound(ByteBuffer(bytes: [byte])) }
        let (_, upstream) = try upstreams.connect()
        let forwarded = try written(upstream)
        #expect(forwarded == "POST /p HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\nx-t: 1\r\n\r\n")
        for byte in response.utf8 {
            try upstream.writeInbound(ByteBuffer(bytes: [byte]))
            upstream.pipeline.fireChannelReadComplete()
        }
        let answered = try written(client)
        #expect(answered == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nh\r\n1\r\ni\r\n1\r\n!\r\n0\r\n\r\n")
        #expect(upstreams.released.first?.1 == true)
    }

    @Test("a connect timeout is a 504 with l5d-proxy-error, and the connection stays open")
    func connectTimeout() throws {
        let upstreams = FakeHTTP1Upstreams(loop: loop)
        let client = try makeClient(upstreams)
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: app\r\n\r\n"))
        upstreams.pending.removeFirst().fail(UpstreamFailure.connectTimeout)
        let answer = try written(client)
        #expect(answer.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(answer.contains("\r\nl5d-proxy-error: upstream connect timed out\r\n"))
        #expect(client.isActive)
    }

    @Test("malformed bytes are answered 400 and the connection closes; an oversized head 431; nothing goes upstream",
          arguments: [("GET / HTTP/1.1\r\nX-A: a\u{0}b\r\n\r\n", 400),
                      ("GET / HTTP/1.1\r\nX-A: a\n\r\n", 400),
                      ("GET / HTTP/1.1\r\nX-Pad: \(String(repeating: "a", count: 70_000))\r\n\r\n", 431),
                      ("GET / HTTP/2.0\r\n\r\n", 505)])
    func parseErrors(bytes: String, status: Int) throws {
        let upstreams = FakeHTTP1Upstreams(loop: loop)
        let client = try makeClient(upstreams)
        try client.writeInbound(ByteBuffer(string: bytes))
        let answer = try written(client)
        #expect(answer.hasPrefix("HTTP/1.1 \(status) "), "\(answer.prefix(60))")
        #expect(answer.contains("\r\nconnection: close\r\n"))
        #expect(!client.isActive)
        #expect(upstreams.pending.isEmpty)
    }

    @Test("a drain closes an idle connection, and answers a busy one with Connection: close")
    func quiesce() throws {
        let idle = try makeClient(FakeHTTP1Upstreams(loop: loop))
        idle.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!idle.isActive)

        let upstreams = FakeHTTP1Upstreams(loop: loop)
        let busy = try makeClient(upstreams)
        try busy.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: app\r\n\r\n"))
        let (_, upstream) = try upstreams.connect()
        busy.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(busy.isActive)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"))
        #expect(try written(busy) == "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        #expect(!busy.isActive)
    }

    @Test("an upstream that closes before answering a request with a body is a 502")
    func upstreamClosed() throws {
        let upstreams = FakeHTTP1Upstreams(loop: loop)
        let client = try makeClient(upstreams)
        try client.writeInbound(ByteBuffer(string: "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 1\r\n\r\nx"))
        let (_, upstream) = try upstreams.connect()
        upstream.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(try written(client).hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(upstreams.released.first?.1 == false)
    }

    @Test("an upstream that answers with something other than HTTP/1.1 is a 502, and its connection is not reused")
    func upstreamGarbage() throws {
        let upstreams = FakeHTTP1Upstreams(loop: loop)
        let client = try makeClient(upstreams)
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: app\r\n\r\n"))
        let (connection, upstream) = try upstreams.connect()
        try upstream.writeInbound(ByteBuffer(string: "SSH-2.0-OpenSSH\r\n\r\n"))
        let answer = try written(client)
        #expect(answer.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(answer.contains("upstream sent an invalid response"))
        #expect(connection.handler.peerClosed)
        #expect(!upstream.isActive)
        #expect(client.isActive)
    }

    @Test("an upgrade: the 101 goes out, then both sides are handed to the tunnel with the bytes each sent early")
    func upgrade() throws {
        let upstreams = FakeHTTP1Upstreams(loop: loop)
        let tunnelled = NIOLoopBoundBox(ByteBuffer(), eventLoop: loop)
        let client = try makeClient(upstreams, tunnel: { _, _, pending in tunnelled.value = pending })
        try client.writeInbound(ByteBuffer(string: "GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly"))
        let (connection, upstream) = try upstreams.connect()
        #expect(try written(upstream) == "GET /ws HTTP/1.1\r\nHost: app\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nhello"))
        #expect(try written(client) == "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
        #expect(String(buffer: tunnelled.value) == "early")
        #expect(String(buffer: connection.handler.takeUnparsed()) == "hello")
        #expect(upstreams.detached.count == 1 && upstreams.released.isEmpty,
                "the tunnel takes the connection out of the pool's count (and the balancer's), never back into the pool")
    }
}

@Suite("HTTP/1.1 upstream handler")
struct HTTP1UpstreamHandlerTests {
    func makeConnection() throws -> (HTTP1UpstreamHandler, EmbeddedChannel) {
        let handler = HTTP1UpstreamHandler()
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (handler, channel)
    }

    @Test("a FIN from the server on an idle pooled connection is reported once and closes the connection")
    func serverFIN() throws {
        let (handler, channel) = try makeConnection()
        let reports = NIOLoopBoundBox(0, eventLoop: channel.embeddedEventLoop)
        handler.onPeerClosed = { reports.value += 1 }
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(reports.value == 1)
        #expect(handler.peerClosed)
        #expect(!channel.isActive)
    }

    @Test("bytes from the server while no request is outstanding (a stray 408) retire the connection")
    func unsolicitedBytes() throws {
        let (handler, channel) = try makeConnection()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 408 Request Timeout\r\n\r\n"))
        #expect(handler.peerClosed)
        #expect(!channel.isActive)
    }
}

@Suite("HTTP/2 stream proxy handler (EmbeddedChannel)")
struct HTTP2StreamProxyHandlerTests {
    let loop = EmbeddedEventLoop()

    func makeStream(_ upstreams: FakeStreamUpstreams) throws -> EmbeddedChannel {
        let metrics = ProxyMetrics().target(.inbound, address: ListenAddress(ip: .v4(0x7F00_0001), port: 8081), tls: .disabled)
        let channel = EmbeddedChannel(handler: HTTP2StreamProxyHandler(upstreams: upstreams, metrics: RequestMetrics(target: metrics)), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test("a stream's request goes to its own upstream stream; 1xx and the response come back; the upstream is released")
    func roundTrip() throws {
        let upstreams = FakeStreamUpstreams(loop: loop)
        let stream = try makeStream(upstreams)
        try stream.writeInbound(HTTPServerRequestPart.head(request(.POST, "/rpc", version: .http2)))
        try stream.writeInbound(HTTPServerRequestPart.body(bytes(3)))
        try stream.writeInbound(HTTPServerRequestPart.end(nil))
        let (_, upstream) = try upstreams.connect()
        var sent: [HTTPClientRequestPart] = []
        while let part = try upstream.readOutbound(as: HTTPClientRequestPart.self) { sent.append(part) }
        #expect(sent.map(text) == ["head POST /rpc", "body 3", "end"])
        try upstream.writeInbound(HTTPClientResponsePart.head(response(103, version: .http2)))
        try upstream.writeInbound(HTTPClientResponsePart.head(response(200, version: .http2)))
        try upstream.writeInbound(HTTPClientResponsePart.end(nil))
        var answered: [HTTPServerResponsePart] = []
        while let part = try stream.readOutbound(as: HTTPServerResponsePart.self) { answered.append(part) }
        #expect(answered.map(text) == ["head 103", "head 200", "end"])
        #expect(upstreams.released.count == 1 && upstreams.released.first?.1 == true)
    }

    @Test("no upstream connection: the stream is answered 502 with l5d-proxy-error")
    func refused() throws {
        let upstreams = FakeStreamUpstreams(loop: loop)
        let stream = try makeStream(upstreams)
        try stream.writeInbound(HTTPServerRequestPart.head(request(.GET, "/", version: .http2)))
        try stream.writeInbound(HTTPServerRequestPart.end(nil))
        upstreams.pending.removeFirst().fail(UpstreamFailure.connectFailed("refused"))
        guard case .head(let head) = try stream.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no response head")
            return
        }
        #expect(head.status == .badGateway)
        #expect(head.headers.first(name: "l5d-proxy-error") == "upstream connection failed")
    }
}
