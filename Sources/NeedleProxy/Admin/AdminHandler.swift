import NIOCore
import NIOHTTP1

/// What the admin port answers (pure): `/metrics`, `/ready`, `/live`, and `POST /shutdown` when enabled
/// and asked from the pod itself.
enum AdminRoute {
    struct Reply: Equatable {
        var status: HTTPResponseStatus
        var contentType = "text/plain; charset=utf-8"
        var body: [UInt8]
        var triggersShutdown = false
    }

    static func route(method: HTTPMethod, uri: String, fromLoopback: Bool, ready: Bool, draining: Bool,
                      shutdownEnabled: Bool, metrics: () -> [UInt8]) -> Reply {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        switch (method, path) {
        case (.GET, "/metrics"), (.HEAD, "/metrics"):
            return Reply(status: .ok, contentType: "text/plain; version=0.0.4", body: metrics())
        case (.GET, "/ready"), (.HEAD, "/ready"):
            if draining { return text(.serviceUnavailable, "draining\n") }
            return ready ? text(.ok, "ready\n") : text(.serviceUnavailable, "not ready\n")
        case (.GET, "/live"), (.HEAD, "/live"):
            return text(.ok, "live\n")
        case (.POST, "/shutdown"):
            guard shutdownEnabled else { return text(.notFound, "shutdown endpoint disabled\n") }
            guard fromLoopback else { return text(.forbidden, "shutdown is accepted only from localhost\n") }
            var reply = text(.accepted, "shutting down\n")
            reply.triggersShutdown = true
            return reply
        case (_, "/metrics"), (_, "/ready"), (_, "/live"), (_, "/shutdown"):
            return text(.methodNotAllowed, "method not allowed\n")
        default:
            return text(.notFound, "not found; try /metrics, /ready, /live\n")
        }
    }

    static func text(_ status: HTTPResponseStatus, _ body: String) -> Reply {
        Reply(status: status, body: Array(body.utf8))
    }
}

/// The admin listener's HTTP/1.1 handler.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    struct State: Sendable {
        let ready: @Sendable () -> Bool
        let draining: @Sendable () -> Bool
        let shutdownEnabled: Bool
        let metrics: @Sendable () -> [UInt8]
        let requestShutdown: @Sendable () -> Void
    }

    private let state: State
    private var head: HTTPRequestHead?

    init(state: State) {
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
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

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
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
