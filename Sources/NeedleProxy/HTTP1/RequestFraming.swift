import NIOHTTP1
import NeedleContract

/// Request framing a proxy must refuse (RFC 9112 §6.3, §11.2): when the proxy and the app could disagree on
/// where a request ends, a second request can be smuggled past the proxy inside the first one's body.
/// The HTTP parser (llhttp, strict mode) already refuses malformed bytes — obs-fold, CR/LF/NUL in field
/// values, bad chunk sizes; this check restates the framing rules on the parsed head so they hold even if
/// the parser's leniency ever changes.
enum RequestFraming {
    /// A one-line reason when the head must be answered 400, or nil when its framing is unambiguous.
    static func problem(in head: HTTPRequestHead) -> String? {
        var contentLength: Substring?
        var transferCodings: [Substring] = []
        for (name, value) in head.headers {
            guard let first = name.utf8.first.map({ $0 | 0x20 }), first == UInt8(ascii: "c") || first == UInt8(ascii: "t") else {
                continue
            }
            if HeaderFilter.equalsIgnoringASCIICase(name, "content-length") {
                for length in value.commaItems() {
                    guard !length.isEmpty, length.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                        return "invalid Content-Length \"\(value)\": expected one decimal number"
                    }
                    if let seen = contentLength, seen != length {
                        return "conflicting Content-Length values: send exactly one"
                    }
                    contentLength = length
                }
            } else if HeaderFilter.equalsIgnoringASCIICase(name, "transfer-encoding") {
                // Empty list elements are allowed and mean nothing (RFC 9110 §5.6.1).
                transferCodings += value.commaItems().filter { !$0.isEmpty }
            }
        }
        guard !transferCodings.isEmpty else { return nil }
        if contentLength != nil {
            return "both Content-Length and Transfer-Encoding: send one of them"
        }
        let chunkedCount = transferCodings.filter { HeaderFilter.equalsIgnoringASCIICase($0, "chunked") }.count
        guard let last = transferCodings.last, HeaderFilter.equalsIgnoringASCIICase(last, "chunked"), chunkedCount == 1 else {
            return "unsupported Transfer-Encoding: a request body must end with exactly one \"chunked\" coding"
        }
        return nil
    }
}
