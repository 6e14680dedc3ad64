/// Which iptables implementation needle-init drives: nftables-backed or legacy (`auto`: nft, then legacy).
public enum IptablesMode: String, Sendable, CaseIterable {
    case auto, nft, legacy
    public static let acceptedFormat = "auto, nft or legacy"
}

/// Whether needle-init also redirects IPv6 (DESIGN §3.5). `on`: the IPv4 and the IPv6 plan in one run, the
/// IPv6 one only where the pod has an IPv6 address; `off`: IPv4 only.
public enum IPv6Redirect: String, Sendable, CaseIterable {
    case on, off
    public static let acceptedFormat = "on or off"
}

/// needle-init's command line: what the injector renders into the init container's `args` and what
/// needle-init parses. One type, so the two cannot drift (round-trip tested).
public struct InitCommandLine: Hashable, Sendable {
    public var inboundProxyPort = Mesh.inboundProxyPort
    public var outboundProxyPort = Mesh.outboundProxyPort
    public var proxyUID = Mesh.proxyUID
    public var inboundPortsToIgnore: PortSet = [Mesh.adminPort]
    public var outboundPortsToIgnore = PortSet()
    public var subnetsToIgnore: [CIDR] = []
    /// Inbound ports to redirect; empty means every port not ignored.
    public var portsToRedirect = PortSet()
    public var iptablesMode = IptablesMode.auto
    public var logFormat = LogFormat.plain
    public var ipv6 = IPv6Redirect.on
    /// Print the iptables-restore input and change nothing.
    public var dryRun = false
    /// Remove every rule and chain needle-init added.
    public var cleanup = false
    /// `--help` was asked for: print `usage` and do nothing else.
    public var help = false

    public init() {}

    /// Every bad argument, one line each, so one run reports them all.
    public struct Problems: Error, Equatable, Sendable {
        public let lines: [String]
    }

    public enum Flag: String, CaseIterable, Sendable {
        case inboundProxyPort = "--inbound-proxy-port"
        case outboundProxyPort = "--outbound-proxy-port"
        case proxyUID = "--proxy-uid"
        case inboundPortsToIgnore = "--inbound-ports-to-ignore"
        case outboundPortsToIgnore = "--outbound-ports-to-ignore"
        case subnetsToIgnore = "--subnets-to-ignore"
        case portsToRedirect = "--ports-to-redirect"
        case iptablesMode = "--iptables-mode"
        case logFormat = "--log-format"
        case ipv6 = "--ipv6"
        case dryRun = "--dry-run"
        case cleanup = "--cleanup"
        case help = "--help"

        /// Flags that stand alone; every other flag takes a value (`--flag value` or `--flag=value`).
        var takesValue: Bool { ![.dryRun, .cleanup, .help].contains(self) }

        var summary: String {
            switch self {
            case .inboundProxyPort: "PORT  the proxy's inbound listener (default \(Mesh.inboundProxyPort))"
            case .outboundProxyPort: "PORT  the proxy's outbound listener (default \(Mesh.outboundProxyPort))"
            case .proxyUID: "UID  the uid the proxy runs as; its own traffic is not redirected (default \(Mesh.proxyUID))"
            case .inboundPortsToIgnore: "PORTS  inbound ports that bypass the proxy (default \(Mesh.adminPort))"
            case .outboundPortsToIgnore: "PORTS  outbound destination ports that bypass the proxy"
            case .subnetsToIgnore: "CIDRS  IPv4 and IPv6 subnets that bypass the proxy (inbound source, outbound destination)"
            case .portsToRedirect: "PORTS  only these inbound ports are redirected (default: all not ignored)"
            case .iptablesMode: "MODE  \(IptablesMode.acceptedFormat) (default auto: nft, then legacy)"
            case .logFormat: "FORMAT  \(LogFormat.acceptedFormat) (default plain)"
            case .ipv6: "on|off  on: IPv6 too, where the pod has an IPv6 address (default on)"
            case .dryRun: "print the iptables-restore input and change nothing"
            case .cleanup: "remove every rule and chain needle-init added"
            case .help: "show this help"
            }
        }
    }

    public static let usage: String = {
        var text = "usage: needle-init [options]\nRedirects the pod's TCP traffic through needle-proxy with iptables, then exits.\n"
        for flag in Flag.allCases { text += "  \(flag.rawValue) \(flag.summary)\n" }
        return text
    }()

