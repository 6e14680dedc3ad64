import NIOCore

/// The bookkeeping of a pool of keep-alive HTTP/1.1 connections, per destination, as a value: which
/// connections are idle, how many are leased or being made, who waits for one. `UpstreamPool` performs
/// what it decides (connect, close, hand over).
///
/// Rules: an idle connection is reused newest first (the one least likely to have been closed by the
/// server); at most `maximumConnectionsPerTarget` exist per destination, and requests beyond wait in
/// order; at most `maximumIdlePerTarget` wait idle; idle ones older than `idleTimeout` are swept; a
/// connection the server closed while idle leaves the pool at once.
struct UpstreamPoolState<Target: Hashable, Connection: Hashable, Waiter> {
    struct Limits: Equatable {
        var maximumIdlePerTarget = 1024
        var maximumConnectionsPerTarget = 4096
        var idleTimeout = TimeAmount.seconds(60)
    }

    enum Acquisition {
        case use(Connection)
        case connect
        /// At the cap: the waiter gets a connection when one is released or a slot frees up.
        case wait
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

    private struct TargetState {
        var idle: [IdleConnection] = []
        var leased = 0
        var connecting = 0
        var waiters = CircularBuffer<Waiter>()

        var total: Int { idle.count + leased + connecting }
        var isEmpty: Bool { total == 0 && waiters.isEmpty }
    }

    let limits: Limits
    private var targets: [Target: TargetState] = [:]

    init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// A pooled connection if one is idle now (no waiting, no connecting).
    mutating func takeIdle(_ target: Target) -> Connection? {
        guard var state = targets[target], let newest = state.idle.popLast() else { return nil }
        state.leased += 1
        targets[target] = state
        return newest.connection
    }

    mutating func acquire(_ target: Target, waiter: Waiter) -> Acquisition {
        if let connection = takeIdle(target) { return .use(connection) }
        var state = targets[target] ?? TargetState()
        defer { targets[target] = state }
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
        targets[target] = state
    }

    /// A connect failed: its slot is free again. Returns a waiter that should now connect, if any.
    mutating func connectFailed(_ target: Target) -> Waiter? {
        guard var state = targets[target] else { return nil }
        state.connecting -= 1
        defer { store(state, for: target) }
        guard let waiter = state.waiters.popFirst() else { return nil }
        state.connecting += 1
        return waiter
    }

    mutating func release(_ target: Target, _ connection: Connection, reusable: Bool, now: NIODeadline) -> Release {
        guard var state = targets[target] else { return .close(connection) }
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

    /// The connection closed, or its server sent FIN: if it was idle it leaves the pool. Returns true when it was idle.
    mutating func idleConnectionClosed(_ target: Target, _ connection: Connection) -> Bool {
        guard var state = targets[target], let index = state.idle.firstIndex(where: { $0.connection == connection }) else {
            return false
        }
        state.idle.remove(at: index)
        store(state, for: target)
        return true
    }

    /// Idle connections older than the idle timeout, removed from the pool (the caller closes them).
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
            if state.idle.count != before { store(state, for: target) }
        }
        return expired
    }

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
