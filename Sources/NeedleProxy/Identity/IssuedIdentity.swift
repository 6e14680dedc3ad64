import NIOSSL
import NeedleContract

/// A certificate chain from the identity service, checked before it is used, with the TLS contexts made
/// from it: the leaf must be for this proxy's key and carry its TLS name; mesh TLS is 1.3 only, prefers
/// the post-quantum hybrid key exchange, and requires and verifies the peer's certificate against the
/// trust anchors (DESIGN §7).
struct IssuedIdentity {
    let chain: [NIOSSLCertificate]
    let notBefore: Double
    let notAfter: Double
    /// Terminates inbound mesh TLS.
    let serverContext: NIOSSLContext
    /// Originates mesh TLS (to the destination service; to meshed endpoints): the same certificate shown as
    /// a client, the server verified against the trust anchors for the name the connection asks for.
    let clientContext: NIOSSLContext
    /// The same client, offering HTTP/2 by ALPN: the destination service multiplexes lookups on one connection.
    let controlPlaneContext: NIOSSLContext

    /// Key exchanges offered, best first: the hybrid post-quantum group, then plain X25519.
    static let curves: [NIOTLSCurve] = [.x25519_MLKEM768, .x25519]

    /// `now`: wall-clock Unix seconds. A certificate that is already expired, or would expire before the
    /// next retry could replace it, is refused (a failure, so the backoff applies instead of a tight loop).
    init(chainPEM: [UInt8], made: CertificateRequestMaker.Made, workload: WorkloadIdentity,
         trustAnchors: [NIOSSLCertificate], now: Double) throws(IdentityError) {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(chainPEM)
        } catch {
            throw IdentityError("the identity service answered something that is not a PEM certificate chain: \(error)")
        }
        guard let leaf = chain.first else { throw IdentityError("the identity service answered an empty chain") }
        let leafKey: [UInt8]
        do {
            leafKey = try leaf.extractPublicKey().toSPKIBytes()
        } catch {
            throw IdentityError("the certificate's key cannot be read: \(error)")
        }
        guard leafKey == made.publicKeyInfo else { throw IdentityError("the certificate is not for this proxy's key") }
        let names = PeerIdentity.dnsNames(of: leaf)
        guard names == [workload.tlsName] else {
            throw IdentityError("the certificate names \(names) instead of \(workload.tlsName)")
        }
        guard Double(leaf.notValidAfter) > now + CertificateRenewal.minimumRetrySeconds else {
            throw IdentityError("the certificate expires at \(leaf.notValidAfter), too soon to use (now \(Int(now))): is the issuer expiring, or a clock wrong?")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                     privateKey: .privateKey(made.key))
        configuration.minimumTLSVersion = .tlsv13
        configuration.curves = Self.curves
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(trustAnchors)
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(made.key)
        client.minimumTLSVersion = .tlsv13
        client.curves = Self.curves
        client.certificateVerification = .fullVerification
        client.trustRoots = .certificates(trustAnchors)
        do {
            serverContext = try NIOSSLContext(configuration: configuration)
            clientContext = try NIOSSLContext(configuration: client)
            var controlPlane = client
            controlPlane.applicationProtocols = ["h2"]
            controlPlaneContext = try NIOSSLContext(configuration: controlPlane)
        } catch {
            throw IdentityError("the certificate and key do not make TLS contexts: \(error)")
        }
        self.chain = chain
        notBefore = Double(leaf.notValidBefore)
        notAfter = Double(leaf.notValidAfter)
    }
}

/// What a certificate says about its holder, for mesh TLS.
enum PeerIdentity {
    /// The DNS names in the subject alternative names (the mesh's TLS names).
    static func dnsNames(of certificate: NIOSSLCertificate) -> [String] {
        names(of: certificate, type: .dnsName)
    }

    /// The workload a verified mesh certificate names (DESIGN §7): exactly one DNS name, a workload's TLS
    /// name in this trust domain, and exactly its SPIFFE ID as the one URI. The CA only issues such
    /// certificates; checking again means a certificate from another use of the same CA is not a peer.
    static func workload(of certificate: NIOSSLCertificate, trustDomain: DNSName) -> Result<WorkloadIdentity, IdentityError> {
        let dnsNames = names(of: certificate, type: .dnsName)
        guard dnsNames.count == 1, let name = dnsNames.first else {
            return .failure(IdentityError("the peer's certificate carries \(dnsNames.count) DNS names; a mesh certificate carries exactly one"))
        }
        guard let identity = WorkloadIdentity(tlsName: name, trustDomain: trustDomain) else {
            return .failure(IdentityError("the peer's name \(name) is not a workload name of trust domain \(trustDomain)"))
        }
        let uris = names(of: certificate, type: .uri)
        guard uris == [identity.spiffeID] else {
            return .failure(IdentityError("the peer's URI names \(uris) are not exactly its SPIFFE ID \(identity.spiffeID)"))
        }
        return .success(identity)
    }

    private static func names(of certificate: NIOSSLCertificate, type: _SubjectAlternativeName.NameType) -> [String] {
        // NIOSSL's accessor is underscored: this is the one place that uses it.
        certificate._subjectAlternativeNames().compactMap { name in
            guard name.nameType == type else { return nil }
            return name.contents.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
        }
    }
}

struct IdentityError: Error, Equatable, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
