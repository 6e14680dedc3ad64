#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

/// Re-reads the issuer files and renews the controller's own certificate on an interval, reporting each
/// change; a refused update leaves the previous issuer signing.
public enum IssuerRefreshLoop {
    public static func run(store: IssuerStore, metrics: ControllerMetrics, logger: Logger, interval: Duration) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            for event in store.refresh() { report(event, store: store, metrics: metrics, logger: logger) }
        }
    }

    static func report(_ refresh: IssuerStore.Refresh, store: IssuerStore, metrics: ControllerMetrics, logger: Logger) {
        switch refresh {
        case .reloaded(let notAfter):
            metrics.recordIssuerLoad(success: true, notAfterUnixSeconds: notAfter.timeIntervalSince1970)
            metrics.recordServingCertificate(notAfterUnixSeconds: store.serving.notAfter.timeIntervalSince1970)
            logger.notice("issuer reloaded", metadata: ["issuer_not_after": "\(notAfter)"])
        case .renewedServing(let notAfter):
            metrics.recordServingCertificate(notAfterUnixSeconds: notAfter.timeIntervalSince1970)
            logger.info("own certificate renewed", metadata: ["not_after": "\(notAfter)"])
        case .refused(let reason):
            metrics.recordIssuerLoad(success: false, notAfterUnixSeconds: nil)
            logger.error("issuer update refused; the previous issuer keeps signing", metadata: ["error": "\(reason)"])
        }
    }
}
