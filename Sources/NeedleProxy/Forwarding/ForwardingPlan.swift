/// How an accepted connection is carried, decided from its first bytes (an opaque port skips detection
/// and is always `.tcp`). Pure, so a new way of
/// carrying traffic (mutual TLS) is a new case here rather than a flag in a handler.
enum ForwardingPlan: Equatable, Sendable {
    /// Byte for byte to the destination (opaque ports, foreign TLS, unknown protocols, detection timeouts).
    case tcp
    /// HTTP/1.1 exchanges, each to a pooled upstream connection.
    case http1
    /// HTTP/2 with prior knowledge: each client stream to a stream of an upstream HTTP/2 connection.
    case http2

    static func plan(for detected: DetectedProtocol) -> ForwardingPlan {
        switch detected {
        case .http1: return .http1
        case .http2: return .http2
        case .tls, .opaque: return .tcp
        }
    }
}
