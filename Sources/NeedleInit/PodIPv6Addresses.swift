/// The pod's IPv6 addresses, as the kernel lists them in `/proc/net/if_inet6`: whether the pod network
/// carries IPv6 decides whether needle-init must redirect it (DESIGN §3.5).
public struct PodIPv6Addresses: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        /// 32 hex digits, as the kernel writes them.
        public var hex: String
        public var interface: String
        /// The kernel's scope: 0x00 global (ULAs included), 0x10 host, 0x20 link.
        public var scope: Int
    }

    public var entries: [Entry]

    /// Addresses another host could reach this pod on: global scope, not loopback. Link-local ones exist on
    /// every interface of an IPv6-enabled kernel and say nothing about the pod network.
    public var routable: [Entry] { entries.filter { $0.scope == 0 && $0.interface != "lo" } }

    /// Parses the file's lines: `ADDRESS IFINDEX PREFIXLEN SCOPE FLAGS NAME`; malformed lines are skipped.
    public init(ifInet6 text: String) {
        entries = text.split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 6, fields[0].count == 32, fields[0].allSatisfy(\.isHexDigit),
                  let scope = Int(fields[3], radix: 16) else { return nil }
            return Entry(hex: String(fields[0]), interface: String(fields[5]), scope: scope)
        }
    }

    /// The address in the usual notation (uncompressed groups), for log lines.
    public static func display(_ entry: Entry) -> String {
        var groups: [String] = []
        var index = entry.hex.startIndex
        while index < entry.hex.endIndex {
            let end = entry.hex.index(index, offsetBy: 4)
            var group = entry.hex[index..<end].drop { $0 == "0" }
            if group.isEmpty { group = "0" }
            groups.append(String(group))
            index = end
        }
        return groups.joined(separator: ":")
    }
}
