import NeedleContract

/// The request metrics of each endpoint of one outbound destination, for one client connection: made once
/// per endpoint (through `ProxyMetrics`' lock and table), then a dictionary look-up per request.
struct EndpointMetrics {
    /// For requests sent to the original destination (the Service has no endpoint left): plaintext.
    let original: TargetMetrics
    private let make: (DestinationEndpoint) -> TargetMetrics
    private var made: [DestinationEndpoint: TargetMetrics] = [:]

    init(original: TargetMetrics, make: @escaping (DestinationEndpoint) -> TargetMetrics) {
        self.original = original
        self.make = make
    }

    mutating func of(_ endpoint: DestinationEndpoint) -> TargetMetrics {
        if let existing = made[endpoint] { return existing }
        let created = make(endpoint)
        made[endpoint] = created
        return created
    }
}
