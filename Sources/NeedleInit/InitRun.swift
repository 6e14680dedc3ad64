import NeedleContract

/// One needle-init run: detect the backend, then apply (and verify), print, or clean up.
public struct InitRun {
    public let arguments: InitArguments
    public let log: InitLog

    public init(arguments: InitArguments, log: InitLog) {
        self.arguments = arguments
        self.log = log
    }

    public func perform(dryRun: Bool, cleanup: Bool) throws(Redirector.Failure) {
        let options = arguments.options
        if dryRun {
            // The plan depends on the jumps already present; without a working backend, assume an empty table.
            let current = (try? Redirector.detect(arguments.mode, ipv6: options.ipv6).currentTable()) ?? NatTable(parsing: "")
            let plan = cleanup ? (IptablesPlan.cleanup(current: current) ?? "") : IptablesPlan.apply(options, current: current)
            print(plan, terminator: "")
            return
        }
        let redirector = try Redirector.detect(arguments.mode, ipv6: options.ipv6)
        let current = try redirector.currentTable()
        if cleanup {
            guard let input = IptablesPlan.cleanup(current: current) else {
                log.info("nothing to clean up", fields: ["backend": redirector.backend.description])
                return
            }
            try redirector.restore(input)
            log.info("removed needle rules", fields: ["backend": redirector.backend.description], rules: lines(input))
            return
        }
        let input = IptablesPlan.apply(options, current: current)
        try redirector.restore(input)
        try redirector.verify(options)
        log.info("applied", fields: ["backend": redirector.backend.description,
                                     "inbound_port": "\(options.inboundProxyPort)",
                                     "outbound_port": "\(options.outboundProxyPort)",
                                     "proxy_uid": "\(options.proxyUID)"],
                 rules: lines(input))
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
