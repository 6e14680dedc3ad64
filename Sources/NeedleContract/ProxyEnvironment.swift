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
    case identityServiceAddress = "NEEDLE_PROXY_IDENTITY_SVC_ADDR"
    case identityServiceName = "NEEDLE_PROXY_IDENTITY_SVC_NAME"
    case identityTrustAnchors = "NEEDLE_PROXY_IDENTITY_TRUST_ANCHORS"
    case identityTokenFile = "NEEDLE_PROXY_IDENTITY_TOKEN_FILE"
    case identityTrustDomain = "NEEDLE_PROXY_IDENTITY_TRUST_DOMAIN"
    case destinationServiceAddress = "NEEDLE_PROXY_DESTINATION_SVC_ADDR"
    case destinationServiceName = "NEEDLE_PROXY_DESTINATION_SVC_NAME"
}

/// A control-plane service the proxy calls over TLS: where it is, and the TLS name its certificate must carry.
public struct ControlPlaneService: Hashable, Sendable {
    public var address: ServiceAddress
    public var tlsName: DNSName

    public init(address: ServiceAddress, tlsName: DNSName) {
        self.address = address
        self.tlsName = tlsName
    }
}

/// What the proxy needs to get and prove its identity (DESIGN §7). Present exactly when identity is on.
public struct IdentitySettings: Hashable, Sendable {
    public var service: ControlPlaneService
    /// The PEM bundle of trust anchors, as the injector copied it from its configuration.
    public var trustAnchorsPEM: String
    public var tokenFile: String
    public var trustDomain: DNSName

    public init(service: ControlPlaneService, trustAnchorsPEM: String, tokenFile: String = Mesh.identityTokenFile,
                trustDomain: DNSName) {
        self.service = service
        self.trustAnchorsPEM = trustAnchorsPEM
        self.tokenFile = tokenFile
        self.trustDomain = trustDomain
    }

    static let trustAnchorsFormat = "a PEM bundle of one or more -----BEGIN CERTIFICATE----- blocks"

    static func parseTrustAnchors(_ text: String) throws(FormatError) -> String {
        guard text.contains("-----BEGIN CERTIFICATE-----"), text.contains("-----END CERTIFICATE-----") else {
            throw FormatError(value: text.count > 60 ? String(text.prefix(60)) + "…" : text, expected: trustAnchorsFormat)
        }
        return text
    }
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
    /// nil: identity is off; the proxy runs plaintext and is ready at once.
    public var identity: IdentitySettings? = nil
    /// nil: no discovery; outbound traffic goes to its original destination. Needs identity.
    public var destination: ControlPlaneService? = nil

    public static let maximumWorkers = 64

    /// The workload this proxy speaks for, when identity is on (parsing guarantees the names are valid then).
    public var workloadIdentity: WorkloadIdentity? {
        guard let identity, let podNamespace, let podServiceAccount else { return nil }
        return try? WorkloadIdentity(namespace: podNamespace, serviceAccount: podServiceAccount, trustDomain: identity.trustDomain)
    }

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
        var variables = [
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
        if let identity {
            variables += [
                literal(.identityServiceAddress, identity.service.address.description),
                literal(.identityServiceName, identity.service.tlsName.description),
                literal(.identityTrustAnchors, identity.trustAnchorsPEM),
                literal(.identityTokenFile, identity.tokenFile),
                literal(.identityTrustDomain, identity.trustDomain.description),
            ]
        }
        if let destination {
            variables += [
                literal(.destinationServiceAddress, destination.address.description),
                literal(.destinationServiceName, destination.tlsName.description),
            ]
        }
        return variables
    }

    // MARK: Parsing (proxy side)

    /// Parses the process environment. Unset variables keep their defaults; every invalid one is reported,
    /// not just the first, so one restart fixes them all.
    public init(parsing environment: [String: String]) throws(ProxyEnvironmentError) {
        var reader = EnvironmentReader(environment: environment)
        if let v = reader.read(.inboundListenAddress, ListenAddress.init(parsing:)) { inboundListenAddress = v }
        if let v = reader.read(.outboundListenAddress, ListenAddress.init(parsing:)) { outboundListenAddress = v }
        if let v = reader.read(.adminListenAddress, ListenAddress.init(parsing:)) { adminListenAddress = v }
        if let v = reader.read(.inboundPorts, PortSet.init(parsing:)) { inboundPorts = v }
        if let v = reader.read(.inboundIPs, Self.parseIPList) { inboundIPs = v }
        if let v = reader.read(.opaquePorts, PortSet.init(parsing:)) { opaquePorts = v }
        if let v = reader.read(.detectTimeout, ProxyDuration.init(parsing:)) { detectTimeout = v }
        if let v = reader.read(.inboundConnectTimeout, ProxyDuration.init(parsing:)) { inboundConnectTimeout = v }
        if let v = reader.read(.outboundConnectTimeout, ProxyDuration.init(parsing:)) { outboundConnectTimeout = v }
        if let v = reader.read(.shutdownGracePeriod, ProxyDuration.init(parsing:)) { shutdownGracePeriod = v }
        if let v = reader.read(.shutdownEndpointEnabled, parseBool) { shutdownEndpointEnabled = v }
        if let v = reader.read(.logLevel, LogLevel.init(parsing:)) { logLevel = v }
        if let v = reader.read(.logFormat, LogFormat.init(parsing:)) { logFormat = v }
        if let v = reader.read(.workers, Self.parseWorkers) { workers = v }
        podName = environment[ProxyVariable.podName.rawValue]
        podNamespace = environment[ProxyVariable.podNamespace.rawValue]
        podServiceAccount = environment[ProxyVariable.podServiceAccount.rawValue]
        nodeName = environment[ProxyVariable.nodeName.rawValue]
        parseIdentity(&reader)

        let known = Set(ProxyVariable.allCases.map(\.rawValue))
        unknownVariables = environment.keys.filter { $0.hasPrefix("NEEDLE_PROXY_") && !known.contains($0) }.sorted()

        if !reader.problems.isEmpty { throw ProxyEnvironmentError(problems: reader.problems) }
    }

