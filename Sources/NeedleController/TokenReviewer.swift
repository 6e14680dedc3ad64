import NIOCore
import NeedleIdentity
import NeedleKubernetes

/// Asks the Kubernetes API about a token: the HTTP status and body of the TokenReview it creates. Throws
/// only when the API cannot be reached; what the answer means is `TokenReview.decide`'s business.
public protocol TokenReviewing: Sendable {
    func review(token: String) async throws -> (status: Int, body: [UInt8])
}

public struct KubernetesTokenReviewer: TokenReviewing {
    let client: KubernetesClient
    /// A TokenReview answer is a few hundred bytes.
    static let maximumAnswerBytes = 256 * 1024

    public init(client: KubernetesClient) {
        self.client = client
    }

    public func review(token: String) async throws -> (status: Int, body: [UInt8]) {
        try await client.post(TokenReview.path, json: TokenReview.requestBody(token: token), timeout: .seconds(10),
                              limit: Self.maximumAnswerBytes)
    }
}
