import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NeedleContract
@testable import NeedleProxy
import Testing

@Suite("Destination lookups registry")
struct DestinationLookupsTests {
    /// A stand-in destination service: records each stream opened, and lets the test speak on it.
    final class FakeService: Sendable {
        struct Stream: Sendable {
            let address: ListenAddress
            let onEvents: @Sendable ([DestinationEvent]) -> Void
            let onEnd: @Sendable (String) -> Void
        }
        let loop: EmbeddedEventLoop
        let streams = NIOLockedValueBox<[Stream]>([])
        let refuse = NIOLockedValueBox(false)

        init(loop: EmbeddedEventLoop) { self.loop = loop }

        func open(_ address: ListenAddress, _ onEvents: @escaping @Sendable ([DestinationEvent]) -> Void,
                  _ onEnd: @escaping @Sendable (String) -> Void) -> EventLoopFuture<any Channel> {
            streams.withLockedValue { $0.append(Stream(address: address, onEvents: onEvents, onEnd: onEnd)) }
            if refuse.withLockedValue({ $0 }) {
                onEnd("cannot reach the destination service: connection refused")
                return loop.makeFailedFuture(ChannelError.connectTimeout(.seconds(1)))
            }
            return loop.makeSucceededFuture(EmbeddedChannel(loop: loop))
        }
    }

    func address(_ text: String) throws -> ListenAddress { try ListenAddress(parsing: text) }

    func setup() -> (EmbeddedEventLoop, FakeService, DestinationLookups, NIOLockedValueBox<UInt64>) {
        let loop = EmbeddedEventLoop()
        let service = FakeService(loop: loop)
        let clock = NIOLockedValueBox<UInt64>(1_000)
        let lookups = DestinationLookups(opener: { service.open($0, $1, $2) }, timers: loop, now: { clock.withLockedValue { $0 } })
        return (loop, service, lookups, clock)
    }

    @Test("the first connection opens one stream and waits for its first answer; later ones get it at once")
    func firstAnswer() throws {
        let (loop, service, lookups, _) = setup()
        let web = try address("10.96.0.10:80")
        let endpoint = DestinationEndpoint(address: try address("10.0.0.1:8080"))
        let routes = NIOLockedValueBox<[DestinationLookups.Route]>([])
        lookups.acquire(web, on: loop).whenSuccess { route in routes.withLockedValue { $0.append(route) } }
        #expect(routes.withLockedValue { $0 }.isEmpty && service.streams.withLockedValue { $0.count } == 1)
        service.streams.withLockedValue { $0[0] }.onEvents([.reset, .add(endpoint), .sync])
        #expect(routes.withLockedValue { $0 } == [.endpoints([endpoint])])
        lookups.acquire(web, on: loop).whenSuccess { route in routes.withLockedValue { $0.append(route) } }
        #expect(routes.withLockedValue { $0 }.count == 2 && service.streams.withLockedValue { $0.count } == 1, "one stream per destination")
        var generator = SplitMix64(seed: 9)
        #expect(lookups.choose(web, using: &generator) == endpoint)
    }

    @Test("no answer in time, or no destination service, sends the connection to its original destination with the reason")
    func fallbacks() throws {
        let (loop, service, lookups, _) = setup()
        let routes = NIOLockedValueBox<[DestinationLookups.Route]>([])
        lookups.acquire(try address("10.96.0.11:80"), on: loop).whenSuccess { route in routes.withLockedValue { $0.append(route) } }
        loop.advanceTime(by: .milliseconds(999))
        #expect(routes.withLockedValue { $0 }.isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(routes.withLockedValue { $0 } == [.original(.noAnswer(afterMilliseconds: 1000))])
        service.refuse.withLockedValue { $0 = true }
        lookups.acquire(try address("10.96.0.12:80"), on: loop).whenSuccess { route in routes.withLockedValue { $0.append(route) } }
        #expect(routes.withLockedValue { $0 }.last == .original(.unavailable("cannot reach the destination service: connection refused")))
    }

    @Test("a stream that ends is opened again after the backoff; the answer it had stays in use")
    func reconnect() throws {
        let (loop, service, lookups, _) = setup()
        let web = try address("10.96.0.10:80")
        let endpoint = DestinationEndpoint(address: try address("10.0.0.1:8080"))
        _ = lookups.acquire(web, on: loop)
        service.streams.withLockedValue { $0[0] }.onEvents([.reset, .add(endpoint), .sync])
        service.streams.withLockedValue { $0[0] }.onEnd("the destination service ended the answer")
        let route = NIOLockedValueBox<DestinationLookups.Route?>(nil)
        lookups.acquire(web, on: loop).whenSuccess { answer in route.withLockedValue { $0 = answer } }
        #expect(route.withLockedValue { $0 } == .endpoints([endpoint]))
        loop.advanceTime(by: .seconds(1))
        #expect(service.streams.withLockedValue { $0.count } == 2)
    }

    @Test("a lookup nobody uses for 5 s is discarded and its stream closed")
    func sweep() throws {
        let (loop, service, lookups, clock) = setup()
        let web = try address("10.96.0.10:80")
        _ = lookups.acquire(web, on: loop)
        loop.run()
        lookups.release(web)
        clock.withLockedValue { $0 += 4_000_000_000 }
        lookups.sweep()
        #expect(lookups.count == 1)
        clock.withLockedValue { $0 += 1_000_000_000 }
        lookups.sweep()
        #expect(lookups.count == 0)
        _ = service
    }

    @Test("a swept lookup's late events and end do not reach the newer lookup of the same address")
    func staleCallbacks() throws {
        let (loop, service, lookups, clock) = setup()
        let web = try address("10.96.0.10:80")
        _ = lookups.acquire(web, on: loop)
        lookups.release(web)
        clock.withLockedValue { $0 += 6_000_000_000 }
        lookups.sweep()
        #expect(lookups.count == 0)
        let route = NIOLockedValueBox<DestinationLookups.Route?>(nil)
        lookups.acquire(web, on: loop).whenSuccess { answer in route.withLockedValue { $0 = answer } }
        let (stale, fresh) = service.streams.withLockedValue { ($0[0], $0[1]) }
        stale.onEvents([.reset, .add(DestinationEndpoint(address: try address("10.0.0.66:8080"))), .sync])
        stale.onEnd("the old stream finally closed")
        #expect(route.withLockedValue { $0 } == nil, "the old stream's answer is not the new lookup's")
        let endpoint = DestinationEndpoint(address: try address("10.0.0.1:8080"))
        fresh.onEvents([.reset, .add(endpoint), .sync])
        #expect(route.withLockedValue { $0 } == .endpoints([endpoint]))
        loop.advanceTime(by: .seconds(5))
        #expect(service.streams.withLockedValue { $0.count } == 2, "the old stream's end did not reopen the new lookup")
    }
}

