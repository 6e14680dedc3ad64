import Crypto
import Foundation
import IdentityTestSupport
import NIOSSL
@testable import NeedleProxy
import NeedleContract
import NeedleIdentity
import Testing
import X509

@Suite("Identity refresh")
struct IdentityRefreshTests {
    typealias Validity = IdentityRefresh.Validity

    @Test("asks at start, installs what comes back, renews at 70 % of the validity")
    func renewsAtSeventyPercent() {
        var refresh = IdentityRefresh()
        #expect(refresh.start() == [.request])
        #expect(refresh.start() == [])
        #expect(!refresh.isReady(now: 10))
        let validity = Validity(notBefore: 0, notAfter: 1000)
        #expect(refresh.certified(validity, now: 10) == [.install(validity), .wake(at: 700)])
        #expect(refresh.isReady(now: 10))
        #expect(refresh.timerFired(now: 699) == [.wake(at: 700)])
        #expect(refresh.timerFired(now: 700) == [.request])
        // While renewing, the old certificate still serves.
        #expect(refresh.isReady(now: 701))
        let next = Validity(notBefore: 690, notAfter: 1690)
        #expect(refresh.certified(next, now: 701) == [.install(next), .wake(at: 1390)])
    }

    @Test("failures retry after a doubling, jittered delay from 10 s up to 5 min")
    func backoff() {
        var refresh = IdentityRefresh()
        _ = refresh.start()
        var delays: [Double] = []
        var now = 0.0
        for _ in 0..<8 {
            guard case .wake(let at) = refresh.failed(now: now, jitter: 1).last else {
                Issue.record("a failure must schedule a retry")
                return
            }
            delays.append(at - now)
            now = at
            #expect(refresh.timerFired(now: now) == [.request])
        }
        #expect(delays == [10, 20, 40, 80, 160, 300, 300, 300])
        #expect(refresh.failures == 8)
        #expect(!refresh.isReady(now: now))
        // No jitter halves the delay, never below the minimum.
        var early = IdentityRefresh()
        _ = early.start()
        #expect(early.failed(now: 0, jitter: 0) == [.wake(at: 10)])
    }

    @Test("a failing renewal keeps the certificate until it expires, then drops it and keeps asking")
    func expiry() {
        var refresh = IdentityRefresh()
        _ = refresh.start()
        let validity = Validity(notBefore: 0, notAfter: 100)
        _ = refresh.certified(validity, now: 0)
        #expect(refresh.timerFired(now: 70) == [.request])
        // The retry would be at 70 + 10 s; expiry (100) is later, so the retry stands.
        #expect(refresh.failed(now: 70, jitter: 1) == [.wake(at: 80)])
        #expect(refresh.timerFired(now: 80) == [.request])
        #expect(refresh.failed(now: 95, jitter: 1) == [.wake(at: 100)])
        #expect(refresh.isReady(now: 99))
        #expect(refresh.timerFired(now: 100) == [.expired, .request])
        #expect(!refresh.isReady(now: 100))
        #expect(refresh.current == nil)
        // Events out of turn change nothing.
        #expect(refresh.timerFired(now: 101) == [])
        #expect(refresh.failed(now: 101, jitter: 0.5).isEmpty == false)
        #expect(refresh.failed(now: 101, jitter: 0.5) == [])
    }

    @Test("renewal is never scheduled sooner than the minimum retry, even for a nearly spent certificate")
    func shortCertificate() {
        var refresh = IdentityRefresh()
        _ = refresh.start()
        let validity = Validity(notBefore: 0, notAfter: 1000)
        #expect(refresh.certified(validity, now: 900) == [.install(validity), .wake(at: 910)])
    }
}

@Suite("Proxy certificate requests")
struct ProxyCertificateRequestTests {
    let pki: TestPKI
    let issuer: IdentityIssuer
    let workload: WorkloadIdentity

