import NIOCore
import NIOHTTP1

/// Receives the parts of the response an upstream connection reads. Always called on its event loop.
protocol UpstreamDelegate: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    func upstreamFailed(_ error: any Error)
    func upstreamWritabilityChanged(_ writable: Bool)
}

/// The last handler of an HTTP/2 upstream stream's pipeline: hands response parts to the exchange that
/// owns the stream, and notices when the server ends it. (HTTP/1.1 connections have `HTTP1UpstreamHandler`.)
final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    weak var delegate: (any UpstreamDelegate)?
    /// Called once when the server ends its side (FIN) or the connection fails: a pooled connection must
    /// leave the pool at once rather than be handed to the next request.
    var onPeerClosed: (() -> Void)?
    private(set) var context: ChannelHandlerContext?
    private(set) var peerClosed = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        delegate?.upstreamReceived(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        markPeerClosed()
        delegate?.upstreamFailed(ChannelError.eof)
        delegate = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        markPeerClosed()
        delegate?.upstreamFailed(error)
        delegate = nil
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            // The server sent FIN. A response delimited by the close has already ended (the decoder saw
            // the EOF first); anything else in flight is cut short. Either way the connection is done.
            markPeerClosed()
            if let delegate {
                self.delegate = nil
                delegate.upstreamFailed(ChannelError.eof)
            }
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func write(_ part: HTTPClientRequestPart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    func flush() { context?.flush() }

    private func markPeerClosed() {
        guard !peerClosed else { return }
        peerClosed = true
        onPeerClosed?()
        onPeerClosed = nil
    }
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}

/// An HTTP/2 stream to the destination, carrying one request.
final class UpstreamConnection: Hashable {
    let channel: any Channel
    let handler: UpstreamHandler
    /// True when it came from the pool rather than a fresh connect (a failure on it may be a stale socket).
    var reused = false
    private var reading = true

    init(channel: any Channel, handler: UpstreamHandler) {
        self.channel = channel
        self.handler = handler
    }

    var isWritable: Bool { channel.isWritable }

    func setReading(_ enabled: Bool) {
        guard reading != enabled else { return }
        reading = enabled
        try? channel.syncOptions?.setOption(.autoRead, value: enabled)
        // HTTP/2 stream channels do not deliver frames they already hold when autoRead is switched back on.
        if enabled { channel.read() }
    }

    static func == (lhs: UpstreamConnection, rhs: UpstreamConnection) -> Bool { lhs === rhs }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}

@available(*, unavailable)
extension UpstreamConnection: Sendable {}

/// Why an upstream could not be reached.
enum UpstreamFailure: Error {
    case connectTimeout
    case connectFailed(String)

    /// A connect error as the exchange machines see it (504 for a timeout, 502 otherwise).
    static func classify(_ error: any Error) -> UpstreamUnavailable {
        if case .connectTimeout = wrap(error) { return .connectTimedOut }
        return .connectFailed
    }

    static func wrap(_ error: any Error) -> UpstreamFailure {
        if let error = error as? UpstreamFailure { return error }
        if let error = error as? ChannelError, case .connectTimeout = error { return .connectTimeout }
        return .connectFailed("\(error)")
    }
}

/// Hands out HTTP/2 streams to the destination for the exchanges of an h2c client.
protocol UpstreamProvider: AnyObject {
    /// A connection ready now (a pooled one), without the cost of a future; nil when one must be made.
    func acquireImmediately() -> UpstreamConnection?
    func acquire() -> EventLoopFuture<UpstreamConnection>
    /// The exchange is over; `reusable` when both messages completed cleanly with keep-alive.
    func release(_ connection: UpstreamConnection, reusable: Bool)
}
