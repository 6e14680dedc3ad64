@testable import NeedleProxy
import Testing

@Suite("Balancing: peak-EWMA, backoff, power of two choices")
struct BalancerTests {
    let ms: UInt64 = 1_000_000
    let second: UInt64 = 1_000_000_000

    @Test("peak-EWMA: starts at 30 ms, a slower response is taken at once, faster ones pull it down with time")
    func peakEWMA() {
        var ewma = PeakEWMA(now: 0)
        #expect(ewma.load(now: 0) == 30 * Double(ms))
        ewma.requestStarted()
        ewma.requestStarted()
        #expect(ewma.load(now: 0) == 90 * Double(ms), "two in flight: the estimate times three")
        ewma.requestFinished(rtt: 200 * ms, now: 1 * second)
        #expect(ewma.estimateNanoseconds == 200 * Double(ms), "the peak")
        // A fast response right after barely moves it; one ten seconds later moves it most of the way.
        ewma.requestFinished(rtt: 10 * ms, now: 1 * second + 1 * ms)
        #expect(ewma.estimateNanoseconds > 199 * Double(ms))
        #expect(ewma.pending == 0)
        var later = ewma
        later.requestStarted()
        later.requestFinished(rtt: 10 * ms, now: 11 * second)
        #expect(later.estimateNanoseconds < 90 * Double(ms) && later.estimateNanoseconds > 10 * Double(ms))
        // Idle, the load decays toward zero: a slow endpoint is tried again eventually.
        #expect(ewma.load(now: 61 * second) < 1 * Double(ms))
        // A clock that goes backwards decays nothing and never crashes.
        #expect(ewma.load(now: 0) == ewma.estimateNanoseconds)
        ewma.requestFinished(rtt: 1, now: 0)
        #expect(ewma.pending == 0, "more finishes than starts never go negative")
    }

    @Test("backoff: 1 s after a failure, doubling to 60 s; a success puts the endpoint back at once")
    func backoff() {
        var backoff = EndpointBackoff()
        #expect(backoff.isAvailable(now: 0))
        backoff.failed(now: 10 * second)
        #expect(!backoff.isAvailable(now: 10 * second + 999 * ms))
        #expect(backoff.isAvailable(now: 11 * second))
        var penalties: [UInt64] = []
        for _ in 0..<9 {
            // Each failure comes when the endpoint is tried again, once its penalty is over.
            let now = backoff.availableAt
            backoff.failed(now: now)
            penalties.append((backoff.availableAt - now) / second)
        }
        #expect(penalties == [2, 4, 8, 16, 32, 60, 60, 60, 60])
        backoff.succeeded()
        #expect(backoff.isAvailable(now: 100 * second) && backoff.consecutiveFailures == 0)
    }

    @Test("backoff: failures of requests that were in flight together count once")
    func concurrentFailures() {
        var backoff = EndpointBackoff()
        for _ in 0..<7 { backoff.failed(now: 10 * second) }
        #expect(backoff.consecutiveFailures == 1)
        #expect(backoff.isAvailable(now: 11 * second), "one outage, one second out of rotation, not 60")
    }

    func candidates(loads: [UInt64], now: UInt64 = 0) -> [PowerOfTwoChoices.Candidate] {
        loads.map { rtt in
            var latency = PeakEWMA(now: now)
            latency.requestStarted()
            latency.requestFinished(rtt: rtt, now: now)
            return PowerOfTwoChoices.Candidate(latency: latency, backoff: EndpointBackoff())
        }
    }

