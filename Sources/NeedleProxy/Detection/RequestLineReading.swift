/// How the first line of a connection is read to decide whether it is an HTTP/1 request.
public enum RequestLineReading: Sendable {
    /// Outbound: only a well-formed request line (`METHOD SP target SP HTTP/1.x CRLF`, upper-case method)
    /// is HTTP, so other protocols are told apart at once and pass through as bytes.
    case strict
    /// Inbound: whatever the most lenient server an app might run could read as a request is HTTP, so the
    /// proxy's strict parser sees it (strips `needle-client-id` or refuses it): any word followed by
    /// whitespace and a target, whatever the version. Sent on as opaque bytes, such a request would reach
    /// the app unfiltered (DESIGN §7). The price: a text protocol whose first line is a word and an
    /// argument (`EHLO host`) is parsed as HTTP on a port that is not opaque.
    case lenient

    enum Verdict { case request, notRequest, undecided }

    /// What an unfinished line counts as at the byte limit or when no more bytes come: passed through
    /// when reading strictly, parsed (and so refused) when reading leniently.
    var undecidedProtocol: DetectedProtocol {
        switch self {
        case .strict: return .opaque
        case .lenient: return .http1
        }
    }

    func judge<Bytes: RandomAccessCollection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8, Bytes.Index == Int {
        switch self {
        case .strict: return Self.judgeStrictly(bytes)
        case .lenient: return Self.judgeLeniently(bytes)
        }
    }

    /// `METHOD SP request-target SP HTTP/1.x CRLF`, judged as far as the bytes go.
    static func judgeStrictly<Bytes: RandomAccessCollection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8, Bytes.Index == Int {
        var index = bytes.startIndex
        var methodLength = 0
        // Method: real methods are upper-case letters, and insisting on that keeps binary protocols from
        // being mistaken for HTTP.
        while index < bytes.endIndex, bytes[index] != UInt8(ascii: " ") {
            let byte = bytes[index]
            guard (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || byte == UInt8(ascii: "-"), methodLength < 24 else {
                return .notRequest
            }
            methodLength += 1
            index += 1
        }
        guard index < bytes.endIndex else { return .undecided }
        guard methodLength > 0 else { return .notRequest }
        index += 1
        var targetLength = 0
        while index < bytes.endIndex, bytes[index] != UInt8(ascii: " ") {
            let byte = bytes[index]
            guard byte > 0x20, byte < 0x7F else { return .notRequest }
            targetLength += 1
            index += 1
        }
        guard index < bytes.endIndex else { return .undecided }
        guard targetLength > 0 else { return .notRequest }
        index += 1
        for expected in "HTTP/1.".utf8 {
            guard index < bytes.endIndex else { return .undecided }
            guard bytes[index] == expected else { return .notRequest }
            index += 1
        }
        guard index < bytes.endIndex else { return .undecided }
        guard bytes[index] == UInt8(ascii: "0") || bytes[index] == UInt8(ascii: "1") else { return .notRequest }
        index += 1
        guard index < bytes.endIndex else { return .undecided }
        guard bytes[index] == UInt8(ascii: "\r") else { return .notRequest }
        index += 1
        guard index < bytes.endIndex else { return .undecided }
        return bytes[index] == UInt8(ascii: "\n") ? .request : .notRequest
    }

    /// Leading whitespace is skipped; a first word of `tchar`s, whitespace, then anything that could be a
    /// target makes a request. Lenient servers go that far: Python's `http.server` reads `GET /path` with
    /// no version and still parses the fields after it, Node's parser takes the two-word form for any
    /// method and versions other than `HTTP/` (RTSP, ICE). Binary protocols fail on their first bytes
    /// (length prefixes hold control bytes); a lone word on its line (`PING`) is not a request.
    static func judgeLeniently<Bytes: RandomAccessCollection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8, Bytes.Index == Int {
        var index = bytes.startIndex
        while index < bytes.endIndex, isLenientWhitespace(bytes[index]) { index += 1 }
        let methodStart = index
        while index < bytes.endIndex, HTTP1Syntax.isTokenByte(bytes[index]) { index += 1 }
        guard index < bytes.endIndex else { return .undecided }
        guard index > methodStart, isLenientWhitespace(bytes[index]), bytes[index] != HTTP1Syntax.lf else { return .notRequest }
        while index < bytes.endIndex, isLenientWhitespace(bytes[index]) {
            if bytes[index] == HTTP1Syntax.lf { return .notRequest }
            index += 1
        }
        return index < bytes.endIndex ? .request : .undecided
    }

    /// What Python's `str.split()` splits on in a Latin-1 request line (the most lenient splitter an app is
    /// likely to run): the ASCII separators, CR and LF included, and Latin-1's NEL and no-break space.
    @inline(__always)
    static func isLenientWhitespace(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0: return true
        default: return false
        }
    }
}
