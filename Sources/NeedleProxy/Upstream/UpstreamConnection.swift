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
    private(set) var context: ChannelHandlerContext?
    /// When the final response head arrived (uptime nanoseconds; 0: not yet), kept only while
    /// `timesResponses` (for the balancer, which samples latency to the response head).
    private(set) var responseHeadAt: UInt64 = 0
    var timesResponses = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if timesResponses, responseHeadAt == 0, case .head(let head) = part, head.status.code >= 200 {
            responseHeadAt = NIODeadline.now().uptimeNanoseconds
        }
        delegate?.upstreamReceived(part)
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

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            // The server ended the stream: anything still in flight is cut short.
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
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}

/// An HTTP/2 stream to the destination, carrying one request.
final class UpstreamConnection {
    let channel: any Channel
    let handler: UpstreamHandler
    /// The discovered endpoint whose connection carries the stream (set by the balancer that chose it).
    var endpoint: UpstreamEndpoint?
    /// When the exchange was given the stream (uptime nanoseconds): the balancer's latency sample.
    var acquiredAt: UInt64 = 0
    /// The metrics of the discovered endpoint it goes to, for the request it carries now (nil: the client
    /// connection's own).
    var endpointMetrics: TargetMetrics?
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

/// Upstreams that belong to one client connection and end with it.
protocol ClosableUpstreams: AnyObject {
    /// The client connection is gone: so are its upstream connections.
    func close()
}
