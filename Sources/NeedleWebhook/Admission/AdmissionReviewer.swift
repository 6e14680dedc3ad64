#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleContract
import NeedleInjection

/// Why a review could not be answered; each maps to an HTTP status (DESIGN §4).
public enum ReviewError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not JSON, not an AdmissionReview, or missing `request.uid`: 400.
    case badRequest(String)
    /// The decision needs the namespace and it cannot be looked up: 500, so the cluster's failurePolicy decides.
    case namespaceUnavailable(namespace: String, detail: String)

    public var httpStatus: Int {
        switch self {
        case .badRequest: return 400
        case .namespaceUnavailable: return 500
        }
    }

    public var description: String {
        switch self {
        case .badRequest(let detail): return detail
        case .namespaceUnavailable(let namespace, let detail):
            return "cannot look up namespace \"\(namespace)\": \(detail)"
        }
    }
}

/// What was decided for one review, for logs and metrics.
public struct ReviewSummary: Sendable {
    public var uid: String
    public var apiVersion: String
    public var namespace: String
    public var podName: String
    public var result: InjectionResult
    public var dryRun: Bool
}

/// Runs one AdmissionReview through the injector: the same code serves `needle review` and the HTTPS server.
public struct AdmissionReviewer: Sendable {
    public let injector: Injector
    public let namespaces: any NamespaceDirectory

    public init(injector: Injector, namespaces: any NamespaceDirectory) {
        self.injector = injector
        self.namespaces = namespaces
    }

    /// Decodes, decides and encodes. Returns the response body and what was decided.
    public func review(_ body: Data) async throws(ReviewError) -> (response: Data, summary: ReviewSummary) {
        let parsed = try ParsedReview(body)
        switch try step(parsed, namespace: nil) {
        case .answered(let answer):
            return answer
        case .needsNamespace(let name):
            let metadata: NamespaceMetadata
            do {
                metadata = try await namespaces.namespace(named: name)
            } catch {
                throw .namespaceUnavailable(namespace: name, detail: "\(error)")
            }
            guard case .answered(let answer) = try step(parsed, namespace: metadata) else {
                throw .namespaceUnavailable(namespace: name, detail: "the decision still needs the namespace")
            }
            return answer
        }
    }

    /// The same review without waiting, when the namespace it needs (if any) is at hand; nil otherwise, and
    /// then `review` does it. The server calls this on the thread the request arrived on.
    public func reviewAtHand(_ body: Data) -> Result<(response: Data, summary: ReviewSummary), ReviewError>? {
        do throws(ReviewError) {
            let parsed = try ParsedReview(body)
            switch try step(parsed, namespace: nil) {
            case .answered(let answer):
                return .success(answer)
            case .needsNamespace(let name):
                switch namespaces.namespaceAtHand(named: name) {
                case nil:
                    return nil
                case .failure(let error)?:
                    throw .namespaceUnavailable(namespace: name, detail: "\(error)")
                case .success(let metadata)?:
                    guard case .answered(let answer) = try step(parsed, namespace: metadata) else {
                        throw .namespaceUnavailable(namespace: name, detail: "the decision still needs the namespace")
                    }
                    return .success(answer)
                }
            }
        } catch {
            return .failure(error)
        }
    }

    private struct ParsedReview {
        let review: AdmissionReviewRequest
        let subject: AdmissionSubject

        init(_ body: Data) throws(ReviewError) {
            review = try AdmissionReviewRequest(body)
            let request = review.request
            subject = AdmissionSubject(kindGroup: request.kindGroup, kind: request.kind, subResource: request.subResource,
                                       operation: request.operation, namespace: request.namespace, object: request.object)
        }
    }

    private enum Step {
        case answered((response: Data, summary: ReviewSummary))
        case needsNamespace(String)
    }

    /// Decides with what is known; answers, or names the namespace it needs.
    private func step(_ parsed: ParsedReview, namespace: NamespaceMetadata?) throws(ReviewError) -> Step {
        let result: InjectionResult
        switch injector.evaluate(parsed.subject, namespace: namespace) {
        case .done(let done): result = done
        case .malformed(let problem): throw .badRequest(problem)
        case .needsNamespace(let name): return .needsNamespace(name)
        }
        let request = parsed.review.request
        var response = AdmissionReviewResponse(apiVersion: parsed.review.apiVersion, uid: request.uid)
        if !result.patch.isEmpty {
            response.patch = JSONWriter.bytes(.array(result.patch.map(\.json)))
        }
        response.warnings = result.warnings
        response.auditAnnotations = ["decision": result.decision.outcome.rawValue, "reason": result.decision.reason.rawValue]
        let summary = ReviewSummary(uid: request.uid, apiVersion: parsed.review.apiVersion,
                                    namespace: injector.effectiveNamespace(parsed.subject),
                                    podName: parsed.subject.pod?.displayName ?? request.name, result: result, dryRun: request.dryRun)
        return .answered((Data(response.encoded()), summary))
    }
}
