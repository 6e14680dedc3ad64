import NIOCore
import NIOHTTP1

/// How a response body is delimited on the client connection.
enum ResponseBodyFraming: Equatable {
    /// No body at all: 1xx, 204, 304, or the answer to a HEAD request.
    case none
    case contentLength
    case chunked
    /// HTTP/1.0 without Content-Length: the body ends when the connection closes.
    case untilClose

    /// The framing of a response and the framing headers it goes out with. RFC 9112 §6.3: a response to
    /// HEAD, and any 1xx, 204 or 304, has no body, whatever its headers say; for HEAD (and 304) they still
    /// describe the resource, so they are forwarded as they are. Otherwise a Content-Length wins over
    /// Transfer-Encoding, and an HTTP/1.1 body without either is chunked.
    static func of(status: HTTPResponseStatus, requestMethod: HTTPMethod, version: HTTPVersion,
                   headers: inout HTTPHeaders) -> ResponseBodyFraming {
        if requestMethod == .HEAD { return .none }
        guard status.mayHaveResponseBody else {
            if status.code != 304 {
                headers.remove(name: "content-length")
                headers.remove(name: "transfer-encoding")
            }
            return .none
        }
        if headers.contains(name: "content-length") {
            headers.remove(name: "transfer-encoding")
            return .contentLength
        }
        guard version.major == 1, version.minor >= 1 else { return .untilClose }
        headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        return .chunked
    }
}

/// The client side's HTTP/1.1 response encoder. `HTTP1ProxyHandler` tells it each request's method as the
/// head arrives (a direct call: a pipeline hop per request part costs more than the encoding), and it
/// frames the answers in order (NIO's `HTTPResponseEncoder` only learns request methods inside
/// `configureHTTPServerPipeline`; used on its own it chunk-terminated the answers to HEAD requests, which
/// corrupted the next response on the connection).
final class HTTP1ResponseEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = IOData

    /// Methods of the requests not answered yet, oldest first.
    private var pendingMethods = CircularBuffer<HTTPMethod>(initialCapacity: 4)
    private var framing = ResponseBodyFraming.none

    /// A request head arrived; its answer is the next final response not yet matched.
    func requestHeadReceived(_ method: HTTPMethod) {
        pendingMethods.append(method)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            let code = head.status.code
            let informational = (100..<200).contains(code) && code != 101
            // A 1xx precedes the final answer to the same request: it does not use up the method.
            let method = informational ? (pendingMethods.first ?? .GET) : (pendingMethods.popFirst() ?? .GET)
            let framing = ResponseBodyFraming.of(status: head.status, requestMethod: method, version: head.version,
                                                 headers: &head.headers)
            if !informational { self.framing = framing }
            var buffer = context.channel.allocator.buffer(capacity: 0)
            HTTP1HeadSerializer.write(head, into: &buffer)
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        case .body(let body):
            switch framing {
            case .none:
                // Nothing may follow the head; complete the write in order without sending bytes.
                context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
            case .contentLength, .untilClose:
                context.write(wrapOutboundOut(body), promise: promise)
            case .chunked:
                guard body.readableBytes > 0 else {
                    // An empty chunk would end the body: write nothing but keep the order.
                    context.write(wrapOutboundOut(body), promise: promise)
                    return
                }
                var size = context.channel.allocator.buffer(capacity: 18)
                size.writeString(String(body.readableBytes, radix: 16))
                size.writeStaticString("\r\n")
                context.write(wrapOutboundOut(.byteBuffer(size)), promise: nil)
                context.write(wrapOutboundOut(body), promise: nil)
                var crlf = context.channel.allocator.buffer(capacity: 2)
                crlf.writeStaticString("\r\n")
                context.write(wrapOutboundOut(.byteBuffer(crlf)), promise: promise)
            }
        case .end(let trailers):
            if framing == .chunked {
                var last = context.channel.allocator.buffer(capacity: 5)
                last.writeStaticString("0\r\n")
                for (name, value) in trailers ?? [:] {
                    last.writeString(name)
                    last.writeStaticString(": ")
                    last.writeString(value)
                    last.writeStaticString("\r\n")
                }
                last.writeStaticString("\r\n")
                context.write(wrapOutboundOut(.byteBuffer(last)), promise: promise)
            } else {
                context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
            }
            framing = .none
        }
    }
}

@available(*, unavailable)
extension HTTP1ResponseEncoder: Sendable {}
