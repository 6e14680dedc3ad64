/// What one finished request tells the balancer about its endpoint (DESIGN §8): its latency to the response
/// head (a long stream or a slow client says nothing about the endpoint), and whether the endpoint worked.
/// Pure; times are uptime nanoseconds, `responseHeadAt` 0 when no final head arrived.
struct BalancerSample: Equatable {
    let rtt: UInt64
    /// true: an answer of any status; false: the endpoint failed; nil: no verdict, only no longer in flight.
    let succeeded: Bool?

    /// HTTP/1.1: no answer is a failure when the endpoint closed a fresh connection; no verdict when it closed
    /// a pooled one (the keep-alive race every client meets) or the exchange ended for the client's reasons.
    static func http1(acquiredAt: UInt64, responseHeadAt: UInt64, now: UInt64, peerClosed: Bool, reused: Bool) -> BalancerSample {
        if responseHeadAt != 0 { return BalancerSample(rtt: responseHeadAt &- acquiredAt, succeeded: true) }
        return BalancerSample(rtt: now &- acquiredAt, succeeded: peerClosed && !reused ? false : nil)
    }

    /// HTTP/2: a stream without an answer is no verdict (the connection's own failure is seen by the next
    /// stream's connect, and a reset may be the client's).
    static func http2(acquiredAt: UInt64, responseHeadAt: UInt64, now: UInt64) -> BalancerSample {
        if responseHeadAt != 0 { return BalancerSample(rtt: responseHeadAt &- acquiredAt, succeeded: true) }
        return BalancerSample(rtt: now &- acquiredAt, succeeded: nil)
    }
}
