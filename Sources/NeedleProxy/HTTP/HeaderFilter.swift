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

        // Remove in place: cheaper than rebuilding (and re-validating) every field.
        var named: [String] = []
        for value in headers[canonicalForm: "connection"] { named.append(value.lowercased()) }
        let upgrade = named.contains("upgrade") ? headers.first(name: "upgrade") : nil
        var result = headers
        for name in hopByHop where result.contains(name: name) { result.remove(name: name) }
        for name in named where !hopByHop.contains(name) && result.contains(name: name) { result.remove(name: name) }
        if let upgrade {
            result.add(name: "Connection", value: "upgrade")
            result.add(name: "Upgrade", value: upgrade)
        }
        return (result, upgrade)
    }

    static func isHopByHop(_ name: String) -> Bool {
        // Every hop-by-hop name starts with c, k, p, t or u: most fields are ruled out by one byte.
        guard let first = name.utf8.first.map({ $0 | 0x20 }),
              first == UInt8(ascii: "c") || first == UInt8(ascii: "k") || first == UInt8(ascii: "p")
                || first == UInt8(ascii: "t") || first == UInt8(ascii: "u")
        else { return false }
        return hopByHop.contains { equalsIgnoringASCIICase(name, $0) }
    }

    /// `lowercase` must already be lower-case ASCII.
    static func equalsIgnoringASCIICase<Name: StringProtocol>(_ name: Name, _ lowercase: String) -> Bool {
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
