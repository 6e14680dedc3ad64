import NIOCore

/// Frames body payload for the next hop. A length-delimited (or close-delimited) body goes on as the very
/// buffers that arrived; a chunked one gets each payload slice as one chunk.
enum HTTP1BodyEncoder {
    enum Framing: Equatable {
        /// Nothing may follow the head (HEAD answers, 1xx, 204, 304): payload is dropped.
        case none
        /// The bytes as they are: a Content-Length body, or one that ends with the connection.
        case raw
        case chunked
    }

    /// The bytes for one payload slice; nil when nothing is to be written.
    static func body(_ payload: ByteBuffer, framing: Framing, allocator: ByteBufferAllocator) -> ByteBuffer? {
        switch framing {
        case .none:
            return nil
        case .raw:
            return payload.readableBytes > 0 ? payload : nil
        case .chunked:
            // An empty chunk would end the body.
            guard payload.readableBytes > 0 else { return nil }
            var payload = payload
            var chunk = allocator.buffer(capacity: payload.readableBytes + 20)
            writeHex(payload.readableBytes, into: &chunk)
            chunk.writeStaticString("\r\n")
            chunk.writeBuffer(&payload)
            chunk.writeStaticString("\r\n")
            return chunk
        }
    }

    /// The bytes that end the body (the last chunk and its trailers); nil when the end is implicit.
    static func end(trailers: ByteBuffer?, framing: Framing, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard framing == .chunked else { return nil }
        guard var trailers, trailers.readableBytes > 0 else {
            var last = allocator.buffer(capacity: 5)
            last.writeStaticString("0\r\n\r\n")
            return last
        }
        var last = allocator.buffer(capacity: trailers.readableBytes + 5)
        last.writeStaticString("0\r\n")
        last.writeBuffer(&trailers)
        last.writeStaticString("\r\n")
        return last
    }

    private static func writeHex(_ value: Int, into buffer: inout ByteBuffer) {
        let digits: StaticString = "0123456789abcdef"
        var shift = (Int.bitWidth - value.leadingZeroBitCount + 3) / 4 * 4 - 4
        if shift < 0 { shift = 0 }
        while shift >= 0 {
            buffer.writeInteger(digits.utf8Start[(value >> shift) & 0xF])
            shift -= 4
        }
    }
}
