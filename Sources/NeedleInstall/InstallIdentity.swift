#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleIdentity
import NeedleWebhook

/// The mesh's identity PKI as `needle install` ships it (DESIGN §7): the trust anchors every proxy trusts,
/// and the issuer (an intermediate CA signed by a trust anchor) the controller signs with.
public struct InstallIdentity: Equatable, Sendable {
    public var trustAnchorsPEM: String
    public var issuerCertificatePEM: String
    public var issuerKeyPEM: String

    public static let trustAnchorValidity: TimeInterval = 10 * 365 * 86_400
    public static let issuerValidity: TimeInterval = 365 * 86_400

    public init(trustAnchorsPEM: String, issuerCertificatePEM: String, issuerKeyPEM: String) {
        self.trustAnchorsPEM = trustAnchorsPEM
        self.issuerCertificatePEM = issuerCertificatePEM
        self.issuerKeyPEM = issuerKeyPEM
    }

    /// A fresh trust anchor (10 years) and an issuer it signs (1 year).
    public static func make(trustDomain: String, now: Date = Date()) throws -> InstallIdentity {
        let anchor = try CertificateAuthority.generate(commonName: "root.identity.needle.\(trustDomain)", validity: trustAnchorValidity, now: now)
        let issuer = try anchor.issueIntermediate(commonName: "identity.needle.\(trustDomain)", validity: issuerValidity, now: now)
        return InstallIdentity(trustAnchorsPEM: try anchor.certificatePEM + "\n", issuerCertificatePEM: try issuer.certificatePEM + "\n",
                               issuerKeyPEM: issuer.privateKeyPEM)
    }

    /// Given material, checked the way the controller will check it, so a bad pair fails the install and
    /// not the controller's start.
    public static func checked(trustAnchorsPEM: String, issuerCertificatePEM: String, issuerKeyPEM: String,
                               now: Date = Date()) throws -> InstallIdentity {
        _ = try IdentityIssuer(certificatePEM: issuerCertificatePEM, keyPEM: issuerKeyPEM, trustAnchorsPEM: trustAnchorsPEM, now: now)
        return InstallIdentity(trustAnchorsPEM: trustAnchorsPEM, issuerCertificatePEM: issuerCertificatePEM, issuerKeyPEM: issuerKeyPEM)
    }
}