    @Test("P2C: of two random endpoints the less loaded wins, so the slowest is never chosen among three")
    func prefersLowerLoad() {
        var generator = SplitMix64(seed: 7)
        let set = candidates(loads: [40 * ms, 400 * ms, 80 * ms])
        var chosen = [0, 0, 0]
        for _ in 0..<3000 {
            guard let index = PowerOfTwoChoices.choose(set, now: 0, using: &generator) else { return }
            chosen[index] += 1
        }
        #expect(chosen[1] == 0, "\(chosen)")
        // Endpoint 0 wins both pairs it is in (2/3 of draws), endpoint 2 the one with endpoint 1 (1/3).
        #expect(chosen[0] > 1800 && chosen[0] < 2200 && chosen[2] > 800, "\(chosen)")
    }

    @Test("P2C: equal endpoints share the traffic; an endpoint in backoff gets none while others are in rotation")
    func spreadsAndSkipsFailed() {
        var generator = SplitMix64(seed: 42)
        var set = candidates(loads: [30 * ms, 30 * ms, 30 * ms, 30 * ms])
        var chosen = [0, 0, 0, 0]
        for _ in 0..<4000 {
            if let index = PowerOfTwoChoices.choose(set, now: 0, using: &generator) { chosen[index] += 1 }
        }
        #expect(chosen.allSatisfy { $0 > 800 }, "\(chosen)")
        set[2].backoff.failed(now: 0)
        chosen = [0, 0, 0, 0]
        for _ in 0..<1000 {
            if let index = PowerOfTwoChoices.choose(set, now: 500 * ms, using: &generator) { chosen[index] += 1 }
        }
        #expect(chosen[2] == 0 && chosen.reduce(0, +) == 1000, "\(chosen)")
    }

    @Test("P2C: one endpoint, none, or all out of rotation (the one back soonest is tried)")
    func edges() {
        var generator = SplitMix64(seed: 1)
        #expect(PowerOfTwoChoices.choose([], now: 0, using: &generator) == nil)
        #expect(PowerOfTwoChoices.choose(candidates(loads: [5 * ms]), now: 0, using: &generator) == 0)
        var set = candidates(loads: [5 * ms, 5 * ms, 5 * ms])
        // Endpoint 0 failed twice in a row (out until 3 s), 1 once (until 2 s), 2 three times (until 7 s).
        set[0].backoff.failed(now: 0)
        set[0].backoff.failed(now: set[0].backoff.availableAt)
        set[1].backoff.failed(now: 1 * second)
        set[2].backoff.failed(now: 0)
        set[2].backoff.failed(now: set[2].backoff.availableAt)
        set[2].backoff.failed(now: set[2].backoff.availableAt)
        #expect(PowerOfTwoChoices.choose(set, now: 1 * second, using: &generator) == 1)
    }

    @Test("samples: latency to the response head; no answer fails a fresh connection only; the keep-alive race and client exits say nothing")
    func samples() {
        let answered = BalancerSample.http1(acquiredAt: 1 * second, responseHeadAt: 1 * second + 3 * ms, now: 300 * second,
                                            peerClosed: true, reused: false)
        #expect(answered == BalancerSample(rtt: 3 * ms, succeeded: true), "a five-minute stream is a 3 ms answer")
        let refused = BalancerSample.http1(acquiredAt: 1 * second, responseHeadAt: 0, now: 1 * second + 5 * ms, peerClosed: true, reused: false)
        #expect(refused == BalancerSample(rtt: 5 * ms, succeeded: false))
        let stale = BalancerSample.http1(acquiredAt: 0, responseHeadAt: 0, now: 1 * ms, peerClosed: true, reused: true)
        #expect(stale.succeeded == nil)
        let clientLeft = BalancerSample.http1(acquiredAt: 0, responseHeadAt: 0, now: 1 * ms, peerClosed: false, reused: false)
        #expect(clientLeft.succeeded == nil)
        #expect(BalancerSample.http2(acquiredAt: 0, responseHeadAt: 2 * ms, now: 9 * second) == BalancerSample(rtt: 2 * ms, succeeded: true))
        #expect(BalancerSample.http2(acquiredAt: 0, responseHeadAt: 0, now: 9 * ms).succeeded == nil)
    }
}
