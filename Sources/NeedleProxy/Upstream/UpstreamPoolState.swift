import NIOCore

/// The bookkeeping of a pool of keep-alive HTTP/1.1 connections, per destination, as a value: which
/// connections are idle, how many are leased or being made, who waits for one. `UpstreamPool` performs
/// what it decides (connect, close, hand over).
///
/// Rules: an idle connection is reused newest first (the one least likely to have been closed by the
/// server); at most `maximumConnectionsPerTarget` exist per destination, and requests beyond wait in
/// order; at most `maximumIdlePerTarget` wait idle; idle ones older than `idleTimeout` are swept; a
/// connection the server closed while idle leaves the pool at once. After a failed connect the destination
/// backs off: until the back-off ends, requests that find no idle connection fail at once with the same
/// error (502, or 504 after a timeout) instead of each trying again; the back-off doubles with every
/// failure in a row (from `backoffBase` up to `backoffMaximum`, half of it random) and ends with the first
/// successful connect.
struct UpstreamPoolState<Target: Hashable, Connection: Hashable, Waiter> {
    struct Limits: Equatable {
        var maximumIdlePerTarget = 1024
        var maximumConnectionsPerTarget = 4096
        var idleTimeout = TimeAmount.seconds(60)
        var backoffBase = TimeAmount.milliseconds(100)
        var backoffMaximum = TimeAmount.seconds(2)
    }

    enum Acquisition {
        case use(Connection)
        case connect
        /// At the cap: the waiter gets a connection when one is released or a slot frees up.
        case wait
        /// The destination is backing off after failed connects: fail the request now, with this reason.
        case failFast(UpstreamUnavailable)
    }

    enum Release {
        case park
        case close(Connection)
        case handOver(Connection, to: Waiter)
        /// The connection cannot be reused; its slot goes to a waiter, who needs a new connection.
        case closeAndConnect(Connection, for: Waiter)
    }

    private struct IdleConnection {
        let connection: Connection
        let since: NIODeadline
    }

    private struct Backoff {
        var failures: Int
        var until: NIODeadline
        var reason: UpstreamUnavailable
    }

    private struct TargetState {
        var idle: [IdleConnection] = []
        var leased = 0
        var connecting = 0
        var waiters = CircularBuffer<Waiter>()
        var backoff: Backoff?

        var total: Int { idle.count + leased + connecting }
        var isEmpty: Bool { total == 0 && waiters.isEmpty && backoff == nil }

        /// The per-request release: back to the idle list when no one waits and there is room. A mutating
        /// method, so it runs in place in the dictionary (reading `values[index].field` copies the state).
        mutating func parkIfUnwanted(_ connection: Connection, now: NIODeadline, maximumIdle: Int) -> Bool {
            guard waiters.isEmpty, idle.count < maximumIdle else { return false }
            leased -= 1
            idle.append(IdleConnection(connection: connection, since: now))
            return true
        }

        mutating func takeNewestIdle() -> Connection? {
            guard let newest = idle.popLast() else { return nil }
            leased += 1
            return newest.connection
        }
    }

    let limits: Limits
    private var targets: [Target: TargetState] = [:]

    init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// A pooled connection if one is idle now (no waiting, no connecting). Runs per request, so it changes
    /// the destination's state in place: a copy would copy its idle list too.
    mutating func takeIdle(_ target: Target) -> Connection? {
        guard let index = targets.index(forKey: target) else { return nil }
        return targets.values[index].takeNewestIdle()
    }

    mutating func acquire(_ target: Target, waiter: Waiter, now: NIODeadline) -> Acquisition {
        if let connection = takeIdle(target) { return .use(connection) }
        var state = targets[target] ?? TargetState()
        defer { targets[target] = state }
        if let backoff = state.backoff, now < backoff.until { return .failFast(backoff.reason) }
        if state.total < limits.maximumConnectionsPerTarget {
            state.connecting += 1
            return .connect
        }
        state.waiters.append(waiter)
        return .wait
    }

    /// A connect started by `.connect` (or `.closeAndConnect`) succeeded: the connection is leased to its requester.
    mutating func connected(_ target: Target) {
        guard var state = targets[target] else { return }
        state.connecting -= 1
        state.leased += 1
        state.backoff = nil
        targets[target] = state
    }

