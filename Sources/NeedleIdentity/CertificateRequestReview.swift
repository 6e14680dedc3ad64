import Crypto
import NeedleContract
import SwiftASN1
import X509

/// Checks a proxy's certificate signing request (DESIGN §7): PEM PKCS#10, signed by its own key, for a P-256
/// key, asking for exactly the workload's two names (its TLS name as DNS SAN, its SPIFFE ID as URI SAN).
/// Pure: the token has already said who the workload is.
public enum CertificateRequestReview {
    /// The request's public key, to be certified; or why not. A request naming another workload is
    /// `wrong_identity`; one that is malformed, badly signed or asks for anything else is `bad_csr`.
    public typealias PublicKey = Certificate.PublicKey

    public static func review(pem: String, for identity: WorkloadIdentity) -> Result<Certificate.PublicKey, CertifyRefusal> {
        let request: CertificateSigningRequest
        switch parse(pem: pem) {
        case .success(let parsed): request = parsed
        case .failure(let refusal): return .failure(refusal)
        }
        let names: SubjectAlternativeNames
        do {
            guard let requested = try request.attributes.extensionRequest?.extensions.subjectAlternativeNames else {
                return .failure(CertifyRefusal(.badCSR, "the request asks for no subject alternative names; it must ask for \(expected(identity))"))
            }
            names = requested
        } catch {
            return .failure(CertifyRefusal(.badCSR, "the request's extension request cannot be read: \(error)"))
        }
        var dnsNames: [String] = []
        var uris: [String] = []
        for name in names {
            switch name {
            case .dnsName(let dns): dnsNames.append(dns)
            case .uniformResourceIdentifier(let uri): uris.append(uri)
            default:
                return .failure(CertifyRefusal(.badCSR, "the request asks for a name other than a DNS name or URI (\(name)); it must ask for \(expected(identity))"))
            }
        }
        if dnsNames == [identity.tlsName], uris == [identity.spiffeID] {
            return .success(request.publicKey)
        }
        // Names of the mesh's form, but another workload's: the token and the request disagree.
        let meshSuffix = ".serviceaccount.identity.needle.\(identity.trustDomain)"
        if dnsNames.contains(where: { $0.hasSuffix(meshSuffix) && $0 != identity.tlsName })
            || uris.contains(where: { $0.hasPrefix("spiffe://") && $0 != identity.spiffeID }) {
            let asked = (dnsNames + uris).joined(separator: ", ")
            return .failure(CertifyRefusal(.wrongIdentity, "the request asks for \(asked) but the token is for \(identity.serviceAccountUsername)"))
        }
        let asked = (dnsNames + uris).isEmpty ? "no names" : (dnsNames + uris).joined(separator: ", ")
        return .failure(CertifyRefusal(.badCSR, "the request asks for \(asked); it must ask for exactly \(expected(identity))"))
    }

    /// A well-formed, well-signed request for a P-256 key, whoever it names.
    public static func parse(pem: String) -> Result<CertificateSigningRequest, CertifyRefusal> {
        let request: CertificateSigningRequest
        do {
            request = try CertificateSigningRequest(pemEncoded: pem)
        } catch {
            return .failure(CertifyRefusal(.badCSR, "the body is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----): \(error)"))
        }
        guard P256.Signing.PublicKey(request.publicKey) != nil else {
            return .failure(CertifyRefusal(.badCSR, "the request's key is not an ECDSA P-256 key"))
        }
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            return .failure(CertifyRefusal(.badCSR, "the request's signature does not verify with its own key"))
        }
        return .success(request)
    }

    private static func expected(_ identity: WorkloadIdentity) -> String {
        "DNS:\(identity.tlsName) and URI:\(identity.spiffeID)"
    }
}
