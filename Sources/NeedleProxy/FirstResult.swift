import NIOConcurrencyHelpers
import NIOCore

/// A promise that the first of several racing outcomes completes (an answer, the connection's end, an
/// error, a timeout); the later ones are ignored instead of completing it twice.
final class FirstResult<Value: Sendable>: Sendable {
    private let promise: NIOLockedValueBox<EventLoopPromise<Value>?>
    let future: EventLoopFuture<Value>

    init(_ promise: EventLoopPromise<Value>) {
        self.promise = NIOLockedValueBox(promise)
        future = promise.futureResult
    }

    func complete(_ result: Result<Value, any Error>) {
        let pending = promise.withLockedValue { promise in
            defer { promise = nil }
            return promise
        }
        pending?.completeWith(result)
    }
}
