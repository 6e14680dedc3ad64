import Crypto
import NIOSSL
import NeedleContract
import X509

/// A fresh key made in memory (never written anywhere) and the PKCS#10 request the identity service wants
/// for it: ECDSA P-256, and exactly the workload's two names (DESIGN §7).
struct CertificateRequestMaker {
    struct Made {
        /// PEM, the body of `POST /v1/certify`.
        let requestPEM: String
        /// The same key, for TLS.
        let key: NIOSSLPrivateKey
        /// Its SubjectPublicKeyInfo, to recognise the certificate that comes back.
        let publicKeyInfo: [UInt8]
    }

    static func make(for workload: WorkloadIdentity) throws -> Made {
        let key = P256.Signing.PrivateKey()
        let extensions = try Certificate.Extensions {
            SubjectAlternativeNames([.dnsName(workload.tlsName), .uniformResourceIdentifier(workload.spiffeID)])
        }
        let attributes = CertificateSigningRequest.Attributes([try .init(ExtensionRequest(extensions: extensions))])
        let request = try CertificateSigningRequest(version: .v1, subject: DistinguishedName(), privateKey: .init(key),
                                                    attributes: attributes, signatureAlgorithm: .ecdsaWithSHA256)
        return Made(requestPEM: try request.serializeAsPEM().pemString + "\n",
                    key: try NIOSSLPrivateKey(bytes: Array(key.derRepresentation), format: .der),
                    publicKeyInfo: Array(key.publicKey.derRepresentation))
    }
}
