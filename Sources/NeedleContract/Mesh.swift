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
    public static let defaultClusterDomain = "cluster.local"

    // Identity and discovery (DESIGN §7–§8).
    public static let controllerServiceAccount = "needle-controller"
    public static let identityPort = 8080
    public static let destinationPort = 8086
    public static let controllerAdminPort = 9996
    public static let identityServiceName = "needle-identity"
    public static let destinationServiceName = "needle-destination"
    public static let trustRootsConfigMap = "needle-identity-trust-roots"
    public static let trustRootsKey = "ca-bundle.crt"
    public static let issuerSecret = "needle-identity-issuer"
    /// The projected service-account token the proxy proves itself with.
    public static let identityTokenVolume = "needle-identity-token"
    public static let identityTokenDirectory = "/var/run/secrets/tokens"
    public static var identityTokenFile: String { identityTokenDirectory + "/" + identityTokenVolume }
    public static let identityTokenAudience = "identity.needle.dev"
    public static let identityTokenLifetimeSeconds = 86400
    /// Added by the inbound proxy to requests from a peer it authenticated: the peer's TLS name.
    public static let clientIDHeader = "needle-client-id"

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
