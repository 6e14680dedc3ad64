import NeedleContract

/// A record's identity within the cluster.
public struct ObjectKey: Hashable, Sendable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    public var description: String { "\(namespace)/\(name)" }
}

/// A record named by its object's namespace and name.
public protocol KeyedRecord: Sendable {
    var key: ObjectKey { get }
}

/// A TCP port and its name. A Service port and the EndpointSlice ports behind it share the name ("" when
/// the Service has one unnamed port), which is how a Service port finds its resolved target port.
public struct NamedPort: Equatable, Sendable {
    public var name: String
    public var port: Int

    public init(name: String, port: Int) {
        self.name = name
        self.port = port
    }
}

/// What discovery keeps of a Service: its cluster IPs and TCP ports. Everything else in the object is
/// dropped when it is decoded, so memory grows with services × ports, not with object size.
public struct ServiceRecord: KeyedRecord, Equatable {
    public typealias Port = NamedPort

    public var key: ObjectKey
    /// Empty for a headless Service (its pods are reached by their own IPs).
    public var clusterIPs: [IPAddress]
    public var ports: [Port]

    public init(key: ObjectKey, clusterIPs: [IPAddress], ports: [Port]) {
        self.key = key
        self.clusterIPs = clusterIPs
        self.ports = ports
    }
}

/// What discovery keeps of an EndpointSlice (`discovery.k8s.io/v1`): the Service it belongs to, its ports
/// (target ports already resolved by the EndpointSlice controller, named ones included) and its endpoints.
public struct EndpointSliceRecord: KeyedRecord, Equatable {
    public typealias Port = NamedPort

    public struct Endpoint: Equatable, Sendable {
        public var addresses: [IPAddress]
        /// `conditions.ready`; Kubernetes says an unknown condition counts as ready.
        public var ready: Bool
        /// The pod behind the endpoint (`targetRef` of kind Pod), when there is one.
        public var pod: String?

        public init(addresses: [IPAddress], ready: Bool, pod: String?) {
            self.addresses = addresses
            self.ready = ready
            self.pod = pod
        }
    }

    public var key: ObjectKey
    /// The `kubernetes.io/service-name` label.
    public var service: String
    public var ports: [Port]
    public var endpoints: [Endpoint]

    public init(key: ObjectKey, service: String, ports: [Port], endpoints: [Endpoint]) {
        self.key = key
        self.service = service
        self.ports = ports
        self.endpoints = endpoints
    }
}

/// What discovery keeps of a pod: where it is, who it is, and whether a needle-proxy serves it.
public struct PodRecord: KeyedRecord, Equatable {
    public var key: ObjectKey
    public var ips: [IPAddress]
    public var serviceAccount: String
    /// It has a `needle-proxy` container or init container (DESIGN §8).
    public var meshed: Bool
    /// The ports its proxy passes through without detection (its `NEEDLE_PROXY_OPAQUE_PORTS`).
    public var opaquePorts: PortSet

    public init(key: ObjectKey, ips: [IPAddress], serviceAccount: String, meshed: Bool, opaquePorts: PortSet) {
        self.key = key
        self.ips = ips
        self.serviceAccount = serviceAccount
        self.meshed = meshed
        self.opaquePorts = opaquePorts
    }
}
