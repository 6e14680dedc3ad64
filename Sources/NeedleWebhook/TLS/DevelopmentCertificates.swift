#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// `--dev`: a throwaway CA and a serving certificate for localhost, written where curl can find the CA.
public enum DevelopmentCertificates {
    public struct Files: Sendable {
        public let ca: String
        public let certificate: String
        public let key: String
    }

    public static func write(to directory: String) throws -> Files {
        let authority = try CertificateAuthority.generate(commonName: "Needle development CA", validity: 7 * 86_400)
        let issued = try authority.issueServerCertificate(dnsNames: ["localhost"], ipAddresses: [[127, 0, 0, 1], ipv6Loopback],
                                                          validity: 7 * 86_400)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let files = Files(ca: directory + "/ca.pem", certificate: directory + "/tls.crt", key: directory + "/tls.key")
        try Data(try authority.certificatePEM.utf8).write(to: URL(filePath: files.ca))
        try Data(issued.certificatePEM.utf8).write(to: URL(filePath: files.certificate))
        try Data(issued.privateKeyPEM.utf8).write(to: URL(filePath: files.key))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: files.key)
        return files
    }

    static let ipv6Loopback: [UInt8] = Array(repeating: 0, count: 15) + [1]
}

/// Re-reads the serving certificate files on an interval; a bad new pair keeps the old one serving.
public enum CertificateReloadLoop {
    public static func run(certificate: ServingCertificate, metrics: WebhookMetrics, logger: Logger, interval: Duration) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            switch certificate.reloadIfChanged() {
            case .unchanged:
                break
            case .reloaded(let notAfter):
                metrics.recordCertificateLoad(success: true, notAfterUnixSeconds: Int64(notAfter.timeIntervalSince1970))
                logger.notice("serving certificate reloaded", metadata: ["not_after": "\(notAfter)"])
            case .failed(let reason):
                metrics.recordCertificateLoad(success: false, notAfterUnixSeconds: nil)
                logger.error("new serving certificate rejected; the previous one stays in use", metadata: ["error": "\(reason)"])
            }
        }
    }
}
