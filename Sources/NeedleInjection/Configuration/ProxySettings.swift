import NeedleContract

/// The effective settings of one pod's proxy: injector defaults, overridden by the namespace's
/// `config.needle.dev/*` annotations, overridden by the pod's own.
public struct ProxySettings: Equatable, Sendable {
    public var image: String
    public var logLevel: LogLevel
    public var logFormat: LogFormat
    public var cpuRequest: ResourceQuantity?
    public var cpuLimit: ResourceQuantity?
    public var memoryRequest: ResourceQuantity?
    public var memoryLimit: ResourceQuantity?
    public var skipInboundPorts = PortSet()
    public var skipOutboundPorts = PortSet()
    public var skipSubnets: [CIDR] = []
    public var opaquePorts: PortSet
    public var nativeSidecar: Bool
    public var proxyAwait: Bool
    public var shutdownGracePeriod: ProxyDuration
    public var detectTimeout: ProxyDuration
    public var inboundConnectTimeout: ProxyDuration
    public var outboundConnectTimeout: ProxyDuration
    public var adminShutdown: Bool

    public init(defaults: InjectorConfiguration) {
        image = defaults.proxyImage
        logLevel = defaults.proxyLogLevel
        logFormat = defaults.proxyLogFormat
        cpuRequest = defaults.proxyCPURequest
        cpuLimit = defaults.proxyCPULimit
        memoryRequest = defaults.proxyMemoryRequest
        memoryLimit = defaults.proxyMemoryLimit
        opaquePorts = defaults.opaquePorts
        nativeSidecar = defaults.nativeSidecar
        proxyAwait = defaults.proxyAwait
        shutdownGracePeriod = defaults.shutdownGracePeriod
        detectTimeout = defaults.detectTimeout
        inboundConnectTimeout = defaults.inboundConnectTimeout
        outboundConnectTimeout = defaults.outboundConnectTimeout
        adminShutdown = defaults.proxyAdminShutdown
    }
}

/// A config annotation that was ignored, with enough detail to fix it.
public struct ConfigWarning: Equatable, Sendable, CustomStringConvertible {
    public var annotation: ConfigAnnotation
    public var value: String
    /// "pod", or "namespace <name>".
    public var source: String
    public var problem: String
    /// The value was corrected rather than ignored (a request above its limit).
    public var adjusted = false

    public var description: String {
        if adjusted {
            return "\(annotation.key)=\"\(truncated(value))\" (\(source)) was adjusted: \(problem)"
        }
        return "\(annotation.key)=\"\(truncated(value))\" on the \(source) is invalid and was ignored: \(problem)"
    }
}

/// The outcome of reading the config annotations.
public struct ConfigResolution: Equatable, Sendable {
    public var settings: ProxySettings
    public var warnings: [ConfigWarning]
    /// Valid namespace annotations the pod does not set itself; copied onto the pod so it shows what it got.
    public var inheritedAnnotations: [String: String]
}

public enum ConfigResolver {
    public static func resolve(defaults: InjectorConfiguration, pod: PodView, namespace: NamespaceMetadata?) -> ConfigResolution {
        var settings = ProxySettings(defaults: defaults)
        var warnings: [ConfigWarning] = []
        var inherited: [String: String] = [:]
        let namedPorts = Dictionary(
            pod.allContainers.flatMap(\.ports).filter(\.isTCP).compactMap { port in port.name.map { ($0, port.number) } },
            uniquingKeysWith: { first, _ in first }
        )

        for annotation in ConfigAnnotation.allCases {
            let fromPod = pod.annotations[annotation.key]
            guard let value = fromPod ?? namespace?.annotations[annotation.key] else { continue }
            let source = fromPod != nil ? "pod" : "namespace \(namespace?.name ?? "")"
            do {
                try apply(annotation, value: value, to: &settings, namedPorts: namedPorts)
                if fromPod == nil { inherited[annotation.key] = value }
            } catch {
                warnings.append(ConfigWarning(annotation: annotation, value: value, source: source,
                                              problem: "expected \(error.expected)" + (error.detail.map { " (\($0))" } ?? "")))
            }
        }
        // Kubernetes rejects a pod whose request exceeds its limit, after admission: fix it here and say so.
        if let request = settings.cpuRequest, let limit = settings.cpuLimit, request.approximateValue > limit.approximateValue {
            warnings.append(ConfigWarning(annotation: .proxyCPURequest, value: request.text, source: "effective config",
                                          problem: "it exceeds the CPU limit \(limit.text); the request was set to the limit", adjusted: true))
            settings.cpuRequest = limit
        }
        if let request = settings.memoryRequest, let limit = settings.memoryLimit, request.approximateValue > limit.approximateValue {
            warnings.append(ConfigWarning(annotation: .proxyMemoryRequest, value: request.text, source: "effective config",
                                          problem: "it exceeds the memory limit \(limit.text); the request was set to the limit", adjusted: true))
            settings.memoryRequest = limit
        }
        return ConfigResolution(settings: settings, warnings: warnings, inheritedAnnotations: inherited)
    }

