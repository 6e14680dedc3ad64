import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOTLS
import NeedleContract
@testable import NeedleProxy
import Testing

@Suite("Mesh TLS and needle-client-id")
struct MeshTLSTests {
    @Test("only TLS addressed to this proxy's own name is terminated; any other TLS passes through")
    func plans() {
        let own = "web.shop.serviceaccount.identity.needle.cluster.local"
        #expect(ForwardingPlan.plan(for: .tls(serverName: own), meshServerName: own) == .meshTLS)
        #expect(ForwardingPlan.plan(for: .tls(serverName: "api.example.com"), meshServerName: own) == .tcp)
        #expect(ForwardingPlan.plan(for: .tls(serverName: nil), meshServerName: own) == .tcp)
        #expect(ForwardingPlan.plan(for: .tls(serverName: own), meshServerName: nil) == .tcp)
        #expect(ForwardingPlan.plan(for: .http1, meshServerName: own) == .http1)
    }

    func upstreamHead(_ request: String, _ field: ClientIdentityField) -> String {
        var decoder = HTTP1RequestDecoder(clientIdentity: field)
        decoder.received(ByteBuffer(string: request))
        guard case .head(let head) = decoder.next() else { return "no head" }
        return String(buffer: head.upstreamHead)
    }

    @Test("HTTP/1.1: the field is removed from every inbound request, in any letter case, and set for a mesh peer")
    func http1() {
        let request = "GET / HTTP/1.1\r\nHost: app\r\nNeedle-Client-Id: forged\r\nX-A: 1\r\nneedle-client-id: again\r\n\r\n"
        #expect(upstreamHead(request, .untouched) == "GET / HTTP/1.1\r\nHost: app\r\nNeedle-Client-Id: forged\r\nX-A: 1\r\nneedle-client-id: again\r\n\r\n")
        #expect(upstreamHead(request, .removed) == "GET / HTTP/1.1\r\nHost: app\r\nX-A: 1\r\n\r\n")
        #expect(upstreamHead(request, .set("client.shop.serviceaccount.identity.needle.cluster.local"))
            == "GET / HTTP/1.1\r\nHost: app\r\nX-A: 1\r\nneedle-client-id: client.shop.serviceaccount.identity.needle.cluster.local\r\n\r\n")
    }

    @Test("HTTP/1.1 trailers lose the field too; other trailers stay")
    func http1Trailers() {
        let request = "POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Sum: 1\r\nNEEDLE-CLIENT-ID: forged\r\n\r\n"
        for field in [ClientIdentityField.untouched, .removed, .set("client.shop.serviceaccount.identity.needle.cluster.local")] {
            var decoder = HTTP1RequestDecoder(clientIdentity: field)
            decoder.received(ByteBuffer(string: request))
            var trailers: String?
            while let event = decoder.next() {
                if case .end(let section) = event { trailers = section.map { String(buffer: $0) } ?? "" }
            }
            let expected = field == .untouched ? "X-Sum: 1\r\nNEEDLE-CLIENT-ID: forged\r\n" : "X-Sum: 1\r\n"
            #expect(trailers == expected, "\(field)")
        }
        var decoder = HTTP1RequestDecoder(clientIdentity: .removed)
        decoder.received(ByteBuffer(string: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nneedle-client-id: x\r\n\r\n"))
        _ = decoder.next()
        guard case .end(let none) = decoder.next() else {
            Issue.record("no end")
            return
        }
        #expect(none == nil)
    }

    @Test("HTTP/2 trailers lose the field too")
    func http2Trailers() {
        var exchange = HTTP2StreamExchange<String>(clientIdentity: .removed)
        exchange.requestHead(HTTPRequestHead(version: .http2, method: .POST, uri: "/", headers: [:]), now: .now())
        exchange.upstreamAcquired("s1", writable: true)
        exchange.requestEnd(HTTPHeaders([("needle-client-id", "forged"), ("grpc-x", "1")]))
        var sentTrailers: HTTPHeaders?
        while let action = exchange.nextAction() {
            if case .sendUpstream(_, .end(let trailers)) = action { sentTrailers = trailers }
        }
        #expect(sentTrailers?["needle-client-id"] == [])
        #expect(sentTrailers?["grpc-x"] == ["1"])
    }

    @Test("inbound, an upgrade to HTTP (h2c) is dropped and the request answered as HTTP/1.1; WebSocket still switches")
    func h2cUpgrade() {
        let h2c = "GET / HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        #expect(upstreamHead(h2c, .removed) == "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        #expect(upstreamHead(h2c, .untouched) == "GET / HTTP/1.1\r\nHost: app\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n")
        let http2 = "GET / HTTP/1.1\r\nHost: app\r\nConnection: upgrade\r\nUpgrade: websocket, HTTP/2.0\r\n\r\n"
        #expect(upstreamHead(http2, .set("a.b.serviceaccount.identity.needle.cluster.local")).contains("upgrade") == false)
        let websocket = "GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        #expect(upstreamHead(websocket, .removed) == "GET /ws HTTP/1.1\r\nHost: app\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
    }

    @Test("after a silent detect timeout: held bytes pass when they are not HTTP, the connection closes when they are")
    func lateRequestGuard() throws {
        var refused = 0
        let passing = EmbeddedChannel()
        try passing.pipeline.syncOperations.addHandler(LateRequestGuardHandler(allocator: passing.allocator, timeout: .seconds(1)) { refused += 1 })
        try passing.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try passing.writeInbound(ByteBuffer(string: "QU"))
        #expect(try passing.readInbound(as: ByteBuffer.self) == nil)
        try passing.writeInbound(ByteBuffer(string: "IT\r\n"))
        #expect(try passing.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "QUIT\r\n"))
        try passing.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n"))
        #expect(try passing.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "GET / HTTP/1.1\r\n"), "after a pass the guard is gone")
        #expect(refused == 0)

        let refusing = EmbeddedChannel()
        try refusing.pipeline.syncOperations.addHandler(LateRequestGuardHandler(allocator: refusing.allocator, timeout: .seconds(1)) { refused += 1 })
        try refusing.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try refusing.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nneedle-client-id: forged\r\n\r\n"))
        #expect(try refusing.readInbound(as: ByteBuffer.self) == nil)
        #expect(refused == 1)
        #expect(!refusing.isActive)

        let closing = EmbeddedChannel()
        try closing.pipeline.syncOperations.addHandler(LateRequestGuardHandler(allocator: closing.allocator, timeout: .seconds(1)) { refused += 1 })
        try closing.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try closing.writeInbound(ByteBuffer(string: "POST"))
        closing.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(try closing.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "POST"), "an unfinished line cannot become a request once input ends")
        #expect(refused == 1)

        // Half a request line, the rest after the deadline: refused at the deadline.
        let halves = EmbeddedChannel()
        try halves.pipeline.syncOperations.addHandler(LateRequestGuardHandler(allocator: halves.allocator, timeout: .seconds(1)) { refused += 1 })
        try halves.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try halves.writeInbound(ByteBuffer(string: "POST"))
        halves.embeddedEventLoop.advanceTime(by: .milliseconds(900))
        #expect(halves.isActive)
        halves.embeddedEventLoop.advanceTime(by: .milliseconds(200))
        #expect(refused == 2)
        #expect(!halves.isActive)
        #expect(try halves.readInbound(as: ByteBuffer.self) == nil)
    }

    @Test("HTTP/2: the same on each stream's request head")
    func http2() {
        let headers = HTTPHeaders([("host", "app"), ("needle-client-id", "forged"), ("x-a", "1")])
        for (field, expected) in [(ClientIdentityField.untouched, ["forged"]), (.removed, []), (.set("peer.ns.serviceaccount.identity.needle.td"), ["peer.ns.serviceaccount.identity.needle.td"])] {
            var exchange = HTTP2StreamExchange<String>(clientIdentity: field)
            exchange.requestHead(HTTPRequestHead(version: .http2, method: .GET, uri: "/", headers: headers), now: .now())
            exchange.upstreamAcquired("s1", writable: true)
            var sent: HTTPRequestHead?
            while let action = exchange.nextAction() {
                if case .sendUpstream(_, .head(let head)) = action { sent = head }
            }
            #expect(sent?.headers["needle-client-id"] == expected, "\(field)")
            #expect(sent?.headers["x-a"] == ["1"])
        }
    }

    @Test("the TLS acceptor closes a connection that shows no mesh certificate, or whose handshake does not finish in time")
    func acceptorFailures() throws {
        var failures: [String] = []
        var authenticated: [String] = []
        let channel = EmbeddedChannel()
        let acceptor = MeshTLSAcceptor(timeout: .seconds(5), trustDomain: try DNSName(parsing: "cluster.local"), onAuthenticated: { _, peer in authenticated.append(peer) },
                                       onFailure: { failures.append($0) })
        try channel.pipeline.syncOperations.addHandler(acceptor)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        // A handshake "completed" without any TLS handler in front: no peer certificate, so no identity.
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: nil))
        #expect(authenticated.isEmpty)
        #expect(failures.count == 1 && failures[0].contains("no certificate"))
        #expect(!channel.isActive)

        let second = EmbeddedChannel()
        try second.pipeline.syncOperations.addHandler(MeshTLSAcceptor(timeout: .milliseconds(50), trustDomain: try DNSName(parsing: "cluster.local"), onAuthenticated: { _, _ in },
                                                                       onFailure: { failures.append($0) }))
        try second.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        second.embeddedEventLoop.advanceTime(by: .milliseconds(60))
        #expect(failures.last?.contains("did not finish in time") == true)
        #expect(!second.isActive)
    }
}

