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
        let review = try AdmissionReviewRequest(body)
        let request = review.request
        let subject = AdmissionSubject(
            kindGroup: request.kindGroup, kind: request.kind, subResource: request.subResource,
            operation: request.operation, namespace: request.namespace, object: request.object
        )
        var result: InjectionResult
        switch injector.evaluate(subject, namespace: nil) {
        case .done(let done):
            result = done
        case .malformed(let problem):
            throw .badRequest(problem)
        case .needsNamespace(let name):
            let metadata: NamespaceMetadata
            do {
                metadata = try await namespaces.namespace(named: name)
            } catch {
                throw .namespaceUnavailable(namespace: name, detail: "\(error)")
            }
            guard case .done(let done) = injector.evaluate(subject, namespace: metadata) else {
                throw .namespaceUnavailable(namespace: name, detail: "the decision still needs the namespace")
            }
            result = done
        }

        var response = AdmissionReviewResponse(apiVersion: review.apiVersion, uid: request.uid)
        if !result.patch.isEmpty {
            response.patch = JSONWriter.bytes(.array(result.patch.map(\.json)))
        }
        response.warnings = result.warnings
        response.auditAnnotations = ["decision": result.decision.outcome.rawValue, "reason": result.decision.reason.rawValue]

        let summary = ReviewSummary(uid: request.uid, apiVersion: review.apiVersion, namespace: injector.effectiveNamespace(subject),
                                    podName: subject.pod?.displayName ?? request.name, result: result,
                                    dryRun: request.dryRun)
        return (Data(response.encoded()), summary)
    }
}