    /// The arguments that say this: the listeners, the proxy uid and the inbound ports to ignore always (so a
    /// pod spec reads plainly), every other option only when it is not the default.
    public func rendered() -> [String] {
        var arguments = [
            Flag.inboundProxyPort.rawValue, String(inboundProxyPort),
            Flag.outboundProxyPort.rawValue, String(outboundProxyPort),
            Flag.proxyUID.rawValue, String(proxyUID),
            Flag.inboundPortsToIgnore.rawValue, inboundPortsToIgnore.description,
        ]
        let defaults = InitCommandLine()
        if outboundPortsToIgnore != defaults.outboundPortsToIgnore {
            arguments += [Flag.outboundPortsToIgnore.rawValue, outboundPortsToIgnore.description]
        }
        if subnetsToIgnore != defaults.subnetsToIgnore {
            arguments += [Flag.subnetsToIgnore.rawValue, subnetsToIgnore.map(\.description).joined(separator: ",")]
        }
        if portsToRedirect != defaults.portsToRedirect { arguments += [Flag.portsToRedirect.rawValue, portsToRedirect.description] }
        if iptablesMode != defaults.iptablesMode { arguments += [Flag.iptablesMode.rawValue, iptablesMode.rawValue] }
        if logFormat != defaults.logFormat { arguments += [Flag.logFormat.rawValue, logFormat.rawValue] }
        if ipv6 != defaults.ipv6 { arguments += [Flag.ipv6.rawValue, ipv6.rawValue] }
        if dryRun { arguments.append(Flag.dryRun.rawValue) }
        if cleanup { arguments.append(Flag.cleanup.rawValue) }
        if help { arguments.append(Flag.help.rawValue) }
        return arguments
    }

    /// Parses needle-init's arguments (without the program name). A flag given twice takes its last value,
    /// as with most command-line tools.
    public init(parsing arguments: [String]) throws(Problems) {
        var problems: [String] = []
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            let name: Substring
            var inlineValue: String? = nil
            if let equals = argument.firstIndex(of: "="), argument.hasPrefix("--") {
                name = argument[..<equals]
                inlineValue = String(argument[argument.index(after: equals)...])
            } else {
                name = Substring(argument)
            }
            guard let flag = Flag(rawValue: String(name)) ?? (name == "-h" ? .help : nil) else {
                problems.append("unknown argument \"\(argument)\"; see --help")
                continue
            }
            guard flag.takesValue else {
                if inlineValue != nil { problems.append("\(flag.rawValue) takes no value") }
                switch flag {
                case .dryRun: dryRun = true
                case .cleanup: cleanup = true
                default: help = true
                }
                continue
            }
            guard let value = inlineValue ?? remaining.popFirst() else {
                problems.append("\(flag.rawValue) needs a value: \(flag.summary)")
                continue
            }
            if let problem = set(flag, value) { problems.append("\(flag.rawValue) \(problem)") }
        }
        if inboundProxyPort != 0, inboundProxyPort == outboundProxyPort {
            problems.append("--inbound-proxy-port and --outbound-proxy-port must differ (both \(inboundProxyPort))")
        }
        if !problems.isEmpty { throw Problems(lines: problems) }
    }

    /// Sets one option; the problem with its value, if any (the option then keeps 0 or its default).
    private mutating func set(_ flag: Flag, _ value: String) -> String? {
        func port(_ text: String) -> Int? {
            guard let number = Int(text), (1...65535).contains(number) else { return nil }
            return number
        }
        do throws(FormatError) {
            switch flag {
            case .inboundProxyPort, .outboundProxyPort:
                let parsed = port(value)
                if flag == .inboundProxyPort { inboundProxyPort = parsed ?? 0 } else { outboundProxyPort = parsed ?? 0 }
                if parsed == nil { return "\"\(value)\" is invalid: expected a port from 1 to 65535" }
            case .proxyUID:
                guard let uid = Int(value), (0...Int(Int32.max)).contains(uid) else {
                    return "\"\(value)\" is invalid: expected a uid from 0 to \(Int32.max)"
                }
                proxyUID = uid
            case .inboundPortsToIgnore: inboundPortsToIgnore = try PortSet(parsing: value)
            case .outboundPortsToIgnore: outboundPortsToIgnore = try PortSet(parsing: value)
            case .portsToRedirect: portsToRedirect = try PortSet(parsing: value)
            case .subnetsToIgnore: subnetsToIgnore = try [CIDR](parsingCIDRList: value)
            case .iptablesMode:
                guard let mode = IptablesMode(rawValue: value) else {
                    return "\"\(value)\" is invalid: expected \(IptablesMode.acceptedFormat)"
                }
                iptablesMode = mode
            case .logFormat:
                guard let format = LogFormat(rawValue: value) else {
                    return "\"\(value)\" is invalid: expected \(LogFormat.acceptedFormat)"
                }
                logFormat = format
            case .ipv6:
                guard let mode = IPv6Redirect(rawValue: value) else {
                    return "\"\(value)\" is invalid: expected \(IPv6Redirect.acceptedFormat)"
                }
                ipv6 = mode
            case .dryRun, .cleanup, .help:
                return "takes no value"
            }
        } catch {
            return "\(error)"
        }
        return nil
    }
}
