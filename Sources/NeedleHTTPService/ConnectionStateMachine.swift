/// The life of one connection of a request/response service: HTTP/1.1 requests one at a time (clients such as
/// the API server reuse connections), with a deadline for each phase so a slow or silent client cannot hold
/// a connection forever.
/// Pure: the NIO handler feeds it events and performs the actions it returns.
struct ConnectionStateMachine {
    enum Phase: Equatable {
        /// Waiting for the next request head (the header timeout runs).
        case awaitingHead
        /// Reading a body (the body timeout runs).
        case readingBody(received: Int, keepAlive: Bool)
        /// A head was rejected; the rest of the request is ignored and the connection closes after the reply.
        case rejected
        /// The service answers; no deadline (the service bounds its own work).
        case responding(keepAlive: Bool)
        /// The last reply is being written; the connection closes once it is out.
        case finishing
        case closed
    }

    enum Timer: Equatable {
        case header, body
    }

    enum Action: Equatable {
        case none
        case startTimer(Timer)
        case cancelTimer
        /// Append the bytes to the body buffer.
        case bufferBody
        case respond(keepAlive: Bool)
        /// Send this reply, then close.
        case replyAndClose(HTTPReply)
        /// Refuse the request (413, 408) in the service's words, then close.
        case refuseAndClose(status: Int, message: String)
        case close
    }

    let bodyLimit: Int
    private(set) var phase = Phase.awaitingHead
    private var shuttingDown = false
    /// Replies handed to the connection whose write has not completed: a pipelined reply can be written
    /// while an earlier one still waits on a slow reader, and the connection closes after the last.
    private var repliesInFlight = 0

    init(bodyLimit: Int) {
        self.bodyLimit = bodyLimit
    }

    /// The connection opened: the first head must arrive before the header deadline.
    func connectionOpened() -> Action { .startTimer(.header) }

    /// A head arrived; `rejection` is the service's verdict on it (nil: read the body).
    mutating func receivedHead(rejection: HTTPReply?, keepAlive: Bool) -> [Action] {
        guard phase == .awaitingHead else { return [] }
        if let rejection {
            phase = .rejected
            return [.cancelTimer, .replyAndClose(rejection)]
        }
        phase = .readingBody(received: 0, keepAlive: keepAlive && !shuttingDown)
        return [.cancelTimer, .startTimer(.body)]
    }

    mutating func receivedBody(bytes: Int) -> Action {
        guard case .readingBody(let received, let keepAlive) = phase else { return .none }
        let total = received + bytes
        if total > bodyLimit {
            phase = .rejected
            return .refuseAndClose(status: 413, message: "body is over the limit of \(bodyLimit) bytes")
        }
        phase = .readingBody(received: total, keepAlive: keepAlive)
        return .bufferBody
    }

    mutating func receivedEnd() -> [Action] {
        guard case .readingBody(_, let keepAlive) = phase else { return [] }
        phase = .responding(keepAlive: keepAlive)
        return [.cancelTimer, .respond(keepAlive: keepAlive)]
    }

    /// The reply is about to be written. A keep-alive connection waits for the next head from now on, under
    /// a fresh deadline: a pipelined request already in the buffer arrives while the reply is written, and
    /// must find the connection ready for it.
    mutating func replyWriting() -> Action {
        guard case .responding(let keepAlive) = phase else { return .none }
        repliesInFlight += 1
        if keepAlive && !shuttingDown {
            phase = .awaitingHead
            return .startTimer(.header)
        }
        phase = .finishing
        return .none
    }

    /// A reply was written: a connection that is not kept alive closes once its last reply is out.
    mutating func replySent() -> Action {
        repliesInFlight = max(0, repliesInFlight - 1)
        guard phase == .finishing, repliesInFlight == 0 else { return .none }
        phase = .closed
        return .close
    }

    mutating func timerFired(_ timer: Timer) -> Action {
        switch (phase, timer) {
        case (.awaitingHead, .header):
            // Nothing (or only part of a head) arrived: nothing to answer, just hang up.
            phase = .closed
            return .close
        case (.readingBody, .body):
            phase = .rejected
            return .refuseAndClose(status: 408, message: "request body not received in time")
        default:
            return .none
        }
    }

    /// Graceful shutdown: idle connections close now; a request in flight finishes first.
    mutating func shutdownRequested() -> Action {
        shuttingDown = true
        switch phase {
        case .awaitingHead:
            phase = .closed
            return .close
        case .readingBody(let received, _):
            phase = .readingBody(received: received, keepAlive: false)
            return .none
        case .responding:
            phase = .responding(keepAlive: false)
            return .none
        case .rejected, .finishing, .closed:
            return .none
        }
    }

    mutating func closed() { phase = .closed }
}
