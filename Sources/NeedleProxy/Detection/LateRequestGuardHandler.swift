import NIOCore

/// Holds an inbound opaque connection's first client bytes until `LateRequestCheck` judges them, then
/// either passes them (and steps out) or closes the connection. Used only after a detect timeout with
/// nothing read, the one way an HTTP request could otherwise reach the app without the proxy parsing it.
/// Held bytes get `timeout` from the first of them to be judged; a silent client is not timed here.
final class LateRequestGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        case holding(ByteBuffer)
        /// Passed on or refused: nothing more is held or judged here.
        case finished
    }

    private var state: State
    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private let onRefused: () -> Void

    init(allocator: ByteBufferAllocator, timeout: TimeAmount, onRefused: @escaping () -> Void) {
        self.state = .holding(allocator.buffer(capacity: 0))
        self.timeout = timeout
        self.onRefused = onRefused
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        state = .finished
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .holding(var held) = state else { return }
        var bytes = unwrapInboundIn(data)
        held.writeBuffer(&bytes)
        state = .holding(held)
        let verdict = held.withUnsafeReadableBytes { LateRequestCheck.judge($0) }
        if verdict == .wait, deadline == nil {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: timeout) {
                let (handler, context) = loopBound.value
                guard case .holding(let held) = handler.state else { return }
                handler.act(on: held.withUnsafeReadableBytes { LateRequestCheck.judgeAtDeadline($0) }, context: context)
            }
        }
        act(on: verdict, context: context)
    }

    private func act(on verdict: LateRequestCheck.Verdict, context: ChannelHandlerContext) {
        switch verdict {
        case .wait:
            return
        case .pass:
            pass(context: context)
        case .refuse:
            deadline?.cancel()
            state = .finished
            onRefused()
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The client finished before a verdict: an unfinished line cannot become a request any more.
        let inputClosed = (event as? ChannelEvent).map { if case .inputClosed = $0 { true } else { false } } ?? false
        if inputClosed, case .holding(let held) = state {
            state = .finished
            passOn(held, context: context)
            context.fireUserInboundEventTriggered(event)
            _ = context.pipeline.syncOperations.removeHandler(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func pass(context: ChannelHandlerContext) {
        guard case .holding(let held) = state else { return }
        state = .finished
        passOn(held, context: context)
        _ = context.pipeline.syncOperations.removeHandler(context: context)
    }

    private func passOn(_ held: ByteBuffer, context: ChannelHandlerContext) {
        guard held.readableBytes > 0 else { return }
        context.fireChannelRead(wrapInboundOut(held))
        context.fireChannelReadComplete()
    }
}

@available(*, unavailable)
extension LateRequestGuardHandler: Sendable {}
