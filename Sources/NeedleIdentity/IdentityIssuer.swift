#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import NeedleContract
import SwiftASN1
import X509

/// The intermediate CA that signs workload certificates, checked against the trust anchors before it is
/// used (DESIGN §7): a broken or foreign issuer must never sign, because no proxy would trust its work.
public struct IdentityIssuer: Sendable {
    /// The issuer's certificate, then any further intermediates up to (not including) a trust anchor.
    public let chain: [Certificate]
    public let trustAnchors: [Certificate]
    private let key: P256.Signing.PrivateKey
    /// The PEM sent after every leaf: the issuer and its intermediates.
    private let chainPEM: String

    /// Clock skew between nodes: certificates start this much before they are issued.
    public static let clockSkewAllowance: TimeInterval = 20

    public var certificate: Certificate { chain[0] }
    public var notAfter: Date { chain.map(\.notValidAfter).min() ?? chain[0].notValidAfter }

    public init(certificatePEM: String, keyPEM: String, trustAnchorsPEM: String, now: Date) throws(IssuerError) {
        let anchors = try Self.certificates(trustAnchorsPEM, what: "trust anchors")
        let chain = try Self.certificates(certificatePEM, what: "issuer certificate")
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: keyPEM)
        } catch {
            throw IssuerError("the issuer key is not a PEM ECDSA P-256 private key: \(error)")
        }
        let issuer = chain[0]
        guard Certificate.PublicKey(key.publicKey) == issuer.publicKey else {
            throw IssuerError("the issuer key does not belong to the issuer certificate")
        }
        let constraints: BasicConstraints?
        let usage: KeyUsage?
        do {
            constraints = try issuer.extensions.basicConstraints
            usage = try issuer.extensions.keyUsage
        } catch {
            throw IssuerError("the issuer certificate's extensions cannot be read: \(error)")
        }
        guard let constraints, case .isCertificateAuthority = constraints else {
            throw IssuerError("the issuer certificate is not a CA (basicConstraints CA:TRUE missing)")
        }
        if let usage, !usage.keyCertSign {
            throw IssuerError("the issuer certificate may not sign certificates (keyUsage lacks keyCertSign)")
        }
        for certificate in chain where !(certificate.notValidBefore...certificate.notValidAfter).contains(now) {
            throw IssuerError("\(certificate.subject) is not valid now (valid \(certificate.notValidBefore) to \(certificate.notValidAfter))")
        }
        try Self.verifyChain(chain, to: anchors)
        self.chain = chain
        self.trustAnchors = anchors
        self.key = key
        var pem = ""
        for certificate in chain {
            do {
                pem += try certificate.serializeAsPEM().pemString + "\n"
            } catch {
                throw IssuerError("the issuer certificate cannot be written as PEM: \(error)")
            }
        }
        chainPEM = pem
    }

    /// A certificate for `identity`'s key: both names, client and server use, backdated by the clock-skew
    /// allowance and never outliving the issuer.
    public func issue(for identity: WorkloadIdentity, publicKey: Certificate.PublicKey, lifetime: TimeInterval,
                      now: Date) throws -> IssuedCertificate {
        // Files are re-checked only when they change: an issuer left in place can expire while serving.
        guard now < self.notAfter else {
            throw IssuerError("the issuer certificate expired at \(self.notAfter): install a renewed issuer")
        }
        let notAfter = min(now + lifetime, self.notAfter)
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey,
            notValidBefore: now - Self.clockSkewAllowance,
            notValidAfter: notAfter,
            issuer: self.certificate.subject,
            subject: try DistinguishedName { CommonName(identity.tlsName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames([.dnsName(identity.tlsName), .uniformResourceIdentifier(identity.spiffeID)])
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(keyIdentifier: try self.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        let leafPEM = try certificate.serializeAsPEM().pemString + "\n"
        return IssuedCertificate(certificate: certificate, chainPEM: leafPEM + chainPEM)
    }

    /// Each certificate of the chain is signed by the next, and the last by a trust anchor (or is one).
    private static func verifyChain(_ chain: [Certificate], to anchors: [Certificate]) throws(IssuerError) {
        for (certificate, signer) in zip(chain, chain.dropFirst()) where !signed(certificate, by: signer) {
            throw IssuerError("\(certificate.subject) is not signed by the next certificate in the issuer file, \(signer.subject)")
        }
        guard let last = chain.last else { throw IssuerError("no issuer certificate") }
        if anchors.contains(last) { return }
        guard anchors.contains(where: { signed(last, by: $0) }) else {
            throw IssuerError("the issuer certificate \(last.subject) is not signed by any of the \(anchors.count) trust anchors")
        }
    }

    private static func signed(_ certificate: Certificate, by signer: Certificate) -> Bool {
        certificate.issuer == signer.subject && signer.publicKey.isValidSignature(certificate.signature, for: certificate)
    }

    static func certificates(_ pem: String, what: String) throws(IssuerError) -> [Certificate] {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw IssuerError("the \(what) are not PEM: \(error)")
        }
        var certificates: [Certificate] = []
        for document in documents where document.discriminator == "CERTIFICATE" {
            do {
                certificates.append(try Certificate(pemDocument: document))
            } catch {
                throw IssuerError("a certificate in the \(what) cannot be parsed: \(error)")
            }
        }
        guard !certificates.isEmpty else { throw IssuerError("no certificate in the \(what)") }
        return certificates
    }
}

/// A signed workload certificate and the PEM chain to send back (leaf, then issuer).
public struct IssuedCertificate: Sendable {
    public let certificate: Certificate
    public let chainPEM: String
}

public struct IssuerError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
