#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import NeedleContract
import SwiftASN1
import X509

/// A throwaway PKI for the tests: a trust anchor, an issuer it signs, and certificate requests.
public struct TestPKI {
    /// The PKI's clock: fixed by default, so tests of validity periods are repeatable; real time for tests
    /// that hand the certificates to BoringSSL, which checks them against the real clock.
    public let now: Date
    public let anchorKey: P256.Signing.PrivateKey
    public let anchor: Certificate
    public let issuerKey: P256.Signing.PrivateKey
    public let issuer: Certificate

    public init(issuerIsCA: Bool = true, issuerValidity: TimeInterval = 365 * 86400,
                now: Date = Date(timeIntervalSince1970: 1_800_000_000)) throws {
        self.now = now
        let anchorKey = P256.Signing.PrivateKey()
        let issuerKey = P256.Signing.PrivateKey()
        self.anchorKey = anchorKey
        self.issuerKey = issuerKey
        let anchorName = try DistinguishedName { CommonName("root.identity.needle.cluster.local") }
        anchor = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(anchorKey.publicKey),
            notValidBefore: now - 86400, notValidAfter: now + 10 * 365 * 86400, issuer: anchorName, subject: anchorName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(anchorKey.publicKey))
            },
            issuerPrivateKey: .init(anchorKey))
        let issuerName = try DistinguishedName { CommonName("identity.needle.cluster.local") }
        issuer = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(issuerKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + issuerValidity, issuer: anchorName, subject: issuerName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(issuerIsCA ? BasicConstraints.isCertificateAuthority(maxPathLength: 0) : BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: !issuerIsCA, keyCertSign: issuerIsCA, cRLSign: issuerIsCA))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(issuerKey.publicKey))
            },
            issuerPrivateKey: .init(anchorKey))
    }

    public var anchorPEM: String { get throws { try anchor.serializeAsPEM().pemString + "\n" } }
    public var issuerPEM: String { get throws { try issuer.serializeAsPEM().pemString + "\n" } }
    public var issuerKeyPEM: String { issuerKey.pemRepresentation }

    public func makeIssuer() throws -> IssuerInputs {
        IssuerInputs(certificatePEM: try issuerPEM, keyPEM: issuerKeyPEM, trustAnchorsPEM: try anchorPEM)
    }

    public struct IssuerInputs {
        public var certificatePEM: String
        public var keyPEM: String
        public var trustAnchorsPEM: String
    }

    public static let trustDomain: DNSName = {
        guard let name = try? DNSName(parsing: "cluster.local") else { preconditionFailure("constant") }
        return name
    }()

    public static func identity(_ namespace: String = "shop", _ serviceAccount: String = "web") throws -> WorkloadIdentity {
        try WorkloadIdentity(namespace: namespace, serviceAccount: serviceAccount, trustDomain: trustDomain)
    }

    /// A PEM CSR asking for `names`, signed by `key` (a fresh P-256 key by default).
    public static func request(names: [GeneralName], key: P256.Signing.PrivateKey = .init()) throws -> String {
        let extensions = try Certificate.Extensions { SubjectAlternativeNames(names) }
        let attributes = CertificateSigningRequest.Attributes([try .init(ExtensionRequest(extensions: extensions))])
        let request = try CertificateSigningRequest(version: .v1, subject: DistinguishedName(), privateKey: .init(key),
                                                    attributes: attributes, signatureAlgorithm: .ecdsaWithSHA256)
        return try request.serializeAsPEM().pemString
    }

    public static func request(for identity: WorkloadIdentity, key: P256.Signing.PrivateKey = .init()) throws -> String {
        try request(names: [.dnsName(identity.tlsName), .uniformResourceIdentifier(identity.spiffeID)], key: key)
    }
}
