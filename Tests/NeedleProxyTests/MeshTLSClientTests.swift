import Foundation
import IdentityTestSupport
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOSSL
@testable import NeedleProxy
import NeedleContract
import NeedleIdentity
import Testing

/// Mesh TLS from the client side, with real handshakes between two in-memory channels: certificates issued
/// by a test issuer for two workloads, as the controller would issue them.
@Suite("Mesh TLS origination")
struct MeshTLSClientTests {
    let pki: TestPKI
    let issuer: IdentityIssuer

    init() throws {
        // BoringSSL checks validity against the real clock.
        pki = try TestPKI(now: Date())
        let inputs = try pki.makeIssuer()
        issuer = try IdentityIssuer(certificatePEM: inputs.certificatePEM, keyPEM: inputs.keyPEM,
                                    trustAnchorsPEM: inputs.trustAnchorsPEM, now: pki.now)
    }

    func identity(_ serviceAccount: String) throws -> (issued: IssuedIdentity, name: String) {
        let workload = try TestPKI.identity("shop", serviceAccount)
        let made = try CertificateRequestMaker.make(for: workload)
        guard case .success(let key) = CertificateRequestReview.review(pem: made.requestPEM, for: workload) else {
            throw IdentityError("the test request was refused")
        }
        let issued = try issuer.issue(for: workload, publicKey: key, lifetime: 3600, now: Date())
        let anchors = try NIOSSLCertificate.fromPEMBytes(Array(try pki.anchorPEM.utf8))
        let identity = try IssuedIdentity(chainPEM: Array(issued.chainPEM.utf8), made: made, workload: workload, trustAnchors: anchors,
                                          now: Date().timeIntervalSince1970)
        return (identity, workload.tlsName)
    }

    /// Runs a handshake between a client asking for `expected` and a server showing `server`'s certificate;
    /// the client's verdict.
    func handshake(expecting expected: String, server: (issued: IssuedIdentity, name: String), client: (issued: IssuedIdentity, name: String)?) throws -> Result<Void, any Error> {
        let loop = EmbeddedEventLoop()
        let serverChannel = EmbeddedChannel(loop: loop)
        let clientChannel = EmbeddedChannel(loop: loop)
        defer {
            // A TLS close waits for the peer's close_notify; its timeout ends it (`finish` would wait forever).
            clientChannel.close(promise: nil)
            serverChannel.close(promise: nil)
            loop.advanceTime(by: .seconds(30))
        }
        try serverChannel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: server.issued.serverContext))
        let context = client?.issued.clientContext
        let meshTLS = MeshTLSClient(trustDomain: TestPKI.trustDomain) { context }
        let outcome = NIOLockedValueBox<Result<Void, any Error>?>(nil)
        var verdict: Result<Void, any Error>? { outcome.withLockedValue { $0 } }
        do {
            let verified = try meshTLS.secure(clientChannel, serverName: expected)
            verified.whenComplete { result in outcome.withLockedValue { $0 = result } }
        } catch {
            return .failure(error)
        }
        try serverChannel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try clientChannel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        for _ in 0..<20 where verdict == nil {
            var moved = false
            while let bytes = try clientChannel.readOutbound(as: ByteBuffer.self) {
                moved = true
                _ = try? serverChannel.writeInbound(bytes)
            }
            while let bytes = try serverChannel.readOutbound(as: ByteBuffer.self) {
                moved = true
                _ = try? clientChannel.writeInbound(bytes)
            }
            if !moved { break }
        }
        return verdict ?? .failure(IdentityError("the handshake did not finish"))
    }

    @Test("a meshed endpoint showing exactly the name asked for is verified; the check then steps aside")
    func verified() throws {
        let web = try identity("web")
        let client = try identity("client")
        let verdict = try handshake(expecting: web.name, server: web, client: client)
        guard case .success = verdict else {
            Issue.record("the handshake failed: \(verdict)")
            return
        }
    }

    @Test("an endpoint that is another workload of the same mesh is refused: the connection fails, no plaintext")
    func wrongWorkload() throws {
        let web = try identity("web")
        let other = try identity("billing")
        let client = try identity("client")
        let verdict = try handshake(expecting: web.name, server: other, client: client)
        guard case .failure(let error) = verdict else {
            Issue.record("a server for another workload was accepted")
            return
        }
        #expect("\(error)".contains("mesh TLS"), "\(error)")
    }

    @Test("without a certificate in use nothing is originated")
    func noCertificate() throws {
        let web = try identity("web")
        let verdict = try handshake(expecting: web.name, server: web, client: nil)
        guard case .failure(let error) = verdict else {
            Issue.record("mesh TLS was originated without a certificate")
            return
        }
        #expect("\(error)".contains("no certificate in use"), "\(error)")
    }

    @Test("a handshake that does not finish in time closes the connection and counts as a connect timeout (504)")
    func handshakeTimeout() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "10.0.0.1", port: 8080)).wait()
        let loop = channel.embeddedEventLoop
        let verified = loop.makePromise(of: Void.self)
        let ready = MeshTLSClient.whenVerified(channel, verified.futureResult, timeout: .seconds(1))
        var outcome: Result<any Channel, any Error>?
        ready.whenComplete { outcome = $0 }
        loop.advanceTime(by: .milliseconds(999))
        #expect(outcome == nil && channel.isActive)
        loop.advanceTime(by: .milliseconds(1))
        verified.fail(ChannelError.ioOnClosedChannel) // what the TLS handler reports once the channel is closed
        guard case .failure(let error)? = outcome else {
            Issue.record("not failed")
            return
        }
        #expect(UpstreamFailure.classify(error) == .connectTimedOut)
        #expect(!channel.isActive)
    }

    @Test("a handshake that fails in time is a failed connect (502), not a timeout")
    func handshakeRefused() throws {
        let channel = EmbeddedChannel()
        let verified = channel.embeddedEventLoop.makePromise(of: Void.self)
        let ready = MeshTLSClient.whenVerified(channel, verified.futureResult, timeout: .seconds(1))
        var outcome: Result<any Channel, any Error>?
        ready.whenComplete { outcome = $0 }
        verified.fail(UpstreamFailure.connectFailed("certificate names another workload"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        guard case .failure(let error)? = outcome else {
            Issue.record("not failed")
            return
        }
        #expect(UpstreamFailure.classify(error) == .connectFailed)
    }
}
