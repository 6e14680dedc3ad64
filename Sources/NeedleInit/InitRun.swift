import NeedleContract

/// The address families one run handles, decided from `--ipv6` and the pod's addresses (pure).
public struct FamilyChoice: Equatable, Sendable {
    /// false: iptables (IPv4); true: ip6tables.
    public var families: [Bool]
    /// Why IPv6 is left alone, for the log; nil when it is redirected.
    public var ipv6Skipped: String?

    public init(families: [Bool], ipv6Skipped: String?) {
        self.families = families
        self.ipv6Skipped = ipv6Skipped
    }

    /// `ifInet6`: the contents of /proc/net/if_inet6, nil when the kernel has no IPv6 at all.
    public static func decide(_ mode: IPv6Redirect, ifInet6: String?) -> FamilyChoice {
        switch mode {
        case .off:
            return FamilyChoice(families: [false], ipv6Skipped: "--ipv6 off")
        case .on:
            guard let ifInet6 else { return FamilyChoice(families: [false], ipv6Skipped: "the kernel has no IPv6") }
            if PodIPv6Addresses(ifInet6: ifInet6).routable.isEmpty {
                return FamilyChoice(families: [false], ipv6Skipped: "no IPv6 address on the pod network")
            }
            return FamilyChoice(families: [false, true], ipv6Skipped: nil)
        }
    }
}

/// One needle-init run: detect a backend per address family, then apply (and verify), print, or clean up.
/// Dual-stack pods get the IPv4 and the IPv6 plan in one run; every backend is found before anything
/// changes, so a pod whose IPv6 could not be redirected fails with its rules untouched.
public struct InitRun {
    public let commandLine: InitCommandLine
    public let log: InitLog
    /// The contents of /proc/net/if_inet6, or nil when the kernel has no IPv6.
    let readIfInet6: () -> String?

    public init(commandLine: InitCommandLine, log: InitLog, readIfInet6: @escaping () -> String? = LocalFile.ifInet6) {
        self.commandLine = commandLine
        self.log = log
        self.readIfInet6 = readIfInet6
    }

    public func perform() throws(Redirector.Failure) {
        let ifInet6 = readIfInet6()
        let choice = FamilyChoice.decide(commandLine.ipv6, ifInet6: ifInet6)
        if commandLine.dryRun {
            for ipv6 in choice.families { try printPlan(ipv6: ipv6) }
            return
        }
        if commandLine.cleanup {
            try cleanUp(ifInet6: ifInet6)
            return
        }
        var redirectors: [Redirector] = []
        for ipv6 in choice.families {
            do {
                redirectors.append(try Redirector.detect(commandLine.iptablesMode, ipv6: ipv6))
            } catch where ipv6 {
                let addresses = PodIPv6Addresses(ifInet6: ifInet6 ?? "").routable.map(PodIPv6Addresses.display)
                throw Redirector.Failure(description: "the pod has IPv6 addresses (\(addresses.joined(separator: ", "))) "
                    + "but ip6tables is unusable, so its IPv6 traffic would bypass the proxy; nothing was changed "
                    + "(--ipv6 off redirects IPv4 only): \(error)")
            }
        }
        for redirector in redirectors { try apply(redirector) }
        if let reason = choice.ipv6Skipped { log.info("IPv4 only: IPv6 traffic is not redirected", fields: ["reason": reason]) }
    }

    private func apply(_ redirector: Redirector) throws(Redirector.Failure) {
        let options = RedirectOptions(commandLine, ipv6: redirector.backend.ipv6)
        let input = IptablesPlan.apply(options, current: try redirector.currentTable())
        try redirector.restore(input)
        try redirector.verify(options)
        log.info("applied", fields: ["backend": redirector.backend.description,
                                     "inbound_port": "\(options.inboundProxyPort)",
                                     "outbound_port": "\(options.outboundProxyPort)",
                                     "proxy_uid": "\(options.proxyUID)"],
                 rules: lines(input))
    }

    /// The plan of one family; without a working backend it assumes an empty table.
    private func printPlan(ipv6: Bool) throws(Redirector.Failure) {
        let redirector = try? Redirector.detect(commandLine.iptablesMode, ipv6: ipv6)
        let current = (try? redirector?.currentTable()) ?? NatTable(parsing: "")
        let plan = commandLine.cleanup ? (IptablesPlan.cleanup(current: current) ?? "")
            : IptablesPlan.apply(RedirectOptions(commandLine, ipv6: ipv6), current: current)
        print("# \(ipv6 ? "ip6tables" : "iptables")-restore --noflush input (\(ipv6 ? "IPv6" : "IPv4"))")
        print(plan, terminator: "")
    }

    /// Removes the rules of both families: IPv4 must work; IPv6 is cleaned wherever ip6tables works, and may
    /// be missing only on a pod without IPv6 addresses (where nothing could have been added).
    private func cleanUp(ifInet6: String?) throws(Redirector.Failure) {
        try cleanUp(try Redirector.detect(commandLine.iptablesMode, ipv6: false))
        let ipv6: Redirector
        do {
            ipv6 = try Redirector.detect(commandLine.iptablesMode, ipv6: true)
        } catch {
            guard PodIPv6Addresses(ifInet6: ifInet6 ?? "").routable.isEmpty else { throw error }
            log.info("IPv6 not cleaned up: ip6tables is unusable and the pod has no IPv6 address", fields: [:])
            return
        }
        try cleanUp(ipv6) // a failure here is a real one, whatever the pod's addresses
    }

    private func cleanUp(_ redirector: Redirector) throws(Redirector.Failure) {
        let current = try redirector.currentTable()
        guard let input = IptablesPlan.cleanup(current: current) else {
            log.info("nothing to clean up", fields: ["backend": redirector.backend.description])
            return
        }
        try redirector.restore(input)
        log.info("removed needle rules", fields: ["backend": redirector.backend.description], rules: lines(input))
    }

    func lines(_ input: String) -> [String] {
        input.split(separator: "\n").map(String.init).filter { $0.hasPrefix("-") }
    }
}

/// Plain or JSON log lines on standard error.
public struct InitLog: Sendable {
    public let format: LogFormat

    public init(format: LogFormat) { self.format = format }

    public func info(_ message: String, fields: [String: String] = [:], rules: [String] = []) {
        emit("info", message, fields: fields, rules: rules)
    }

    public func error(_ message: String) {
        emit("error", message, fields: [:], rules: [])
    }

    func emit(_ level: String, _ message: String, fields: [String: String], rules: [String]) {
        switch format {
        case .plain:
            var line = "needle-init \(level): \(message)"
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
            TextOutput.errorLine(line)
            for rule in rules { TextOutput.errorLine("  \(rule)") }
        case .json:
            var members = ["\"level\":\(TextOutput.jsonQuoted(level))", "\"msg\":\(TextOutput.jsonQuoted(message))"]
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) { members.append("\(TextOutput.jsonQuoted(key)):\(TextOutput.jsonQuoted(value))") }
            if !rules.isEmpty { members.append("\"rules\":[" + rules.map(TextOutput.jsonQuoted).joined(separator: ",") + "]") }
            TextOutput.errorLine("{" + members.joined(separator: ",") + "}")
        }
    }
}