    /// A connect failed: its slot is free again, and the destination backs off (`jitter` in 0...1 picks
    /// where in the upper half of the delay it ends). Returns a waiter that should now connect, if any.
    mutating func connectFailed(_ target: Target, _ reason: UpstreamUnavailable, now: NIODeadline, jitter: Double) -> Waiter? {
        guard var state = targets[target] else { return nil }
        state.connecting -= 1
        let failures = (state.backoff?.failures ?? 0) + 1
        state.backoff = Backoff(failures: failures, until: now + backoffDelay(failures: failures, jitter: jitter), reason: reason)
        defer { store(state, for: target) }
        guard let waiter = state.waiters.popFirst() else { return nil }
        state.connecting += 1
        return waiter
    }

    mutating func release(_ target: Target, _ connection: Connection, reusable: Bool, now: NIODeadline) -> Release {
        guard let index = targets.index(forKey: target) else { return .close(connection) }
        // The common case, in place (per request): no one waits and the connection goes back to the idle list.
        if reusable, targets.values[index].parkIfUnwanted(connection, now: now, maximumIdle: limits.maximumIdlePerTarget) {
            return .park
        }
        var state = targets.values[index]
        state.leased -= 1
        defer { store(state, for: target) }
        if let waiter = state.waiters.popFirst() {
            if reusable {
                state.leased += 1
                return .handOver(connection, to: waiter)
            }
            state.connecting += 1
            return .closeAndConnect(connection, for: waiter)
        }
        guard reusable, state.idle.count < limits.maximumIdlePerTarget else { return .close(connection) }
        state.idle.append(IdleConnection(connection: connection, since: now))
        return .park
    }

    /// A leased connection left for good (it became a tunnel): its slot is free. Returns a waiter that
    /// should now connect, if any.
    mutating func detach(_ target: Target) -> Waiter? {
        guard var state = targets[target] else { return nil }
        state.leased -= 1
        defer { store(state, for: target) }
        guard let waiter = state.waiters.popFirst() else { return nil }
        state.connecting += 1
        return waiter
    }

    /// The connection closed, or its server sent FIN: if it was idle it leaves the pool. Returns true when it was idle.
    mutating func idleConnectionClosed(_ target: Target, _ connection: Connection) -> Bool {
        guard var state = targets[target], let index = state.idle.firstIndex(where: { $0.connection == connection }) else {
            return false
        }
        state.idle.remove(at: index)
        store(state, for: target)
        return true
    }

    /// The delay after `failures` failed connects in a row: doubling from the base, capped, the upper half random.
    func backoffDelay(failures: Int, jitter: Double) -> TimeAmount {
        let doublings = min(max(failures - 1, 0), 20)
        let full = min(limits.backoffBase.nanoseconds << doublings, limits.backoffMaximum.nanoseconds)
        let half = full / 2
        return .nanoseconds(half + Int64(Double(half) * min(max(jitter, 0), 1)))
    }

    /// Idle connections older than the idle timeout, removed from the pool (the caller closes them). Also
    /// forgets back-offs that ended more than a maximum delay ago, so failed destinations do not pile up.
    mutating func sweep(now: NIODeadline) -> [Connection] {
        let cutoff = now - limits.idleTimeout
        var expired: [Connection] = []
        for (target, var state) in targets {
            let before = state.idle.count
            state.idle.removeAll { entry in
                guard entry.since < cutoff else { return false }
                expired.append(entry.connection)
                return true
            }
            var changed = state.idle.count != before
            if let backoff = state.backoff, backoff.until + limits.backoffMaximum < now {
                state.backoff = nil
                changed = true
            }
            if changed { store(state, for: target) }
        }
        return expired
    }

    /// Whether any destination keeps state only because it is backing off (the sweep must keep running).
    var hasBackoffs: Bool { targets.values.contains { $0.backoff != nil } }

    /// Every idle connection, removed (shutdown).
    mutating func removeAllIdle() -> [Connection] {
        var all: [Connection] = []
        for (target, var state) in targets {
            all += state.idle.map(\.connection)
            state.idle = []
            store(state, for: target)
        }
        return all
    }

    var idleCount: Int { targets.values.reduce(0) { $0 + $1.idle.count } }
    func waiterCount(_ target: Target) -> Int { targets[target]?.waiters.count ?? 0 }

    private mutating func store(_ state: TargetState, for target: Target) {
        targets[target] = state.isEmpty ? nil : state
    }
}

extension UpstreamPoolState.Release: Equatable where Waiter: Equatable {}
extension UpstreamPoolState.Acquisition: Equatable {}
