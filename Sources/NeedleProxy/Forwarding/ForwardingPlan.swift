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
    /// Mesh TLS addressed to this proxy: terminated (client certificate required), then the inner stream
    /// is detected and carried as any other, with the peer's identity.
    case meshTLS

    /// `meshServerName`: this proxy's TLS name when it terminates mesh TLS here (inbound, with a
    /// certificate); nil otherwise. TLS for any other name is the app's own and passes through.
    static func plan(for detected: DetectedProtocol, meshServerName: String? = nil) -> ForwardingPlan {
        switch detected {
        case .http1: return .http1
        case .http2: return .http2
        case .tls(let serverName):
            if let meshServerName, serverName == meshServerName { return .meshTLS }
            return .tcp
        case .opaque: return .tcp
        }
    }
}
