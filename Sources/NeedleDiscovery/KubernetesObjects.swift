import NeedleContract

/// The parts of the Kubernetes objects discovery reads, decoded narrowly (any JSON decoder will do; the
/// controller uses Foundation's) and turned into records at once, so the rest of each object is never kept.
public struct ObjectMetadata: Decodable, Sendable {
    public var name: String?
    public var namespace: String?
    public var resourceVersion: String?
    public var labels: [String: String]?

    var key: ObjectKey? {
        guard let name, !name.isEmpty, let namespace, !namespace.isEmpty else { return nil }
        return ObjectKey(namespace: namespace, name: name)
    }
}

/// A port of a Service or an EndpointSlice, as both spell it.
public struct PortObject: Decodable, Sendable {
    public var name: String?
    public var port: Int?
    public var `protocol`: String?

    /// The port, if it is a valid TCP one (the proxy carries TCP; UDP and SCTP ports are left out).
    var tcpPort: NamedPort? {
        guard let port, (1...65535).contains(port), (self.protocol ?? "TCP") == "TCP" else { return nil }
        return NamedPort(name: name ?? "", port: port)
    }
}

/// A `v1` Service.
public struct ServiceObject: Decodable, Sendable {
    public struct Spec: Decodable, Sendable {
        public var clusterIP: String?
        public var clusterIPs: [String]?
        public var ports: [PortObject]?
    }
    public var metadata: ObjectMetadata?
    public var spec: Spec?

    /// nil when the object has no name or namespace. Headless Services (`None`) keep no cluster IP; UDP
    /// and SCTP ports are left out (the proxy carries TCP).
    public var record: ServiceRecord? {
        guard let key = metadata?.key else { return nil }
        let addresses = spec?.clusterIPs ?? spec?.clusterIP.map { [$0] } ?? []
        let ips = addresses.compactMap { try? IPAddress(parsing: $0) }
        return ServiceRecord(key: key, clusterIPs: ips, ports: (spec?.ports ?? []).compactMap(\.tcpPort))
    }
}

/// A `discovery.k8s.io/v1` EndpointSlice.
public struct EndpointSliceObject: Decodable, Sendable {
    public static let serviceNameLabel = "kubernetes.io/service-name"

    public struct Endpoint: Decodable, Sendable {
        public struct Conditions: Decodable, Sendable {
            public var ready: Bool?
        }
        public struct TargetRef: Decodable, Sendable {
            public var kind: String?
            public var name: String?
        }
        public var addresses: [String]?
        public var conditions: Conditions?
        public var targetRef: TargetRef?
    }
    public var metadata: ObjectMetadata?
    public var addressType: String?
    public var ports: [PortObject]?
    public var endpoints: [Endpoint]?

    /// nil without a key or a service-name label (a slice no Service owns). FQDN slices carry no IPs and
    /// keep no endpoints.
    public var record: EndpointSliceRecord? {
        guard let key = metadata?.key, let service = metadata?.labels?[Self.serviceNameLabel], !service.isEmpty else { return nil }
        let ports = (ports ?? []).compactMap(\.tcpPort)
        let endpoints = (endpoints ?? []).compactMap { endpoint -> EndpointSliceRecord.Endpoint? in
            let ips = (endpoint.addresses ?? []).compactMap { try? IPAddress(parsing: $0) }
            guard !ips.isEmpty else { return nil }
            let pod = endpoint.targetRef?.kind == "Pod" ? endpoint.targetRef?.name : nil
            // An unknown ready condition is to be read as ready (the API's documented meaning).
            return EndpointSliceRecord.Endpoint(addresses: ips, ready: endpoint.conditions?.ready ?? true, pod: pod)
        }
        return EndpointSliceRecord(key: key, service: service, ports: ports, endpoints: endpoints)
    }
}

/// A `v1` Pod.
public struct PodObject: Decodable, Sendable {
    public struct Container: Decodable, Sendable {
        public struct EnvVar: Decodable, Sendable {
            public var name: String?
            public var value: String?
        }
        public var name: String?
        public var env: [EnvVar]?
    }
    public struct Spec: Decodable, Sendable {
        public var serviceAccountName: String?
        public var hostNetwork: Bool?
        public var containers: [Container]?
        public var initContainers: [Container]?
    }
    public struct Status: Decodable, Sendable {
        public struct PodIP: Decodable, Sendable {
            public var ip: String?
        }
        public var phase: String?
        public var podIP: String?
        public var podIPs: [PodIP]?
    }
    public var metadata: ObjectMetadata?
    public var spec: Spec?
    public var status: Status?

    /// nil without a key. A pod that has finished (Succeeded or Failed) keeps no IP: its address may
    /// already belong to another pod. Nor does a host-network pod: its IP is its node's, shared by every
    /// such pod and by the node itself.
    public var record: PodRecord? {
        guard let key = metadata?.key else { return nil }
        let finished = status?.phase == "Succeeded" || status?.phase == "Failed" || spec?.hostNetwork == true
        let addresses = status?.podIPs?.compactMap(\.ip) ?? status?.podIP.map { [$0] } ?? []
        let ips = finished ? [] : addresses.compactMap { try? IPAddress(parsing: $0) }
        let proxy = (spec?.containers ?? []).first { $0.name == Mesh.proxyContainerName }
            ?? (spec?.initContainers ?? []).first { $0.name == Mesh.proxyContainerName }
        // The ports its proxy was told are opaque; the proxy's own default when the injector wrote none.
        let written = proxy?.env?.first { $0.name == ProxyVariable.opaquePorts.rawValue }?.value
        let opaque = written.flatMap { try? PortSet(parsing: $0) } ?? ProxyEnvironment().opaquePorts
        return PodRecord(key: key, ips: ips, serviceAccount: spec?.serviceAccountName ?? "default", meshed: proxy != nil,
                         opaquePorts: opaque)
    }
}
