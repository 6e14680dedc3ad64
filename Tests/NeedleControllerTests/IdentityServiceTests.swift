import Crypto
import Foundation
import IdentityTestSupport
import Logging
@testable import NeedleController
import NeedleContract
import NeedleHTTPService
import NeedleIdentity
import NIOConcurrencyHelpers
import SwiftASN1
import Testing
import X509

/// A TokenReview API that answers what the test says and remembers what it was asked.
final class FakeTokenReviewer: TokenReviewing {
    enum Answer: Sendable {
        case user(String, audiences: [String] = [Mesh.identityTokenAudience])
        case unauthenticated
        case unreachable
    }

    private let answer: Answer
    let asked = NIOLockedValueBox<[String]>([])

    init(_ answer: Answer) { self.answer = answer }

    func review(token: String) async throws -> (status: Int, body: [UInt8]) {
        asked.withLockedValue { $0.append(token) }
        switch answer {
        case .user(let username, let audiences):
            let object: [String: Any] = ["kind": "TokenReview", "status": ["authenticated": true, "user": ["username": username], "audiences": audiences]]
            return (201, Array(try JSONSerialization.data(withJSONObject: object)))
        case .unauthenticated:
            return (201, Array(#"{"kind":"TokenReview","status":{"authenticated":false,"error":"token expired"}}"#.utf8))
        case .unreachable:
            throw URLError(.cannotConnectToHost)
        }
    }
}

/// Issuer files in a temporary directory, as a Secret and a ConfigMap would mount them.
struct IssuerDirectory {
    let path: String
    let files: IssuerStore.Files

    init(_ inputs: TestPKI.IssuerInputs) throws {
        path = NSTemporaryDirectory() + "needle-issuer-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        files = .init(trustAnchors: path + "/ca-bundle.crt", issuerCertificate: path + "/tls.crt", issuerKey: path + "/tls.key")
        try write(inputs)
    }

    func write(_ inputs: TestPKI.IssuerInputs) throws {
        try inputs.trustAnchorsPEM.write(toFile: files.trustAnchors, atomically: true, encoding: .utf8)
        try inputs.certificatePEM.write(toFile: files.issuerCertificate, atomically: true, encoding: .utf8)
        try inputs.keyPEM.write(toFile: files.issuerKey, atomically: true, encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

@Suite("Identity service")
struct IdentityServiceTests {
    let pki: TestPKI
    let directory: IssuerDirectory
    let store: IssuerStore

    init() throws {
        pki = try TestPKI()
        directory = try IssuerDirectory(try pki.makeIssuer())
        store = try IssuerStore(files: directory.files, controllerIdentity: try WorkloadIdentity.controller(trustDomain: TestPKI.trustDomain),
                                lifetime: 86400, now: pki.now)
    }

    func service(_ answer: FakeTokenReviewer.Answer) -> (IdentityService, FakeTokenReviewer, ControllerMetrics) {
        let reviewer = FakeTokenReviewer(answer)
        let metrics = ControllerMetrics()
        return (IdentityService(issuers: store, tokenReviewer: reviewer, metrics: metrics, logger: Logger(label: "test")), reviewer, metrics)
    }

    func head(authorization: String? = "Bearer tok.en", contentType: String = IdentityAPI.requestContentType,
              path: String = IdentityAPI.certifyPath, method: String = "POST", length: Int? = nil) -> RequestHead {
        var fields = [(name: "Content-Type", value: contentType)]
        if let authorization { fields.append((name: "Authorization", value: authorization)) }
        if let length { fields.append((name: "Content-Length", value: String(length))) }
        return RequestHead(method: method, uri: path, fields: fields, keepAlive: true)
    }

    func count(_ metrics: ControllerMetrics, _ result: CertifyResult) -> String? {
        let text = String(decoding: metrics.render(), as: UTF8.self)
        return text.split(separator: "\n").first { $0.hasPrefix("needle_controller_certify_total{result=\"\(result.rawValue)\"}") }
            .map { String($0.split(separator: " ").last ?? "") }
    }

    @Test("a proxy with a good token and CSR gets its leaf and the issuer, for its own names, counted ok")
    func certifies() async throws {
        defer { directory.remove() }
        let (service, reviewer, metrics) = service(.user("system:serviceaccount:shop:web"))
        let workload = try TestPKI.identity()
        let key = P256.Signing.PrivateKey()
        let reply = await service.respond(to: head(), body: Array(try TestPKI.request(for: workload, key: key).utf8))
        #expect(reply.status == 200)
        #expect(reply.contentType == IdentityAPI.chainContentType)
        let chain = try PEMDocument.parseMultiple(pemString: String(decoding: reply.body, as: UTF8.self)).map { try Certificate(pemDocument: $0) }
        #expect(chain.count == 2)
        #expect(chain.first?.publicKey == Certificate.PublicKey(key.publicKey))
        #expect(chain.last == pki.issuer)
        #expect(reviewer.asked.withLockedValue { $0 } == ["tok.en"])
        #expect(count(metrics, .ok) == "1")
    }

    @Test("refusals carry their result, status and reason, and are counted; a bad CSR never reaches the API",
          arguments: [("no token", 401, CertifyResult.tokenRefused), ("bad csr", 400, .badCSR), ("other workload", 403, .wrongIdentity),
                      ("unauthenticated", 401, .tokenRefused), ("api down", 503, .error), ("wrong audience", 401, .tokenRefused),
                      ("not a service account", 401, .tokenRefused)])
    func refuses(scenario: String, status: Int, result: CertifyResult) async throws {
        defer { directory.remove() }
        let answer: FakeTokenReviewer.Answer = switch scenario {
        case "other workload": .user("system:serviceaccount:shop:db")
        case "unauthenticated": .unauthenticated
        case "api down": .unreachable
        case "wrong audience": .user("system:serviceaccount:shop:web", audiences: ["https://kubernetes.default.svc"])
        case "not a service account": .user("alice")
        default: .user("system:serviceaccount:shop:web")
        }
        let (service, reviewer, metrics) = service(answer)
        let pem = scenario == "bad csr" ? "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            : try TestPKI.request(for: try TestPKI.identity())
        let reply = await service.respond(to: head(authorization: scenario == "no token" ? nil : "Bearer tok.en"), body: Array(pem.utf8))
        #expect(reply.status == status)
        let text = String(decoding: reply.body, as: UTF8.self)
        #expect(text.hasPrefix("\(result.rawValue): "), "\(text)")
        #expect(text.hasSuffix("\n"))
        #expect(count(metrics, result) == "1")
        if scenario == "bad csr" || scenario == "no token" { #expect(reviewer.asked.withLockedValue { $0 }.isEmpty) }
    }

    @Test("heads that cannot carry a CSR are refused before the body: type and size as bad_csr, path and method plainly")
    func headChecks() throws {
        defer { directory.remove() }
        let (service, _, metrics) = service(.user("system:serviceaccount:shop:web"))
        let cases: [(RequestHead, Int, Bool)] = [
            (head(contentType: "application/json"), 415, true),
            (head(length: IdentityAPI.maximumRequestBodyBytes + 1), 413, true),
            (head(path: "/v1/other"), 404, false),
            (head(method: "GET"), 405, false),
        ]
        for (requestHead, status, counted) in cases {
            let reply = try #require(service.check(requestHead))
            #expect(reply.status == status)
            #expect(String(decoding: reply.body, as: UTF8.self).hasPrefix("bad_csr: ") == counted)
            service.recordRejection(reply)
        }
        #expect(count(metrics, .badCSR) == "2")
        #expect(service.check(head(length: 900)) == nil)
    }
}

@Suite("Issuer store")
struct IssuerStoreTests {
    @Test("a broken update is refused and the old issuer keeps signing; a good one is taken; the own certificate renews at 70 %")
    func reloads() throws {
        let pki = try TestPKI()
        let directory = try IssuerDirectory(try pki.makeIssuer())
        defer { directory.remove() }
        let controller = try WorkloadIdentity.controller(trustDomain: TestPKI.trustDomain)
        let store = try IssuerStore(files: directory.files, controllerIdentity: controller, lifetime: 1000, now: pki.now)
        #expect(store.refresh(now: pki.now) == [])

        // Half-written key: refused, the old issuer stays.
        var broken = try pki.makeIssuer()
        broken.keyPEM = String(broken.keyPEM.prefix(40))
        try directory.write(broken)
        guard case .refused? = store.refresh(now: pki.now).first else {
            Issue.record("a broken issuer was taken")
            return
        }
        #expect(store.issuer.certificate == pki.issuer)
        // While the bad files stay, the controller's own certificate still renews when it is due.
        let servingDue = store.serving.renewalTime.timeIntervalSince1970
        let renewed = store.refresh(now: Date(timeIntervalSince1970: servingDue + 1))
        #expect(renewed.count == 2 && renewed.last.map { if case .renewedServing = $0 { true } else { false } } == true, "\(renewed)")

        // A new issuer under the same anchor is taken, with a new serving certificate.
        let next = try TestPKI()
        var rotated = try next.makeIssuer()
        rotated.trustAnchorsPEM = try next.anchorPEM + pki.anchorPEM
        try directory.write(rotated)
        #expect(store.refresh(now: pki.now) == [.reloaded(issuerNotAfter: next.issuer.notValidAfter)])
        #expect(store.issuer.certificate == next.issuer)

        // The serving certificate (backdated 20 s, 1000 s lifetime) is due at 70 % of its validity.
        let serving = store.serving
        let due = serving.notBefore.timeIntervalSince1970 + 0.7 * (serving.notAfter.timeIntervalSince1970 - serving.notBefore.timeIntervalSince1970)
        #expect(store.refresh(now: Date(timeIntervalSince1970: due - 1)) == [])
        guard case .renewedServing? = store.refresh(now: Date(timeIntervalSince1970: due + 1)).first else {
            Issue.record("the serving certificate was not renewed when due")
            return
        }
    }

    @Test("the first load must succeed: no issuer, no controller")
    func firstLoad() throws {
        let pki = try TestPKI()
        var inputs = try pki.makeIssuer()
        inputs.trustAnchorsPEM = try TestPKI().anchorPEM
        let directory = try IssuerDirectory(inputs)
        defer { directory.remove() }
        #expect(throws: IssuerError.self) {
            try IssuerStore(files: directory.files, controllerIdentity: try WorkloadIdentity.controller(trustDomain: TestPKI.trustDomain),
                            lifetime: 86400, now: pki.now)
        }
    }
}
