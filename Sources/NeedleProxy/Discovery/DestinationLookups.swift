import NIOConcurrencyHelpers
import NIOCore
import NeedleContract

/// The proxy's destination lookups (DESIGN §8): one `DestinationLookupMachine` per original destination in
/// use, its stream to the destination service, and its balancer. Thin: the machines decide, this opens and
/// closes streams, runs their timers and answers waiting connections. Shared by every event loop, so its
/// state is behind one lock; streams and timers run on their own loops.
final class DestinationLookups: Sendable {
    typealias Route = DestinationLookupMachine.Route
    /// Opens a lookup stream (`DestinationStreamClient.lookup` in the proxy, a stand-in in tests).
    typealias Opener = @Sendable (_ address: ListenAddress, _ onEvents: @escaping @Sendable ([DestinationEvent]) -> Void,
                                  _ onEnd: @escaping @Sendable (String) -> Void) -> EventLoopFuture<any Channel>

    private struct Entry {
        /// Tells this lookup from a later one at the same address: a stream's late callbacks (after its
        /// lookup was swept and a new one began) must not touch the new one.
        let id: UInt64
        var machine = DestinationLookupMachine()
        var balancer = EndpointBalancer()
        /// Changes whenever the endpoint set does.
        var generation: UInt64 = 0
        var channel: (any Channel)?
        /// Connections waiting for the first answer.
        var waiters: [FirstResult<Route>] = []
    }

    private let entries = NIOLockedValueBox<[ListenAddress: Entry]>([:])
    private let lastID = NIOLockedValueBox<UInt64>(0)
    private let opener: Opener
    private let timers: any EventLoop
    /// How long a new connection waits for a first answer before it goes to its original destination.
    let firstAnswerTimeout: TimeAmount
    private let now: @Sendable () -> UInt64

    init(opener: @escaping Opener, timers: any EventLoop, firstAnswerTimeout: TimeAmount = .seconds(1),
         now: @escaping @Sendable () -> UInt64 = { NIODeadline.now().uptimeNanoseconds }) {
        self.opener = opener
        self.timers = timers
        self.firstAnswerTimeout = firstAnswerTimeout
        self.now = now
    }

    var count: Int { entries.withLockedValue { $0.count } }

    /// Where a new outbound connection to `address` goes; it uses the lookup until `release`.
    func acquire(_ address: ListenAddress, on loop: any EventLoop) -> EventLoopFuture<Route> {
        let waiter = FirstResult(loop.makePromise(of: Route.self))
        let freshID = lastID.withLockedValue { id -> UInt64 in
            id &+= 1
            return id
        }
        let (actions, route, id) = entries.withLockedValue { entries -> ([DestinationLookupMachine.Action], Route, UInt64) in
            var entry = entries[address] ?? Entry(id: freshID)
            let actions = entry.machine.acquire()
            let route = entry.machine.route
            if route == .wait { entry.waiters.append(waiter) }
            entries[address] = entry
            return (actions, route, entry.id)
        }
        perform(actions, for: address, id: id)
        if route == .wait {
            let timeout = firstAnswerTimeout
            let deadline = loop.scheduleTask(in: timeout) {
                waiter.complete(.success(.original(.noAnswer(afterMilliseconds: timeout.nanoseconds / 1_000_000))))
            }
            waiter.future.whenComplete { _ in deadline.cancel() }
        } else {
            waiter.complete(.success(route))
        }
        return waiter.future
    }

    func release(_ address: ListenAddress) {
        let now = self.now()
        entries.withLockedValue { $0[address]?.machine.release(now: now) }
    }

    /// The endpoint for the next request or connection to `address` (counted in flight until `finished`).
    func choose<Generator: RandomNumberGenerator>(_ address: ListenAddress, using generator: inout Generator) -> DestinationEndpoint? {
        let now = self.now()
        // In place: a copy of the entry would copy the balancer's arrays on every request.
        return entries.withLockedValue { $0[address]?.balancer.choose(now: now, using: &generator) }
    }

