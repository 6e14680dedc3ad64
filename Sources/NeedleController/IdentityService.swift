#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NeedleContract
import NeedleHTTPService
import NeedleIdentity

/// `POST /v1/certify` (DESIGN §7, wire format in `IdentityAPI`): a proxy's token is reviewed by the
/// Kubernetes API, its CSR must ask for exactly that workload's names, and the issuer signs. Every answer
/// is counted by result and logged once; a refusal names its reason. No NIO here.
public struct IdentityService: RequestService {
    let issuers: IssuerStore
    let tokenReviewer: any TokenReviewing
    let metrics: ControllerMetrics
    let logger: Logger
    let route = RequestRoute(method: "POST", path: IdentityAPI.certifyPath, mediaTypes: [IdentityAPI.requestContentType],
                             bodyLimit: IdentityAPI.maximumRequestBodyBytes)

    public init(issuers: IssuerStore, tokenReviewer: any TokenReviewing, metrics: ControllerMetrics, logger: Logger) {
        self.issuers = issuers
        self.tokenReviewer = tokenReviewer
        self.metrics = metrics
        self.logger = logger
    }

    public var bodyLimit: Int { route.bodyLimit }
    var trustDomain: DNSName { issuers.controllerIdentity.trustDomain }

    public func check(_ head: RequestHead) -> HTTPReply? {
        guard let problem = route.problem(with: head) else { return nil }
        return refusal(status: problem.status, message: problem.message)
    }

    /// A body of the wrong type or size cannot be a CSR: `bad_csr`. A wrong path or method, or a client too
    /// slow to send its body, is no certify request at all: plain text, not counted as one.
    public func refusal(status: Int, message: String) -> HTTPReply {
        switch status {
        case 413, 415:
            return .text(status, CertifyResult.badCSR.refusal(message))
        default:
            return .text(status, message + "\n")
        }
    }

    public func recordRejection(_ reply: HTTPReply) {
        let body = String(decoding: reply.body, as: UTF8.self)
        if let result = CertifyResult(refusalBody: body) { metrics.recordCertify(result) }
        logger.notice("request refused", metadata: ["status": "\(reply.status)", "reason": "\(body.trimmingNewline)"])
    }

    public func respond(to head: RequestHead, body: [UInt8]) async -> HTTPReply {
        switch await certify(authorization: head.field("authorization"), pem: String(decoding: body, as: UTF8.self)) {
        case .success(let (identity, issued)):
            metrics.recordCertify(.ok)
            logger.info("certified", metadata: ["identity": "\(identity.tlsName)",
                                                "not_after": "\(issued.certificate.notValidAfter)"])
            return HTTPReply(status: 200, contentType: IdentityAPI.chainContentType, body: Array(issued.chainPEM.utf8))
        case .failure(let refusal):
            metrics.recordCertify(refusal.result)
            logger.notice("certify refused", metadata: ["result": "\(refusal.result.rawValue)", "reason": "\(refusal.reason)"])
            return .text(refusal.result.status, refusal.result.refusal(refusal.reason))
        }
    }

    /// The checks in the order that costs least: the token's shape and the CSR's syntax before the API is
    /// asked anything; the names only once the API said whose token it is.
    func certify(authorization: String?, pem: String) async -> Result<(WorkloadIdentity, IssuedCertificate), CertifyRefusal> {
        let token: String
        switch TokenReview.bearerToken(authorization) {
        case .success(let value): token = value
        case .failure(let refusal): return .failure(refusal)
        }
        if case .failure(let refusal) = CertificateRequestReview.parse(pem: pem) { return .failure(refusal) }
        let answer: (status: Int, body: [UInt8])
        let clock = ContinuousClock()
        let started = clock.now
        do {
            answer = try await tokenReviewer.review(token: token)
            metrics.recordTokenReview(duration: clock.now - started)
        } catch {
            return .failure(CertifyRefusal(.error, "the Kubernetes API cannot be reached to review the token: \(error)"))
        }
        let identity: WorkloadIdentity
        switch TokenReview.decide(status: answer.status, body: answer.body, trustDomain: trustDomain) {
        case .success(let value): identity = value
        case .failure(let refusal): return .failure(refusal)
        }
        let publicKey: CertificateRequestReview.PublicKey
        switch CertificateRequestReview.review(pem: pem, for: identity) {
        case .success(let value): publicKey = value
        case .failure(let refusal): return .failure(refusal)
        }
        do {
            let issued = try issuers.issuer.issue(for: identity, publicKey: publicKey, lifetime: issuers.lifetime, now: Date())
            return .success((identity, issued))
        } catch {
            return .failure(CertifyRefusal(.error, "the issuer cannot sign: \(error)"))
        }
    }
}

extension String {
    var trimmingNewline: Substring { self.hasSuffix("\n") ? self.dropLast() : Substring(self) }
}
