import NIOCore

/// First in every client pipeline: counts bytes read from and written to the client, whatever the protocol.
/// Until the connection's labels are known (detection decides whether it is plaintext, passed-through TLS
/// or mesh TLS) it keeps the counts itself and hands them over with `count(into:)`.
final class ByteCounter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var metrics: TargetMetrics?
    private var pendingRead: Int64 = 0
    private var pendingWritten: Int64 = 0

    init(metrics: TargetMetrics? = nil) {
        self.metrics = metrics
    }

    /// From now on the bytes count under `metrics`, with those seen so far.
    func count(into metrics: TargetMetrics) {
        self.metrics = metrics
        if pendingRead > 0 { metrics.readBytes.increment(by: pendingRead) }
        if pendingWritten > 0 { metrics.writeBytes.increment(by: pendingWritten) }
        pendingRead = 0
        pendingWritten = 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let count = Int64(unwrapInboundIn(data).readableBytes)
        if let metrics { metrics.readBytes.increment(by: count) } else { pendingRead += count }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let count = Int64(unwrapOutboundIn(data).readableBytes)
        if let metrics { metrics.writeBytes.increment(by: count) } else { pendingWritten += count }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension ByteCounter: Sendable {}
