import NeedleContract

/// The injector's own settings: what every injected proxy gets unless an annotation says otherwise.
/// Embedded defaults; a YAML or JSON file (`--config`) overrides any subset of them.
public struct InjectorConfiguration: Equatable, Sendable {
    public var proxyImage = "ghcr.io/needle-mesh/needle-proxy:\(Mesh.version)"
    public var proxyVersion = Mesh.version
    public var imagePullPolicy = "IfNotPresent"
    // A small request and a memory limit, but no CPU limit: CFS throttling a proxy adds latency to every request.
    public var proxyCPURequest: ResourceQuantity? = ResourceQuantity(unchecked: "10m")
    public var proxyCPULimit: ResourceQuantity? = nil
    public var proxyMemoryRequest: ResourceQuantity? = ResourceQuantity(unchecked: "20Mi")
    public var proxyMemoryLimit: ResourceQuantity? = ResourceQuantity(unchecked: "128Mi")
    // The proxy's own defaults, not a second copy: an unset setting injects what the proxy would assume.
    public var proxyLogLevel = Self.proxyDefaults.logLevel
    public var proxyLogFormat = Self.proxyDefaults.logFormat
    public var nativeSidecar = true
    public var proxyAwait = true
    public var opaquePorts = Self.proxyDefaults.opaquePorts
    public var detectTimeout = Self.proxyDefaults.detectTimeout
    public var inboundConnectTimeout = Self.proxyDefaults.inboundConnectTimeout
    public var outboundConnectTimeout = Self.proxyDefaults.outboundConnectTimeout
    public var shutdownGracePeriod = Self.proxyDefaults.shutdownGracePeriod
    public var proxyAdminShutdown = Self.proxyDefaults.shutdownEndpointEnabled
    /// needle-init redirects IPv6 too, where the pod has an IPv6 address (dual-stack clusters).
    public var ipv6 = InitCommandLine().ipv6 == .on
    public var controlPlaneNamespace = Mesh.controlPlaneNamespace
    public var clusterDomain = Mesh.defaultClusterDomain
    /// Where the trust anchors are (DESIGN §7); nil or empty: identity off, proxies run plaintext.
    public var trustAnchorsFile: String? = nil
    /// The bundle read from `trustAnchorsFile` by whoever loads the configuration (this module does no I/O).
    public var trustAnchorsPEM: String? = nil

    public init() {}

    private static let proxyDefaults = ProxyEnvironment()

    /// What injected proxies get to obtain an identity, or nil when no trust anchors are configured. The
    /// trust domain is the cluster domain; the controller is reached by its Service in the control-plane
    /// namespace (an absolute name, so no search domain is tried first) and known by its TLS name.
    public var identity: IdentitySettings? {
        guard let trustAnchorsPEM, let trustDomain = try? DNSName(parsing: clusterDomain),
              let controller = try? WorkloadIdentity.controller(trustDomain: trustDomain, namespace: controlPlaneNamespace),
              let tlsName = try? DNSName(parsing: controller.tlsName)
        else { return nil }
        return IdentitySettings(service: controlPlaneService(Mesh.identityServiceName, port: Mesh.identityPort, tlsName: tlsName),
                                trustAnchorsPEM: trustAnchorsPEM, trustDomain: trustDomain)
    }

    /// Where injected proxies look up their outbound destinations (DESIGN §8): the controller's destination
    /// Service, known by the same TLS name. Present exactly when `identity` is (discovery needs mutual TLS).
    public var destination: ControlPlaneService? {
        guard let identity else { return nil }
        return controlPlaneService(Mesh.destinationServiceName, port: Mesh.destinationPort, tlsName: identity.service.tlsName)
    }

    /// A controller Service by its absolute name, so no search domain is tried first.
    private func controlPlaneService(_ name: String, port: Int, tlsName: DNSName) -> ControlPlaneService {
        let host = "\(name).\(controlPlaneNamespace).svc.\(clusterDomain)."
        return ControlPlaneService(address: ServiceAddress(host: .name(host), port: port), tlsName: tlsName)
    }

    /// The keys a configuration file may set, with the accepted values.
    public static let keys: [(key: String, format: String)] = [
        ("proxyImage", "an image reference"), ("proxyVersion", "a version string"),
        ("imagePullPolicy", "Always, IfNotPresent or Never"),
        ("proxyCPURequest", ResourceQuantity.acceptedFormat + ", or empty for none"),
        ("proxyCPULimit", ResourceQuantity.acceptedFormat + ", or empty for none"),
        ("proxyMemoryRequest", ResourceQuantity.acceptedFormat + ", or empty for none"),
        ("proxyMemoryLimit", ResourceQuantity.acceptedFormat + ", or empty for none"),
        ("proxyLogLevel", LogLevel.acceptedFormat), ("proxyLogFormat", LogFormat.acceptedFormat),
        ("nativeSidecar", "true or false"), ("proxyAwait", "true or false"),
        ("opaquePorts", PortSet.acceptedFormat),
        ("detectTimeout", ProxyDuration.acceptedFormat), ("inboundConnectTimeout", ProxyDuration.acceptedFormat),
        ("outboundConnectTimeout", ProxyDuration.acceptedFormat), ("shutdownGracePeriod", ProxyDuration.acceptedFormat),
        ("proxyAdminShutdown", "true or false"), ("ipv6", "true or false"),
        ("controlPlaneNamespace", "a namespace name"), ("clusterDomain", "a DNS domain like cluster.local"),
        ("trustAnchorsFile", "the path of a PEM bundle of trust anchors (relative to the configuration file), or empty for identity off"),
    ]