    /// Identity is on exactly when its service address is set; then everything it needs must be there too.
    /// Discovery is reached over mutual TLS, so it needs identity.
    private mutating func parseIdentity(_ reader: inout EnvironmentReader) {
        let requiredBy = ProxyVariable.identityServiceAddress.rawValue
        guard let address = reader.read(.identityServiceAddress, ServiceAddress.init(parsing:)) else {
            if reader.isSet(.identityServiceAddress) { return }  // malformed: already reported
            if reader.isSet(.destinationServiceAddress) {
                reader.requireMissing(.identityServiceAddress, requiredBy: ProxyVariable.destinationServiceAddress.rawValue,
                                      expected: ServiceAddress.acceptedFormat)
            }
            return
        }
        let name = reader.require(.identityServiceName, requiredBy: requiredBy, DNSName.init(parsing:))
        let anchors = reader.require(.identityTrustAnchors, requiredBy: requiredBy, IdentitySettings.parseTrustAnchors)
        let tokenFile = reader.require(.identityTokenFile, requiredBy: requiredBy, Self.parseAbsolutePath)
        let trustDomain = reader.require(.identityTrustDomain, requiredBy: requiredBy, DNSName.init(parsing:))
        let namespace = reader.require(.podNamespace, requiredBy: requiredBy, Self.parseLabel)
        let serviceAccount = reader.require(.podServiceAccount, requiredBy: requiredBy, Self.parseServiceAccount)
        guard let name, let anchors, let tokenFile, let trustDomain, namespace != nil, serviceAccount != nil else { return }
        identity = IdentitySettings(service: ControlPlaneService(address: address, tlsName: name), trustAnchorsPEM: anchors,
                                    tokenFile: tokenFile, trustDomain: trustDomain)
        guard let destinationAddress = reader.read(.destinationServiceAddress, ServiceAddress.init(parsing:)) else { return }
        if let destinationName = reader.require(.destinationServiceName, requiredBy: ProxyVariable.destinationServiceAddress.rawValue,
                                                DNSName.init(parsing:)) {
            destination = ControlPlaneService(address: destinationAddress, tlsName: destinationName)
        }
    }

    static func parseAbsolutePath(_ text: String) throws(FormatError) -> String {
        guard text.hasPrefix("/"), text.count > 1 else { throw FormatError(value: text, expected: "an absolute file path") }
        return text
    }

    static func parseLabel(_ text: String) throws(FormatError) -> String {
        guard DNSName.isLabel(text) else { throw FormatError(value: text, expected: DNSName.labelFormat) }
        return text
    }

    static func parseServiceAccount(_ text: String) throws(FormatError) -> String {
        guard DNSName.isValid(text) else { throw FormatError(value: text, expected: DNSName.acceptedFormat) }
        return text
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
        /// nil: the variable is not set although another one needs it (`requiredBy`).
        public let value: String?
        public let expected: String
        public let requiredBy: String?

        public init(variable: String, value: String, expected: String) {
            self.variable = variable
            self.value = value
            self.expected = expected
            requiredBy = nil
        }

        public init(missing variable: String, requiredBy: String, expected: String) {
            self.variable = variable
            value = nil
            self.expected = expected
            self.requiredBy = requiredBy
        }

        public var description: String {
            guard let value else { return "\(variable) is not set but \(requiredBy ?? "another variable") needs it: expected \(expected)" }
            return "\(variable)=\"\(value)\" is invalid: expected \(expected)"
        }
    }

    public let problems: [Problem]

    /// The proxy exits with this status on bad configuration (EX_USAGE).
    public static let exitCode: Int32 = 64

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Reads variables and collects every problem, so one restart fixes them all.
struct EnvironmentReader {
    let environment: [String: String]
    private(set) var problems: [ProxyEnvironmentError.Problem] = []

    init(environment: [String: String]) {
        self.environment = environment
    }

    func isSet(_ variable: ProxyVariable) -> Bool { environment[variable.rawValue] != nil }

    /// The parsed value; nil when unset or invalid (an invalid value is recorded).
    mutating func read<T>(_ variable: ProxyVariable, _ parse: (String) throws(FormatError) -> T) -> T? {
        guard let text = environment[variable.rawValue] else { return nil }
        do {
            return try parse(text)
        } catch {
            problems.append(.init(variable: variable.rawValue, value: text, expected: error.expected))
            return nil
        }
    }

    /// Like `read`, but a missing value is a problem too.
    mutating func require<T>(_ variable: ProxyVariable, requiredBy: String, _ parse: (String) throws(FormatError) -> T) -> T? {
        guard isSet(variable) else {
            let expected: String
            do {
                _ = try parse("")
                expected = "a value"
            } catch {
                expected = error.expected
            }
            requireMissing(variable, requiredBy: requiredBy, expected: expected)
            return nil
        }
        return read(variable, parse)
    }

    mutating func requireMissing(_ variable: ProxyVariable, requiredBy: String, expected: String) {
        problems.append(.init(missing: variable.rawValue, requiredBy: requiredBy, expected: expected))
    }
}
