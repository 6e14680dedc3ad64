/// The upstream HTTP/2 connection behind one client HTTP/2 connection, as a value:
/// idle → connecting → ready → (GOAWAY) draining → closed, and back to connecting on the next stream.
/// A connection that failed, closed or sent GOAWAY is never used for a new stream again: new streams go
/// to a new connection, while streams in flight on a draining one finish there (RFC 9113 §6.8).
struct HTTP2UpstreamSession<Connection: Hashable> {
    enum StreamRoute: Equatable {
        case open(on: Connection)
        /// A connection is being made: wait for `connected` or `connectFailed`.
        case wait
        /// Make a connection, then report it.
        case connect
        /// The session is shut down.
        case refuse
    }

    private enum Active: Equatable {
        case idle
        case connecting
        case ready(Connection)
        case shutDown
    }

    private var active = Active.idle
    /// Open streams per connection, the active one and the draining ones.
    private var openStreams: [Connection: Int] = [:]
    private var draining: Set<Connection> = []

    init() {}

    var drainingConnections: Set<Connection> { draining }

    mutating func streamRequested() -> StreamRoute {
        switch active {
        case .idle:
            active = .connecting
            return .connect
        case .connecting:
            return .wait
        case .ready(let connection):
            return .open(on: connection)
        case .shutDown:
            return .refuse
        }
    }

    /// The connect finished. Returns false when the session no longer wants it (shut down meanwhile): close it.
    mutating func connected(_ connection: Connection) -> Bool {
        guard active == .connecting else { return false }
        active = .ready(connection)
        openStreams[connection] = 0
        return true
    }

    /// The connect failed: the waiting streams fail, and the next stream tries a new connection.
    mutating func connectFailed() {
        if active == .connecting { active = .idle }
    }

    mutating func streamOpened(on connection: Connection) {
        openStreams[connection, default: 0] += 1
    }

    /// Returns true when the connection should now be closed (draining and its last stream is done).
    mutating func streamClosed(on connection: Connection) -> Bool {
        guard let count = openStreams[connection] else { return false }
        openStreams[connection] = max(count - 1, 0)
        return draining.contains(connection) && count <= 1
    }

    /// GOAWAY: no new streams there. Returns true when nothing is in flight on it, so it can close now.
    mutating func goAwayReceived(on connection: Connection) -> Bool {
        if active == .ready(connection) { active = .idle }
        guard openStreams[connection] != nil else { return false }
        draining.insert(connection)
        return (openStreams[connection] ?? 0) == 0
    }

    /// The connection is gone (closed by either side, or failed).
    mutating func connectionClosed(_ connection: Connection) {
        if active == .ready(connection) { active = .idle }
        draining.remove(connection)
        openStreams[connection] = nil
    }

    /// The endpoint left its destination (discovery): no new stream goes here, streams in flight finish.
    /// Returns nil while a connection is being made (its waiting streams still want it: retire later), else
    /// the connections to close now (those with nothing in flight).
    mutating func retire() -> [Connection]? {
        switch active {
        case .connecting:
            return nil
        case .ready(let connection):
            draining.insert(connection)
        case .idle, .shutDown:
            break
        }
        active = .shutDown
        return draining.filter { (openStreams[$0] ?? 0) == 0 }
    }

    /// The client connection is gone: every upstream connection is closed. Returns them.
    mutating func shutDown() -> [Connection] {
        var all = Array(draining)
        if case .ready(let connection) = active { all.append(connection) }
        active = .shutDown
        draining = []
        openStreams = [:]
        return all
    }
}
