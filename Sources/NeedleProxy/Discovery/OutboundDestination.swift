import NeedleContract

/// Where an outbound connection's traffic goes, from what discovery said about its original destination
/// (DESIGN §8), and how its metrics are labelled. Pure: `ConnectionSetup` asks, the forwarders carry.
enum OutboundDestination: Equatable, Sendable {
    /// To the original destination as it is, in plaintext: discovery off (nil), not known, or a fallback.
    case original(DiscoveryFallback?)
    /// To the endpoints discovery named: HTTP balanced per request, anything else per connection.
    case discovered([DestinationEndpoint])

    init(_ route: DestinationLookupMachine.Route?) {
        switch route {
        case nil: self = .original(nil)
        case .wait?: self = .original(.noAnswer(afterMilliseconds: 0))
        case .original(let why)?: self = .original(why)
        case .endpoints(let endpoints)?: self = endpoints.isEmpty ? .original(.noEndpoints) : .discovered(endpoints)
        }
    }

    /// Protocol detection is skipped and the connection carried as bytes: an endpoint's port is opaque on its
    /// side, where its proxy reads no HTTP, so requests cannot be spread over endpoints anyway.
    var isOpaque: Bool {
        guard case .discovered(let endpoints) = self else { return false }
        return endpoints.contains { $0.opaque }
    }

    /// The `tls` label of a connection balanced over the endpoints: mesh TLS to the server they all are (one
    /// Deployment, one ServiceAccount: the usual case); plaintext otherwise, as discovery named no single peer.
    func tlsLabel(identityOn: Bool) -> TLSLabel {
        guard identityOn else { return .disabled }
        guard case .discovered(let endpoints) = self, let first = endpoints.first?.identity,
              endpoints.allSatisfy({ $0.identity == first })
        else { return .notProvidedByServiceDiscovery }
        return .meshServer(serverID: first)
    }

    /// The `tls` label of a connection to one endpoint.
    static func tlsLabel(for endpoint: DestinationEndpoint, identityOn: Bool) -> TLSLabel {
        guard identityOn else { return .disabled }
        guard let identity = endpoint.identity else { return .notProvidedByServiceDiscovery }
        return .meshServer(serverID: identity)
    }

    /// The `dst_*` labels of a connection balanced over the endpoints.
    var destinationLabels: DestinationLabels {
        guard case .discovered(let endpoints) = self else { return DestinationLabels() }
        return DestinationLabels(shared: endpoints)
    }
}
