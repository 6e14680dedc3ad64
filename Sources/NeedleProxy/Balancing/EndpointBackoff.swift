/// Takes a failing endpoint out of rotation for a while (DESIGN §8): after each consecutive failure it
/// waits 1 s, doubling up to 60 s; a success puts it back at once. Pure; times are monotonic nanoseconds.
struct EndpointBackoff: Equatable, Sendable {
    static let firstPenaltyNanoseconds: UInt64 = 1_000_000_000
    static let maximumPenaltyNanoseconds: UInt64 = 60_000_000_000

    private(set) var consecutiveFailures = 0
    /// Not chosen before this time unless nothing else is available.
    private(set) var availableAt: UInt64 = 0

    func isAvailable(now: UInt64) -> Bool { now >= availableAt }

    /// A failure while the endpoint is already out of rotation deepens nothing: requests that were in flight
    /// together see one outage, and it must count once (seven concurrent failures are not seven in a row).
    mutating func failed(now: UInt64) {
        guard isAvailable(now: now) else { return }
        consecutiveFailures += 1
        let doublings = min(consecutiveFailures - 1, 6)
        let penalty = min(Self.firstPenaltyNanoseconds << UInt64(doublings), Self.maximumPenaltyNanoseconds)
        availableAt = now &+ penalty
    }

    mutating func succeeded() {
        consecutiveFailures = 0
        availableAt = 0
    }
}
