import NIOCore
import NIOHTTP1

/// How a message body is delimited on the wire (RFC 9112 §6).
enum HTTP1BodyFraming: Equatable, Sendable {
    case none
    case length(Int)
    case chunked
    /// HTTP/1.0-style: the body ends when the connection closes (responses only).
    case untilClose
}

/// A request head as the exchange needs it: its facts, and the head already rewritten for the upstream
/// (HTTP/1.1, hop-by-hop fields removed) so forwarding it is one write.
struct HTTP1RequestHead {
    var method: HTTPMethod
    var version: HTTPVersion
    var keepAlive: Bool
    /// The protocol asked for by `Connection: upgrade` + `Upgrade` (WebSocket), if any.
    var upgrade: String?
    var framing: HTTP1BodyFraming
    var upstreamHead: ByteBuffer
}

/// A response head as received, with the facts the exchange decides on; its fields are re-written for the
/// client by `HTTP1HeadWriter.clientResponse` once the exchange knows the framing and persistence.
struct HTTP1ResponseHead {
    var status: Int
    var version: HTTPVersion
    var keepAlive: Bool
    var framing: HTTP1BodyFraming
    var hasContentLength: Bool
    var hasTransferEncoding: Bool
    /// The head exactly as the upstream sent it, through the blank line.
    var raw: ByteBuffer
    /// Where the status code starts and where the fields start, in `raw`.
    var statusOffset: Int
    var fieldsOffset: Int
    /// Other fields `Connection` names: hop-by-hop too (rare, so usually empty).
    var nominated: [String]

    var isInformational: Bool { (100..<200).contains(status) && status != 101 }
}

/// Why bytes are not an acceptable HTTP/1.1 message, and the status a client gets for it.
struct HTTP1WireError: Error, Equatable, CustomStringConvertible {
    var status: HTTPResponseStatus
    var reason: String

    static func badRequest(_ reason: String) -> HTTP1WireError { HTTP1WireError(status: .badRequest, reason: reason) }

    var description: String { reason }
}

extension HTTPMethod {
    // NIO's `==` on methods compares their raw-value strings, which it builds for each comparison: these
    // tests run on every exchange.
    var isHEAD: Bool { if case .HEAD = self { true } else { false } }
    var isCONNECT: Bool { if case .CONNECT = self { true } else { false } }
}
