import NIOCore
import NeedleContract

/// Where an upstream connection goes and how (DESIGN §7–§8): an address, and the peer proxy's TLS name when
/// discovery says the endpoint is meshed. Pools key their connections by it, so a plaintext connection is
/// never handed to a request meant for mesh TLS, nor one verified for another name.
struct UpstreamEndpoint: Hashable, Sendable, CustomStringConvertible {
    let address: ListenAddress
    /// nil: plaintext. Otherwise mesh TLS with this SNI, and the server's certificate must name exactly it.
    let meshTLSName: String?

    init(_ address: ListenAddress, meshTLSName: String? = nil) {
        self.address = address
        self.meshTLSName = meshTLSName
    }

    /// The endpoint discovery named; its identity means mesh TLS.
    init(_ endpoint: DestinationEndpoint) {
        self.init(endpoint.address, meshTLSName: endpoint.identity)
    }

    /// The socket address to connect to; an endpoint that asks for mesh TLS without an identity to speak it
    /// with (`meshTLS` nil) is refused, never reached in plaintext.
    func socketAddress(meshTLS: MeshTLSClient?) throws(UpstreamFailure) -> SocketAddress {
        if meshTLSName != nil, meshTLS == nil { throw UpstreamFailure.connectFailed("mesh TLS asked for without an identity") }
        do {
            return try OriginalDestination.socketAddress(address)
        } catch {
            throw UpstreamFailure.connectFailed("\(error)")
        }
    }

    var description: String {
        guard let meshTLSName else { return address.description }
        return "\(address) (\(meshTLSName))"
    }
}
