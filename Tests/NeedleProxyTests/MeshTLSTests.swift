import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOTLS
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
        let acceptor = MeshTLSAcceptor(timeout: .seconds(5), onAuthenticated: { _, peer in authenticated.append(peer) },
                                       onFailure: { failures.append($0) })
        try channel.pipeline.syncOperations.addHandler(acceptor)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        // A handshake "completed" without any TLS handler in front: no peer certificate, so no identity.
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: nil))
        #expect(authenticated.isEmpty)
        #expect(failures.count == 1 && failures[0].contains("exactly one mesh name"))
        #expect(!channel.isActive)

        let second = EmbeddedChannel()
        try second.pipeline.syncOperations.addHandler(MeshTLSAcceptor(timeout: .milliseconds(50), onAuthenticated: { _, _ in },
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
