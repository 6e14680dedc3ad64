#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore

/// Finds where a message head ends (the first CRLF CRLF) in bytes that arrive in pieces, without
/// searching the same bytes twice: a client sending its head a byte at a time costs linear time.
struct HTTP1HeadScanner {
    enum Result: Equatable {
        /// The head is the first `length` readable bytes.
        case complete(length: Int)
        case incomplete
        case invalid(HTTP1WireError)
    }

    /// Readable bytes already searched.
    private var scanned = 0
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Nothing of the next head has been searched yet.
    var atStart: Bool { scanned == 0 }

    mutating func scan(_ buffer: ByteBuffer) -> Result {
        let found: Int? = buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard let base = bytes.baseAddress else { return nil }
            var index = scanned
            // Line by line: memchr finds each LF far faster than a byte loop.
            while index < bytes.count, let hit = memchr(base + index, Int32(HTTP1Syntax.lf), bytes.count - index) {
                let lineFeed = base.distance(to: UnsafeRawPointer(hit))
                // A line ends with CRLF; a bare LF is how some parsers are told apart from others.
                guard lineFeed > 0, bytes[lineFeed - 1] == HTTP1Syntax.cr else { return -1 }
                if lineFeed >= 3, bytes[lineFeed - 2] == HTTP1Syntax.lf { return lineFeed + 1 }
                index = lineFeed + 1
            }
            return nil
        }
        switch found {
        case .some(let length) where length < 0:
            scanned = 0
            return .invalid(.badRequest("malformed message head: a line ends with a bare LF (expected CRLF)"))
        case .some(let length):
            scanned = 0
            guard length <= limit else { return tooLarge }
            return .complete(length: length)
        case .none:
            guard buffer.readableBytes <= limit else {
                scanned = 0
                return tooLarge
            }
            scanned = buffer.readableBytes
            return .incomplete
        }
    }

    private var tooLarge: Result {
        .invalid(HTTP1WireError(status: .requestHeaderFieldsTooLarge, reason: "message head over \(limit) bytes"))
    }
}
