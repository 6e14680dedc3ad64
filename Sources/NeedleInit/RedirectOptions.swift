import NeedleContract

/// What `needle-init` redirects (DESIGN §3.5), validated.
public struct RedirectOptions: Equatable, Sendable {
    public var inboundProxyPort = Mesh.inboundProxyPort
    public var outboundProxyPort = Mesh.outboundProxyPort
    public var proxyUID = Mesh.proxyUID
    public var inboundPortsToIgnore: PortSet = [Mesh.adminPort]
    public var outboundPortsToIgnore = PortSet()
    public var subnetsToIgnore: [CIDR] = []
    /// Inbound ports to redirect; empty means every port not ignored.
    public var portsToRedirect = PortSet()
    public var ipv6 = false

    public init() {}

    /// The subnets of the address family this run handles.
    public var subnetsOfFamily: [CIDR] { subnetsToIgnore.filter { $0.address.isIPv4 != ipv6 } }
}