    /// Changes whenever the endpoints of `address` do (0 for an unknown address).
    func generation(_ address: ListenAddress) -> UInt64 {
        entries.withLockedValue { $0[address]?.generation ?? 0 }
    }

    /// Whether `endpoint` (its address and identity) is currently one of the endpoints of `address`.
    func contains(_ address: ListenAddress, endpoint: UpstreamEndpoint) -> Bool {
        entries.withLockedValue { entries in
            entries[address]?.balancer.endpoints.contains { $0.address == endpoint.address && $0.identity == endpoint.meshTLSName } ?? false
        }
    }

    /// A request to an endpoint of `address` ended: its latency, and whether the endpoint worked.
    func finished(_ address: ListenAddress, endpoint: ListenAddress, rtt: UInt64, succeeded: Bool?) {
        let now = self.now()
        entries.withLockedValue { $0[address]?.balancer.finished(endpoint, rtt: rtt, succeeded: succeeded, now: now) }
    }

    /// Discards lookups nobody has used for a while; the proxy calls it periodically.
    func sweep() {
        let now = self.now()
        let discarded = entries.withLockedValue { entries -> [(any Channel)?] in
            var discarded: [(any Channel)?] = []
            for (address, var entry) in entries where entry.machine.tick(now: now).contains(.discard) {
                discarded.append(entry.channel)
                entry.channel = nil
                entries[address] = nil
            }
            return discarded
        }
        for channel in discarded { channel?.close(promise: nil) }
    }

    private func perform(_ actions: [DestinationLookupMachine.Action], for address: ListenAddress, id: UInt64) {
        for action in actions {
            switch action {
            case .open:
                open(address, id: id)
            case .retry(let delay):
                timers.scheduleTask(in: .nanoseconds(Int64(delay))) { [self] in
                    let next = entries.withLockedValue { entries -> [DestinationLookupMachine.Action] in
                        guard entries[address]?.id == id else { return [] }
                        return entries[address]?.machine.retryDue() ?? []
                    }
                    perform(next, for: address, id: id)
                }
            case .discard:
                break  // `sweep` removes the entry itself
            }
        }
    }

    private func open(_ address: ListenAddress, id: UInt64) {
        let opened = opener(address, { [self] events in received(events, for: address, id: id) },
                            { [self] reason in ended(reason, for: address, id: id) })
        opened.whenSuccess { [self] channel in
            let stillWanted = entries.withLockedValue { entries -> Bool in
                guard entries[address]?.id == id else { return false }
                entries[address]?.channel = channel
                return true
            }
            if !stillWanted { channel.close(promise: nil) }
        }
    }

    private func received(_ events: [DestinationEvent], for address: ListenAddress, id: UInt64) {
        let now = self.now()
        let (route, waiters) = entries.withLockedValue { entries -> (Route, [FirstResult<Route>]) in
            guard var entry = entries[address], entry.id == id else { return (.wait, []) }
            defer { entries[address] = entry }
            guard entry.machine.received(events) else { return (.wait, []) }
            let route = entry.machine.route
            entry.generation &+= 1
            if case .endpoints(let endpoints) = route {
                entry.balancer.update(endpoints, now: now)
            } else {
                entry.balancer.update([], now: now)
            }
            guard route != .wait else { return (route, []) }
            defer { entry.waiters = [] }
            return (route, entry.waiters)
        }
        for waiter in waiters { waiter.complete(.success(route)) }
    }

    private func ended(_ reason: String, for address: ListenAddress, id: UInt64) {
        let (actions, route, waiters) = entries.withLockedValue { entries -> ([DestinationLookupMachine.Action], Route, [FirstResult<Route>]) in
            guard var entry = entries[address], entry.id == id else { return ([], .wait, []) }
            defer { entries[address] = entry }
            entry.channel = nil
            let actions = entry.machine.ended(reason)
            let route = entry.machine.route
            guard route != .wait else { return (actions, route, []) }
            defer { entry.waiters = [] }
            return (actions, route, entry.waiters)
        }
        for waiter in waiters { waiter.complete(.success(route)) }
        perform(actions, for: address, id: id)
    }
}
