import Logging
import NIOCore

/// Logs accept failures (descriptor exhaustion, above all) at most once per interval, with the number of
/// failures since the last line, so a proxy out of descriptors does not also fill the node's disk.
final class AcceptFailureLogger: ChannelInboundHandler {
    typealias InboundIn = Any

    /// How long accepting pauses after a failure (NIO's `AcceptBackoffHandler` asks this).
    static func backoff(_ error: IOError) -> TimeAmount? { .milliseconds(250) }

    private let logger: Logger
    private let direction: Direction
    private var limiter = LogRateLimiter(interval: .seconds(10))

    init(logger: Logger, direction: Direction) {
        self.logger = logger
        self.direction = direction
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let suppressed = limiter.shouldLog(now: .now()) else { return }
        logger.warning("accept failed; pausing accepts briefly", metadata: [
            "direction": "\(direction.rawValue)", "error": "\(error)", "failures_not_logged": "\(suppressed)",
        ])
    }
}

@available(*, unavailable)
extension AcceptFailureLogger: Sendable {}

/// At most one log line per interval. Pure: the caller passes the time.
struct LogRateLimiter {
    let interval: TimeAmount
    private var lastLogged: NIODeadline?
    private var suppressed = 0

    init(interval: TimeAmount) {
        self.interval = interval
    }

    /// nil when this occurrence should not be logged; otherwise how many were skipped since the last line.
    mutating func shouldLog(now: NIODeadline) -> Int? {
        if let lastLogged, now - lastLogged < interval {
            suppressed += 1
            return nil
        }
        lastLogged = now
        defer { suppressed = 0 }
        return suppressed
    }
}
