import NeedleContract

/// The parts of `iptables-save -t nat` output that concern Needle.
public struct NatTable: Equatable, Sendable {
    public var chains: Set<String> = []
    /// Rules as `iptables-save` prints them (`-A CHAIN ...`), in order.
    public var rules: [String] = []

    public init(parsing save: String) {
        var inNat = false
        for rawLine in save.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(rawLine)
            if line.hasPrefix("*") {
                inNat = line == "*nat"
            } else if inNat, line.hasPrefix(":") {
                let name = line.dropFirst().split(separator: " ", maxSplits: 1).first.map(String.init) ?? ""
                chains.insert(name)
            } else if inNat, line.hasPrefix("-A ") {
                rules.append(line)
            }
        }
    }

    public func rules(in chain: String) -> [String] {
        rules.filter { $0.hasPrefix("-A \(chain) ") }
    }

    /// Rules in `chain` that jump to `target`.
    public func jumps(from chain: String, to target: String) -> [String] {
        rules(in: chain).filter { $0.hasSuffix(" -j \(target)") || $0.contains(" -j \(target) ") }
    }
}
