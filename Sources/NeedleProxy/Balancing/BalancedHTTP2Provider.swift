import NIOCore
import NeedleContract

/// The streams of one outbound h2c client connection to a discovered destination, balanced per request
/// (DESIGN §8): each new stream asks the destination's balancer for an endpoint and opens on that endpoint's
/// HTTP/2 connection (one per endpoint for this client connection, made on first use, mesh TLS when the
/// endpoint is meshed; each replaced on loss or GOAWAY as `HTTP2UpstreamProvider` does).
final class BalancedHTTP2Provider: UpstreamProvider, ClosableUpstreams {
    private let eventLoop: any EventLoop
    private let destination: ListenAddress
    private let lookups: DestinationLookups
    private let connectTimeout: TimeAmount
    private let meshTLS: MeshTLSClient?
    private var random = SplitMix64()
    private var metrics: EndpointMetrics
    private var endpoints: [UpstreamEndpoint: HTTP2UpstreamProvider] = [:]
    private var closed = false
    /// The destination's endpoint-set generation last checked for departed endpoints.
    private var seenGeneration: UInt64?

    init(eventLoop: any EventLoop, destination: ListenAddress, lookups: DestinationLookups, connectTimeout: TimeAmount,
         meshTLS: MeshTLSClient?, metrics: EndpointMetrics) {
        self.metrics = metrics
        self.eventLoop = eventLoop
        self.destination = destination
        self.lookups = lookups
        self.connectTimeout = connectTimeout
        self.meshTLS = meshTLS
    }

    func acquireImmediately() -> UpstreamConnection? { nil }

    func acquire() -> EventLoopFuture<UpstreamConnection> {
        guard !closed else {
            return eventLoop.makeFailedFuture(UpstreamFailure.connectFailed("the client connection is closing"))
        }
        let discovered = lookups.choose(destination, using: &random)
        let endpoint = discovered.map(UpstreamEndpoint.init) ?? UpstreamEndpoint(destination)
        let endpointMetrics = discovered.map { metrics.of($0) } ?? metrics.original
        retireDepartedEndpoints()
        let provider = endpoints[endpoint] ?? {
            let made = HTTP2UpstreamProvider(eventLoop: eventLoop, target: endpoint, connectTimeout: connectTimeout, meshTLS: meshTLS)
            endpoints[endpoint] = made
            return made
        }()
        let started = NIODeadline.now().uptimeNanoseconds
        return provider.acquire().assumeIsolated().map { stream in
            stream.endpoint = endpoint
            stream.acquiredAt = started
            stream.endpointMetrics = endpointMetrics
            stream.handler.timesResponses = true
            return stream
        }.flatMapErrorThrowing { [self] error in
            // A client that left while its stream waited for a connection says nothing about the endpoint.
            lookups.finished(destination, endpoint: endpoint.address, rtt: NIODeadline.now().uptimeNanoseconds &- started,
                             succeeded: closed ? nil : false)
            throw error
        }.nonisolated()
    }

    func release(_ connection: UpstreamConnection, reusable: Bool) {
        let sample = BalancerSample.http2(acquiredAt: connection.acquiredAt, responseHeadAt: connection.handler.responseHeadAt,
                                          now: NIODeadline.now().uptimeNanoseconds)
        if let endpoint = connection.endpoint {
            lookups.finished(destination, endpoint: endpoint.address, rtt: sample.rtt, succeeded: sample.succeeded)
        }
        connection.handler.delegate = nil
        if !reusable { connection.channel.close(promise: nil) }
    }

    /// The client connection is gone: so are its upstream connections.
    func close() {
        closed = true
        for provider in endpoints.values { provider.close() }
        endpoints = [:]
    }

    /// An endpoint that left the destination keeps no connection open for this client: streams in flight
    /// there finish, new ones go elsewhere. Checked when the destination's endpoint set changed.
    private func retireDepartedEndpoints() {
        let generation = lookups.generation(destination)
        guard generation != seenGeneration else { return }
        var pending = false
        for (endpoint, provider) in endpoints where !lookups.contains(destination, endpoint: endpoint) {
            if provider.retire() {
                endpoints[endpoint] = nil
            } else {
                pending = true
            }
        }
        // A provider still connecting is asked again on the next stream.
        seenGeneration = pending ? nil : generation
    }
}

@available(*, unavailable)
extension BalancedHTTP2Provider: Sendable {}
