import Logging
import NIOCore
import NIOHTTP1

/// Serves one connection of a `RequestService`. Thin: the `ConnectionStateMachine` decides, this performs.
final class RequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    struct Timeouts {
        var header: TimeAmount
        var body: TimeAmount
    }

    private var state: ConnectionStateMachine
    private let timeouts: Timeouts
    private let service: any RequestService
    private var head: RequestHead?
    private var body: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var requestVersion = HTTPVersion.http1_1
    /// Copies a streamed reply's body to the connection; cancelled when the connection closes.
    private var streaming: Task<Void, Never>?

    init(service: any RequestService, timeouts: Timeouts) {
        self.service = service
        self.timeouts = timeouts
        self.state = ConnectionStateMachine(bodyLimit: service.bodyLimit)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { perform(state.connectionOpened(), context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        perform(state.connectionOpened(), context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        streaming?.cancel()
        streaming = nil
        state.closed()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let received):
            requestVersion = received.version
            body = nil
            let head = RequestHead(method: received.method.rawValue, uri: received.uri,
                                   fields: received.headers.map { (name: $0.name, value: $0.value) }, keepAlive: received.isKeepAlive)
            self.head = head
            for action in state.receivedHead(rejection: service.check(head), keepAlive: head.keepAlive) {
                perform(action, context: context)
            }
        case .body(var bytes):
            let action = state.receivedBody(bytes: bytes.readableBytes)
            if action == .bufferBody {
                if body == nil {
                    body = bytes
                } else {
                    body?.writeBuffer(&bytes)
                }
            } else {
                perform(action, context: context)
            }
        case .end:
            for action in state.receivedEnd() { perform(action, context: context) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // NIO's HTTP/1.1 pipeline handler usually acts on the quiesce itself; it passes the event on when it
        // is removed mid-drain, and then this connection finishes the same way.
        if event is ChannelShouldQuiesceEvent {
            // A streamed reply never ends on its own: a draining server ends it (the client asks again,
            // elsewhere).
            if streaming != nil {
                context.close(promise: nil)
                return
            }
            perform(state.shutdownRequested(), context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // TLS handshake failures and resets: nothing to answer, the connection is gone.
        context.close(promise: nil)
    }

    private func perform(_ action: ConnectionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none, .bufferBody:
            break
        case .startTimer(let kind):
            timer?.cancel()
            let delay = kind == .header ? timeouts.header : timeouts.body
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: delay) {
                let (handler, context) = loopBound.value
                handler.perform(handler.state.timerFired(kind), context: context)
            }
        case .cancelTimer:
            timer?.cancel()
            timer = nil
        case .replyAndClose(let reply):
            replyAndClose(reply, context: context)
        case .refuseAndClose(let status, let message):
            replyAndClose(service.refusal(status: status, message: message), context: context)
        case .close:
            context.close(promise: nil)
        case .respond(let keepAlive):
            let requestBody = body.map { Array($0.readableBytesView) } ?? []
            body = nil
            guard let head else { return }
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            if let reply = service.replyAtHand(to: head, body: requestBody) {
                // Written on the next tick, not inside this read: NIO hands over the next pipelined request
                // while a reply's end is written, and answering it there too would nest a stack frame per
                // request a client queued.
                context.eventLoop.execute {
                    let (handler, context) = loopBound.value
                    guard context.channel.isActive else { return }
                    handler.send(reply, keepAlive: keepAlive, context: context)
                }
                return
            }
            let service = self.service
            context.eventLoop.makeFutureWithTask {
                await service.reply(to: head, body: requestBody)
            }.whenSuccess { reply in
                let (handler, context) = loopBound.value
                guard context.channel.isActive else { return }
                switch reply {
                case .whole(let reply):
                    handler.send(reply, keepAlive: keepAlive, context: context)
                case .stream(let reply):
                    handler.stream(reply, context: context)
                }
            }
        }
    }

    private func send(_ reply: HTTPReply, keepAlive: Bool, context: ChannelHandlerContext) {
        // Ready for the next head before writing: NIO's pipelining helper hands over a request that was
        // waiting as soon as this reply's end is written.
        perform(state.replyWriting(), context: context)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        write(reply, keepAlive: keepAlive, context: context).whenComplete { _ in
            let (handler, context) = loopBound.value
            handler.perform(handler.state.replySent(), context: context)
        }
    }

    /// Sends the head, then each element of the body as it comes, waiting for each write so a client that
    /// does not read holds up only its own stream; closes when the stream ends.
    private func stream(_ reply: HTTPStreamReply, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: reply.contentType)
        headers.add(name: "transfer-encoding", value: "chunked")
        headers.add(name: "connection", value: "close")
        let head = HTTPResponseHead(version: requestVersion, status: HTTPResponseStatus(statusCode: reply.status), headers: headers)
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        let channel = context.channel
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        streaming = Task {
            for await element in reply.body {
                let written = channel.eventLoop.flatSubmit {
                    let (handler, context) = loopBound.value
                    let part = HTTPServerResponsePart.body(.byteBuffer(context.channel.allocator.buffer(bytes: element)))
                    return context.writeAndFlush(handler.wrapOutboundOut(part))
                }
                do {
                    try await written.get()
                } catch {
                    return
                }
            }
            // Cancelled: the connection is already gone.
            guard !Task.isCancelled else { return }
            channel.eventLoop.execute {
                let (handler, context) = loopBound.value
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            }
        }
    }

    private func replyAndClose(_ reply: HTTPReply, context: ChannelHandlerContext) {
        service.recordRejection(reply)
        write(reply, keepAlive: false, context: context).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func write(_ reply: HTTPReply, keepAlive: Bool, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: reply.contentType)
        headers.add(name: "content-length", value: String(reply.body.count))
        headers.add(name: "connection", value: keepAlive ? "keep-alive" : "close")
        let head = HTTPResponseHead(version: requestVersion, status: HTTPResponseStatus(statusCode: reply.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: reply.body)))), promise: nil)
        return context.writeAndFlush(wrapOutboundOut(.end(nil)))
    }
}

@available(*, unavailable)
extension RequestHandler: Sendable {}
