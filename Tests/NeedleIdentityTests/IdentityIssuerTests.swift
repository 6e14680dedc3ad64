import Foundation
import Crypto
import IdentityTestSupport
@testable import NeedleIdentity
import NeedleContract
import SwiftASN1
import Testing
import X509

@Suite("Identity issuer")
struct IdentityIssuerTests {
    @Test("an issuer signed by a trust anchor issues a leaf with both names, client and server use, backdated, for the lifetime")
    func issues() throws {
        let pki = try TestPKI()
        let inputs = try pki.makeIssuer()
        let issuer = try IdentityIssuer(certificatePEM: inputs.certificatePEM, keyPEM: inputs.keyPEM,
                                        trustAnchorsPEM: inputs.trustAnchorsPEM, now: pki.now)
        let workload = try TestPKI.identity()
        let key = P256.Signing.PrivateKey()
        let issued = try issuer.issue(for: workload, publicKey: .init(key.publicKey), lifetime: 86400, now: pki.now)
        let leaf = issued.certificate
        #expect(leaf.publicKey == Certificate.PublicKey(key.publicKey))
        #expect(leaf.issuer == pki.issuer.subject)
        #expect(pki.issuer.publicKey.isValidSignature(leaf.signature, for: leaf))
        #expect(leaf.notValidBefore == pki.now - IdentityIssuer.clockSkewAllowance)
        #expect(leaf.notValidAfter == pki.now + 86400)
        let names = try #require(try leaf.extensions.subjectAlternativeNames)
        #expect(Array(names) == [.dnsName("web.shop.serviceaccount.identity.needle.cluster.local"),
                                 .uniformResourceIdentifier("spiffe://cluster.local/ns/shop/sa/web")])
        #expect(try leaf.extensions.extendedKeyUsage == (try ExtendedKeyUsage([.serverAuth, .clientAuth])))
        guard case .notCertificateAuthority = try #require(try leaf.extensions.basicConstraints) else {
            Issue.record("the leaf must not be a CA")
            return
        }
        // The chain is the leaf, then the issuer; both parse back.
        let chain = try PEMDocument.parseMultiple(pemString: issued.chainPEM).map { try Certificate(pemDocument: $0) }
        #expect(chain == [leaf, pki.issuer])
    }

    @Test("a leaf never outlives its issuer")
    func clampedToIssuer() throws {
        let pki = try TestPKI(issuerValidity: 3600)
        let inputs = try pki.makeIssuer()
        let issuer = try IdentityIssuer(certificatePEM: inputs.certificatePEM, keyPEM: inputs.keyPEM,
                                        trustAnchorsPEM: inputs.trustAnchorsPEM, now: pki.now)
        let issued = try issuer.issue(for: try TestPKI.identity(), publicKey: .init(P256.Signing.PrivateKey().publicKey),
                                      lifetime: 86400, now: pki.now)
        #expect(issued.certificate.notValidAfter == pki.issuer.notValidAfter)
        // Loaded while valid and left in place past its end: it refuses rather than sign expired certificates.
        #expect(throws: IssuerError.self) {
            _ = try issuer.issue(for: try TestPKI.identity(), publicKey: .init(P256.Signing.PrivateKey().publicKey),
                                 lifetime: 86400, now: pki.issuer.notValidAfter + 1)
        }
    }

    @Test("an issuer that would sign certificates nobody trusts is refused, with the reason")
    func refusesBrokenIssuers() throws {
        let pki = try TestPKI()
        let good = try pki.makeIssuer()
        let other = try TestPKI()
        var cases: [(TestPKI.IssuerInputs, String, Date)] = []
        var wrongKey = good
        wrongKey.keyPEM = P256.Signing.PrivateKey().pemRepresentation
        cases.append((wrongKey, "does not belong", pki.now))
        var foreignAnchor = good
        foreignAnchor.trustAnchorsPEM = try other.anchorPEM
        cases.append((foreignAnchor, "not signed by any of the 1 trust anchors", pki.now))
        cases.append((good, "not valid now", pki.now + 400 * 86400))
        let notCA = try TestPKI(issuerIsCA: false).makeIssuer()
        cases.append((notCA, "not a CA", pki.now))
        var garbage = good
        garbage.certificatePEM = "hello"
        cases.append((garbage, "issuer certificate", pki.now))
        var noAnchors = good
        noAnchors.trustAnchorsPEM = ""
        cases.append((noAnchors, "trust anchors", pki.now))
        var halfWritten = good
        halfWritten.keyPEM = String(good.keyPEM.prefix(good.keyPEM.count / 2))
        cases.append((halfWritten, "issuer key", pki.now))
        for (inputs, expected, now) in cases {
            do {
                _ = try IdentityIssuer(certificatePEM: inputs.certificatePEM, keyPEM: inputs.keyPEM,
                                       trustAnchorsPEM: inputs.trustAnchorsPEM, now: now)
                Issue.record("accepted an issuer that should fail with \"\(expected)\"")
            } catch {
                #expect(error.description.contains(expected), "\(error.description)")
            }
        }
    }

    @Test("the trust anchor itself may be the issuer (a one-level PKI)")
    func anchorAsIssuer() throws {
        let pki = try TestPKI()
        let anchorPEM = try pki.anchorPEM
        let issuer = try IdentityIssuer(certificatePEM: anchorPEM, keyPEM: pki.anchorKey.pemRepresentation,
                                        trustAnchorsPEM: anchorPEM, now: pki.now)
        #expect(issuer.certificate == pki.anchor)
    }
}

