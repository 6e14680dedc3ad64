import NIOCore
import NIOHTTP1

/// Parses one complete message head (start line, fields, blank line) strictly: RFC 9112's grammar with none
/// of the leniencies a smuggler relies on. No obs-fold, no bare CR or LF, no whitespace before a colon, no
/// controls in values, one unambiguous body length. It only reads; `HTTP1HeadWriter` makes what is sent on.
enum HTTP1HeadParser {
    static var maximumFields: Int { HTTPLimits.maximumHeaderFields }

    /// What the fields say about framing and the connection.
    struct FieldFacts {
        enum TransferCoding: Equatable {
            case absent
            /// `chunked`, once, as the final coding: the only framing a request may use it for.
            case chunkedLast
            case other
        }

        var contentLength: Int?
        var transferCodings = 0
        var chunkedCodings = 0
        var lastCodingIsChunked = false
        var connectionClose = false
        var connectionKeepAlive = false
        var connectionUpgrade = false
        var upgrade: String?
        var nominated: [String] = []
        /// Hop-by-hop fields (RFC 9110 §7.6.1) and fields named like the mesh's client identity: with none,
        /// a head can go on exactly as it came.
        var hopByHopFields = 0
        var clientIdentityFields = 0

        var transferCoding: TransferCoding {
            if transferCodings == 0 { return .absent }
            return chunkedCodings == 1 && lastCodingIsChunked ? .chunkedLast : .other
        }
    }

    struct RequestLine {
        var method: HTTPMethod
        /// Byte ranges in the head: the method and the request target.
        var methodEnd: Int
        var targetStart: Int
        var targetEnd: Int
        var version: HTTPVersion
        var fieldsOffset: Int
    }

    struct StatusLine {
        var status: Int
        var version: HTTPVersion
        var statusOffset: Int
        var fieldsOffset: Int
    }

    // MARK: Start lines

    static func requestLine(_ head: UnsafeRawBufferPointer) throws(HTTP1WireError) -> RequestLine {
        var index = 0
        while index < head.count, HTTP1Syntax.isTokenByte(head[index]) { index += 1 }
        let methodEnd = index
        guard methodEnd > 0, index < head.count, head[index] == HTTP1Syntax.space else {
            throw .badRequest("malformed request line: expected a method token and one space")
        }
        index += 1
        let targetStart = index
        while index < head.count, HTTP1Syntax.isTargetByte(head[index]) { index += 1 }
        let targetEnd = index
        guard targetEnd > targetStart, index < head.count, head[index] == HTTP1Syntax.space else {
            throw .badRequest("malformed request line: expected a request target without spaces or controls")
        }
        index += 1
        guard let version = version(head, at: index) else {
            let looksLikeHTTP = index + 5 <= head.count && head[index] == UInt8(ascii: "H") && head[index + 4] == UInt8(ascii: "/")
            throw HTTP1WireError(status: looksLikeHTTP ? .httpVersionNotSupported : .badRequest,
                                 reason: "unsupported HTTP version: HTTP/1.1 and HTTP/1.0 are accepted")
        }
        index += 8
        guard index + 1 < head.count, head[index] == HTTP1Syntax.cr, head[index + 1] == HTTP1Syntax.lf else {
            throw .badRequest("malformed request line: expected CRLF after the HTTP version")
        }
        let method = self.method(UnsafeRawBufferPointer(rebasing: head[0..<methodEnd]))
        return RequestLine(method: method, methodEnd: methodEnd, targetStart: targetStart, targetEnd: targetEnd,
                           version: version, fieldsOffset: index + 2)
    }

