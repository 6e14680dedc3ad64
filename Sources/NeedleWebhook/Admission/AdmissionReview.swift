#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleInjection

/// The subset of `admission.k8s.io/v1` (and `v1beta1`) AdmissionReview the injector reads, taken from the
/// body in one pass (`JSONParser`): the pod stays a `JSONValue` and is never decoded into a model.
struct AdmissionReviewRequest {
    var apiVersion: String
    var request: Request

    struct Request {
        var uid: String
        var kindGroup: String
        var kind: String
        var subResource: String
        var name: String
        var namespace: String
        var operation: String
        var object: JSONValue?
        var dryRun: Bool
    }

    init(_ body: Data) throws(ReviewError) {
        let parsed: Result<JSONValue, JSONParser.Failure> = body.withUnsafeBytes { bytes in
            do throws(JSONParser.Failure) { return .success(try JSONParser.parse(bytes, keeping: PodView.admissionReviewShape)) } catch {
                return .failure(error)
            }
        }
        let document: JSONValue
        switch parsed {
        case .success(let value): document = value
        case .failure(let failure): throw .badRequest("body is not an AdmissionReview JSON document: \(failure)")
        }
        guard document.objectValue != nil else { throw .badRequest("body is not an AdmissionReview: expected a JSON object") }
        apiVersion = try Self.string(document, "apiVersion", path: "apiVersion")
        let kind = try Self.string(document, "kind", path: "kind")
        guard AdmissionAPIVersion.supported.contains(apiVersion), kind == "AdmissionReview" else {
            throw .badRequest("expected apiVersion admission.k8s.io/v1 or admission.k8s.io/v1beta1 and kind AdmissionReview, "
                + "got apiVersion \"\(apiVersion)\" kind \"\(kind)\"")
        }
        guard let request = document["request"], request.objectValue != nil else {
            throw .badRequest("AdmissionReview has no request object")
        }
        let uid = try Self.string(request, "uid", path: "request.uid")
        guard !uid.isEmpty else { throw .badRequest("AdmissionReview request has no uid") }
        let resourceKind = request["kind"]
        if let resourceKind, !resourceKind.isNull, resourceKind.objectValue == nil {
            throw .badRequest("request.kind must be an object like {\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"}")
        }
        let dryRun: Bool
        switch request["dryRun"] {
        case nil, .null?: dryRun = false
        case .bool(let flag)?: dryRun = flag
        default: throw .badRequest("request.dryRun must be true or false")
        }
        self.request = Request(
            uid: uid,
            kindGroup: try Self.string(resourceKind ?? .null, "group", path: "request.kind.group"),
            kind: try Self.string(resourceKind ?? .null, "kind", path: "request.kind.kind"),
            subResource: try Self.string(request, "subResource", path: "request.subResource"),
            name: try Self.string(request, "name", path: "request.name"),
            namespace: try Self.string(request, "namespace", path: "request.namespace"),
            operation: try Self.string(request, "operation", path: "request.operation"),
            object: request["object"],
            dryRun: dryRun)
    }

    /// A string member; missing or null reads as empty, any other type is a 400 naming the field.
    private static func string(_ object: JSONValue, _ key: String, path: String) throws(ReviewError) -> String {
        switch object[key] {
        case nil, .null?: return ""
        case .string(let text)?: return text
        default: throw .badRequest("\(path) must be a string")
        }
    }
}

/// The AdmissionReview the injector answers with, written by `JSONWriter` (keys sorted).
struct AdmissionReviewResponse {
    var apiVersion: String
    var uid: String
    /// The JSON Patch, sent base64-encoded (standard alphabet, padded) as Go's `[]byte` is written in JSON.
    var patch: [UInt8]?
    var warnings: [String] = []
    var auditAnnotations: [String: String] = [:]

    init(apiVersion: String, uid: String) {
        self.apiVersion = apiVersion
        self.uid = uid
    }

    /// The response's JSON, keys in sorted order. Written directly rather than through a `JSONValue`: the
    /// base64 patch (most of the bytes) needs no escaping, so it is copied, not scanned.
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + (patch.map { $0.count * 4 / 3 } ?? 0))
        out += #"{"apiVersion":"#.utf8
        JSONWriter.writeString(apiVersion, into: &out)
        out += #","kind":"AdmissionReview","response":{"allowed":true"#.utf8
        if !auditAnnotations.isEmpty {
            out += #","auditAnnotations":"#.utf8
            JSONWriter.write(.object(auditAnnotations.mapValues(JSONValue.string)), into: &out)
        }
        if let patch {
            out += #","patch":""#.utf8
            out += Data(patch).base64EncodedString().utf8 // the base64 alphabet needs no JSON escaping
            out += #"","patchType":"JSONPatch""#.utf8
        }
        out += #","uid":"#.utf8
        JSONWriter.writeString(uid, into: &out)
        if !warnings.isEmpty {
            out += #","warnings":"#.utf8
            JSONWriter.write(.array(warnings.map(JSONValue.string)), into: &out)
        }
        out += "}}".utf8
        return out
    }
}

public enum AdmissionAPIVersion {
    public static let v1 = "admission.k8s.io/v1"
    public static let v1beta1 = "admission.k8s.io/v1beta1"
    public static let supported = [v1, v1beta1]
}
