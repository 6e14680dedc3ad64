import NIOCore
import NIOHTTP1
import NIOSSL
import NeedleContract

/// The proxy's lookups at the destination service (`DestinationAPI`): each one a `GET
/// /v1/destinations?address=IP:PORT` on its own stream of one HTTP/2 connection over mutual TLS (the proxy's
/// certificate; the service verified by its TLS name), its streamed answer decoded into events as it arrives.
/// However many destinations a proxy looks up, it holds one connection to the controller. The connection is
/// made on the first lookup and again on the next one after it is lost (its lookups end then, and retry). A
/// lookup lasts until the returned stream channel is closed or the answer ends; `onEnd` says why, exactly once.
final class DestinationStreamClient: Sendable {
    typealias Events = @Sendable ([DestinationEvent]) -> Void
    typealias Ended = @Sendable (String) -> Void

    private let loop: any EventLoop
    private let connector: ControlPlaneConnector
    /// The client TLS context of the certificate in use, offering `h2` by ALPN; nil while there is none.
    private let context: @Sendable () -> NIOSSLContext?
    /// Made on first use, on `loop`: everything about the connection happens there.
    private let streams: NIOLoopBoundBox<HTTP2UpstreamProvider?>

    init(connector: ControlPlaneConnector, loop: any EventLoop, context: @escaping @Sendable () -> NIOSSLContext?) {
        self.loop = loop
        self.connector = connector
        self.context = context
        streams = .makeEmptyBox(valueType: HTTP2UpstreamProvider.self, eventLoop: loop)
    }

    func lookup(_ address: ListenAddress, onEvents: @escaping Events, onEnd: @escaping Ended) -> EventLoopFuture<any Channel> {
        let serverName = connector.service.tlsName.description
        let opened = loop.flatSubmit { [self] in
            provider.acquire().assumeIsolated().map { stream -> any Channel in
                let answer = DestinationAnswer(onEvents: onEvents, onEnd: onEnd)
                stream.handler.delegate = answer
                // The handler holds its delegate weakly: the stream keeps the answer until it closes.
                stream.channel.closeFuture.whenComplete { _ in answer.end("the lookup's stream closed", channel: nil) }
                answer.stream = stream.channel
                var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: DestinationAPI.target(for: address))
                head.headers.add(name: "host", value: serverName)
                stream.handler.write(.head(head))
                stream.handler.write(.end(nil))
                stream.handler.flush()
                return stream.channel
            }.nonisolated()
        }
        opened.whenFailure { error in onEnd("cannot reach the destination service: \(error)") }
        return opened
    }

    private var provider: HTTP2UpstreamProvider {
        if let existing = streams.value { return existing }
        let (connector, context) = (self.connector, self.context)
        let made = HTTP2UpstreamProvider(eventLoop: loop) { eventLoop, configure in
            guard let tls = context() else {
                return eventLoop.makeFailedFuture(UpstreamFailure.connectFailed("no certificate in use to reach the destination service with"))
            }
            return connector.connect(context: tls, on: eventLoop) { sync in try configure(sync) }
        }
        streams.value = made
        return made
    }
}

/// Reads one destination answer from its stream: a 200 head, then body bytes decoded into events. Anything
/// else ends the lookup with the reason and closes the stream. Runs on the stream's event loop.
private final class DestinationAnswer: UpstreamDelegate {
    private enum State {
        case awaitingHead
        case streaming(DestinationStreamDecoder)
        case ended
    }

    private var state = State.awaitingHead
    private let onEvents: DestinationStreamClient.Events
    private let onEnd: DestinationStreamClient.Ended
    var stream: (any Channel)?

    init(onEvents: @escaping DestinationStreamClient.Events, onEnd: @escaping DestinationStreamClient.Ended) {
        self.onEvents = onEvents
        self.onEnd = onEnd
    }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        switch (part, state) {
        case (.head(let head), .awaitingHead):
            guard head.status == .ok else {
                end("the destination service answered \(head.status.code)", channel: stream)
                return
            }
            state = .streaming(DestinationStreamDecoder())
        case (.body(let bytes), .streaming(var decoder)):
            switch decoder.receive(bytes) {
            case .success(let events):
                state = .streaming(decoder)
                if !events.isEmpty { onEvents(events) }
            case .failure(let problem):
                end(problem.description, channel: stream)
            }
        case (.end, .streaming), (.end, .awaitingHead):
            end("the destination service ended the answer", channel: stream)
        case (_, .ended), (.head, .streaming), (.body, .awaitingHead):
            break
        }
    }

    func upstreamFailed(_ error: any Error) {
        end("the connection to the destination service failed: \(error)", channel: stream)
    }

    func upstreamWritabilityChanged(_ writable: Bool) {}

    func end(_ reason: String, channel: (any Channel)?) {
        if case .ended = state { return }
        state = .ended
        stream = nil
        onEnd(reason)
        channel?.close(promise: nil)
    }
}

@available(*, unavailable)
extension DestinationAnswer: Sendable {}
