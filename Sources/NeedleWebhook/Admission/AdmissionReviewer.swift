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
        let review: AdmissionReviewRequest
        do {
            review = try JSONDecoder().decode(AdmissionReviewRequest.self, from: body)
        } catch {
            throw .badRequest("body is not an AdmissionReview JSON document: \(Self.describe(error))")
        }
        let apiVersion = review.apiVersion ?? ""
        guard AdmissionAPIVersion.supported.contains(apiVersion), review.kind == "AdmissionReview" else {
            throw .badRequest("expected apiVersion admission.k8s.io/v1 or admission.k8s.io/v1beta1 and kind AdmissionReview, "
                + "got apiVersion \"\(apiVersion)\" kind \"\(review.kind ?? "")\"")
        }
        guard let request = review.request else { throw .badRequest("AdmissionReview has no request") }
        guard let uid = request.uid, !uid.isEmpty else { throw .badRequest("AdmissionReview request has no uid") }

        let subject = AdmissionSubject(
            kindGroup: request.kind?.group ?? "", kind: request.kind?.kind ?? "",
            subResource: request.subResource ?? "", operation: request.operation ?? "",
            namespace: request.namespace ?? "", object: request.object
        )
        var result: InjectionResult
        switch injector.evaluate(subject, namespace: nil) {
        case .done(let done):
            result = done
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

        var response = AdmissionReviewResponse.Response(uid: uid, allowed: true)
        if !result.patch.isEmpty {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            do {
                response.patch = try encoder.encode(result.patch).base64EncodedString()
                response.patchType = "JSONPatch"
            } catch {
                // Cannot happen for values built from strings and integers; fail open rather than block pods.
                result.patch = []
            }
        }
        if !result.warnings.isEmpty { response.warnings = result.warnings }
        response.auditAnnotations = ["decision": result.decision.outcome.rawValue, "reason": result.decision.reason.rawValue]

        let summary = ReviewSummary(uid: uid, apiVersion: apiVersion, namespace: injector.effectiveNamespace(subject),
                                    podName: subject.pod?.displayName ?? (request.name ?? ""), result: result,
                                    dryRun: request.dryRun ?? false)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            let data = try encoder.encode(AdmissionReviewResponse(apiVersion: apiVersion, response: response))
            return (data, summary)
        } catch {
            throw .badRequest("could not encode the response: \(error)")
        }
    }

    /// DecodingError descriptions are long; keep the useful part.
    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context):
            return context.debugDescription
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "\(context.debugDescription) at \(path.isEmpty ? "top level" : path)"
        case DecodingError.keyNotFound(let key, _):
            return "missing key \(key.stringValue)"
        default:
            return "\(error)"
        }
    }
}
