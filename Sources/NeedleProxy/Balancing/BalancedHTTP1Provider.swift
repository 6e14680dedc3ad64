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
    private var metrics: EndpointMetrics
    /// The endpoint `acquireImmediately` chose but found no idle connection for: `acquire` uses it.
    private var chosen: Choice?

    private struct Choice {
        let endpoint: UpstreamEndpoint
        let metrics: TargetMetrics?
    }

    init(pool: UpstreamPool, destination: ListenAddress, lookups: DestinationLookups, metrics: EndpointMetrics) {
        self.pool = pool
        self.destination = destination
        self.lookups = lookups
        self.metrics = metrics
    }

    func acquireImmediately() -> HTTP1UpstreamConnection? {
        let choice = choose()
        guard let connection = pool.checkoutIdle(choice.endpoint) else {
            chosen = choice
            return nil
        }
        connection.acquiredAt = NIODeadline.now().uptimeNanoseconds
        connection.endpointMetrics = choice.metrics
        connection.handler.timeNextResponse()
        return connection
    }

    func acquire() -> EventLoopFuture<HTTP1UpstreamConnection> {
        let choice = chosen ?? choose()
        chosen = nil
        let endpoint = choice.endpoint
        let started = NIODeadline.now().uptimeNanoseconds
        return pool.checkout(endpoint).assumeIsolated().map { connection in
            connection.acquiredAt = started
            connection.endpointMetrics = choice.metrics
            connection.handler.timeNextResponse()
            return connection
        }.flatMapErrorThrowing { [self] error in
            lookups.finished(destination, endpoint: endpoint.address, rtt: NIODeadline.now().uptimeNanoseconds &- started,
                             succeeded: false)
            throw error
        }.nonisolated()
    }

    func release(_ connection: HTTP1UpstreamConnection, reusable: Bool) {
        report(connection)
        pool.checkin(connection, target: connection.endpoint, reusable: reusable)
    }

    func detach(_ connection: HTTP1UpstreamConnection) {
        report(connection)
        pool.detach(connection)
    }

    private func report(_ connection: HTTP1UpstreamConnection) {
        let sample = BalancerSample.http1(acquiredAt: connection.acquiredAt, responseHeadAt: connection.handler.responseHeadAt,
                                          now: NIODeadline.now().uptimeNanoseconds, peerClosed: connection.handler.peerClosed,
                                          reused: connection.reused)
        lookups.finished(destination, endpoint: connection.endpoint.address, rtt: sample.rtt, succeeded: sample.succeeded)
    }

    private func choose() -> Choice {
        guard let endpoint = lookups.choose(destination, using: &random) else {
            return Choice(endpoint: UpstreamEndpoint(destination), metrics: metrics.original)
        }
        return Choice(endpoint: UpstreamEndpoint(endpoint), metrics: metrics.of(endpoint))
    }
}

@available(*, unavailable)
extension BalancedHTTP1Provider: Sendable {}
