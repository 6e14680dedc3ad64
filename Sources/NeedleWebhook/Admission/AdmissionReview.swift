#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleInjection

/// The subset of `admission.k8s.io/v1` (and `v1beta1`) AdmissionReview the injector reads.
struct AdmissionReviewRequest: Decodable {
    var apiVersion: String?
    var kind: String?
    var request: Request?

    struct Request: Decodable {
        var uid: String?
        var kind: GroupVersionKind?
        var subResource: String?
        var name: String?
        var namespace: String?
        var operation: String?
        var object: JSONValue?
        var dryRun: Bool?
    }

    struct GroupVersionKind: Decodable {
        var group: String?
        var version: String?
        var kind: String?
    }
}

/// The AdmissionReview the injector answers with.
struct AdmissionReviewResponse: Encodable {
    var apiVersion: String
    var kind = "AdmissionReview"
    var response: Response

    struct Response: Encodable {
        var uid: String
        var allowed: Bool
        var patchType: String?
        /// Base64 (standard alphabet, padded) JSON Patch, as Go's `[]byte` is written in JSON.
        var patch: String?
        var warnings: [String]?
        var auditAnnotations: [String: String]?
    }
}

public enum AdmissionAPIVersion {
    public static let v1 = "admission.k8s.io/v1"
    public static let v1beta1 = "admission.k8s.io/v1beta1"
    public static let supported = [v1, v1beta1]
}
