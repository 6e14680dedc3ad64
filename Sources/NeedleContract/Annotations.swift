/// Annotation and label keys under the `needle.dev` prefix (DESIGN §3).
public enum MeshKey {
    public static let prefix = "needle.dev"
    public static let configPrefix = "config.needle.dev"

    /// `enabled` or `disabled`, on a pod or a namespace.
    public static let inject = "needle.dev/inject"
    public static let proxyVersion = "needle.dev/proxy-version"
    public static let injectedBy = "needle.dev/injected-by"
    public static let workloadNamespaceLabel = "needle.dev/workload-ns"
    public static let controlPlaneNamespaceLabel = "needle.dev/control-plane-ns"
    public static let controlPlaneComponentLabel = "needle.dev/control-plane-component"
    public static let admissionWebhooksLabel = "needle.dev/admission-webhooks"
}

/// The value of `needle.dev/inject`.
public enum InjectMode: String, Sendable, CaseIterable {
    case enabled
    case disabled
}

/// The `config.needle.dev/<name>` annotations an operator may set on a pod or its namespace (DESIGN §3.3).
public enum ConfigAnnotation: String, Sendable, CaseIterable {
    case proxyImage = "proxy-image"
    case proxyLogLevel = "proxy-log-level"
    case proxyLogFormat = "proxy-log-format"
    case proxyCPURequest = "proxy-cpu-request"
    case proxyCPULimit = "proxy-cpu-limit"
    case proxyMemoryRequest = "proxy-memory-request"
    case proxyMemoryLimit = "proxy-memory-limit"
    case skipInboundPorts = "skip-inbound-ports"
    case skipOutboundPorts = "skip-outbound-ports"
    case skipSubnets = "skip-subnets"
    case opaquePorts = "opaque-ports"
    case nativeSidecar = "native-sidecar"
    case proxyAwait = "proxy-await"
    case shutdownGracePeriod = "shutdown-grace-period"
    case detectTimeout = "detect-timeout"
    case inboundConnectTimeout = "inbound-connect-timeout"
    case outboundConnectTimeout = "outbound-connect-timeout"
    case proxyAdminShutdown = "proxy-admin-shutdown"

    public var key: String { MeshKey.configPrefix + "/" + rawValue }

    /// What an operator may write, for warnings and docs.
    public var acceptedFormat: String {
        switch self {
        case .proxyImage: return "a non-empty image reference without spaces"
        case .proxyLogLevel: return LogLevel.acceptedFormat
        case .proxyLogFormat: return LogFormat.acceptedFormat
        case .proxyCPURequest, .proxyCPULimit, .proxyMemoryRequest, .proxyMemoryLimit:
            return ResourceQuantity.acceptedFormat
        case .skipInboundPorts, .skipOutboundPorts: return PortSet.acceptedFormat
        case .skipSubnets: return "comma-separated CIDRs like 10.0.0.0/8,fd00::/8"
        case .opaquePorts: return "comma-separated ports, LO-HI ranges or named container ports"
        case .nativeSidecar: return "true or false"
        case .proxyAwait, .proxyAdminShutdown: return "enabled or disabled"
        case .shutdownGracePeriod, .detectTimeout, .inboundConnectTimeout, .outboundConnectTimeout:
            return ProxyDuration.acceptedFormat
        }
    }
}
