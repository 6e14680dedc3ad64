import NIOCore
import NIOHTTP1
import NeedleContract

/// Receives the parts of the response an upstream connection reads. Always called on its event loop.
protocol UpstreamDelegate: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    func upstreamFailed(_ error: any Error)
    func upstreamWritabilityChanged(_ writable: Bool)
}

/// The last handler of an upstream pipeline (HTTP/1.1 connection or HTTP/2 stream): hands response parts
/// to whichever exchange currently owns the connection.
final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    weak var delegate: (any UpstreamDelegate)?
    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        delegate?.upstreamReceived(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        delegate?.upstreamFailed(ChannelError.eof)
        delegate = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        delegate?.upstreamFailed(error)
        delegate = nil
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func write(_ part: HTTPClientRequestPart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    func flush() { context?.flush() }
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}

/// A channel that can carry one request at a time to the destination.
final class UpstreamConnection {
    let channel: any Channel
    let handler: UpstreamHandler
    /// The HTTP/1.1 codec handlers, removed when the connection becomes a tunnel after a 101.
    var codecHandlers: [any RemovableChannelHandler] = []
    /// True when it came from the pool rather than a fresh connect (a failure on it may be a stale socket).
    var reused = false

    init(channel: any Channel, handler: UpstreamHandler) {
        self.channel = channel
        self.handler = handler
    }

    var isWritable: Bool { channel.isWritable }

    private var reading = true
    /// When the pool last parked it; idle connections older than the pool's timeout are closed.
    var idleSince: NIODeadline?

    func setReading(_ enabled: Bool) {
        guard reading != enabled else { return }
        reading = enabled
        try? channel.syncOptions?.setOption(.autoRead, value: enabled)
        // HTTP/2 stream channels do not deliver frames they already hold when autoRead is switched back on.
        if enabled { channel.read() }
    }
}

@available(*, unavailable)
extension UpstreamConnection: Sendable {}

/// Why an upstream could not be reached; decides between 502 and 504.
enum UpstreamFailure: Error {
    case connectTimeout
    case connectFailed(String)
}

/// Hands out upstream connections for HTTP exchanges: pooled HTTP/1.1 connections, or HTTP/2 streams.
protocol UpstreamProvider: AnyObject {
    /// A connection ready now (a pooled one), without the cost of a future; nil when one must be made.
    func acquireImmediately() -> UpstreamConnection?
    func acquire() -> EventLoopFuture<UpstreamConnection>
    /// The exchange is over; `reusable` when both messages completed cleanly with keep-alive.
    func release(_ connection: UpstreamConnection, reusable: Bool)
}
