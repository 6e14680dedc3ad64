import NIOCore
import NIOHTTP1
import NIOSSL
import NeedleContract

/// One destination lookup (`DestinationAPI`): `GET /v1/destinations?address=IP:PORT` to the destination
/// service over mutual TLS (the proxy's own certificate; the service verified by its TLS name), then the
/// streamed answer, decoded into events as it arrives. The lookup lasts until the returned channel is
/// closed or the answer ends; `onEnd` says why, exactly once.
struct DestinationStreamClient: Sendable {
    let connector: ControlPlaneConnector

    typealias Events = @Sendable ([DestinationEvent]) -> Void
    typealias Ended = @Sendable (String) -> Void

    func lookup(_ address: ListenAddress, context: NIOSSLContext, onEvents: @escaping Events,
                onEnd: @escaping Ended) -> EventLoopFuture<any Channel> {
        let serverName = connector.service.tlsName.description
        let connected = connector.connect(context: context) { sync in
            try sync.addHandler(DestinationAnswerHandler(onEvents: onEvents, onEnd: onEnd))
        }
        connected.whenSuccess { channel in
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: DestinationAPI.target(for: address))
            head.headers.add(name: "Host", value: serverName)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        connected.whenFailure { error in onEnd("cannot reach the destination service: \(error)") }
        return connected
    }
}

/// Reads a destination answer: a 200 head, then body bytes decoded into events. Anything else ends the
/// lookup with the reason and closes the connection.
private final class DestinationAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private enum State {
        case awaitingHead
        case streaming(DestinationStreamDecoder)
        case ended
    }

    private var state = State.awaitingHead
    private let onEvents: DestinationStreamClient.Events
    private let onEnd: DestinationStreamClient.Ended

    init(onEvents: @escaping DestinationStreamClient.Events, onEnd: @escaping DestinationStreamClient.Ended) {
        self.onEvents = onEvents
        self.onEnd = onEnd
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .awaitingHead):
            guard head.status == .ok else {
                end("the destination service answered \(head.status.code)", context: context)
                return
            }
            state = .streaming(DestinationStreamDecoder())
        case (.body(let bytes), .streaming(var decoder)):
            switch decoder.receive(bytes) {
            case .success(let events):
                state = .streaming(decoder)
                if !events.isEmpty { onEvents(events) }
            case .failure(let problem):
                end(problem.description, context: context)
            }
        case (.end, .streaming), (.end, .awaitingHead):
            end("the destination service ended the answer", context: context)
        case (_, .ended), (.head, .streaming), (.body, .awaitingHead):
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        end("the connection to the destination service closed", context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        end("the connection to the destination service failed: \(error)", context: context)
    }

    private func end(_ reason: String, context: ChannelHandlerContext) {
        if case .ended = state { return }
        state = .ended
        onEnd(reason)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension DestinationAnswerHandler: Sendable {}
