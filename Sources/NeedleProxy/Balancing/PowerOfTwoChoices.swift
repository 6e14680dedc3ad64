/// The balancer's choice (DESIGN §8, Linkerd's P2C): of two endpoints picked at random among those in
/// rotation, the one with the lower peak-EWMA load. Two random picks instead of the global minimum keep
/// many proxies from all piling onto the same momentarily fastest endpoint, at constant cost. When every
/// endpoint is out of rotation the one that comes back soonest is tried: availability first.
enum PowerOfTwoChoices {
    struct Candidate: Equatable, Sendable {
        var latency: PeakEWMA
        var backoff: EndpointBackoff
    }

    /// The index of the endpoint to use, or nil when there is none.
    static func choose<Generator: RandomNumberGenerator>(_ candidates: [Candidate], now: UInt64,
                                                         using generator: inout Generator) -> Int? {
        guard !candidates.isEmpty else { return nil }
        var available: [Int] = []
        available.reserveCapacity(candidates.count)
        for index in candidates.indices where candidates[index].backoff.isAvailable(now: now) {
            available.append(index)
        }
        switch available.count {
        case 0:
            return candidates.indices.min { candidates[$0].backoff.availableAt < candidates[$1].backoff.availableAt }
        case 1:
            return available[0]
        default:
            let first = Int.random(in: 0..<available.count, using: &generator)
            var second = Int.random(in: 0..<(available.count - 1), using: &generator)
            if second >= first { second += 1 }
            let a = available[first], b = available[second]
            return candidates[b].latency.load(now: now) < candidates[a].latency.load(now: now) ? b : a
        }
    }
}