    static func apply(_ annotation: ConfigAnnotation, value: String, to settings: inout ProxySettings,
                      namedPorts: [String: Int]) throws(FormatError) {
        switch annotation {
        case .proxyImage:
            guard !value.isEmpty, !value.contains(where: \.isWhitespace) else {
                throw FormatError(value: value, expected: annotation.acceptedFormat)
            }
            settings.image = value
        case .proxyLogLevel: settings.logLevel = try LogLevel(parsing: value)
        case .proxyLogFormat: settings.logFormat = try LogFormat(parsing: value)
        case .proxyCPURequest: settings.cpuRequest = try ResourceQuantity(parsing: value)
        case .proxyCPULimit: settings.cpuLimit = try ResourceQuantity(parsing: value)
        case .proxyMemoryRequest: settings.memoryRequest = try ResourceQuantity(parsing: value)
        case .proxyMemoryLimit: settings.memoryLimit = try ResourceQuantity(parsing: value)
        case .skipInboundPorts: settings.skipInboundPorts = try PortSet(parsing: value)
        case .skipOutboundPorts: settings.skipOutboundPorts = try PortSet(parsing: value)
        case .skipSubnets: settings.skipSubnets = try [CIDR](parsingCIDRList: value)
        case .opaquePorts: settings.opaquePorts = try parseOpaquePorts(value, namedPorts: namedPorts)
        case .nativeSidecar: settings.nativeSidecar = try parseBool(value)
        case .proxyAwait: settings.proxyAwait = try parseEnabled(value)
        case .shutdownGracePeriod: settings.shutdownGracePeriod = try ProxyDuration(parsing: value)
        case .detectTimeout: settings.detectTimeout = try ProxyDuration(parsing: value)
        case .inboundConnectTimeout: settings.inboundConnectTimeout = try ProxyDuration(parsing: value)
        case .outboundConnectTimeout: settings.outboundConnectTimeout = try ProxyDuration(parsing: value)
        case .proxyAdminShutdown: settings.adminShutdown = try parseEnabled(value)
        }
    }

    /// Ports and ranges as in any port set, plus names of the pod's container ports.
    static func parseOpaquePorts(_ value: String, namedPorts: [String: Int]) throws(FormatError) -> PortSet {
        // Collected, then made a set once: a set per item made a long annotation quadratic.
        var ports: [PortRange] = []
        if value.isEmpty { return PortSet() }  // explicitly "no opaque ports"
        for item in value.split(separator: ",", omittingEmptySubsequences: false) {
            let item = String(item.filter { $0 != " " })
            // Kubernetes port names (IANA service names) contain at least one letter; numbers never do.
            if item.contains(where: \.isLetter) {
                guard let number = namedPorts[item], let range = PortRange(number, number) else {
                    throw FormatError(value: value, expected: ConfigAnnotation.opaquePorts.acceptedFormat,
                                      detail: "no container port is named \"\(item)\"")
                }
                ports.append(range)
            } else {
                do {
                    ports += try PortSet(parsing: item).ranges
                } catch {
                    throw FormatError(value: value, expected: ConfigAnnotation.opaquePorts.acceptedFormat,
                                      detail: "bad item \"\(item)\"")
                }
                if item.isEmpty {
                    throw FormatError(value: value, expected: ConfigAnnotation.opaquePorts.acceptedFormat, detail: "empty item")
                }
            }
        }
        return PortSet(ports)
    }
}
