import NIOHTTP1

/// RFC 9110 §7.6.1: hop-by-hop fields apply to one connection only and are not forwarded; neither is any
/// field the `Connection` header names. `Transfer-Encoding` is kept: NIO re-frames the body to match it on
/// the next hop, so the message stays correctly delimited. An `Upgrade` request keeps `Upgrade` and
/// `Connection: upgrade` so the upstream can switch protocols (WebSocket).
public enum HeaderFilter {
    static let hopByHop: [String] = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade",
    ]

    /// The header fields to send on, and whether this is an upgrade request/response. Runs once per message,
    /// so the common case (no hop-by-hop field at all) returns the headers untouched, without allocating.
    public static func forwardable(_ headers: HTTPHeaders) -> (headers: HTTPHeaders, upgrade: String?) {
        var hasHopByHop = false
        for (name, _) in headers where isHopByHop(name) {
            hasHopByHop = true
            break
        }
        guard hasHopByHop else { return (headers, nil) }

        var named: [String] = []
        for value in headers[canonicalForm: "connection"] { named.append(value.lowercased()) }
        let upgrade = named.contains("upgrade") ? headers.first(name: "upgrade") : nil
        var result = HTTPHeaders()
        result.reserveCapacity(headers.count)
        for (name, value) in headers {
            if isHopByHop(name) || named.contains(where: { equalsIgnoringASCIICase(name, $0) }) { continue }
            result.add(name: name, value: value)
        }
        if let upgrade {
            result.add(name: "Connection", value: "upgrade")
            result.add(name: "Upgrade", value: upgrade)
        }
        return (result, upgrade)
    }

    static func isHopByHop(_ name: String) -> Bool {
        hopByHop.contains { equalsIgnoringASCIICase(name, $0) }
    }

    /// `lowercase` must already be lower-case ASCII.
    static func equalsIgnoringASCIICase(_ name: String, _ lowercase: String) -> Bool {
        let a = name.utf8
        let b = lowercase.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            let folded = (x >= UInt8(ascii: "A") && x <= UInt8(ascii: "Z")) ? x | 0x20 : x
            if folded != y { return false }
        }
        return true
    }
}
