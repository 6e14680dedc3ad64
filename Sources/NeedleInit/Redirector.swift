import NeedleContract

/// Applies, verifies or removes the rules in the current network namespace through one iptables backend.
public struct Redirector {
    public let backend: IptablesBackend

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The first backend whose `-save` works here.
    public static func detect(_ mode: IptablesMode, ipv6: Bool) throws(Failure) -> Redirector {
        var reasons: [String] = []
        for backend in IptablesBackend.candidates(mode, ipv6: ipv6) {
            do {
                let result = try Subprocess.run([backend.saveCommand, "-t", "nat"])
                if result.status == 0 { return Redirector(backend: backend) }
                reasons.append("\(backend.saveCommand) exited \(result.status): \(firstLine(result.output))")
            } catch {
                reasons.append("\(error)")
            }
        }
        throw Failure(description: "no usable iptables backend (mode \(mode.rawValue)): " + reasons.joined(separator: "; "))
    }

    public func currentTable() throws(Failure) -> NatTable {
        let result: Subprocess.Result
        do {
            result = try Subprocess.run([backend.saveCommand, "-t", "nat"])
        } catch {
            throw Failure(description: "\(error)")
        }
        guard result.status == 0 else {
            throw Failure(description: "\(backend.saveCommand) failed (exit \(result.status)): \(result.output)")
        }
        return NatTable(parsing: result.output)
    }

    /// One `iptables-restore --noflush` transaction: all of it applies, or none of it.
    public func restore(_ input: String) throws(Failure) {
        let result: Subprocess.Result
        do {
            result = try Subprocess.run([backend.restoreCommand, "--noflush", "--wait"], input: input)
        } catch {
            throw Failure(description: "\(error)")
        }
        guard result.status == 0 else {
            throw Failure(description: "\(backend.restoreCommand) failed (exit \(result.status)): \(result.output)")
        }
    }

    /// Checks that the table now holds exactly the plan: one jump each, and the planned rules in each chain.
    public func verify(_ options: RedirectOptions) throws(Failure) {
        let table = try currentTable()
        var problems: [String] = []
        for (chain, expected) in IptablesPlan.expectedRuleCounts(options) {
            let found = table.rules(in: chain).count
            if found != expected { problems.append("\(chain) has \(found) rules, expected \(expected)") }
        }
        for (from, to) in [("PREROUTING", Mesh.inboundChain), ("OUTPUT", Mesh.outboundChain)] {
            let count = table.jumps(from: from, to: to).count
            if count != 1 { problems.append("\(from) has \(count) jumps to \(to), expected 1") }
        }
        if !problems.isEmpty {
            throw Failure(description: "rules did not take as planned: " + problems.joined(separator: "; "))
        }
    }

    static func firstLine(_ text: String) -> String {
        text.split(separator: "\n").first.map(String.init) ?? ""
    }
}
