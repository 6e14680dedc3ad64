#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleWebhook

extension InstallCertificates {
    /// A serving certificate for the injector's Service names, signed by the given CA or a fresh one.
    /// Returns the authority too, so a fresh CA can be saved for upgrades.
    public static func make(manifest: InstallManifest, authority existing: CertificateAuthority?,
                            now: Date = Date()) throws -> (InstallCertificates, CertificateAuthority) {
        let authority = try existing ?? CertificateAuthority.generate(commonName: "needle-ca", validity: 10 * 365 * 86_400, now: now)
        let issued = try authority.issueServerCertificate(dnsNames: manifest.serviceDNSNames, validity: 365 * 86_400, now: now)
        return (InstallCertificates(caPEM: try authority.certificatePEM, certificatePEM: issued.certificatePEM,
                                    keyPEM: issued.privateKeyPEM), authority)
    }
}
