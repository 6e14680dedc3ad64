import NIOCore
import NIOHTTP1

/// A response the proxy makes itself (502, 504, 400, 431): a short plain-text body and Linkerd's
/// `l5d-proxy-error` header naming the cause, so clients and dashboards can tell the proxy's errors from the app's.
enum ProxyErrorResponse {
    /// The fields and body of the response, for either rendering below.
    private static func content(reason: String, close: Bool) -> (fields: [(String, String)], body: String) {
        let body = reason + "\n"
        var fields = [("content-type", "text/plain; charset=utf-8"), ("content-length", String(body.utf8.count))]
        if close { fields.append(("connection", "close")) }
        fields.append(("l5d-proxy-error", reason))
        return (fields, body)
    }

    static func parts(_ status: HTTPResponseStatus, reason: String, version: HTTPVersion, close: Bool,
                      allocator: ByteBufferAllocator) -> (head: HTTPResponseHead, body: ByteBuffer) {
        let (fields, body) = content(reason: reason, close: close)
        return (HTTPResponseHead(version: version, status: status, headers: HTTPHeaders(fields)), allocator.buffer(string: body))
    }

    /// The whole response as HTTP/1.x bytes.
    static func http1(_ status: HTTPResponseStatus, reason: String, version: HTTPVersion, close: Bool,
                      allocator: ByteBufferAllocator) -> ByteBuffer {
        let (fields, body) = content(reason: reason, close: close)
        var buffer = allocator.buffer(capacity: 160 + 2 * body.utf8.count)
        buffer.writeString("\(version == .http1_0 ? "HTTP/1.0" : "HTTP/1.1") \(status.code) \(status.reasonPhrase)\r\n")
        for (name, value) in fields { buffer.writeString("\(name): \(value)\r\n") }
        buffer.writeStaticString("\r\n")
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
