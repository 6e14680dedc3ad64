#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import NIOSSL
import X509

/// The webhook's serving certificate, read from files and swapped in without a restart when they change.
/// Kubernetes updates a mounted Secret by repointing a `..data` symlink, so the files are re-read by path
/// (following links) and compared by content, not watched by inode.
public final class ServingCertificate: Sendable {
    public let certificatePath: String
    public let keyPath: String

    private struct Loaded {
        var context: NIOSSLContext
        var certificatePEM: [UInt8]
        var keyPEM: [UInt8]
        var notAfter: Date
    }

    private let loaded: NIOLockedValueBox<Loaded>

    /// The first load must succeed: without a certificate there is nothing to serve.
    public init(certificatePath: String, keyPath: String) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        loaded = NIOLockedValueBox(try Self.load(certificatePath: certificatePath, keyPath: keyPath))
    }

    /// The context new connections use.
    public var context: NIOSSLContext { loaded.withLockedValue { $0.context } }
    public var notAfter: Date { loaded.withLockedValue { $0.notAfter } }

    public enum ReloadResult: Sendable {
        case unchanged
        case reloaded(notAfter: Date)
        /// The new files are unusable (half-written, mismatched key): the previous certificate stays in use.
        case failed(String)
    }

    public func reloadIfChanged() -> ReloadResult {
        let certificate = FileManager.default.contents(atPath: certificatePath).map { [UInt8]($0) }
        let key = FileManager.default.contents(atPath: keyPath).map { [UInt8]($0) }
        let unchanged = loaded.withLockedValue { $0.certificatePEM == certificate && $0.keyPEM == key }
        if unchanged { return .unchanged }
        do {
            let fresh = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
            loaded.withLockedValue { $0 = fresh }
            return .reloaded(notAfter: fresh.notAfter)
        } catch {
            return .failed("\(error)")
        }
    }

    private static func load(certificatePath: String, keyPath: String) throws -> Loaded {
        guard let certificatePEM = FileManager.default.contents(atPath: certificatePath).map({ [UInt8]($0) }) else {
            throw TLSFileError(path: certificatePath, detail: "cannot read the certificate file")
        }
        guard let keyPEM = FileManager.default.contents(atPath: keyPath).map({ [UInt8]($0) }) else {
            throw TLSFileError(path: keyPath, detail: "cannot read the key file")
        }
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(certificatePEM)
        } catch {
            throw TLSFileError(path: certificatePath, detail: "not a PEM certificate chain: \(error)")
        }
        guard !chain.isEmpty else { throw TLSFileError(path: certificatePath, detail: "no certificate in the file") }
        do {
            key = try NIOSSLPrivateKey(bytes: keyPEM, format: .pem)
        } catch {
            throw TLSFileError(path: keyPath, detail: "not a PEM private key: \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        // The API server pins ALPN to HTTP/1.1.
        configuration.applicationProtocols = ["http/1.1"]
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSFileError(path: keyPath, detail: "certificate and key do not form a usable TLS identity: \(error)")
        }
        let leaf: Certificate
        do {
            leaf = try Certificate(pemEncoded: String(decoding: certificatePEM, as: UTF8.self))
        } catch {
            throw TLSFileError(path: certificatePath, detail: "cannot parse the leaf certificate: \(error)")
        }
        return Loaded(context: context, certificatePEM: certificatePEM, keyPEM: keyPEM, notAfter: leaf.notValidAfter)
    }
}

public struct TLSFileError: Error, CustomStringConvertible {
    public let path: String
    public let detail: String
    public var description: String { "\(path): \(detail)" }
}
