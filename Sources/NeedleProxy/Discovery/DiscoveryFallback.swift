/// Why an outbound connection goes to its original destination as it is, in plaintext, instead of to
/// endpoints discovery named (DESIGN §8). The metric reason is a fixed word, so the label stays bounded
/// whatever the underlying error said; the description keeps the detail for the log.
enum DiscoveryFallback: Equatable, Sendable, CustomStringConvertible {
    /// The controller knows no Service or pod at the address: the normal case for traffic leaving the
    /// cluster, so not counted as a fallback.
    case notKnown
    /// A Service with no ready endpoint: kube-proxy knows no better, but an endpoint may be on its way.
    case noEndpoints
    /// No first answer in time.
    case noAnswer(afterMilliseconds: Int64)
    /// The destination service cannot be reached, or its stream ended and nothing was known yet.
    case unavailable(String)

    /// The `reason` of `outbound_discovery_fallback_total`; nil when it is no fallback.
    var metricReason: String? {
        switch self {
        case .notKnown: return nil
        case .noEndpoints: return "no_endpoints"
        case .noAnswer: return "timeout"
        case .unavailable: return "unavailable"
        }
    }

    var description: String {
        switch self {
        case .notKnown: return "not known to the destination service"
        case .noEndpoints: return "the Service has no ready endpoint"
        case .noAnswer(let milliseconds): return "no answer from the destination service within \(milliseconds) ms"
        case .unavailable(let reason): return reason
        }
    }
}
