import NIOCore
import NIOHTTP1

/// Receives what an HTTP/1.1 upstream connection reads. Always called on its event loop.
protocol HTTP1UpstreamDelegate: AnyObject {
    func upstreamResponse(_ event: HTTP1ResponseDecoder.Event)
    /// The end of a read burst: what was written towards the client can be flushed.
    func upstreamReadComplete()
    func upstreamFailed(_ error: any Error)
    func upstreamWritabilityChanged(_ writable: Bool)
}

/// The only handler of an HTTP/1.1 upstream connection: it writes request bytes as the exchange framed
/// them, decodes responses with `HTTP1ResponseDecoder`, hands them to whichever exchange owns the connection,
/// and notices when the server closes it (or breaks the protocol) so the pool never hands it out again.
final class HTTP1UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    weak var delegate: (any HTTP1UpstreamDelegate)?
    /// Called once when the server ends its side (FIN), the connection fails, or it sends something that is
    /// not an answer: a pooled connection must leave the pool at once.
    var onPeerClosed: (() -> Void)?
    private(set) var peerClosed = false
    /// The channel's writability as its last change said: read per request, and a stored flag costs less
    /// than asking the channel through its existential each time.
    private(set) var writable = true
    private var context: ChannelHandlerContext?
    private var decoder = HTTP1ResponseDecoder()
    /// When the final response head of the request in flight arrived (uptime nanoseconds; 0: not yet), kept
    /// only while `timesResponses` (for the balancer, which samples latency to the response head).
    private(set) var responseHeadAt: UInt64 = 0
    private var timesResponses = false

    /// The balancer wants the next response head's arrival time.
    func timeNextResponse() {
        timesResponses = true
        responseHeadAt = 0
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        writable = context.channel.isWritable
    }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        decoder.received(unwrapInboundIn(data))
        while let event = decoder.next() {
            if case .invalid = event {
                markPeerClosed()
                let delegate = self.delegate
                self.delegate = nil
                delegate?.upstreamResponse(event)
                context.close(promise: nil)
                return
            }
            if timesResponses, responseHeadAt == 0, case .head(let head) = event, !head.isInformational {
                responseHeadAt = NIODeadline.now().uptimeNanoseconds
            }
            delegate?.upstreamResponse(event)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        peerEnded()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        peerEnded(error)
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            // The server sent FIN: a response delimited by the close ends here; anything else in flight is cut short.
            peerEnded()
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        delegate?.upstreamWritabilityChanged(writable)
        context.fireChannelWritabilityChanged()
    }

    /// A request head: the next response answers `method`.
    func writeHead(_ bytes: ByteBuffer, method: HTTPMethod) {
        decoder.requestSent(method)
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func write(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flush() { context?.flush() }

    /// The bytes that followed a `101` in the same read: the tunnel's first bytes towards the client.
    func takeUnparsed() -> ByteBuffer { decoder.takeUnparsed() }

    private func peerEnded(_ error: any Error = ChannelError.eof) {
        markPeerClosed()
        guard let delegate else { return }
        if let last = decoder.inputClosed() { delegate.upstreamResponse(last) }
        // The exchange may have let go of the connection on that last event.
        self.delegate?.upstreamFailed(error)
        self.delegate = nil
    }

    private func markPeerClosed() {
        guard !peerClosed else { return }
        peerClosed = true
        onPeerClosed?()
        onPeerClosed = nil
    }
}

@available(*, unavailable)
extension HTTP1UpstreamHandler: Sendable {}

/// A pooled HTTP/1.1 connection to a destination, carrying one request at a time.
final class HTTP1UpstreamConnection: Hashable {
    let channel: any Channel
    let handler: HTTP1UpstreamHandler
    /// Where it goes (its pool key).
    let endpoint: UpstreamEndpoint
    /// True when it came from the pool rather than a fresh connect (a failure on it may be a stale socket).
    var reused = false
    /// When the request it carries now was given it (uptime nanoseconds): the balancer's latency sample.
    var acquiredAt: UInt64 = 0
    /// The metrics of the discovered endpoint it goes to, for the request it carries now (nil: the client
    /// connection's own).
    var endpointMetrics: TargetMetrics?
    private var reading = true

    init(channel: any Channel, handler: HTTP1UpstreamHandler, endpoint: UpstreamEndpoint) {
        self.channel = channel
        self.handler = handler
        self.endpoint = endpoint
    }

    var isWritable: Bool { handler.writable }

    func setReading(_ enabled: Bool) {
        guard reading != enabled else { return }
        reading = enabled
        try? channel.syncOptions?.setOption(.autoRead, value: enabled)
        if enabled { channel.read() }
    }

    static func == (lhs: HTTP1UpstreamConnection, rhs: HTTP1UpstreamConnection) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}

@available(*, unavailable)
extension HTTP1UpstreamConnection: Sendable {}

/// Hands out HTTP/1.1 upstream connections for exchanges (the per-loop pool in production, fakes in tests).
protocol HTTP1UpstreamProvider: AnyObject {
    /// A connection ready now (a pooled one), without the cost of a future; nil when one must be made.
    func acquireImmediately() -> HTTP1UpstreamConnection?
    func acquire() -> EventLoopFuture<HTTP1UpstreamConnection>
    /// The exchange is over; `reusable` when both messages completed cleanly with keep-alive.
    func release(_ connection: HTTP1UpstreamConnection, reusable: Bool)
    /// The connection became a tunnel (a `101` or a `CONNECT`): it leaves the pool's count for good, and its
    /// channel belongs to the tunnel from now on.
    func detach(_ connection: HTTP1UpstreamConnection)
}