@Suite("Certificate request review")
struct CertificateRequestReviewTests {
    @Test("a request for exactly the workload's two names, signed by its P-256 key, gives that key")
    func accepts() throws {
        let workload = try TestPKI.identity()
        let key = P256.Signing.PrivateKey()
        let reviewed = CertificateRequestReview.review(pem: try TestPKI.request(for: workload, key: key), for: workload)
        #expect(reviewed == .success(Certificate.PublicKey(key.publicKey)))
    }

    @Test("requests naming another workload are wrong_identity; anything else malformed is bad_csr")
    func refuses() throws {
        let workload = try TestPKI.identity()
        let other = try TestPKI.identity("shop", "db")
        let cases: [(String, CertifyResult)] = [
            (try TestPKI.request(for: other), .wrongIdentity),
            (try TestPKI.request(names: [.dnsName(other.tlsName), .uniformResourceIdentifier(workload.spiffeID)]), .wrongIdentity),
            (try TestPKI.request(names: [.dnsName(workload.tlsName)]), .badCSR),
            (try TestPKI.request(names: [.dnsName(workload.tlsName), .uniformResourceIdentifier(workload.spiffeID), .dnsName("evil.example.com")]), .badCSR),
            (try TestPKI.request(names: [.dnsName(workload.tlsName), .dnsName(workload.tlsName), .uniformResourceIdentifier(workload.spiffeID)]), .badCSR),
            (try TestPKI.request(names: [.dnsName(workload.tlsName), .uniformResourceIdentifier(workload.spiffeID),
                                         .ipAddress(ASN1OctetString(contentBytes: [10, 0, 0, 1]))]), .badCSR),
            (try TestPKI.request(names: []), .badCSR),
            ("not a request", .badCSR),
            ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", .badCSR),
            (String(repeating: "A", count: 10_000), .badCSR),
        ]
        for (pem, expected) in cases {
            guard case .failure(let refusal) = CertificateRequestReview.review(pem: pem, for: workload) else {
                Issue.record("accepted a request that should be \(expected.rawValue)")
                continue
            }
            #expect(refusal.result == expected, "\(refusal)")
        }
    }

    @Test("a request whose signature does not match its key is bad_csr")
    func tamperedSignature() throws {
        let workload = try TestPKI.identity()
        let document = try PEMDocument(pemString: try TestPKI.request(for: workload))
        var der = document.derBytes
        der[der.count - 5] ^= 0x01  // inside the signature's value
        let tampered = PEMDocument(type: "CERTIFICATE REQUEST", derBytes: der).pemString
        guard case .failure(let refusal) = CertificateRequestReview.review(pem: tampered, for: workload) else {
            Issue.record("a tampered request was accepted")
            return
        }
        #expect(refusal.result == .badCSR)
    }

