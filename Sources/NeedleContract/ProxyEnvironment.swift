/// The names of the proxy's environment variables (DESIGN §3.4).
public enum ProxyVariable: String, Sendable, CaseIterable {
    case inboundListenAddress = "NEEDLE_PROXY_INBOUND_LISTEN_ADDR"
    case outboundListenAddress = "NEEDLE_PROXY_OUTBOUND_LISTEN_ADDR"
    case adminListenAddress = "NEEDLE_PROXY_ADMIN_LISTEN_ADDR"
    case inboundPorts = "NEEDLE_PROXY_INBOUND_PORTS"
    case inboundIPs = "NEEDLE_PROXY_INBOUND_IPS"
    case opaquePorts = "NEEDLE_PROXY_OPAQUE_PORTS"
    case detectTimeout = "NEEDLE_PROXY_DETECT_TIMEOUT"
    case inboundConnectTimeout = "NEEDLE_PROXY_INBOUND_CONNECT_TIMEOUT"
    case outboundConnectTimeout = "NEEDLE_PROXY_OUTBOUND_CONNECT_TIMEOUT"
    case shutdownGracePeriod = "NEEDLE_PROXY_SHUTDOWN_GRACE_PERIOD"
    case shutdownEndpointEnabled = "NEEDLE_PROXY_SHUTDOWN_ENDPOINT_ENABLED"
    case logLevel = "NEEDLE_PROXY_LOG"
    case logFormat = "NEEDLE_PROXY_LOG_FORMAT"
    case workers = "NEEDLE_PROXY_WORKERS"
    case podName = "NEEDLE_POD_NAME"
    case podNamespace = "NEEDLE_POD_NAMESPACE"
    case podServiceAccount = "NEEDLE_POD_SERVICE_ACCOUNT"
    case nodeName = "NEEDLE_NODE_NAME"

    /// Reserved for mutual TLS; accepted and ignored until that stage exists.
    public static let reservedIdentityPrefix = "NEEDLE_PROXY_IDENTITY_"
}

/// How one variable gets its value in the pod: a literal, or a downward-API field of the pod.
public enum EnvironmentValue: Hashable, Sendable {
    case literal(String)
    case podField(String)
}

/// One rendered environment variable.
public struct EnvironmentVariable: Hashable, Sendable {
    public let name: String
    public let value: EnvironmentValue

    public init(name: String, value: EnvironmentValue) {
        self.name = name
        self.value = value
    }
}

/// Everything the proxy is configured with. The injector renders it into the pod (`render()`); the proxy
/// parses it back at start (`init(parsing:)`). Both sides use this one type so they cannot drift apart.
public struct ProxyEnvironment: Hashable, Sendable {
    public var inboundListenAddress = ListenAddress(ip: .v4(0), port: Mesh.inboundProxyPort)
    public var outboundListenAddress = ListenAddress(ip: .v4(0x7F00_0001), port: Mesh.outboundProxyPort)
    public var adminListenAddress = ListenAddress(ip: .v4(0), port: Mesh.adminPort)
    /// The pod's container ports; informational, computed by the injector.
    public var inboundPorts = PortSet()
    /// The pod's IPs; inbound traffic is forwarded only to these. Empty means "not restricted".
    public var inboundIPs: [IPAddress] = []
    public var opaquePorts = Mesh.defaultOpaquePorts
    public var detectTimeout = ProxyDuration.seconds(10)
    public var inboundConnectTimeout = ProxyDuration.milliseconds(100)
    public var outboundConnectTimeout = ProxyDuration.seconds(1)
    public var shutdownGracePeriod = ProxyDuration.seconds(30)
    public var shutdownEndpointEnabled = false
    public var logLevel = LogLevel.info
    public var logFormat = LogFormat.plain
    public var workers = 1
    public var podName: String? = nil
    public var podNamespace: String? = nil
    public var podServiceAccount: String? = nil
    public var nodeName: String? = nil

    public static let maximumWorkers = 64

    public init() {}

    // MARK: Rendering (injector side)

    /// The variables in a fixed order. Pod identity and the pod IPs come from the downward API.
    public func render() -> [EnvironmentVariable] {
        func literal(_ variable: ProxyVariable, _ value: String) -> EnvironmentVariable {
            EnvironmentVariable(name: variable.rawValue, value: .literal(value))
        }
        func field(_ variable: ProxyVariable, _ path: String) -> EnvironmentVariable {
            EnvironmentVariable(name: variable.rawValue, value: .podField(path))
        }
        return [
            literal(.inboundListenAddress, inboundListenAddress.description),
            literal(.outboundListenAddress, outboundListenAddress.description),
            literal(.adminListenAddress, adminListenAddress.description),
            literal(.inboundPorts, inboundPorts.description),
            field(.inboundIPs, "status.podIPs"),
            literal(.opaquePorts, opaquePorts.description),
            literal(.detectTimeout, detectTimeout.description),
            literal(.inboundConnectTimeout, inboundConnectTimeout.description),
            literal(.outboundConnectTimeout, outboundConnectTimeout.description),
            literal(.shutdownGracePeriod, shutdownGracePeriod.description),
            literal(.shutdownEndpointEnabled, shutdownEndpointEnabled ? "true" : "false"),
            literal(.logLevel, logLevel.rawValue),
            literal(.logFormat, logFormat.rawValue),
            literal(.workers, "\(workers)"),
            field(.podName, "metadata.name"),
            field(.podNamespace, "metadata.namespace"),
            field(.podServiceAccount, "spec.serviceAccountName"),
            field(.nodeName, "spec.nodeName"),
        ]
    }

