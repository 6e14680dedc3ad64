import NIOCore

/// Cuts off clients that start a request head and never finish it (slowloris). Sits before the HTTP decoder
/// and sees raw bytes: the clock starts with the first byte of a head (not while a keep-alive connection
/// sits idle, which is legitimate) and stops when the proxy handler reports the complete head. On timeout
/// the client gets a bare `408` and the connection closes; nothing was forwarded for that request.
///
/// One check per connection is scheduled at a time and re-armed only when it fires, so a busy keep-alive
/// connection costs a clock read per request, not a timer.
final class HeaderReadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        /// Between requests: the next byte starts the clock.
        case awaitingFirstByte
        case reading(since: NIODeadline)
        /// A request is in flight (or the connection became a tunnel): no head is expected.
        case off
    }

    /// How long a client may take to send a complete request head.
    static var defaultTimeout: TimeAmount { .seconds(10) }

    private let timeout: TimeAmount
    private let bytesAlreadyRead: Bool
    private var state = State.awaitingFirstByte
    private var check: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    /// `bytesAlreadyRead`: protocol detection already read the start of the first head.
    init(timeout: TimeAmount, bytesAlreadyRead: Bool) {
        self.timeout = timeout
        self.bytesAlreadyRead = bytesAlreadyRead
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if bytesAlreadyRead { startClock() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .awaitingFirstByte = state { startClock() }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        state = .off
        context.fireChannelInactive()
    }

    /// The proxy handler has the whole head.
    func headReceived() {
        state = .off
    }

    /// The proxy handler is idle again: the next request's head is timed from its first byte.
    func awaitNextHead() {
        state = .awaitingFirstByte
    }

    private func startClock() {
        guard let now = context?.eventLoop.now else { return }
        state = .reading(since: now)
        if check == nil { scheduleCheck(at: now + timeout) }
    }

    private func scheduleCheck(at deadline: NIODeadline) {
        guard let context else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleTask(deadline: deadline) { loopBound.value.checkDeadline() }
    }

    private func checkDeadline() {
        check = nil
        guard case .reading(let since) = state, let context else { return }
        guard context.eventLoop.now - since >= timeout else {
            // A later head is being read: check again when its own time is up.
            scheduleCheck(at: since + timeout)
            return
        }
        state = .off
        let response = "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: response))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension HeaderReadTimeoutHandler: Sendable {}
