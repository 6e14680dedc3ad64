import NIOHTTP1
import NeedleContract

/// For HTTP/2 messages, which arrive as `HTTPHeaders` (HTTP/1.1 is filtered on its bytes by `HTTP1HeadWriter`).
/// RFC 9110 §7.6.1: hop-by-hop fields apply to one connection only and are not forwarded; neither is any
/// field the `Connection` header names. `Transfer-Encoding` is kept: the encoders frame the body to match
/// it on the next hop, so the message stays correctly delimited. An `Upgrade` request keeps `Upgrade` and
/// `Connection: upgrade` so the upstream can switch protocols (WebSocket).
public enum HeaderFilter {
    static let hopByHop: [String] = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade",
    ]

    static let hopByHopBytes: [[UInt8]] = hopByHop.map { Array($0.utf8) }

    /// The header fields to send on, and whether this is an upgrade request/response. Runs once per message,
    /// so it makes one pass over the fields, on their UTF-8 bytes: a message without hop-by-hop fields comes
    /// back untouched, and the common one with only `Connection: keep-alive` costs one removal.
    public static func forwardable(_ headers: HTTPHeaders) -> (headers: HTTPHeaders, upgrade: String?) {
        var present: UInt16 = 0  // bit i: hopByHop[i] occurs
        var nominated: [String] = []  // other fields `Connection` names (rare)
        var wantsUpgrade = false
        for (name, value) in headers {
            guard let index = hopByHopIndex(name) else { continue }
            present |= 1 << index
            guard index == 0 else { continue }  // "connection": its tokens name more fields to drop
            var value = value
            value.withUTF8 { bytes in
                HTTP1Syntax.forEachListElement(UnsafeRawBufferPointer(bytes)) { token in
                    if HTTP1Syntax.equalsIgnoringCase(token, "upgrade") {
                        wantsUpgrade = true
                    } else if hopByHopIndex(token.assumingMemoryBound(to: UInt8.self)) == nil {
                        nominated.append(String(decoding: token, as: UTF8.self).lowercased())
                    }
                }
            }
        }
        guard present != 0 else { return (headers, nil) }

        let upgrade = wantsUpgrade ? headers.first(name: "upgrade") : nil
        var result = headers
        for (index, name) in hopByHop.enumerated() where present & (1 << index) != 0 { result.remove(name: name) }
        for name in nominated { result.remove(name: name) }
        if let upgrade {
            result.add(name: "Connection", value: "upgrade")
            result.add(name: "Upgrade", value: upgrade)
        }
        return (result, upgrade)
    }

    /// The position of `name` in `hopByHop`, compared without regard to ASCII case.
    static func hopByHopIndex(_ name: String) -> Int? {
        var name = name
        return name.withUTF8 { hopByHopIndex($0) }
    }

    static func hopByHopIndex(_ name: UnsafeBufferPointer<UInt8>) -> Int? {
        // Every hop-by-hop name starts with c, k, p, t or u: most fields are ruled out by one byte.
        guard let first = name.first.map({ $0 | 0x20 }),
              first == UInt8(ascii: "c") || first == UInt8(ascii: "k") || first == UInt8(ascii: "p")
                || first == UInt8(ascii: "t") || first == UInt8(ascii: "u")
        else { return nil }
        for (index, candidate) in hopByHopBytes.enumerated() where candidate.count == name.count {
            if equalsIgnoringASCIICase(name, candidate) { return index }
        }
        return nil
    }

    /// `lowercase` must already be lower-case ASCII.
    static func equalsIgnoringASCIICase<Name: StringProtocol>(_ name: Name, _ lowercase: String) -> Bool {
        equalsIgnoringASCIICase(name.utf8, lowercase.utf8)
    }

    static func equalsIgnoringASCIICase<Bytes: Collection<UInt8>, Lowercase: Collection<UInt8>>(
        _ name: Bytes, _ lowercase: Lowercase
    ) -> Bool {
        guard name.count == lowercase.count else { return false }
        for (byte, expected) in zip(name, lowercase) {
            let folded = (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) ? byte | 0x20 : byte
            if folded != expected { return false }
        }
        return true
    }
}
