import NeedleContract

/// needle-init's command line, validated as a whole so every problem is reported at once.
public struct InitArguments: Equatable, Sendable {
    public var options: RedirectOptions
    public var mode: IptablesMode
    public var logFormat: LogFormat

    public struct Problems: Error, Equatable {
        public let lines: [String]
    }

    public static func parse(inboundProxyPort: String, outboundProxyPort: String, proxyUID: String,
                             inboundPortsToIgnore: String, outboundPortsToIgnore: String, subnetsToIgnore: String,
                             portsToRedirect: String, iptablesMode: String, logFormat: String,
                             ipv6: Bool) -> Result<InitArguments, Problems> {
        var problems: [String] = []
        var options = RedirectOptions()
        options.ipv6 = ipv6

        func port(_ flag: String, _ text: String) -> Int {
            guard let value = Int(text), (1...65535).contains(value) else {
                problems.append("--\(flag) \"\(text)\" is invalid: expected a port from 1 to 65535")
                return 0
            }
            return value
        }
        func ports(_ flag: String, _ text: String) -> PortSet {
            do {
                return try PortSet(parsing: text)
            } catch {
                problems.append("--\(flag) \(error)")
                return PortSet()
            }
        }

        options.inboundProxyPort = port("inbound-proxy-port", inboundProxyPort)
        options.outboundProxyPort = port("outbound-proxy-port", outboundProxyPort)
        if let uid = Int(proxyUID), (0...Int(Int32.max)).contains(uid) {
            options.proxyUID = uid
        } else {
            problems.append("--proxy-uid \"\(proxyUID)\" is invalid: expected a uid from 0 to \(Int32.max)")
        }
        options.inboundPortsToIgnore = ports("inbound-ports-to-ignore", inboundPortsToIgnore)
        options.outboundPortsToIgnore = ports("outbound-ports-to-ignore", outboundPortsToIgnore)
        options.portsToRedirect = ports("ports-to-redirect", portsToRedirect)
        do {
            options.subnetsToIgnore = try [CIDR](parsingCIDRList: subnetsToIgnore)
        } catch {
            problems.append("--subnets-to-ignore \(error)")
        }
        let mode = IptablesMode(rawValue: iptablesMode)
        if mode == nil { problems.append("--iptables-mode \"\(iptablesMode)\" is invalid: expected auto, nft or legacy") }
        let format = LogFormat(rawValue: logFormat)
        if format == nil { problems.append("--log-format \"\(logFormat)\" is invalid: expected \(LogFormat.acceptedFormat)") }
        if options.inboundProxyPort != 0, options.inboundProxyPort == options.outboundProxyPort {
            problems.append("--inbound-proxy-port and --outbound-proxy-port must differ (both \(options.inboundProxyPort))")
        }
        guard problems.isEmpty, let mode, let format else { return .failure(Problems(lines: problems)) }
        return .success(InitArguments(options: options, mode: mode, logFormat: format))
    }
}
