import NeedleContract

/// What one destination lookup knows, built from its answer's event lines (`DestinationAPI`). Changes are
/// staged and take effect at each `sync`, so a reader never sees half a batch. Pure.
struct DestinationResolution: Equatable, Sendable {
    enum Known: Equatable, Sendable {
        /// No complete answer yet.
        case pending
        /// The controller knows no Service or pod at the address: send traffic to it as it is.
        case notKnown
        /// The endpoints to balance over, in address order (empty: a Service with no ready endpoint).
        case endpoints([DestinationEndpoint])
    }

    private(set) var known = Known.pending
    private var staged: [ListenAddress: DestinationEndpoint] = [:]
    private var stagedNotKnown = false

    /// Applies one event; true when it changed what is known (only a `sync` can).
    @discardableResult
    mutating func receive(_ event: DestinationEvent) -> Bool {
        switch event {
        case .reset:
            staged = [:]
            stagedNotKnown = false
        case .add(let endpoint):
            staged[endpoint.address] = endpoint
            stagedNotKnown = false
        case .remove(let address):
            staged[address] = nil
        case .notKnown:
            staged = [:]
            stagedNotKnown = true
        case .sync:
            let next: Known = stagedNotKnown ? .notKnown : .endpoints(staged.values.sorted { $0.address.description < $1.address.description })
            guard next != known else { return false }
            known = next
            return true
        }
        return false
    }
}
