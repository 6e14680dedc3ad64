import NeedleContract

/// One iptables implementation to drive: nftables-backed or legacy, for IPv4 or IPv6.
public struct IptablesBackend: Equatable, Sendable, CustomStringConvertible {
    public enum Flavor: String, Sendable { case nft, legacy }

    public let flavor: Flavor
    public let ipv6: Bool

    public init(flavor: Flavor, ipv6: Bool) {
        self.flavor = flavor
        self.ipv6 = ipv6
    }

    var family: String { ipv6 ? "ip6tables" : "iptables" }
    public var restoreCommand: String { "\(family)-\(flavor.rawValue)-restore" }
    public var saveCommand: String { "\(family)-\(flavor.rawValue)-save" }
    public var description: String { "\(family)-\(flavor.rawValue)" }

    /// The candidates `mode` allows, in the order `auto` tries them.
    public static func candidates(_ mode: IptablesMode, ipv6: Bool) -> [IptablesBackend] {
        switch mode {
        case .auto: return [IptablesBackend(flavor: .nft, ipv6: ipv6), IptablesBackend(flavor: .legacy, ipv6: ipv6)]
        case .nft: return [IptablesBackend(flavor: .nft, ipv6: ipv6)]
        case .legacy: return [IptablesBackend(flavor: .legacy, ipv6: ipv6)]
        }
    }
}
