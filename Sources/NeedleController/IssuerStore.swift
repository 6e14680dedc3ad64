#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import NIOConcurrencyHelpers
import NIOSSL
import NeedleContract
import NeedleIdentity
import X509

/// The issuer and trust anchors, read from files and re-read when they change (a Secret update swaps a
/// symlink, so files are compared by content, not watched), and the controller's own TLS certificate,
/// which it issues itself for its TLS name. A broken update is refused and the previous issuer keeps
/// signing; the first load must succeed, since without an issuer there is nothing to serve.
public final class IssuerStore: Sendable {
    public struct Files: Sendable {
        public var trustAnchors: String
        public var issuerCertificate: String
        public var issuerKey: String

        public init(trustAnchors: String, issuerCertificate: String, issuerKey: String) {
            self.trustAnchors = trustAnchors
            self.issuerCertificate = issuerCertificate
            self.issuerKey = issuerKey
        }
    }

    /// The controller's own certificate, as TLS contexts for its listeners.
    public struct Serving: Sendable {
        /// For the identity API: proxies have no certificate yet when they call it.
        public let context: NIOSSLContext
        /// For the destination API: a client certificate from the trust anchors is required (DESIGN §8).
        public let mutualContext: NIOSSLContext
        public let notBefore: Date
        public let notAfter: Date

        var renewalTime: Date {
            Date(timeIntervalSince1970: CertificateRenewal.renewalTime(notBefore: notBefore.timeIntervalSince1970,
                                                                       notAfter: notAfter.timeIntervalSince1970))
        }
    }

    public enum Refresh: Sendable, Equatable {
        /// New issuer files were loaded (and a new serving certificate issued with them).
        case reloaded(issuerNotAfter: Date)
        /// The serving certificate reached its renewal time and was issued again.
        case renewedServing(notAfter: Date)
        /// The files changed but are unusable: the previous issuer stays.
        case refused(String)
    }

    private struct Loaded {
        var issuer: IdentityIssuer
        var contents: [[UInt8]?]
        var serving: Serving
    }

    public let files: Files
    public let controllerIdentity: WorkloadIdentity
    public let lifetime: TimeInterval
    private let loaded: NIOLockedValueBox<Loaded>

    public init(files: Files, controllerIdentity: WorkloadIdentity, lifetime: TimeInterval, now: Date = Date()) throws {
        self.files = files
        self.controllerIdentity = controllerIdentity
        self.lifetime = lifetime
        let contents = Self.read(files)
        let issuer = try Self.issuer(from: contents, files: files, now: now)
        let serving = try Self.serving(issuer: issuer, identity: controllerIdentity, lifetime: lifetime, now: now)
        loaded = NIOLockedValueBox(Loaded(issuer: issuer, contents: contents, serving: serving))
    }

    public var issuer: IdentityIssuer { loaded.withLockedValue { $0.issuer } }
    public var serving: Serving { loaded.withLockedValue { $0.serving } }

    /// Re-reads the files; renews the serving certificate when it is due. What happened, in order; nothing
    /// when nothing changed. A refused update does not stop the renewal: the controller's own certificate
    /// must not expire because someone wrote a bad issuer file.
    public func refresh(now: Date = Date()) -> [Refresh] {
        let contents = Self.read(files)
        let current = loaded.withLockedValue { $0 }
        var events: [Refresh] = []
        if contents != current.contents {
            do {
                let issuer = try Self.issuer(from: contents, files: files, now: now)
                let serving = try Self.serving(issuer: issuer, identity: controllerIdentity, lifetime: lifetime, now: now)
                loaded.withLockedValue { $0 = Loaded(issuer: issuer, contents: contents, serving: serving) }
                return [.reloaded(issuerNotAfter: issuer.notAfter)]
            } catch {
                events.append(.refused("\(error)"))
            }
        }
        guard now >= current.serving.renewalTime else { return events }
        do {
            let serving = try Self.serving(issuer: current.issuer, identity: controllerIdentity, lifetime: lifetime, now: now)
            loaded.withLockedValue { $0.serving = serving }
            return events + [.renewedServing(notAfter: serving.notAfter)]
        } catch {
            return events + [.refused("cannot issue the controller's own certificate: \(error)")]
        }
    }

    private static func read(_ files: Files) -> [[UInt8]?] {
        [files.trustAnchors, files.issuerCertificate, files.issuerKey].map { path in
            FileManager.default.contents(atPath: path).map { [UInt8]($0) }
        }
    }

    private static func issuer(from contents: [[UInt8]?], files: Files, now: Date) throws -> IdentityIssuer {
        let paths = [files.trustAnchors, files.issuerCertificate, files.issuerKey]
        var texts: [String] = []
        for (path, bytes) in zip(paths, contents) {
            guard let bytes else { throw IssuerError("cannot read \(path)") }
            texts.append(String(decoding: bytes, as: UTF8.self))
        }
        return try IdentityIssuer(certificatePEM: texts[1], keyPEM: texts[2], trustAnchorsPEM: texts[0], now: now)
    }

    /// A fresh key and a certificate for the controller's TLS name, as a TLS 1.3 server context.
    static func serving(issuer: IdentityIssuer, identity: WorkloadIdentity, lifetime: TimeInterval, now: Date) throws -> Serving {
        let key = P256.Signing.PrivateKey()
        let issued = try issuer.issue(for: identity, publicKey: Certificate.PublicKey(key.publicKey), lifetime: lifetime, now: now)
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(issued.chainPEM.utf8))
        let privateKey = try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                     privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv13
        var mutual = configuration
        // Verify the client's chain against the anchors; no host name to check for a client.
        mutual.certificateVerification = .noHostnameVerification
        // Proxies multiplex their lookups on one HTTP/2 connection; curl and other HTTP/1.1 clients still work.
        mutual.applicationProtocols = ["h2", "http/1.1"]
        mutual.trustRoots = .certificates(try issuer.trustAnchors.map { anchor in
            try NIOSSLCertificate(bytes: Array(try anchor.serializeAsPEM().pemString.utf8), format: .pem)
        })
        return Serving(context: try NIOSSLContext(configuration: configuration), mutualContext: try NIOSSLContext(configuration: mutual),
                       notBefore: issued.certificate.notValidBefore, notAfter: issued.certificate.notValidAfter)
    }
}
