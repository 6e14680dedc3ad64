import NIOCore

/// Reads a connection's first bytes until `ProtocolDetector` decides or the timeout passes, then hands the
/// connection and every byte it read to `onDecision` and steps out of the pipeline. A client that says
/// nothing (a server-speaks-first protocol) is treated as opaque TCP at the timeout, never dropped; one that
/// said part of what could be an HTTP request is carried as HTTP (`ProtocolDetector.detectAtEnd`).
final class DetectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    typealias Decision = (_ context: ChannelHandlerContext, _ detected: DetectedProtocol, _ buffered: ByteBuffer, _ timedOut: Bool,
                          _ inputClosed: Bool) -> Void

    private let timeout: TimeAmount
    private let reading: RequestLineReading
    private let onDecision: Decision
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var decided = false

    init(timeout: TimeAmount, reading: RequestLineReading, onDecision: @escaping Decision) {
        self.timeout = timeout
        self.reading = reading
        self.onDecision = onDecision
    }

    func handlerAdded(context: ChannelHandlerContext) {
        buffered = context.channel.allocator.buffer(capacity: 512)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            let detected = handler.buffered.map { buffer in buffer.withUnsafeReadableBytes { ProtocolDetector.detectAtEnd($0, reading: handler.reading) } } ?? .opaque
            handler.decide(detected, timedOut: true, inputClosed: false, context: context)
        }
        // Added in the child-channel initializer, before the channel is active: the first read is asked
        // for in channelActive then. Added later (already active), ask now.
        if context.channel.isActive { context.read() }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        if !decided { context.read() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else {
            context.fireChannelRead(data)
            return
        }
        var bytes = unwrapInboundIn(data)
        buffered?.writeBuffer(&bytes)
        guard let buffered else { return }
        let result = buffered.withUnsafeReadableBytes { ProtocolDetector.detect($0, reading: reading) }
        if case .detected(let detected) = result {
            decide(detected, timedOut: false, inputClosed: false, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !decided { context.read() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard !decided, let event = event as? ChannelEvent, case .inputClosed = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        // The client finished sending before detection decided: nothing more is coming, so decide on
        // what arrived (an empty connection is just closed).
        guard let buffered, buffered.readableBytes > 0 else {
            decided = true
            context.close(promise: nil)
            return
        }
        let detected = buffered.withUnsafeReadableBytes { ProtocolDetector.detectAtEnd($0, reading: reading) }
        decide(detected, timedOut: false, inputClosed: true, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        decided = true
        context.fireChannelInactive()
    }

    private func decide(_ detected: DetectedProtocol, timedOut: Bool, inputClosed: Bool, context: ChannelHandlerContext) {
        guard !decided else { return }
        decided = true
        timer?.cancel()
        let bytes = buffered ?? context.channel.allocator.buffer(capacity: 0)
        buffered = nil
        onDecision(context, detected, bytes, timedOut, inputClosed)
    }
}

@available(*, unavailable)
extension DetectionHandler: Sendable {}
