import NeedleContract
@testable import NeedleProxy
import Testing

@Suite("Destination resolution and the endpoint balancer")
struct DestinationResolutionTests {
    func endpoint(_ text: String, identity: String? = nil) throws -> DestinationEndpoint {
        DestinationEndpoint(address: try ListenAddress(parsing: text), identity: identity)
    }

    @Test("batches take effect at sync: a snapshot, deltas, a reset, not-known, and a Service that empties")
    func batches() throws {
        var resolution = DestinationResolution()
        let a = try endpoint("10.0.0.1:80"), b = try endpoint("10.0.0.2:80", identity: "b.shop.serviceaccount.identity.needle.cluster.local")
        let staging = [resolution.receive(.reset), resolution.receive(.add(b)), resolution.receive(.add(a))]
        #expect(staging == [false, false, false])
        #expect(resolution.known == .pending, "nothing is known before the first sync")
        let first = resolution.receive(.sync)
        #expect(first)
        #expect(resolution.known == .endpoints([a, b]))
        resolution.receive(.remove(a.address))
        #expect(resolution.known == .endpoints([a, b]), "a delta waits for its sync")
        let removed = resolution.receive(.sync)
        #expect(removed)
        #expect(resolution.known == .endpoints([b]))
        let empty = resolution.receive(.sync)
        #expect(!empty, "an empty batch changes nothing")
        resolution.receive(.remove(b.address))
        resolution.receive(.sync)
        #expect(resolution.known == .endpoints([]))
        resolution.receive(.reset)
        resolution.receive(.notKnown)
        resolution.receive(.sync)
        #expect(resolution.known == .notKnown)
        resolution.receive(.reset)
        resolution.receive(.add(a))
        resolution.receive(.sync)
        #expect(resolution.known == .endpoints([a]), "an address can become a Service")
    }

    @Test("the balancer keeps what it learned about endpoints across updates, and forgets those that leave")
    func balancerUpdates() throws {
        var generator = SplitMix64(seed: 3)
        let a = try endpoint("10.0.0.1:80"), b = try endpoint("10.0.0.2:80"), c = try endpoint("10.0.0.3:80")
        var balancer = EndpointBalancer()
        let none = balancer.choose(now: 0, using: &generator)
        #expect(none == nil)
        balancer.update([a, b], now: 0)
        // b fails: it is out of rotation, so every request goes to a, and stays so after c arrives.
        balancer.finished(b.address, rtt: 1_000_000, succeeded: false, now: 0)
        balancer.update([a, b, c], now: 0)
        var chosen: [ListenAddress: Int] = [:]
        for _ in 0..<300 {
            guard let next = balancer.choose(now: 1_000, using: &generator) else { return }
            chosen[next.address, default: 0] += 1
            // Answered as fast as a new endpoint is assumed to be (30 ms), so a and c stay alike.
            balancer.finished(next.address, rtt: 30_000_000, succeeded: true, now: 2_000)
        }
        #expect(chosen[b.address] == nil && chosen[a.address, default: 0] > 50 && chosen[c.address, default: 0] > 50, "\(chosen)")
        // A result for an endpoint that has left is ignored.
        balancer.update([c], now: 3_000)
        balancer.finished(a.address, rtt: 1, succeeded: false, now: 3_000)
        let only = balancer.choose(now: 3_000, using: &generator)
        #expect(only == c)
    }
}