    static func statusLine(_ head: UnsafeRawBufferPointer) throws(HTTP1WireError) -> StatusLine {
        guard let version = version(head, at: 0), head.count > 12, head[8] == HTTP1Syntax.space else {
            throw .badRequest("malformed status line: expected HTTP/1.1 or HTTP/1.0 and a space")
        }
        var status = 0
        for index in 9..<12 {
            let digit = head[index] &- UInt8(ascii: "0")
            guard digit <= 9 else { throw .badRequest("malformed status line: expected a three-digit status code") }
            status = status * 10 + Int(digit)
        }
        guard status >= 100 else { throw .badRequest("malformed status line: status \(status) is below 100") }
        var index = 12
        if head[index] == HTTP1Syntax.space {
            index += 1
            while index < head.count, head[index] != HTTP1Syntax.cr {
                guard HTTP1Syntax.isFieldValueByte(head[index]) else { throw .badRequest("malformed status line: a control character in the reason phrase") }
                index += 1
            }
        }
        guard index + 1 < head.count, head[index] == HTTP1Syntax.cr, head[index + 1] == HTTP1Syntax.lf else {
            throw .badRequest("malformed status line: expected CRLF")
        }
        return StatusLine(status: status, version: version, statusOffset: 9, fieldsOffset: index + 2)
    }

    private static func version(_ head: UnsafeRawBufferPointer, at index: Int) -> HTTPVersion? {
        guard index + 8 <= head.count, head[index] == UInt8(ascii: "H"), head[index + 1] == UInt8(ascii: "T"),
              head[index + 2] == UInt8(ascii: "T"), head[index + 3] == UInt8(ascii: "P"), head[index + 4] == UInt8(ascii: "/"),
              head[index + 5] == UInt8(ascii: "1"), head[index + 6] == UInt8(ascii: ".")
        else { return nil }
        switch head[index + 7] {
        case UInt8(ascii: "1"): return .http1_1
        case UInt8(ascii: "0"): return .http1_0
        default: return nil
        }
    }

    private static func method(_ token: UnsafeRawBufferPointer) -> HTTPMethod {
        // Methods are case-sensitive (RFC 9110 §9.1).
        func equals(_ name: StaticString) -> Bool {
            guard token.count == name.utf8CodeUnitCount else { return false }
            for index in 0..<token.count where token[index] != name.utf8Start[index] { return false }
            return true
        }
        switch token.count {
        case 3:
            if equals("GET") { return .GET }
            if equals("PUT") { return .PUT }
        case 4:
            if equals("POST") { return .POST }
            if equals("HEAD") { return .HEAD }
        case 5:
            if equals("PATCH") { return .PATCH }
            if equals("TRACE") { return .TRACE }
        case 6:
            if equals("DELETE") { return .DELETE }
        case 7:
            if equals("OPTIONS") { return .OPTIONS }
            if equals("CONNECT") { return .CONNECT }
        default:
            break
        }
        return .RAW(value: String(decoding: token, as: UTF8.self))
    }

    // MARK: Fields

    /// Checks every field line from `offset` to the blank line that ends `head`, and gathers the framing and
    /// connection facts. `head` must end with CRLF CRLF (the decoder only parses complete heads).
    static func fields(_ head: UnsafeRawBufferPointer, from offset: Int) throws(HTTP1WireError) -> FieldFacts {
        var facts = FieldFacts()
        var index = offset
        var count = 0
        let end = head.count - 2  // the blank line's CRLF
        while index < end {
            count += 1
            guard count <= maximumFields else {
                throw HTTP1WireError(status: .requestHeaderFieldsTooLarge, reason: "more than \(maximumFields) header fields")
            }
            let nameStart = index
            while index < end, HTTP1Syntax.isTokenByte(head[index]) { index += 1 }
            guard index > nameStart else {
                if HTTP1Syntax.isSpaceOrTab(head[nameStart]) { throw .badRequest("obsolete line folding in a header field is not accepted") }
                throw .badRequest("malformed header field: expected a field name")
            }
            guard head[index] == HTTP1Syntax.colon else {
                throw .badRequest("malformed header field: expected \":\" right after the field name")
            }
            let nameEnd = index
            index += 1
            while index < end, HTTP1Syntax.isSpaceOrTab(head[index]) { index += 1 }
            let valueStart = index
            index = HTTP1Syntax.endOfFieldValue(head, from: index, to: end)
            var valueEnd = index
            guard index + 1 < head.count, head[index] == HTTP1Syntax.cr, head[index + 1] == HTTP1Syntax.lf else {
                throw .badRequest("malformed header field: a CR, LF, NUL or other control character in a field value")
            }
            index += 2
            while valueEnd > valueStart, HTTP1Syntax.isSpaceOrTab(head[valueEnd - 1]) { valueEnd -= 1 }
            // Most fields (Host, Accept, Date, Server, Content-Type...) are none of those `note` looks at, and
            // their name's length alone says so.
            guard HTTP1Syntax.maySpecialFieldBeNamed(length: nameEnd - nameStart) else { continue }
            let name = UnsafeRawBufferPointer(rebasing: head[nameStart..<nameEnd])
            let value = UnsafeRawBufferPointer(rebasing: head[valueStart..<valueEnd])
            try note(name: name, value: value, into: &facts)
        }
        return facts
    }

