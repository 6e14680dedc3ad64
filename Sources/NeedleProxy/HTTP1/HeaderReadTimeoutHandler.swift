import NIOCore

/// Cuts off clients that start a request head and never finish it (slowloris). Sits before the HTTP decoder
/// and sees raw bytes: the clock starts with the first byte of a head (not while a keep-alive connection
/// sits idle, which is legitimate) and stops when the proxy handler reports the complete head. On timeout
/// the client gets a bare `408` and the connection closes; nothing was forwarded for that request.
final class HeaderReadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        /// Between requests: the next byte starts the clock.
        case awaitingFirstByte
        case timing(Scheduled<Void>)
        /// A request is in flight (or the connection became a tunnel): no head is expected.
        case off
    }

    /// How long a client may take to send a complete request head.
    static var defaultTimeout: TimeAmount { .seconds(10) }

    private let timeout: TimeAmount
    private let bytesAlreadyRead: Bool
    private var state = State.awaitingFirstByte
    private var context: ChannelHandlerContext?

    /// `bytesAlreadyRead`: protocol detection already read the start of the first head.
    init(timeout: TimeAmount, bytesAlreadyRead: Bool) {
        self.timeout = timeout
        self.bytesAlreadyRead = bytesAlreadyRead
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if bytesAlreadyRead { startClock(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopClock()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .awaitingFirstByte = state { startClock(context: context) }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopClock()
        context.fireChannelInactive()
    }

    /// The proxy handler has the whole head.
    func headReceived() {
        stopClock()
    }

    /// The proxy handler is idle again: the next request's head is timed from its first byte.
    func awaitNextHead() {
        stopClock()
        state = .awaitingFirstByte
    }

    private func startClock(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        state = .timing(context.eventLoop.scheduleTask(in: timeout) { loopBound.value.timedOut() })
    }

    private func stopClock() {
        if case .timing(let scheduled) = state { scheduled.cancel() }
        state = .off
    }

    private func timedOut() {
        guard case .timing = state, let context else { return }
        state = .off
        let response = "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: response))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension HeaderReadTimeoutHandler: Sendable {}
