import NIOCore
import NeedleContract

/// The HTTP/1.1 requests of one outbound client connection to a discovered destination, balanced per
/// request (DESIGN §8): each acquire asks the destination's balancer for an endpoint and takes a connection
/// from that endpoint's pool (mesh TLS when the endpoint is meshed); each release reports the request's
/// latency. A connect failure takes the endpoint out of rotation for a while. When the destination has no
/// endpoint left the request goes to the original destination, as kube-proxy would take it.
final class BalancedHTTP1Provider: HTTP1UpstreamProvider {
    private let pool: UpstreamPool
    private let destination: ListenAddress
    private let lookups: DestinationLookups
    private var random = SplitMix64()
    /// The endpoint `acquireImmediately` chose but found no idle connection for: `acquire` uses it.
    private var chosen: UpstreamEndpoint?

    init(pool: UpstreamPool, destination: ListenAddress, lookups: DestinationLookups) {
        self.pool = pool
        self.destination = destination
        self.lookups = lookups
    }

    func acquireImmediately() -> HTTP1UpstreamConnection? {
        let endpoint = choose()
        guard let connection = pool.checkoutIdle(endpoint) else {
            chosen = endpoint
            return nil
        }
        connection.acquiredAt = NIODeadline.now().uptimeNanoseconds
        return connection
    }

    func acquire() -> EventLoopFuture<HTTP1UpstreamConnection> {
        let endpoint = chosen ?? choose()
        chosen = nil
        let started = NIODeadline.now().uptimeNanoseconds
        return pool.checkout(endpoint).assumeIsolated().map { connection in
            connection.acquiredAt = started
            return connection
        }.flatMapErrorThrowing { [self] error in
            lookups.finished(destination, endpoint: endpoint.address, rtt: NIODeadline.now().uptimeNanoseconds &- started,
                             succeeded: false)
            throw error
        }.nonisolated()
    }

    func release(_ connection: HTTP1UpstreamConnection, reusable: Bool) {
        // Any answer, even an error status, shows the endpoint is there.
        lookups.finished(destination, endpoint: connection.endpoint.address,
                         rtt: NIODeadline.now().uptimeNanoseconds &- connection.acquiredAt, succeeded: true)
        pool.checkin(connection, target: connection.endpoint, reusable: reusable)
    }

    private func choose() -> UpstreamEndpoint {
        guard let endpoint = lookups.choose(destination, using: &random) else { return UpstreamEndpoint(destination) }
        return UpstreamEndpoint(endpoint)
    }
}

@available(*, unavailable)
extension BalancedHTTP1Provider: Sendable {}