    // MARK: Parsing (proxy side)

    /// Parses the process environment. Unset variables keep their defaults; every invalid one is reported,
    /// not just the first, so one restart fixes them all.
    public init(parsing environment: [String: String]) throws(ProxyEnvironmentError) {
        var problems: [ProxyEnvironmentError.Problem] = []
        func read<T>(_ variable: ProxyVariable, _ parse: (String) throws(FormatError) -> T) -> T? {
            guard let text = environment[variable.rawValue] else { return nil }
            do {
                return try parse(text)
            } catch {
                problems.append(.init(variable: variable.rawValue, value: text, expected: error.expected))
                return nil
            }
        }
        if let v = read(.inboundListenAddress, ListenAddress.init(parsing:)) { inboundListenAddress = v }
        if let v = read(.outboundListenAddress, ListenAddress.init(parsing:)) { outboundListenAddress = v }
        if let v = read(.adminListenAddress, ListenAddress.init(parsing:)) { adminListenAddress = v }
        if let v = read(.inboundPorts, PortSet.init(parsing:)) { inboundPorts = v }
        if let v = read(.inboundIPs, Self.parseIPList) { inboundIPs = v }
        if let v = read(.opaquePorts, PortSet.init(parsing:)) { opaquePorts = v }
        if let v = read(.detectTimeout, ProxyDuration.init(parsing:)) { detectTimeout = v }
        if let v = read(.inboundConnectTimeout, ProxyDuration.init(parsing:)) { inboundConnectTimeout = v }
        if let v = read(.outboundConnectTimeout, ProxyDuration.init(parsing:)) { outboundConnectTimeout = v }
        if let v = read(.shutdownGracePeriod, ProxyDuration.init(parsing:)) { shutdownGracePeriod = v }
        if let v = read(.shutdownEndpointEnabled, parseBool) { shutdownEndpointEnabled = v }
        if let v = read(.logLevel, LogLevel.init(parsing:)) { logLevel = v }
        if let v = read(.logFormat, LogFormat.init(parsing:)) { logFormat = v }
        if let v = read(.workers, Self.parseWorkers) { workers = v }
        podName = environment[ProxyVariable.podName.rawValue]
        podNamespace = environment[ProxyVariable.podNamespace.rawValue]
        podServiceAccount = environment[ProxyVariable.podServiceAccount.rawValue]
        nodeName = environment[ProxyVariable.nodeName.rawValue]

        let known = Set(ProxyVariable.allCases.map(\.rawValue))
        unknownVariables = environment.keys.filter {
            $0.hasPrefix("NEEDLE_PROXY_") && !known.contains($0) && !$0.hasPrefix(ProxyVariable.reservedIdentityPrefix)
        }.sorted()

        if !problems.isEmpty { throw ProxyEnvironmentError(problems: problems) }
    }

    /// `NEEDLE_PROXY_*` variables this version does not know (a newer injector, or a typo). Reported, not fatal,
    /// so a pinned older proxy image still starts.
    public private(set) var unknownVariables: [String] = []

    static let ipListFormat = "comma-separated IP addresses like 10.0.0.5,fd00::5"

    static func parseIPList(_ text: String) throws(FormatError) -> [IPAddress] {
        if text.isEmpty { return [] }
        var addresses: [IPAddress] = []
        for item in text.commaItems() {
            guard let address = try? IPAddress(parsing: String(item)) else {
                throw FormatError(value: text, expected: ipListFormat, detail: "bad item \"\(item)\"")
            }
            addresses.append(address)
        }
        return addresses
    }

    static func parseWorkers(_ text: String) throws(FormatError) -> Int {
        guard let count = parseDecimal(text, max: maximumWorkers), count >= 1 else {
            throw FormatError(value: text, expected: "an integer from 1 to \(maximumWorkers)")
        }
        return count
    }
}

/// Every invalid proxy variable, one line each: name, value and the accepted format.
public struct ProxyEnvironmentError: Error, Equatable, Sendable, CustomStringConvertible {
    public struct Problem: Equatable, Sendable, CustomStringConvertible {
        public let variable: String
        public let value: String
        public let expected: String
        public var description: String { "\(variable)=\"\(value)\" is invalid: expected \(expected)" }
    }

    public let problems: [Problem]

    /// The proxy exits with this status on bad configuration (EX_USAGE).
    public static let exitCode: Int32 = 64

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
