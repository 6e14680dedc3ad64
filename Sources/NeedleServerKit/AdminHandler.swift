import NIOCore
import NIOHTTP1

/// An admin listener's HTTP/1.1 handler: answers with `AdminRoute`. Add it after
/// `configureHTTPServerPipeline(withErrorHandling: true)`.
public final class AdminHandler: ChannelInboundHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    /// What the routes read from the server they belong to.
    public struct State: Sendable {
        let ready: @Sendable () -> Bool
        let draining: @Sendable () -> Bool
        let shutdownEnabled: Bool
        let metrics: @Sendable () -> [UInt8]
        let requestShutdown: @Sendable () -> Void

        public init(ready: @escaping @Sendable () -> Bool, draining: @escaping @Sendable () -> Bool, shutdownEnabled: Bool,
                    metrics: @escaping @Sendable () -> [UInt8], requestShutdown: @escaping @Sendable () -> Void) {
            self.ready = ready
            self.draining = draining
            self.shutdownEnabled = shutdownEnabled
            self.metrics = metrics
            self.requestShutdown = requestShutdown
        }
    }

    private let state: State
    private var head: HTTPRequestHead?

    public init(state: State) {
        self.state = state
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let loopback = context.channel.remoteAddress.map(Self.isLoopback) ?? false
            let reply = AdminRoute.route(method: head.method, uri: head.uri, fromLoopback: loopback, ready: state.ready(),
                                         draining: state.draining(), shutdownEnabled: state.shutdownEnabled, metrics: state.metrics)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: reply.contentType)
            headers.add(name: "content-length", value: String(reply.body.count))
            if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: reply.status, headers: headers))), promise: nil)
            if head.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: reply.body)))), promise: nil)
            }
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !head.isKeepAlive { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
            if reply.triggersShutdown { state.requestShutdown() }
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    static func isLoopback(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4: return address.ipAddress?.hasPrefix("127.") ?? false
        case .v6: return address.ipAddress == "::1" || (address.ipAddress?.hasPrefix("::ffff:127.") ?? false)
        case .unixDomainSocket: return true
        }
    }
}

@available(*, unavailable)
extension AdminHandler: Sendable {}
