import NeedleContract

/// One original destination's lookup in the proxy (DESIGN §8): the stream to the destination service, what
/// it has said, and which outbound connections use it. Pure: the owner feeds it events with the time and
/// performs the actions. Kept while in use, and for `idleLinger` after the last connection lets go, so a
/// client reconnecting at once finds its answer; retried with a doubling backoff when the stream ends; the
/// last answer stays in use while it is retried (availability first).
struct DestinationLookupMachine: Sendable {
    enum Action: Equatable, Sendable {
        /// Open the stream now.
        case open
        /// Open it again after this many nanoseconds.
        case retry(afterNanoseconds: UInt64)
        /// Close the stream and forget the lookup: nothing has used it for `idleLinger`.
        case discard
    }

    /// Where a new outbound connection goes.
    enum Route: Equatable, Sendable {
        /// No answer yet: wait for one (up to the caller's first-answer timeout).
        case wait
        /// Send it to the original destination, as it is, for this reason (`outbound_discovery_fallback_total`).
        case original(DiscoveryFallback)
        /// Balance over these endpoints.
        case endpoints([DestinationEndpoint])
    }

    static let idleLingerNanoseconds: UInt64 = 5_000_000_000
    static let firstRetryNanoseconds: UInt64 = 1_000_000_000
    static let maximumRetryNanoseconds: UInt64 = 30_000_000_000

    private(set) var resolution = DestinationResolution()
    private(set) var users = 0
    private var streaming = false
    private var failures = 0
    private var idleSince: UInt64?
    /// Why the last stream ended, while none is open (for the fallback reason).
    private var lastProblem: String?

    /// A connection starts using the lookup.
    mutating func acquire() -> [Action] {
        users += 1
        idleSince = nil
        guard !streaming, failures == 0, lastProblem == nil else { return [] }
        streaming = true
        return [.open]
    }

    /// A connection stopped using it.
    mutating func release(now: UInt64) {
        users = max(0, users - 1)
        if users == 0 { idleSince = now }
    }

    /// Events from the stream; true when what is known changed. A complete batch proves the stream works:
    /// the backoff starts again from its first delay.
    mutating func received(_ events: [DestinationEvent]) -> Bool {
        var changed = false
        for event in events {
            if resolution.receive(event) { changed = true }
            if event == .sync {
                failures = 0
                lastProblem = nil
            }
        }
        return changed
    }

    /// The stream ended (or could not be opened): retry after a doubling delay, keeping what is known.
    mutating func ended(_ reason: String) -> [Action] {
        streaming = false
        failures += 1
        lastProblem = reason
        let doublings = UInt64(min(failures - 1, 5))
        return [.retry(afterNanoseconds: min(Self.firstRetryNanoseconds << doublings, Self.maximumRetryNanoseconds))]
    }

    /// The retry delay passed.
    mutating func retryDue() -> [Action] {
        guard !streaming else { return [] }
        streaming = true
        return [.open]
    }

    /// A periodic check: a lookup nobody has used for `idleLinger` is discarded.
    mutating func tick(now: UInt64) -> [Action] {
        guard users == 0, let idleSince, now &- idleSince >= Self.idleLingerNanoseconds else { return [] }
        streaming = false
        return [.discard]
    }

    var route: Route {
        switch resolution.known {
        case .pending:
            if let lastProblem { return .original(.unavailable(lastProblem)) }
            return .wait
        case .notKnown:
            return .original(.notKnown)
        case .endpoints(let endpoints):
            // A Service with no ready endpoint: the original destination may still answer (kube-proxy knows
            // no better, but an endpoint may be on its way); better than refusing.
            return endpoints.isEmpty ? .original(.noEndpoints) : .endpoints(endpoints)
        }
    }
}
