import NeedleContract
@testable import NeedleProxy
import Testing

@Suite("Destination lookups in the proxy")
struct DestinationLookupMachineTests {
    let second: UInt64 = 1_000_000_000

    func endpoint(_ text: String) throws -> DestinationEndpoint { DestinationEndpoint(address: try ListenAddress(parsing: text)) }

    @Test("the first user opens the stream; connections wait for the first answer, then balance over it")
    func firstAnswer() throws {
        var lookup = DestinationLookupMachine()
        let result1 = lookup.acquire()
        #expect(result1 == [.open])
        let result2 = lookup.acquire()
        #expect(result2 == [], "one stream for all users")
        #expect(lookup.route == .wait)
        let a = try endpoint("10.0.0.1:80")
        _ = lookup.received([.reset, .add(a)])
        #expect(lookup.route == .wait, "half a batch is no answer")
        let synced = lookup.received([.sync])
        #expect(synced)
        #expect(lookup.route == .endpoints([a]))
        _ = lookup.received([.reset, .notKnown, .sync])
        #expect(lookup.route == .original(.notKnown))
        _ = lookup.received([.reset, .sync])
        #expect(lookup.route == .original(.noEndpoints))
    }

    @Test("a stream that ends is retried with a doubling delay up to 30 s; the last answer stays in use meanwhile")
    func retries() throws {
        var lookup = DestinationLookupMachine()
        _ = lookup.acquire()
        let a = try endpoint("10.0.0.1:80")
        _ = lookup.received([.reset, .add(a), .sync])
        var delays: [UInt64] = []
        for _ in 0..<7 {
            guard case .retry(let delay) = lookup.ended("connection reset").first else { return }
            delays.append(delay / second)
            #expect(lookup.route == .endpoints([a]), "availability first: keep the last answer")
            let result3 = lookup.retryDue()
        #expect(result3 == [.open])
        }
        #expect(delays == [1, 2, 4, 8, 16, 30, 30])
        // A fresh answer resets the backoff.
        _ = lookup.received([.reset, .add(a), .add(try endpoint("10.0.0.2:80")), .sync])
        guard case .retry(let delay) = lookup.ended("again").first else { return }
        #expect(delay == second)
    }

    @Test("a lookup that never got an answer sends connections to the original destination, with the reason")
    func unreachable() {
        var lookup = DestinationLookupMachine()
        _ = lookup.acquire()
        _ = lookup.ended("cannot reach the destination service: connection refused")
        #expect(lookup.route == .original(.unavailable("cannot reach the destination service: connection refused")))
        let result4 = lookup.acquire()
        #expect(result4 == [], "a new user does not open a second stream while a retry is scheduled")
    }

    @Test("kept for 5 s after the last user lets go, then discarded; a user in between keeps it")
    func idle() {
        var lookup = DestinationLookupMachine()
        _ = lookup.acquire()
        lookup.release(now: 10 * second)
        let result5 = lookup.tick(now: 14 * second)
        #expect(result5 == [])
        _ = lookup.acquire()
        let result6 = lookup.tick(now: 16 * second)
        #expect(result6 == [], "in use again")
        lookup.release(now: 16 * second)
        let result7 = lookup.tick(now: 21 * second)
        #expect(result7 == [.discard])
    }
}
