import NIOCore
import NIOHTTP1

/// What an admin port answers (pure), for the proxy and the injector alike: `/metrics`, `/ready` (503
/// while starting or draining), `/live`, and `POST /shutdown` when enabled and asked from the pod itself.
public enum AdminRoute {
    public struct Reply: Equatable, Sendable {
        public var status: HTTPResponseStatus
        public var contentType = "text/plain; charset=utf-8"
        public var body: [UInt8]
        public var triggersShutdown = false
    }

    public static func route(method: HTTPMethod, uri: String, fromLoopback: Bool, ready: Bool, draining: Bool,
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

    public static func text(_ status: HTTPResponseStatus, _ body: String) -> Reply {
        Reply(status: status, body: Array(body.utf8))
    }
}

