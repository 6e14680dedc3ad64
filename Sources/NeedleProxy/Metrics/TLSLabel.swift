/// The `tls` label family of a connection's metrics, as Linkerd's proxy writes it (DESIGN §7).
public enum TLSLabel: Hashable, Sendable {
    /// Identity off: the proxy does no TLS at all (`tls="false"`).
    case disabled
    /// Plaintext although identity is on, and why (`no_tls_from_remote` inbound,
    /// `not_provided_by_service_discovery` outbound, ...).
    case noIdentity(reason: String)
    /// The app's own TLS, passed through (`tls="opaque"`).
    case opaque
    /// Mesh TLS terminated by this proxy, from the named peer (`tls="true"`, `client_id`).
    case mesh(clientID: String)
    /// Mesh TLS originated by this proxy, to the named peer (`tls="true"`, `server_id`).
    case meshServer(serverID: String)

    public static let noTLSFromRemote = TLSLabel.noIdentity(reason: "no_tls_from_remote")
    public static let notProvidedByServiceDiscovery = TLSLabel.noIdentity(reason: "not_provided_by_service_discovery")

    /// The label of a connection the proxy does not terminate: passed-through TLS is `opaque`; anything
    /// else is plaintext, for the reason its direction gives (outbound: discovery named no meshed peer).
    static func unterminated(_ direction: Direction, detected: DetectedProtocol?, identityOn: Bool) -> TLSLabel {
        guard identityOn else { return .disabled }
        if case .tls? = detected { return .opaque }
        return direction == .inbound ? .noTLSFromRemote : .notProvidedByServiceDiscovery
    }

    var labels: [(String, String)] {
        switch self {
        case .disabled: return [("tls", "false")]
        case .noIdentity(let reason): return [("tls", "no_identity"), ("no_tls_reason", reason)]
        case .opaque: return [("tls", "opaque")]
        case .mesh(let clientID): return [("tls", "true"), ("client_id", clientID)]
        case .meshServer(let serverID): return [("tls", "true"), ("server_id", serverID)]
        }
    }
}
