import NIOHTTP1

/// RFC 9110 §7.6.1: hop-by-hop fields apply to one connection only and are not forwarded; neither is any
/// field the `Connection` header names. `Transfer-Encoding` is kept: NIO re-frames the body to match it on
/// the next hop, so the message stays correctly delimited. An `Upgrade` request keeps `Upgrade` and `Connection: upgrade` so
/// the upstream can switch protocols (WebSocket).
public enum HeaderFilter {
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "upgrade",
    ]

    /// The header fields to send on, and whether this is an upgrade request/response.
    public static func forwardable(_ headers: HTTPHeaders) -> (headers: HTTPHeaders, upgrade: String?) {
        var named = Set<String>()
        for value in headers[canonicalForm: "connection"] {
            named.insert(value.lowercased())
        }
        let upgrade = named.contains("upgrade") ? headers.first(name: "upgrade") : nil
        var result = HTTPHeaders()
        result.reserveCapacity(headers.count)
        for (name, value) in headers {
            let lower = name.lowercased()
            if hopByHop.contains(lower) || named.contains(lower) { continue }
            result.add(name: name, value: value)
        }
        if let upgrade {
            result.add(name: "Connection", value: "upgrade")
            result.add(name: "Upgrade", value: upgrade)
        }
        return (result, upgrade)
    }
}
