#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleContract

/// The controller's use of the Kubernetes TokenReview API (`authentication.k8s.io/v1`): the request it
/// sends for a proxy's token, and what the answer must say before the token proves a workload. Pure.
public enum TokenReview {
    public static let path = "/apis/authentication.k8s.io/v1/tokenreviews"
    /// A projected token is a JWT of a few hundred bytes to a few KiB; the cap keeps a garbage header cheap.
    public static let maximumTokenBytes = 8 * 1024

    /// The bearer token of an `Authorization` field, or why there is none worth sending to the API.
    public static func bearerToken(_ authorization: String?) -> Result<String, CertifyRefusal> {
        guard let authorization else {
            return .failure(CertifyRefusal(.tokenRefused, "no Authorization field; send Authorization: Bearer <service-account token>"))
        }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            return .failure(CertifyRefusal(.tokenRefused, "the Authorization field is not \"Bearer <token>\""))
        }
        let token = String(parts[1])
        guard token.utf8.count <= maximumTokenBytes else {
            return .failure(CertifyRefusal(.tokenRefused, "the token is over \(maximumTokenBytes) bytes"))
        }
        // JWTs are base64url segments and dots; anything else cannot be a service-account token.
        guard token.utf8.allSatisfy({ isTokenByte($0) }) else {
            return .failure(CertifyRefusal(.tokenRefused, "the token has characters no service-account token has"))
        }
        return .success(token)
    }

    /// The TokenReview object to create for `token`, asking for the identity audience.
    public static func requestBody(token: String, audience: String = Mesh.identityTokenAudience) -> [UInt8] {
        let review = Request(spec: .init(token: token, audiences: [audience]))
        return (try? Array(JSONEncoder().encode(review))) ?? []
    }

    /// What the API answered means: the workload the token belongs to, or why the token proves nothing.
    public static func decide(status: Int, body: [UInt8], trustDomain: DNSName,
                              audience: String = Mesh.identityTokenAudience) -> Result<WorkloadIdentity, CertifyRefusal> {
        guard status == 200 || status == 201 else {
            // 401/403 here mean the controller itself may not review tokens: its problem, not the proxy's.
            return .failure(CertifyRefusal(.error, "the TokenReview API answered HTTP \(status)"))
        }
        let answer: Response
        do {
            answer = try JSONDecoder().decode(Response.self, from: Data(body))
        } catch {
            return .failure(CertifyRefusal(.error, "the TokenReview API answered something that is not a TokenReview: \(error)"))
        }
        guard let result = answer.status, result.authenticated == true else {
            let detail = answer.status?.error.map { ": \($0)" } ?? ""
            return .failure(CertifyRefusal(.tokenRefused, "the API server does not authenticate the token\(detail)"))
        }
        guard result.audiences?.contains(audience) == true else {
            return .failure(CertifyRefusal(.tokenRefused, "the token is not for audience \(audience)"))
        }
        guard let username = result.user?.username else {
            return .failure(CertifyRefusal(.tokenRefused, "the TokenReview names no user"))
        }
        guard let identity = WorkloadIdentity(serviceAccountUsername: username, trustDomain: trustDomain) else {
            return .failure(CertifyRefusal(.tokenRefused, "the token belongs to \(username), not to a service account"))
        }
        return .success(identity)
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "/"):
            return true
        default:
            return false
        }
    }

    struct Request: Encodable {
        struct Spec: Encodable {
            var token: String
            var audiences: [String]
        }

        var apiVersion = "authentication.k8s.io/v1"
        var kind = "TokenReview"
        var spec: Spec
    }

    struct Response: Decodable {
        struct Status: Decodable {
            struct User: Decodable {
                var username: String?
            }

            var authenticated: Bool?
            var user: User?
            var audiences: [String]?
            var error: String?
        }

        var status: Status?
    }
}