    init() throws {
        pki = try TestPKI()
        let inputs = try pki.makeIssuer()
        issuer = try IdentityIssuer(certificatePEM: inputs.certificatePEM, keyPEM: inputs.keyPEM,
                                    trustAnchorsPEM: inputs.trustAnchorsPEM, now: pki.now)
        workload = try TestPKI.identity("shop", "web")
    }

    var anchors: [NIOSSLCertificate] { get throws { try NIOSSLCertificate.fromPEMBytes(Array(try pki.anchorPEM.utf8)) } }

    @Test("the proxy's CSR passes the controller's review, and the chain it gets back makes a TLS server")
    func roundTrip() throws {
        let made = try CertificateRequestMaker.make(for: workload)
        let reviewed = CertificateRequestReview.review(pem: made.requestPEM, for: workload)
        guard case .success(let key) = reviewed else {
            Issue.record("the controller refused the proxy's own request: \(reviewed)")
            return
        }
        let issued = try issuer.issue(for: workload, publicKey: key, lifetime: 86400, now: Date())
        let identity = try IssuedIdentity(chainPEM: Array(issued.chainPEM.utf8), made: made, workload: workload, trustAnchors: try anchors,
                                          now: Date().timeIntervalSince1970)
        #expect(identity.chain.count == 2)
        #expect(identity.notAfter == issued.certificate.notValidAfter.timeIntervalSince1970)
        #expect(PeerIdentity.dnsNames(of: identity.chain[0]) == [workload.tlsName])
        #expect(try PeerIdentity.workload(of: identity.chain[0], trustDomain: TestPKI.trustDomain).get() == workload)
        // The same certificate seen from another trust domain names no peer there.
        guard case .failure(let problem) = PeerIdentity.workload(of: identity.chain[0], trustDomain: try DNSName(parsing: "other.example"))
        else {
            Issue.record("a certificate of another trust domain was accepted")
            return
        }
        #expect(problem.description.contains("not a workload name of trust domain other.example"))
    }

    @Test("a certificate from the mesh CA that is not a workload certificate names no peer")
    func notAWorkload() throws {
        let made = try CertificateRequestMaker.make(for: workload)
        guard case .success(let key) = CertificateRequestReview.review(pem: made.requestPEM, for: workload) else { return }
        // The controller's issuer never makes these; a CA shared with something else might.
        let controller = try WorkloadIdentity.controller(trustDomain: TestPKI.trustDomain)
        let issued = try issuer.issue(for: controller, publicKey: key, lifetime: 86400, now: Date())
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(issued.chainPEM.utf8))
        #expect(try PeerIdentity.workload(of: chain[0], trustDomain: TestPKI.trustDomain).get() == controller)
    }

    @Test("a chain for another key, another workload, or no chain at all is refused")
    func refusals() throws {
        let made = try CertificateRequestMaker.make(for: workload)
        let otherKey = Certificate.PublicKey(P256.Signing.PrivateKey().publicKey)
        let forOtherKey = try issuer.issue(for: workload, publicKey: otherKey, lifetime: 86400, now: Date())
        guard case .success(let key) = CertificateRequestReview.review(pem: made.requestPEM, for: workload) else { return }
        let forOtherName = try issuer.issue(for: try TestPKI.identity("shop", "db"), publicKey: key, lifetime: 86400, now: Date())
        // Issued long ago: valid once, expired now.
        let stale = try issuer.issue(for: workload, publicKey: key, lifetime: 60, now: Date(timeIntervalSinceNow: -3600))
        for (body, expected) in [(forOtherKey.chainPEM, "not for this proxy's key"), (forOtherName.chainPEM, "instead of"),
                                 (stale.chainPEM, "too soon to use"),
                                 ("error: nope\n", "not a PEM certificate chain"), ("", "not a PEM certificate chain")] {
            do {
                _ = try IssuedIdentity(chainPEM: Array(body.utf8), made: made, workload: workload, trustAnchors: try anchors,
                                       now: Date().timeIntervalSince1970)
                Issue.record("accepted a chain that should fail with \(expected)")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
    }
}
