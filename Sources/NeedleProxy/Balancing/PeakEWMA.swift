#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One endpoint's latency estimate, as Linkerd's balancer keeps it (tower's peak-EWMA, DESIGN §8): a
/// slower response than the estimate replaces it at once (the peak), a faster one pulls it down by an
/// exponentially weighted average, and with no responses the estimate decays toward zero, so an endpoint
/// that looked slow gets traffic again. The load that the balancer compares is the estimate times the
/// requests in flight plus one. Times are monotonic nanoseconds; pure, so it is tested without a clock.
struct PeakEWMA: Equatable, Sendable {
    /// The estimate for an endpoint nothing has been measured on yet (Linkerd: 30 ms).
    static let defaultRTTNanoseconds: Double = 30_000_000
    /// How fast old measurements stop counting (Linkerd: 10 s).
    static let decayNanoseconds: Double = 10_000_000_000

    private(set) var estimateNanoseconds: Double
    private var stamp: UInt64
    private(set) var pending = 0

    init(now: UInt64, defaultRTTNanoseconds: Double = Self.defaultRTTNanoseconds) {
        estimateNanoseconds = defaultRTTNanoseconds
        stamp = now
    }

    /// A request was sent to this endpoint.
    mutating func requestStarted() {
        pending += 1
    }

    /// A response came back (or the request failed) after `rtt` nanoseconds.
    mutating func requestFinished(rtt: UInt64, now: UInt64) {
        pending = max(0, pending - 1)
        let measured = Double(rtt)
        if measured > estimateNanoseconds {
            estimateNanoseconds = measured
        } else {
            let weight = Self.weight(now: now, since: stamp)
            estimateNanoseconds = estimateNanoseconds * weight + measured * (1 - weight)
        }
        stamp = max(stamp, now)
    }

    /// What the balancer compares: the estimate decayed to `now`, times the requests in flight plus one.
    func load(now: UInt64) -> Double {
        estimateNanoseconds * Self.weight(now: now, since: stamp) * Double(pending + 1)
    }

    /// exp(-elapsed / decay); a clock that went backwards counts as no time passed.
    private static func weight(now: UInt64, since stamp: UInt64) -> Double {
        guard now > stamp else { return 1 }
        return exp(-Double(now - stamp) / decayNanoseconds)
    }
}
