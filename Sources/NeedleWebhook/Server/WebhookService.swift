#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NeedleHTTPService
import NeedleInjection

/// Answers `POST /inject` (DESIGN §4): runs the review, logs one line, counts it. No NIO here.
public struct WebhookService: RequestService {
    public let reviewer: AdmissionReviewer
    public let metrics: WebhookMetrics
    public let logger: Logger
    public let route: RequestRoute

    /// DESIGN §4: 4 MiB; the API server caps request bodies at 3 MiB.
    public static let defaultBodyLimit = 4 * 1024 * 1024

    public init(reviewer: AdmissionReviewer, metrics: WebhookMetrics, logger: Logger, bodyLimit: Int = defaultBodyLimit) {
        self.reviewer = reviewer
        self.metrics = metrics
        self.logger = logger
        route = RequestRoute(method: "POST", path: "/inject", mediaTypes: ["application/json"], bodyLimit: bodyLimit)
    }

    public var bodyLimit: Int { route.bodyLimit }

    public func check(_ head: RequestHead) -> HTTPReply? {
        route.problem(with: head).map { HTTPReply.error($0.status, $0.message) }
    }

    public func respond(to head: RequestHead, body: [UInt8]) async -> HTTPReply {
        await review(Data(body))
    }

    /// Bodies up to this size are reviewed on the event loop that read them (a typical review takes well
    /// under a millisecond); bigger ones go to the concurrency pool so one cannot hold up a loop.
    public static let atHandBodyLimit = 256 * 1024

    public func replyAtHand(to head: RequestHead, body: [UInt8]) -> HTTPReply? {
        guard body.count <= Self.atHandBodyLimit else { return nil }
        let clock = ContinuousClock()
        let start = clock.now
        guard let outcome = reviewer.reviewAtHand(Data(body)) else { return nil }
        return finish(outcome, elapsed: clock.now - start)
    }

    public func refusal(status: Int, message: String) -> HTTPReply { .error(status, message) }

    public func review(_ body: Data) async -> HTTPReply {
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: Result<(response: Data, summary: ReviewSummary), ReviewError>
        do {
            outcome = .success(try await reviewer.review(body))
        } catch {
            outcome = .failure(error)
        }
        return finish(outcome, elapsed: clock.now - start)
    }

    /// Counts, logs and answers one review.
    private func finish(_ outcome: Result<(response: Data, summary: ReviewSummary), ReviewError>, elapsed: Duration) -> HTTPReply {
        switch outcome {
        case .success(let (response, summary)):
            metrics.recordAdmission(summary.result, duration: elapsed)
            var metadata: Logger.Metadata = [
                "namespace": "\(summary.namespace)",
                "pod": "\(summary.podName)",
                "decision": "\(summary.result.decision.outcome.rawValue)",
                "reason": "\(summary.result.decision.reason.rawValue)",
                "duration_ms": "\(Self.milliseconds(elapsed))",
                "uid": "\(summary.uid)",
            ]
            if summary.dryRun { metadata["dry_run"] = "true" }
            if !summary.result.warnings.isEmpty { metadata["warnings"] = "\(summary.result.warnings.count)" }
            logger.info("admission", metadata: metadata)
            for warning in summary.result.warnings {
                logger.warning("ignored annotation", metadata: ["namespace": "\(summary.namespace)", "pod": "\(summary.podName)",
                                                                "warning": "\(warning)"])
            }
            return HTTPReply(status: 200, body: [UInt8](response))
        case .failure(let error):
            metrics.recordHTTPError(status: error.httpStatus)
            logger.error("review failed", metadata: ["status": "\(error.httpStatus)", "error": "\(error)"])
            return .error(error.httpStatus, error.description)
        }
    }

    /// Requests refused before a review (404/405/408/413/415).
    public func recordRejection(_ reply: HTTPReply) {
        metrics.recordHTTPError(status: reply.status)
        logger.notice("request rejected", metadata: ["status": "\(reply.status)"])
    }

    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let micros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return "\(micros / 1000).\(String(micros % 1000 + 1000).dropFirst())"
    }
}