@Suite("TLS labels")
struct TLSLabelTests {
    @Test("connections the proxy does not terminate: opaque TLS, plaintext with Linkerd's reasons, or false with identity off")
    func unterminated() {
        #expect(TLSLabel.unterminated(.inbound, detected: .http1, identityOn: false) == .disabled)
        #expect(TLSLabel.unterminated(.inbound, detected: .http1, identityOn: true) == .noTLSFromRemote)
        #expect(TLSLabel.unterminated(.inbound, detected: nil, identityOn: true) == .noTLSFromRemote)
        #expect(TLSLabel.unterminated(.outbound, detected: .http2, identityOn: true) == .notProvidedByServiceDiscovery)
        #expect(TLSLabel.unterminated(.inbound, detected: .tls(serverName: "api.example.com"), identityOn: true) == .opaque)
        #expect(TLSLabel.unterminated(.outbound, detected: .tls(serverName: nil), identityOn: true) == .opaque)
    }

    @Test("label families are written as Linkerd writes them")
    func labels() {
        #expect(TLSLabel.disabled.labels.map { "\($0.0)=\($0.1)" } == ["tls=false"])
        #expect(TLSLabel.noTLSFromRemote.labels.map { "\($0.0)=\($0.1)" } == ["tls=no_identity", "no_tls_reason=no_tls_from_remote"])
        #expect(TLSLabel.opaque.labels.map { "\($0.0)=\($0.1)" } == ["tls=opaque"])
        #expect(TLSLabel.mesh(clientID: "a.b.serviceaccount.identity.needle.td").labels.map { "\($0.0)=\($0.1)" }
            == ["tls=true", "client_id=a.b.serviceaccount.identity.needle.td"])
    }
}