    /// Every key with its value as a configuration file spells it: `apply(settings)` of the result gives
    /// this configuration back (the trust anchors file is named, not its contents).
    public var settings: [(key: String, value: String)] {
        func bool(_ value: Bool) -> String { value ? "true" : "false" }
        var settings: [(key: String, value: String)] = [
            ("proxyImage", proxyImage), ("proxyVersion", proxyVersion), ("imagePullPolicy", imagePullPolicy),
            ("proxyCPURequest", proxyCPURequest?.text ?? ""), ("proxyCPULimit", proxyCPULimit?.text ?? ""),
            ("proxyMemoryRequest", proxyMemoryRequest?.text ?? ""), ("proxyMemoryLimit", proxyMemoryLimit?.text ?? ""),
            ("proxyLogLevel", proxyLogLevel.rawValue), ("proxyLogFormat", proxyLogFormat.rawValue),
            ("nativeSidecar", bool(nativeSidecar)), ("proxyAwait", bool(proxyAwait)),
            ("opaquePorts", opaquePorts.description),
            ("detectTimeout", detectTimeout.description), ("inboundConnectTimeout", inboundConnectTimeout.description),
            ("outboundConnectTimeout", outboundConnectTimeout.description),
            ("shutdownGracePeriod", shutdownGracePeriod.description),
            ("proxyAdminShutdown", bool(proxyAdminShutdown)), ("ipv6", bool(ipv6)),
            ("controlPlaneNamespace", controlPlaneNamespace), ("clusterDomain", clusterDomain),
        ]
        if let trustAnchorsFile { settings.append(("trustAnchorsFile", trustAnchorsFile)) }
        return settings
    }

    /// Applies `key: value` settings over the current values. Every bad or unknown key is reported at once.
    public mutating func apply(_ settings: [String: String]) throws(ConfigurationError) {
        var problems: [String] = []
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) {
            do {
                try apply(key: key, value: value)
            } catch {
                problems.append("\(key): \(error)")
            }
        }
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }

    private mutating func apply(key: String, value: String) throws(FormatError) {
        func quantity(_ text: String) throws(FormatError) -> ResourceQuantity? {
            text.isEmpty ? nil : try ResourceQuantity(parsing: text)
        }
        func nonEmpty(_ text: String, _ expected: String) throws(FormatError) -> String {
            guard !text.isEmpty, !text.contains(where: { $0 == " " || $0 == "\t" || $0 == "\n" }) else {
                throw FormatError(value: text, expected: expected)
            }
            return text
        }
        switch key {
        case "proxyImage": proxyImage = try nonEmpty(value, "a non-empty image reference without spaces")
        case "proxyVersion": proxyVersion = try nonEmpty(value, "a non-empty version without spaces")
        case "imagePullPolicy":
            guard ["Always", "IfNotPresent", "Never"].contains(value) else {
                throw FormatError(value: value, expected: "Always, IfNotPresent or Never")
            }
            imagePullPolicy = value
        case "proxyCPURequest": proxyCPURequest = try quantity(value)
        case "proxyCPULimit": proxyCPULimit = try quantity(value)
        case "proxyMemoryRequest": proxyMemoryRequest = try quantity(value)
        case "proxyMemoryLimit": proxyMemoryLimit = try quantity(value)
        case "proxyLogLevel": proxyLogLevel = try LogLevel(parsing: value)
        case "proxyLogFormat": proxyLogFormat = try LogFormat(parsing: value)
        case "nativeSidecar": nativeSidecar = try parseBool(value)
        case "proxyAwait": proxyAwait = try parseBool(value)
        case "opaquePorts": opaquePorts = try PortSet(parsing: value)
        case "detectTimeout": detectTimeout = try ProxyDuration(parsing: value)
        case "inboundConnectTimeout": inboundConnectTimeout = try ProxyDuration(parsing: value)
        case "outboundConnectTimeout": outboundConnectTimeout = try ProxyDuration(parsing: value)
        case "shutdownGracePeriod": shutdownGracePeriod = try ProxyDuration(parsing: value)
        case "proxyAdminShutdown": proxyAdminShutdown = try parseBool(value)
        case "ipv6": ipv6 = try parseBool(value)
        case "controlPlaneNamespace":
            guard DNSName.isLabel(value) else { throw FormatError(value: value, expected: "a namespace name: " + DNSName.labelFormat) }
            controlPlaneNamespace = value
        case "clusterDomain": clusterDomain = try DNSName(parsing: value).description
        case "trustAnchorsFile":
            trustAnchorsFile = value.isEmpty ? nil : try nonEmpty(value, "a file path without spaces")
            trustAnchorsPEM = nil
        default:
            throw FormatError(value: key, expected: "one of " + Self.keys.map(\.key).joined(separator: ", "),
                              detail: "unknown key")
        }
    }
}

/// Problems in a configuration file, one line each.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public let problems: [String]
    public init(problems: [String]) { self.problems = problems }
    public var description: String { "invalid injector configuration:\n  " + problems.joined(separator: "\n  ") }
}

