/// Fixed names and numbers of the mesh (DESIGN §3). Everything that more than one program must agree on lives here.
public enum Mesh {
    public static let version = "0.1.0"

    public static let proxyContainerName = "needle-proxy"
    public static let initContainerName = "needle-init"
    public static let proxyUID = 2102
    public static let proxyGID = 2102

    public static let inboundProxyPort = 4143
    public static let outboundProxyPort = 4140
    public static let adminPort = 4191
    public static let inboundPortName = "needle-proxy"
    public static let adminPortName = "needle-admin"

    public static let injectorPort = 8443
    public static let injectorAdminPort = 9995
    public static let injectorPath = "/inject"
    public static let controlPlaneNamespace = "needle"

    /// Where the proxy image keeps both binaries.
    public static let binaryDirectory = "/usr/lib/needle"
    public static var proxyBinary: String { binaryDirectory + "/needle-proxy" }
    public static var initBinary: String { binaryDirectory + "/needle-init" }

    /// Server-speaks-first protocols: SMTP, SMTP submission, MySQL, Galera, PostgreSQL, Redis, Elasticsearch, memcached.
    public static let defaultOpaquePorts: PortSet = [25, 587, 3306, 4444, 5432, 6379, 9300, 11211]

    public static let inboundChain = "NEEDLE_INBOUND"
    public static let outboundChain = "NEEDLE_OUTBOUND"

    /// Sidecars and init containers that mean "this pod already has a mesh" (ours, Linkerd's, Istio's).
    public static let knownProxyContainerNames: Set<String> = ["needle-proxy", "linkerd-proxy", "istio-proxy"]
    public static let knownInitContainerNames: Set<String> = ["needle-init", "linkerd-init", "istio-init"]
}
