import NIOCore

/// Cuts off clients that start a request head and never finish it (slowloris). Owned by `HTTP1ProxyHandler`
/// (a handler of its own would cost a pipeline hop on every read): the clock starts with the first byte of
/// a head (not while a keep-alive connection sits idle, which is legitimate) and stops when the head is
/// complete. When time is up it calls `onTimeout`; the handler answers a bare `408` and closes. Nothing of
/// that request was forwarded.
///
/// One check per connection is scheduled at a time and re-armed only when it fires, so a busy keep-alive
/// connection costs a clock read per request, not a timer.
final class HeaderReadTimer {
    private enum State {
        /// Between requests: the next byte starts the clock.
        case awaitingFirstByte
        case reading(since: NIODeadline)
        /// A request is in flight (or the connection is done): no head is expected.
        case off
    }

    /// How long a client may take to send a complete request head.
    static var defaultTimeout: TimeAmount { .seconds(10) }

    private let timeout: TimeAmount
    private var state = State.awaitingFirstByte
    private var check: Scheduled<Void>?
    private var eventLoop: (any EventLoop)?
    private var onTimeout: (() -> Void)?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    /// Starts watching; `bytesAlreadyRead` when protocol detection already read the start of the first head.
    func start(on eventLoop: any EventLoop, bytesAlreadyRead: Bool, onTimeout: @escaping () -> Void) {
        self.eventLoop = eventLoop
        self.onTimeout = onTimeout
        if bytesAlreadyRead { startClock() }
    }

    /// The connection is done (closed, or handed to a tunnel).
    func stop() {
        check?.cancel()
        check = nil
        state = .off
        onTimeout = nil
    }

    func bytesArrived() {
        if case .awaitingFirstByte = state { startClock() }
    }

    /// The whole head is in.
    func headReceived() {
        state = .off
    }

    /// Idle again: the next request's head is timed from its first byte.
    func awaitNextHead() {
        if case .off = state, onTimeout != nil { state = .awaitingFirstByte }
    }

    private func startClock() {
        guard let now = eventLoop?.now else { return }
        state = .reading(since: now)
        if check == nil { scheduleCheck(at: now + timeout) }
    }

    private func scheduleCheck(at deadline: NIODeadline) {
        guard let eventLoop else { return }
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        check = eventLoop.scheduleTask(deadline: deadline) { loopBound.value.checkDeadline() }
    }

    private func checkDeadline() {
        check = nil
        guard case .reading(let since) = state, let eventLoop else { return }
        guard eventLoop.now - since >= timeout else {
            // A later head is being read: check again when its own time is up.
            scheduleCheck(at: since + timeout)
            return
        }
        let onTimeout = self.onTimeout
        stop()
        onTimeout?()
    }
}

@available(*, unavailable)
extension HeaderReadTimer: Sendable {}
