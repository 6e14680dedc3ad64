import NIOConcurrencyHelpers
import NIOCore
import NIOExtras

/// Graceful drain for a server's listeners, on NIO's own quiesce: each listener gets a handler that tracks
/// its connections; `drain` stops accepting, sends every connection `ChannelShouldQuiesceEvent` (HTTP/1
/// handlers finish the exchange in flight, HTTP/2 sends GOAWAY) and returns as soon as the last connection
/// has closed, or when the grace period is over. Nothing polls.
public final class ConnectionDrain: Sendable {
    private let group: any EventLoopGroup
    private let quiescer: ServerQuiescingHelper

    public init(group: any EventLoopGroup) {
        self.group = group
        self.quiescer = ServerQuiescingHelper(group: group)
    }

    /// Add to a listening channel's pipeline (in `serverChannelInitializer`).
    public func makeListenerHandler(channel: any Channel) -> any ChannelHandler {
        quiescer.makeServerChannelHandler(channel: channel)
    }

    /// True when every connection closed within `gracePeriod`; false when some were still open at its end
    /// (the caller closes them, typically by shutting the event loop group down).
    public func drain(gracePeriod: Duration) async -> Bool {
        let promise = group.next().makePromise(of: Void.self)
        quiescer.initiateShutdown(promise: promise)
        // A race resumed once by whichever comes first. (Not a task group: it would wait for the losing
        // child, and a future that never completes cannot be cancelled.)
        let waiting = NIOLockedValueBox<CheckedContinuation<Bool, Never>?>(nil)
        return await withCheckedContinuation { continuation in
            waiting.withLockedValue { $0 = continuation }
            let timer = Task {
                guard (try? await Task.sleep(for: gracePeriod)) != nil else { return }  // cancelled: all closed
                Self.resume(waiting, with: false)
            }
            promise.futureResult.whenComplete { _ in
                Self.resume(waiting, with: true)
                timer.cancel()
            }
        }
    }

    private static func resume(_ waiting: NIOLockedValueBox<CheckedContinuation<Bool, Never>?>, with finished: Bool) {
        waiting.withLockedValue { continuation in
            continuation?.resume(returning: finished)
            continuation = nil
        }
    }
}
