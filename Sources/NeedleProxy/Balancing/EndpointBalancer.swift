import NeedleContract

/// The endpoints of one destination with each one's latency estimate and backoff, as P2C needs them
/// (DESIGN §8). An update keeps the state of endpoints that stay, so a new answer does not forget which
/// endpoint is slow or failing. Pure: the caller brings the clock and the random source.
struct EndpointBalancer: Sendable {
    private(set) var endpoints: [DestinationEndpoint] = []
    private var candidates: [PowerOfTwoChoices.Candidate] = []

    /// Replaces the endpoint list; endpoints already known keep their estimate and backoff.
    mutating func update(_ next: [DestinationEndpoint], now: UInt64) {
        var previous: [ListenAddress: PowerOfTwoChoices.Candidate] = [:]
        for (endpoint, candidate) in zip(endpoints, candidates) { previous[endpoint.address] = candidate }
        endpoints = next
        candidates = next.map { previous[$0.address] ?? PowerOfTwoChoices.Candidate(latency: PeakEWMA(now: now), backoff: EndpointBackoff()) }
    }

    /// The endpoint for the next request (counted as in flight), or nil when there is none.
    mutating func choose<Generator: RandomNumberGenerator>(now: UInt64, using generator: inout Generator) -> DestinationEndpoint? {
        guard let index = PowerOfTwoChoices.choose(candidates, now: now, using: &generator) else { return nil }
        candidates[index].latency.requestStarted()
        return endpoints[index]
    }

    /// A request to `address` ended after `rtt` nanoseconds (to its response head). A failure (no
    /// connection, a failed handshake, a reset before any answer) takes the endpoint out of rotation for a
    /// while; an answer of any status puts it back; nil is no verdict (a stale pooled connection the server
    /// had closed, a client that left first): only the request is no longer in flight.
    mutating func finished(_ address: ListenAddress, rtt: UInt64, succeeded: Bool?, now: UInt64) {
        // The endpoint may have left the set while the request was in flight: nothing to record then.
        guard let index = endpoints.firstIndex(where: { $0.address == address }) else { return }
        candidates[index].latency.requestFinished(rtt: rtt, now: now)
        switch succeeded {
        case true?: candidates[index].backoff.succeeded()
        case false?: candidates[index].backoff.failed(now: now)
        case nil: break
        }
    }
}
