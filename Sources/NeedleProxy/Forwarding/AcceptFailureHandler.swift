#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import NIOCore

/// Handles accept failures on a listener. Out of descriptors (EMFILE/ENFILE) or memory, accepting again at
/// once only fails again: the listener stops reading for a moment (autoRead off, which also takes the
/// socket out of epoll; NIO's `AcceptBackoffHandler` cannot, because the failed read stays pending and
/// the listening socket keeps polling readable). Failures are logged at most once per interval, with the
/// number not logged, so a proxy out of descriptors does not also fill the node's disk.
final class AcceptFailureHandler: ChannelInboundHandler {
    typealias InboundIn = Any
    typealias InboundOut = Any

    /// How long accepting pauses after a failure.
    static var pause: TimeAmount { .milliseconds(250) }

    private enum State {
        case accepting
        case paused(Scheduled<Void>)
    }

    private let logger: Logger
    private let direction: Direction
    private var state = State.accepting
    private var limiter = LogRateLimiter(interval: .seconds(10))

    init(logger: Logger, direction: Direction) {
        self.logger = logger
        self.direction = direction
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let suppressed = limiter.shouldLog(now: context.eventLoop.now) {
            logger.warning("accept failed; pausing accepts briefly", metadata: [
                "direction": "\(direction.rawValue)", "error": "\(error)", "failures_not_logged": "\(suppressed)",
            ])
        }
        guard case .accepting = state, Self.isTransient(error) else { return }
        try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        state = .paused(context.eventLoop.scheduleTask(in: Self.pause) {
            let (handler, context) = loopBound.value
            handler.state = .accepting
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        })
    }

    /// Whether accepting is paused now.
    var isPaused: Bool {
        if case .paused = state { return true }
        return false
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .paused(let scheduled) = state { scheduled.cancel() }
        state = .accepting
        context.fireChannelInactive()
    }

    static func isTransient(_ error: any Error) -> Bool {
        guard let error = error as? IOError else { return false }
        return [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode)
    }
}

@available(*, unavailable)
extension AcceptFailureHandler: Sendable {}