    @Test("a key that is not P-256 is bad_csr")
    func otherCurve() throws {
        let workload = try TestPKI.identity()
        let key = P384.Signing.PrivateKey()
        let extensions = try Certificate.Extensions {
            SubjectAlternativeNames([.dnsName(workload.tlsName), .uniformResourceIdentifier(workload.spiffeID)])
        }
        let request = try CertificateSigningRequest(
            version: .v1, subject: DistinguishedName(), privateKey: .init(key),
            attributes: .init([try .init(ExtensionRequest(extensions: extensions))]), signatureAlgorithm: .ecdsaWithSHA384)
        let result = CertificateRequestReview.review(pem: try request.serializeAsPEM().pemString, for: workload)
        guard case .failure(let refusal) = result else {
            Issue.record("a P-384 request was accepted")
            return
        }
        #expect(refusal.reason.contains("P-256"))
    }
}

@Suite("TokenReview")
struct TokenReviewTests {
    static func answer(authenticated: Bool = true, username: String? = "system:serviceaccount:shop:web",
                       audiences: [String]? = ["identity.needle.dev"], error: String? = nil) -> [UInt8] {
        var status: [String: Any] = ["authenticated": authenticated]
        if let username { status["user"] = ["username": username, "groups": ["system:serviceaccounts"]] }
        if let audiences { status["audiences"] = audiences }
        if let error { status["error"] = error }
        let object: [String: Any] = ["apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status]
        return Array((try? JSONSerialization.data(withJSONObject: object)) ?? Data())
    }

    @Test("the request asks the API about the token for the identity audience")
    func request() throws {
        let body = TokenReview.requestBody(token: "abc.def")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect(object["kind"] as? String == "TokenReview")
        #expect(object["apiVersion"] as? String == "authentication.k8s.io/v1")
        let spec = try #require(object["spec"] as? [String: Any])
        #expect(spec["token"] as? String == "abc.def")
        #expect(spec["audiences"] as? [String] == ["identity.needle.dev"])
    }

    @Test("an authenticated service-account token for the audience names its workload")
    func authenticated() throws {
        let decided = TokenReview.decide(status: 201, body: Self.answer(), trustDomain: TestPKI.trustDomain)
        #expect(decided == .success(try TestPKI.identity()))
    }

    @Test("anything else is refused: unauthenticated, another audience, not a service account, a broken answer")
    func refused() {
        let cases: [(Int, [UInt8], CertifyResult)] = [
            (201, Self.answer(authenticated: false, error: "token expired"), .tokenRefused),
            (201, Self.answer(audiences: ["https://kubernetes.default.svc"]), .tokenRefused),
            (201, Self.answer(audiences: nil), .tokenRefused),
            (201, Self.answer(username: "alice"), .tokenRefused),
            (201, Self.answer(username: nil), .tokenRefused),
            (201, Array("{".utf8), .error),
            (403, Self.answer(), .error),
            (500, [], .error),
        ]
        for (status, body, expected) in cases {
            guard case .failure(let refusal) = TokenReview.decide(status: status, body: body, trustDomain: TestPKI.trustDomain) else {
                Issue.record("accepted an answer that should be \(expected.rawValue)")
                continue
            }
            #expect(refusal.result == expected, "\(refusal)")
        }
    }

    @Test("bearer tokens: present, well-formed, bounded")
    func bearer() {
        #expect(TokenReview.bearerToken("Bearer eyJhbGc.eyJzdWI.c2ln") == .success("eyJhbGc.eyJzdWI.c2ln"))
        #expect(TokenReview.bearerToken("bearer abc") == .success("abc"))
        for bad in [nil, "", "Basic abc", "Bearer", "Bearer a b", "Bearer a\u{0}b", "Bearer " + String(repeating: "a", count: 9000)] {
            guard case .failure(let refusal) = TokenReview.bearerToken(bad) else {
                Issue.record("accepted \(String(describing: bad))")
                continue
            }
            #expect(refusal.result == .tokenRefused)
        }
    }
}
