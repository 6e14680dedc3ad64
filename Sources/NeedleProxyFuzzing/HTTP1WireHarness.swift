import NIOCore
import NIOHTTP1
@testable import NeedleProxy

/// Feeds the HTTP/1.1 wire decoders a message stream assembled from the input (fragments of valid,
/// near-valid and hostile HTTP, and raw bytes) and checks what a proxy's parser must guarantee:
/// - the same bytes decode to the same events however they are split across reads (a smuggler's favourite
///   lever is a parser whose answer depends on packet boundaries);
/// - a request head the proxy forwards parses again to the same method, framing and upgrade, and writing it
///   once more gives the same bytes: the app can only see what the proxy decided;
/// - nothing traps, on any input.
public enum HTTP1WireHarness {
    static let fragments: [String] = [
        "GET / HTTP/1.1\r\n", "POST /p HTTP/1.1\r\n", "HEAD / HTTP/1.0\r\n", "CONNECT a:443 HTTP/1.1\r\n",
        "HTTP/1.1 200 OK\r\n", "HTTP/1.1 100 Continue\r\n", "HTTP/1.0 204 No Content\r\n", "HTTP/1.1 101 Switching\r\n",
        "Host: a\r\n", "Content-Length: 5\r\n", "Content-Length: 0\r\n", "Content-Length: 5, 5\r\n", "Content-Length: 5, 6\r\n",
        "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip, chunked\r\n", "Transfer-Encoding: chunked, gzip\r\n",
        "Connection: close\r\n", "Connection: keep-alive, X-A\r\n", "Connection: Upgrade\r\n", "Upgrade: websocket\r\n",
        "Connection: content-length\r\n", "X-A: 1\r\n", "Keep-Alive: 5\r\n", "TE: trailers\r\n", " folded\r\n",
        "X-Bad: a\u{0}b\r\n", "X-Bad: a\rb\r\n", "X-Lf: a\nb\r\n", "X : a\r\n", "\r\n", "\r\n\r\n", "hello",
        "5\r\nhello\r\n", "3;ext=1\r\nabc\r\n", "0\r\n\r\n", "0\r\nx-t: 1\r\n\r\n", "zz\r\n", "10000000000000000\r\n",
        "GET /", " HTTP/1.1", "\r", "\n",
    ]

    /// Events as comparable text; adjacent body payloads are joined (their boundaries follow the reads).
    static func requestEvents(_ bytes: [UInt8], split: Int) -> (events: [String], heads: [HTTP1RequestHead]) {
        var decoder = HTTP1RequestDecoder()
        var events: [String] = []
        var heads: [HTTP1RequestHead] = []
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + split)
            decoder.received(ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
            while let event = decoder.next() {
                switch event {
                case .head(let head):
                    heads.append(head)
                    events.append("head \(head.method.rawValue) \(head.version) \(head.framing) \(head.keepAlive) \(head.upgrade ?? "-") "
                                  + String(decoding: head.upstreamHead.readableBytesView, as: UTF8.self))
                case .body(let payload): appendBody(&events, payload)
                case .end(let trailers): events.append("end " + (trailers.map { String(decoding: $0.readableBytesView, as: UTF8.self) } ?? "-"))
                case .invalid(let error): events.append("invalid \(error.status.code)")
                }
            }
        } while offset < bytes.count
        return (events, heads)
    }

    static func responseEvents(_ bytes: [UInt8], split: Int, method: HTTPMethod) -> [String] {
        var decoder = HTTP1ResponseDecoder()
        decoder.requestSent(method)
        var events: [String] = []
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + split)
            decoder.received(ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
            while let event = decoder.next() {
                switch event {
                case .head(let head): events.append("head \(head.status) \(head.framing) \(head.keepAlive)")
                case .body(let payload): appendBody(&events, payload)
                case .end(let trailers): events.append("end " + (trailers.map { String(decoding: $0.readableBytesView, as: UTF8.self) } ?? "-"))
                case .invalid(let reason): events.append("invalid \(reason)")
                }
            }
        } while offset < bytes.count
        switch decoder.inputClosed() {
        case .end?: events.append("end at close")
        case .invalid?: events.append("cut short")
        default: break
        }
        return events
    }

    private static func appendBody(_ events: inout [String], _ payload: ByteBuffer) {
        // One character per byte (Latin-1), so the text does not depend on where a multi-byte sequence was cut.
        let text = String(String.UnicodeScalarView(payload.readableBytesView.map { Unicode.Scalar($0) }))
        if let last = events.last, last.hasPrefix("body ") {
            events[events.count - 1] = last + text
        } else {
            events.append("body " + text)
        }
    }

    /// The message stream an input describes: fragments, now and then raw bytes.
    static func stream(_ input: inout FuzzInput) -> [UInt8] {
        var bytes: [UInt8] = []
        while !input.isExhausted, bytes.count < 4096 {
            let pick = input.byte()
            if pick < 240 {
                bytes += fragments[Int(pick) % fragments.count].utf8
            } else {
                bytes.append(input.byte())
            }
        }
        return bytes
    }

    /// The violated properties for one input (empty when all hold).
    public static func check(_ raw: [UInt8]) -> [String] {
        var input = FuzzInput(raw)
        let split = 1 + input.choice(16)
        let method: HTTPMethod = [.GET, .HEAD, .CONNECT, .POST][input.choice(4)]
        let bytes = stream(&input)
        var violations: [String] = []

        let whole = requestEvents(bytes, split: max(bytes.count, 1))
        let pieces = requestEvents(bytes, split: split)
        if whole.events != pieces.events {
            violations.append("request events depend on the reads (split \(split)): \(whole.events) vs \(pieces.events)")
        }
        for head in whole.heads {
            let again = head.upstreamHead.withUnsafeReadableBytes { forwarded in
                Result { () throws(HTTP1WireError) in try HTTP1RequestDecoder.request(forwarded) }
            }
            switch again {
            case .failure(let error):
                violations.append("a forwarded head does not parse again: \(error)")
            case .success(let reparsed):
                if reparsed.method != head.method || reparsed.framing != head.framing || reparsed.upgrade != head.upgrade
                    || reparsed.upstreamHead != head.upstreamHead {
                    violations.append("a forwarded head reads differently the second time")
                }
            }
        }

        let responseWhole = responseEvents(bytes, split: max(bytes.count, 1), method: method)
        let responsePieces = responseEvents(bytes, split: split, method: method)
        if responseWhole != responsePieces {
            violations.append("response events depend on the reads (split \(split)): \(responseWhole) vs \(responsePieces)")
        }
        return violations
    }
}
