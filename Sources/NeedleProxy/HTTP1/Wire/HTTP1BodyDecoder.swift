import NIOCore

/// Finds the body of one message in the bytes that follow its head, by its framing: a length, chunks, or
/// the end of the connection. Hands out the payload as slices of the received buffers (no copy) and the
/// raw trailer field lines, so they can be framed again for the next hop. Chunk syntax is strict: hex
/// sizes that fit in 60 bits, extensions without controls, CRLF exactly where RFC 9112 §7.1 puts it.
struct HTTP1BodyDecoder {
    enum Event: Equatable {
        case data(ByteBuffer)
        /// The body is complete; the trailer field lines (each ending in CRLF) of a chunked body, if any.
        case end(trailers: ByteBuffer?)
        case needMore
        case invalid(String)
    }

    /// The trailer section may be no larger than a head.
    static var maximumTrailerBytes: Int { HTTPLimits.maximumHeaderBytes }

    private enum State {
        case length(remaining: Int)
        case untilClose
        case chunkSize(size: Int, digits: Int)
        case chunkExtension(size: Int)
        case chunkSizeLineFeed(size: Int)
        case chunkData(remaining: Int)
        case chunkDataCarriageReturn
        case chunkDataLineFeed
        /// After the last chunk: field lines until an empty one. `scanned` bytes hold no blank line yet.
        case trailers(scanned: Int)
        /// The body is complete; `.end` not reported yet.
        case done
        /// `.end` or `.invalid` was reported: nothing more comes from this body.
        case finished
    }

    private var state: State

    init(_ framing: HTTP1BodyFraming) {
        switch framing {
        case .none, .length(0): state = .done
        case .length(let length): state = .length(remaining: length)
        case .chunked: state = .chunkSize(size: 0, digits: 0)
        case .untilClose: state = .untilClose
        }
    }

    var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    /// The next event from the front of `buffer`, consuming what it used. `.end` comes exactly once; a
    /// body with nothing in it ends at once.
    mutating func next(_ buffer: inout ByteBuffer) -> Event {
        while true {
            switch state {
            case .done:
                state = .finished
                return .end(trailers: nil)
            case .finished:
                return .needMore
            case .length(let remaining):
                guard buffer.readableBytes > 0 else { return .needMore }
                let take = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: take) ?? ByteBuffer()
                state = take == remaining ? .done : .length(remaining: remaining - take)
                return .data(slice)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return .needMore }
                return .data(buffer.readSlice(length: buffer.readableBytes) ?? ByteBuffer())
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return .needMore }
                let take = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: take) ?? ByteBuffer()
                state = take == remaining ? .chunkDataCarriageReturn : .chunkData(remaining: remaining - take)
                return .data(slice)
            case .trailers(let scanned):
                return trailers(&buffer, scanned: scanned)
            case .chunkSize, .chunkExtension, .chunkSizeLineFeed, .chunkDataCarriageReturn, .chunkDataLineFeed:
                guard let byte = buffer.readInteger(as: UInt8.self) else { return .needMore }
                if let problem = chunkFraming(byte) {
                    state = .finished
                    return .invalid(problem)
                }
            }
        }
    }

    /// The connection ended: the end of a body delimited by it, or a body cut short.
    mutating func inputClosed() -> Event {
        switch state {
        case .untilClose, .done:
            state = .finished
            return .end(trailers: nil)
        case .finished:
            return .needMore
        default:
            state = .finished
            return .invalid("the connection closed before the end of the message body")
        }
    }

    /// One byte of chunk framing; a reason when it is not valid there.
    private mutating func chunkFraming(_ byte: UInt8) -> String? {
        switch state {
        case .chunkSize(let size, let digits):
            if let value = Self.hexValue(byte) {
                guard digits < 15 else { return "chunk size too large" }
                state = .chunkSize(size: size << 4 | Int(value), digits: digits + 1)
            } else if digits == 0 {
                return "invalid chunk size: expected hexadecimal digits"
            } else if byte == HTTP1Syntax.cr {
                state = .chunkSizeLineFeed(size: size)
            } else if byte == UInt8(ascii: ";") || HTTP1Syntax.isSpaceOrTab(byte) {
                state = .chunkExtension(size: size)
            } else {
                return "invalid chunk size: expected hexadecimal digits"
            }
        case .chunkExtension(let size):
            if byte == HTTP1Syntax.cr {
                state = .chunkSizeLineFeed(size: size)
            } else if !HTTP1Syntax.isFieldValueByte(byte) {
                return "invalid chunk extension: a control character"
            }
        case .chunkSizeLineFeed(let size):
            guard byte == HTTP1Syntax.lf else { return "invalid chunk: expected CRLF after the chunk size" }
            state = size == 0 ? .trailers(scanned: 0) : .chunkData(remaining: size)
        case .chunkDataCarriageReturn:
            guard byte == HTTP1Syntax.cr else { return "invalid chunk: expected CRLF after the chunk data" }
            state = .chunkDataLineFeed
        case .chunkDataLineFeed:
            guard byte == HTTP1Syntax.lf else { return "invalid chunk: expected CRLF after the chunk data" }
            state = .chunkSize(size: 0, digits: 0)
        default:
            break
        }
        return nil
    }

    private mutating func trailers(_ buffer: inout ByteBuffer, scanned: Int) -> Event {
        let available = buffer.readableBytes
        guard available >= 2 else { return .needMore }
        // Most bodies have no trailers: the last chunk is followed by the blank line.
        if buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
            buffer.moveReaderIndex(forwardBy: 2)
            state = .done
            return next(&buffer)
        }
        let end: Int? = buffer.withUnsafeReadableBytes { bytes in
            var index = max(scanned, 3)
            while index < bytes.count {
                if bytes[index] == HTTP1Syntax.lf, bytes[index - 1] == HTTP1Syntax.cr,
                   bytes[index - 2] == HTTP1Syntax.lf, bytes[index - 3] == HTTP1Syntax.cr {
                    return index + 1
                }
                index += 1
            }
            return nil
        }
        guard let end else {
            guard available <= Self.maximumTrailerBytes else {
                state = .finished
                return .invalid("trailer section over \(Self.maximumTrailerBytes) bytes")
            }
            state = .trailers(scanned: available)
            return .needMore
        }
        let section = buffer.getSlice(at: buffer.readerIndex, length: end) ?? ByteBuffer()
        let checked = section.withUnsafeReadableBytes { bytes in
            Result { () throws(HTTP1WireError) in _ = try HTTP1HeadParser.fields(bytes, from: 0) }
        }
        if case .failure(let problem) = checked {
            state = .finished
            return .invalid("invalid trailer: \(problem.reason)")
        }
        buffer.moveReaderIndex(forwardBy: end)
        state = .finished
        return .end(trailers: section.getSlice(at: section.readerIndex, length: end - 2))
    }

    @inline(__always)
    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
