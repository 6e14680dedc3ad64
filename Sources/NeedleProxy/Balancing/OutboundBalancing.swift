/// What a forwarder needs to balance an outbound connection's requests over the endpoints discovery named:
/// the destination's lookups (balancer choice and results) and each endpoint's metrics.
struct OutboundBalancing {
    let lookups: DestinationLookups
    let metrics: EndpointMetrics
}
