import NIOCore
import NIOHTTP1

/// A response the proxy makes itself (502, 504, 400, 431): a short plain-text body and Linkerd's
/// `l5d-proxy-error` header naming the cause, so clients and dashboards can tell the proxy's errors from the app's.
enum ProxyErrorResponse {
    static func parts(_ status: HTTPResponseStatus, reason: String, version: HTTPVersion, close: Bool,
                      allocator: ByteBufferAllocator) -> (head: HTTPResponseHead, body: ByteBuffer) {
        let body = reason + "\n"
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.utf8.count))
        if close { headers.add(name: "connection", value: "close") }
        headers.add(name: "l5d-proxy-error", value: reason)
        return (HTTPResponseHead(version: version, status: status, headers: headers), allocator.buffer(string: body))
    }

    /// The whole response as HTTP/1.x bytes.
    static func http1(_ status: HTTPResponseStatus, reason: String, version: HTTPVersion, close: Bool,
                      allocator: ByteBufferAllocator) -> ByteBuffer {
        let body = reason + "\n"
        var buffer = allocator.buffer(capacity: 160 + 2 * body.utf8.count)
        buffer.writeStaticString(version == .http1_0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeString("\(status.code) \(status.reasonPhrase)\r\n")
        buffer.writeStaticString("content-type: text/plain; charset=utf-8\r\ncontent-length: ")
        buffer.writeString("\(body.utf8.count)\r\n")
        if close { buffer.writeStaticString("connection: close\r\n") }
        buffer.writeStaticString("l5d-proxy-error: ")
        buffer.writeString(reason)
        buffer.writeStaticString("\r\n\r\n")
        buffer.writeString(body)
        return buffer
    }

    /// Writes the whole response as HTTP parts (HTTP/2 streams); closes the connection once it is out when `close`.
    static func write(_ status: HTTPResponseStatus, reason: String, version: HTTPVersion, close: Bool,
                      context: ChannelHandlerContext, wrap: (HTTPServerResponsePart) -> NIOAny) {
        let (head, body) = parts(status, reason: reason, version: version, close: close, allocator: context.channel.allocator)
        context.write(wrap(.head(head)), promise: nil)
        context.write(wrap(.body(.byteBuffer(body))), promise: nil)
        let written = context.writeAndFlush(wrap(.end(nil)))
        if close { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }
}
