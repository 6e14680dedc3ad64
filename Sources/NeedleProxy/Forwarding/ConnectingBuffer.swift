import NIOCore

/// Keeps what a client sends while its opaque upstream is being connected. Detection may leave one read
/// outstanding when it decides; bytes it brings would otherwise reach the end of the pipeline before the
/// splice and be lost. Bounded: no read is asked for until the splice, so at most that one read is held.
final class ConnectingBuffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private(set) var received: ByteBuffer
    private(set) var inputClosed = false

    init(allocator: ByteBufferAllocator) {
        received = allocator.buffer(capacity: 0)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
    }

    func channelReadComplete(context: ChannelHandlerContext) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            inputClosed = true
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

@available(*, unavailable)
extension ConnectingBuffer: Sendable {}
