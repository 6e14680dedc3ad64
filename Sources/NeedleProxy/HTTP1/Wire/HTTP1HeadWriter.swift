#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NIOHTTP1

/// Writes the heads the proxy sends on, copied from the received bytes in runs: the start line rebuilt for
/// the next hop, every field kept as it came except the hop-by-hop ones (RFC 9110 §7.6.1) and those the
/// framing of the next hop replaces.
enum HTTP1HeadWriter {
    /// What the `Connection` field of a head the proxy writes says.
    enum ConnectionField: Equatable {
        case none
        case close
        /// For HTTP/1.0 clients, whose connections close by default.
        case keepAlive
        /// A switch to the named protocol (the request's `Upgrade`, or the `101` that grants it).
        case upgrade(String)
    }

    /// The request as the upstream gets it: HTTP/1.1 (the pool's connections are persistent), same method,
    /// target and framing fields.
    static func upstreamRequest(_ head: UnsafeRawBufferPointer, line: HTTP1HeadParser.RequestLine,
                                nominated: [String], upgrade: String?, clientIdentity: ClientIdentityField = .untouched,
                                into buffer: inout ByteBuffer) {
        buffer.reserveCapacity(minimumWritableBytes: head.count + 32)
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: head[0..<line.targetEnd]))
        buffer.writeStaticString(" HTTP/1.1\r\n")
        copyFields(head, from: line.fieldsOffset, nominated: nominated, dropClientIdentity: clientIdentity != .untouched,
                   dropContentLength: false, dropTransferEncoding: false, into: &buffer)
        if case .set(let peer) = clientIdentity {
            buffer.writeString(ClientIdentityField.name)
            buffer.writeStaticString(": ")
            buffer.writeString(peer)
            buffer.writeStaticString("\r\n")
        }
        finish(connection: upgrade.map { .upgrade($0) } ?? .none, addChunked: false, into: &buffer)
    }

    /// A parsed trailer section (field lines, each ending in CRLF) without the fields called `name`; nil when
    /// none is left.
    static func trailers(_ section: ByteBuffer, without name: String) -> ByteBuffer? {
        var kept = ByteBufferAllocator().buffer(capacity: section.readableBytes)
        section.withUnsafeReadableBytes { lines in
            var start = 0
            while start < lines.count {
                var colon = start
                while colon < lines.count, lines[colon] != HTTP1Syntax.colon, lines[colon] != HTTP1Syntax.lf { colon += 1 }
                var end = colon
                while end < lines.count, lines[end] != HTTP1Syntax.lf { end += 1 }
                end = min(end + 1, lines.count)
                if !equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: lines[start..<colon]), name) {
                    kept.writeBytes(UnsafeRawBufferPointer(rebasing: lines[start..<end]))
                }
                start = end
            }
        }
        return kept.readableBytes > 0 ? kept : nil
    }

    /// How the client side frames a response body, and which framing fields that means.
    struct ClientFraming: Equatable {
        var dropContentLength = false
        var dropTransferEncoding = false
        var addChunked = false

        /// The body goes on delimited by its `Content-Length`.
        var keepsLength: Bool { !dropContentLength && !addChunked }
    }

    /// The response as the client gets it, in the client's HTTP version.
    static func clientResponse(_ response: HTTP1ResponseHead, version: HTTPVersion, connection: ConnectionField,
                               framing: ClientFraming, into buffer: inout ByteBuffer) {
        buffer.reserveCapacity(minimumWritableBytes: response.raw.readableBytes + 48)
        buffer.writeStaticString(version == .http1_0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        response.raw.withUnsafeReadableBytes { head in
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: head[response.statusOffset..<response.fieldsOffset]))
            copyFields(head, from: response.fieldsOffset, nominated: response.nominated, dropClientIdentity: false,
                       dropContentLength: framing.dropContentLength, dropTransferEncoding: framing.dropTransferEncoding,
                       into: &buffer)
        }
        finish(connection: connection, addChunked: framing.addChunked, into: &buffer)
    }

    private static func finish(connection: ConnectionField, addChunked: Bool, into buffer: inout ByteBuffer) {
        switch connection {
        case .none: break
        case .close: buffer.writeStaticString("connection: close\r\n")
        case .keepAlive: buffer.writeStaticString("connection: keep-alive\r\n")
        case .upgrade(let proto):
            buffer.writeStaticString("connection: upgrade\r\nupgrade: ")
            buffer.writeString(proto)
            buffer.writeStaticString("\r\n")
        }
        if addChunked { buffer.writeStaticString("transfer-encoding: chunked\r\n") }
        buffer.writeStaticString("\r\n")
    }

    /// Copies the field lines of a parsed head (which ends with the blank line) except the dropped ones,
    /// in runs of consecutive kept lines.
    private static func copyFields(_ head: UnsafeRawBufferPointer, from offset: Int, nominated: [String], dropClientIdentity: Bool,
                                   dropContentLength: Bool, dropTransferEncoding: Bool, into buffer: inout ByteBuffer) {
        let end = head.count - 2
        var runStart = offset
        var index = offset
        while index < end {
            // The head was parsed, so every line is "name:value CRLF"; the bounds are checked all the same.
            let lineStart = index
            while index < end, head[index] != HTTP1Syntax.colon { index += 1 }
            let name = UnsafeRawBufferPointer(rebasing: head[lineStart..<index])
            // A parsed value holds no control byte, so the line's end is its first CR: memchr finds it.
            if let base = head.baseAddress, index < end, let hit = memchr(base + index, Int32(HTTP1Syntax.cr), end - index) {
                index = base.distance(to: UnsafeRawPointer(hit))
            } else {
                index = end
            }
            index = min(index + 2, end)
            guard drops(name, nominated: nominated, dropClientIdentity: dropClientIdentity, dropContentLength: dropContentLength,
                        dropTransferEncoding: dropTransferEncoding)
            else { continue }
            if runStart < lineStart { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: head[runStart..<lineStart])) }
            runStart = index
        }
        if runStart < end { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: head[runStart..<end])) }
    }

    @inline(__always)
    private static func drops(_ name: UnsafeRawBufferPointer, nominated: [String], dropClientIdentity: Bool,
                              dropContentLength: Bool, dropTransferEncoding: Bool) -> Bool {
        if nominated.isEmpty, !HTTP1Syntax.maySpecialFieldBeNamed(length: name.count) { return false }
        if HTTP1Syntax.hopByHop(name) != nil { return true }
        if dropClientIdentity, ClientIdentityField.isNamed(name) { return true }
        if dropContentLength, HTTP1Syntax.equalsIgnoringCase(name, "content-length") { return true }
        if dropTransferEncoding, HTTP1Syntax.equalsIgnoringCase(name, "transfer-encoding") { return true }
        for field in nominated where equalsIgnoringCase(name, field) { return true }
        return false
    }

    private static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: String) -> Bool {
        guard bytes.count == lowercase.utf8.count else { return false }
        for (byte, expected) in zip(bytes, lowercase.utf8) where HTTP1Syntax.lowercased(byte) != expected { return false }
        return true
    }
}
