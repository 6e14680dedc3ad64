import NeedleContract

/// The exact `iptables-restore --noflush` input for a set of options: pure, so every option's effect is a
/// string comparison in the tests. Declaring `:CHAIN - [0:0]` for an existing chain flushes it, so a re-run
/// replaces Needle's rules; the PREROUTING/OUTPUT jumps are added only when the table lacks them.
public enum IptablesPlan {
    /// At most 15 ports per `-m multiport` match; a range takes two of those slots.
    public static let multiportSlots = 15

    public static func apply(_ options: RedirectOptions, current: NatTable) -> String {
        let inbound = Mesh.inboundChain
        let outbound = Mesh.outboundChain
        var lines = ["*nat", ":\(inbound) - [0:0]", ":\(outbound) - [0:0]"]

        for group in multiportGroups(options.inboundPortsToIgnore) {
            lines.append("-A \(inbound) -p tcp -m multiport --dports \(group) \(comment("ignore-inbound-ports")) -j RETURN")
        }
        for subnet in options.subnetsOfFamily {
            lines.append("-A \(inbound) -s \(subnet) \(comment("ignore-inbound-subnet")) -j RETURN")
        }
        if options.portsToRedirect.isEmpty {
            lines.append("-A \(inbound) -p tcp \(comment("redirect-inbound")) -j REDIRECT --to-ports \(options.inboundProxyPort)")
        } else {
            for group in multiportGroups(options.portsToRedirect) {
                lines.append("-A \(inbound) -p tcp -m multiport --dports \(group) \(comment("redirect-inbound")) "
                             + "-j REDIRECT --to-ports \(options.inboundProxyPort)")
            }
        }

        // The proxy's own connections go out as they are, or they would loop back into it.
        lines.append("-A \(outbound) -m owner --uid-owner \(options.proxyUID) \(comment("ignore-proxy-uid")) -j RETURN")
        lines.append("-A \(outbound) -o lo \(comment("ignore-loopback")) -j RETURN")
        for group in multiportGroups(options.outboundPortsToIgnore) {
            lines.append("-A \(outbound) -p tcp -m multiport --dports \(group) \(comment("ignore-outbound-ports")) -j RETURN")
        }
        for subnet in options.subnetsOfFamily {
            lines.append("-A \(outbound) -d \(subnet) \(comment("ignore-outbound-subnet")) -j RETURN")
        }
        lines.append("-A \(outbound) -p tcp \(comment("redirect-outbound")) -j REDIRECT --to-ports \(options.outboundProxyPort)")

        if current.jumps(from: "PREROUTING", to: inbound).isEmpty {
            lines.append("-A PREROUTING \(comment("install-inbound")) -j \(inbound)")
        }
        if current.jumps(from: "OUTPUT", to: outbound).isEmpty {
            lines.append("-A OUTPUT \(comment("install-outbound")) -j \(outbound)")
        }
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Removes every jump to Needle's chains, then the chains. Nil when there is nothing to remove.
    public static func cleanup(current: NatTable) -> String? {
        let ours = [Mesh.inboundChain, Mesh.outboundChain]
        var lines = ["*nat"]
        for rule in current.rules where ours.contains(where: { rule.hasSuffix(" -j \($0)") || rule.contains(" -j \($0) ") }) {
            guard !ours.contains(where: { rule.hasPrefix("-A \($0) ") }) else { continue }
            lines.append("-D" + rule.dropFirst(2))
        }
        for chain in ours where current.chains.contains(chain) {
            lines.append("-F \(chain)")
            lines.append("-X \(chain)")
        }
        guard lines.count > 1 else { return nil }
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The rules the plan puts in each chain, to verify an apply against `iptables-save`.
    public static func expectedRuleCounts(_ options: RedirectOptions) -> [String: Int] {
        let plan = apply(options, current: NatTable(parsing: ""))
        var counts: [String: Int] = [:]
        for chain in [Mesh.inboundChain, Mesh.outboundChain] {
            counts[chain] = plan.split(separator: "\n").filter { $0.hasPrefix("-A \(chain) ") }.count
        }
        return counts
    }

    static func comment(_ what: String) -> String { "-m comment --comment \"needle/\(what)\"" }

    /// Ports as `multiport` lists (`N` and `LO:HI`), split so each fits in 15 slots.
    public static func multiportGroups(_ ports: PortSet) -> [String] {
        var groups: [String] = []
        var current: [String] = []
        var used = 0
        for range in ports.ranges {
            let cost = range.isSinglePort ? 1 : 2
            if used + cost > multiportSlots {
                groups.append(current.joined(separator: ","))
                current = []
                used = 0
            }
            current.append(range.isSinglePort ? "\(range.lower)" : "\(range.lower):\(range.upper)")
            used += cost
        }
        if !current.isEmpty { groups.append(current.joined(separator: ",")) }
        return groups
    }
}
