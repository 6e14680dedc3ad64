/// The identity service's wire format (DESIGN §7), shared by the controller that serves it and the proxy
/// that calls it. Plain HTTP over TLS with bodies a person can read and `curl` can send:
///
///     POST /v1/certify HTTP/1.1
///     Authorization: Bearer <projected service-account token>
///     Content-Type: application/pkcs10
///
///     -----BEGIN CERTIFICATE REQUEST-----   (PEM PKCS#10, P-256 key, both SANs of the workload)
///
/// answered `200` with `Content-Type: application/pem-certificate-chain`: the leaf, then the issuer, as PEM.
/// A refusal is a `text/plain` line `<result>: <reason>` with the status of `CertifyResult.status`.
public enum IdentityAPI {
    public static let certifyPath = "/v1/certify"
    public static let requestContentType = "application/pkcs10"
    public static let chainContentType = "application/pem-certificate-chain"
    /// A P-256 CSR with two SANs is under 1 KiB in PEM; a token under 2 KiB. Anything far larger is not a CSR.
    public static let maximumRequestBodyBytes = 16 * 1024
}

/// How a certify request ended; the `result` label of `needle_controller_certify_total`.
public enum CertifyResult: String, Sendable, CaseIterable {
    case ok
    /// The token is missing, not authenticated by the API server, for another audience, or not a service account's.
    case tokenRefused = "token_refused"
    /// The body is not a well-signed PKCS#10 request for a P-256 key with exactly the workload's two SANs.
    case badCSR = "bad_csr"
    /// The CSR names a workload other than the token's.
    case wrongIdentity = "wrong_identity"
    /// The controller could not answer: no usable issuer, or the Kubernetes API unreachable.
    case error

    /// The HTTP status a refusal is sent with.
    public var status: Int {
        switch self {
        case .ok: 200
        case .tokenRefused: 401
        case .badCSR: 400
        case .wrongIdentity: 403
        case .error: 503
        }
    }

    /// The refusal body: one line, `<result>: <reason>`.
    public func refusal(_ reason: String) -> String { "\(rawValue): \(reason)\n" }

    /// The result a refusal body names, so the proxy can log and count what the controller said.
    public init?(refusalBody: String) {
        guard let colon = refusalBody.firstIndex(of: ":"), let result = CertifyResult(rawValue: String(refusalBody[..<colon])) else {
            return nil
        }
        self = result
    }
}
