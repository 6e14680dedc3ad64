import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import NeedleProxy
import NeedleContract
import Testing

/// Hands out upstream connections made of `EmbeddedChannel`s, when and how the test says.
final class FakeUpstreams: UpstreamProvider {
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

@Suite("HTTP/1.1 proxy handler (EmbeddedChannel)")
struct HTTP1ProxyHandlerTests {
    let loop = EmbeddedEventLoop()

    func makeClient(_ upstreams: FakeUpstreams) throws -> EmbeddedChannel {
        let metrics = ProxyMetrics().target(.inbound, address: ListenAddress(ip: .v4(0x7F00_0001), port: 8080), tls: false)
        let handler = HTTP1ProxyHandler(upstreams: upstreams, metrics: RequestMetrics(target: metrics), headerTimer: nil,
                                        startTunnel: { _, _ in })
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func outbound<T>(_ channel: EmbeddedChannel, as type: T.Type) throws -> [T] {
        var parts: [T] = []
        while let part = try channel.readOutbound(as: T.self) { parts.append(part) }
        return parts
    }

    @Test("a request goes upstream once connected; the response comes back; the connection is released for reuse")
    func roundTrip() throws {
        let upstreams = FakeUpstreams(loop: loop)
        let client = try makeClient(upstreams)
        try client.writeInbound(HTTPServerRequestPart.head(request(.GET, "/hello", [("host", "app")])))
        try client.writeInbound(HTTPServerRequestPart.end(nil))
        #expect(upstreams.pending.count == 1)
        let (_, upstream) = try upstreams.connect()
        let sent = try outbound(upstream, as: HTTPClientRequestPart.self)
        #expect(sent.map(text) == ["head GET /hello", "end"])
        try upstream.writeInbound(HTTPClientResponsePart.head(response(100)))
        try upstream.writeInbound(HTTPClientResponsePart.head(response(200, [("content-length", "2")])))
        try upstream.writeInbound(HTTPClientResponsePart.body(bytes(2)))
        try upstream.writeInbound(HTTPClientResponsePart.end(nil))
        let answered = try outbound(client, as: HTTPServerResponsePart.self)
        #expect(answered.map(text) == ["head 100", "head 200", "body 2", "end"])
        #expect(upstreams.released.count == 1 && upstreams.released.first?.1 == true)
        #expect(client.isActive)
    }

    @Test("a connect timeout is a 504 with l5d-proxy-error, and the connection stays open")
    func connectTimeout() throws {
        let upstreams = FakeUpstreams(loop: loop)
        let client = try makeClient(upstreams)
        try client.writeInbound(HTTPServerRequestPart.head(request()))
        try client.writeInbound(HTTPServerRequestPart.end(nil))
        upstreams.pending.removeFirst().fail(UpstreamFailure.connectTimeout)
        let answered = try outbound(client, as: HTTPServerResponsePart.self)
        guard case .head(let head) = answered.first else {
            Issue.record("no response head")
            return
        }
        #expect(head.status == .gatewayTimeout)
        #expect(head.headers.first(name: "l5d-proxy-error") == "upstream connect timed out")
        #expect(client.isActive)
    }

    @Test("a parse error is answered 400 and the connection closes; a header overflow 431")
    func parseErrors() throws {
        for (error, status) in [(HTTPParserError.invalidHeaderToken, HTTPResponseStatus.badRequest),
                                (.headerOverflow, .requestHeaderFieldsTooLarge)] {
            let upstreams = FakeUpstreams(loop: loop)
            let client = try makeClient(upstreams)
            client.pipeline.fireErrorCaught(error)
            let answered = try outbound(client, as: HTTPServerResponsePart.self)
            guard case .head(let head) = answered.first else {
                Issue.record("no response head")
                continue
            }
            #expect(head.status == status)
            #expect(head.headers.first(name: "connection") == "close")
            #expect(!client.isActive)
            #expect(upstreams.pending.isEmpty)
        }
    }

    @Test("a drain closes an idle connection, and answers a busy one with Connection: close")
    func quiesce() throws {
        let idle = try makeClient(FakeUpstreams(loop: loop))
        idle.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!idle.isActive)

        let upstreams = FakeUpstreams(loop: loop)
        let busy = try makeClient(upstreams)
        try busy.writeInbound(HTTPServerRequestPart.head(request()))
        try busy.writeInbound(HTTPServerRequestPart.end(nil))
        let (_, upstream) = try upstreams.connect()
        busy.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(busy.isActive)
        try upstream.writeInbound(HTTPClientResponsePart.head(response(200, [("content-length", "0")])))
        try upstream.writeInbound(HTTPClientResponsePart.end(nil))
        let answered = try outbound(busy, as: HTTPServerResponsePart.self)
        #expect(answered.map(text) == ["head 200 connection=close", "end"])
        #expect(!busy.isActive)
    }

    @Test("an upstream that closes before answering a request with a body is a 502")
    func upstreamClosed() throws {
        let upstreams = FakeUpstreams(loop: loop)
        let client = try makeClient(upstreams)
        try client.writeInbound(HTTPServerRequestPart.head(request(.POST, "/", [("content-length", "1")])))
        try client.writeInbound(HTTPServerRequestPart.body(bytes(1)))
        try client.writeInbound(HTTPServerRequestPart.end(nil))
        let (_, upstream) = try upstreams.connect()
        upstream.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let answered = try outbound(client, as: HTTPServerResponsePart.self)
        guard case .head(let head) = answered.first else {
            Issue.record("no response head")
            return
        }
        #expect(head.status == .badGateway)
        #expect(upstreams.released.first?.1 == false)
    }
}

@Suite("Upstream handler")
struct UpstreamHandlerTests {
    @Test("a FIN from the server on an idle pooled connection is reported once and closes the connection")
    func serverFIN() throws {
        let handler = UpstreamHandler()
        var reports = 0
        handler.onPeerClosed = { reports += 1 }
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(reports == 1)
        #expect(handler.peerClosed)
        #expect(!channel.isActive)
    }
}

@Suite("HTTP/2 stream proxy handler (EmbeddedChannel)")
struct HTTP2StreamProxyHandlerTests {
    let loop = EmbeddedEventLoop()

    func makeStream(_ upstreams: FakeUpstreams) throws -> EmbeddedChannel {
        let metrics = ProxyMetrics().target(.inbound, address: ListenAddress(ip: .v4(0x7F00_0001), port: 8081), tls: false)
        let channel = EmbeddedChannel(handler: HTTP2StreamProxyHandler(upstreams: upstreams, metrics: RequestMetrics(target: metrics)), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test("a stream's request goes to its own upstream stream; 1xx and the response come back; the upstream is released")
    func roundTrip() throws {
        let upstreams = FakeUpstreams(loop: loop)
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
        let upstreams = FakeUpstreams(loop: loop)
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