    private static func note(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                             into facts: inout FieldFacts) throws(HTTP1WireError) {
        if HTTP1Syntax.hopByHop(name) != nil {
            facts.hopByHopFields += 1
        } else if ClientIdentityField.isNamed(name) {
            facts.clientIdentityFields += 1
        }
        switch HTTP1Syntax.lowercased(name[0]) {
        case UInt8(ascii: "c"):
            if HTTP1Syntax.equalsIgnoringCase(name, "content-length") {
                try noteContentLength(value, into: &facts)
            } else if HTTP1Syntax.equalsIgnoringCase(name, "connection") {
                HTTP1Syntax.forEachListElement(value) { token in
                    if HTTP1Syntax.equalsIgnoringCase(token, "close") {
                        facts.connectionClose = true
                    } else if HTTP1Syntax.equalsIgnoringCase(token, "keep-alive") {
                        facts.connectionKeepAlive = true
                    } else if HTTP1Syntax.equalsIgnoringCase(token, "upgrade") {
                        facts.connectionUpgrade = true
                    } else if HTTP1Syntax.hopByHop(token) == nil, !isFramingOrHost(token) {
                        facts.nominated.append(String(decoding: token, as: UTF8.self).lowercased())
                    }
                }
            }
        case UInt8(ascii: "t"):
            guard HTTP1Syntax.equalsIgnoringCase(name, "transfer-encoding") else { return }
            // Empty list elements are allowed and mean nothing (RFC 9110 §5.6.1).
            HTTP1Syntax.forEachListElement(value) { coding in
                facts.transferCodings += 1
                facts.lastCodingIsChunked = HTTP1Syntax.equalsIgnoringCase(coding, "chunked")
                if facts.lastCodingIsChunked { facts.chunkedCodings += 1 }
            }
        case UInt8(ascii: "u"):
            if HTTP1Syntax.equalsIgnoringCase(name, "upgrade") { facts.upgrade = String(decoding: value, as: UTF8.self) }
        default:
            return
        }
    }

    /// `Connection: content-length` must not make the proxy drop the field that frames the body (the next
    /// hop would then read the body as a second request); nor may a client drop `Host` or the codings.
    private static func isFramingOrHost(_ token: UnsafeRawBufferPointer) -> Bool {
        HTTP1Syntax.equalsIgnoringCase(token, "content-length") || HTTP1Syntax.equalsIgnoringCase(token, "transfer-encoding")
            || HTTP1Syntax.equalsIgnoringCase(token, "host")
    }

    private static func noteContentLength(_ value: UnsafeRawBufferPointer, into facts: inout FieldFacts) throws(HTTP1WireError) {
        var problem: HTTP1WireError?
        HTTP1Syntax.forEachListElement(value) { element in
            guard problem == nil else { return }
            var length = 0
            for byte in element {
                let digit = byte &- UInt8(ascii: "0")
                guard digit <= 9 else {
                    problem = .badRequest("invalid Content-Length: expected one decimal number")
                    return
                }
                let (shifted, overflow1) = length.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = shifted.addingReportingOverflow(Int(digit))
                guard !overflow1, !overflow2 else {
                    problem = .badRequest("invalid Content-Length: the number is too large")
                    return
                }
                length = sum
            }
            if let seen = facts.contentLength, seen != length {
                problem = .badRequest("conflicting Content-Length values: send exactly one")
                return
            }
            facts.contentLength = length
        }
        // An empty value or a list of nothing but commas names no length at all.
        if problem == nil, facts.contentLength == nil { problem = .badRequest("invalid Content-Length: expected one decimal number") }
        if let problem { throw problem }
    }
}
