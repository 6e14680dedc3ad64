import NIOCore
import NIOHTTP1

/// Writes an HTTP/1.1 response head in one pass: the size is summed first, then every piece is copied into
/// a single reservation. (NIO's encoder writes each name, separator and value with its own capacity and
/// exclusivity checks, about 300 instructions apiece; for a proxy that re-emits every head that was the
/// largest single cost of a request after parsing.)
enum HTTP1HeadSerializer {
    static func write(_ head: HTTPResponseHead, into buffer: inout ByteBuffer) {
        let code = Int(head.status.code)
        let reason = head.status.reasonPhrase
        // "HTTP/1.x " + three digits + " " + reason + CRLF, each field ": " + CRLF, the final CRLF.
        var size = 9 + 3 + 1 + reason.utf8.count + 2 + 2
        for (name, value) in head.headers { size += name.utf8.count + value.utf8.count + 4 }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            var writer = Writer(out: out)
            writer.ascii("HTTP/1.")
            writer.byte(head.version.minor == 0 && head.version.major == 1 ? UInt8(ascii: "0") : UInt8(ascii: "1"))
            writer.byte(UInt8(ascii: " "))
            writer.threeDigits(code)
            writer.byte(UInt8(ascii: " "))
            writer.string(reason)
            writer.crlf()
            for (name, value) in head.headers {
                writer.string(name)
                writer.byte(UInt8(ascii: ":"))
                writer.byte(UInt8(ascii: " "))
                writer.string(value)
                writer.crlf()
            }
            writer.crlf()
            return writer.count
        }
    }

    private struct Writer {
        let out: UnsafeMutableRawBufferPointer
        var count = 0

        mutating func byte(_ value: UInt8) {
            guard count < out.count else { return }
            out[count] = value
            count += 1
        }

        mutating func crlf() {
            byte(UInt8(ascii: "\r"))
            byte(UInt8(ascii: "\n"))
        }

        mutating func ascii(_ text: StaticString) {
            text.withUTF8Buffer { copy(UnsafeRawBufferPointer($0)) }
        }

        mutating func string(_ text: String) {
            var text = text
            text.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
        }

        /// Status codes are three digits (100–999; the parser accepts no others).
        mutating func threeDigits(_ value: Int) {
            let clamped = min(max(value, 0), 999)
            byte(UInt8(ascii: "0") + UInt8(clamped / 100))
            byte(UInt8(ascii: "0") + UInt8(clamped / 10 % 10))
            byte(UInt8(ascii: "0") + UInt8(clamped % 10))
        }

        private mutating func copy(_ bytes: UnsafeRawBufferPointer) {
            let length = min(bytes.count, out.count - count)
            guard length > 0 else { return }
            UnsafeMutableRawBufferPointer(rebasing: out[count..<(count + length)]).copyMemory(
                from: UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
            count += length
        }
    }
}
