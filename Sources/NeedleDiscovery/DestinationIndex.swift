import NeedleContract

/// A destination lookup's answer (DESIGN §8), before it becomes event lines.
public enum DestinationAnswer: Equatable, Sendable {
    case notKnown
    /// The ready endpoints, in address order (empty: the Service exists but nothing is ready).
    case endpoints([DestinationEndpoint])
}

/// Which answers a change to the index may have altered, so only those are asked again.
public struct TouchedAnswers: Equatable, Sendable {
    /// Every answer (a relist).
    public var everything = false
    /// Answers for these IPs: cluster IPs and pod IPs that came, went or changed.
    public var ips: Set<IPAddress> = []
    /// Answers for these Services' cluster IPs: their endpoints or an endpoint's pod changed.
    public var services: Set<ObjectKey> = []

    public init(everything: Bool = false, ips: Set<IPAddress> = [], services: Set<ObjectKey> = []) {
        self.everything = everything
        self.ips = ips
        self.services = services
    }

    public var isEmpty: Bool { !everything && ips.isEmpty && services.isEmpty }
}

/// The cluster as discovery sees it, and the answer for any `IP:port`. Pure: the watch feeds it changes and
/// asks it again. What grows with what: `services` and `serviceByClusterIP` with the Services (and their
/// cluster IPs); `slices` and `slicesByService` with the EndpointSlices, `slicesByPod` with their endpoints
/// that name a pod; `pods` and `podsByIP` with the pods. Nothing is kept per lookup: answers are computed
/// when asked, and `apply` says which of them a change may have altered.
public struct DestinationIndex: Sendable {
    public enum Change: Sendable {
        /// A complete list of one kind (after a list or relist): replaces every record of that kind.
        case allServices([ServiceRecord])
        case allEndpointSlices([EndpointSliceRecord])
        case allPods([PodRecord])
        case service(ServiceRecord)
        case serviceDeleted(ObjectKey)
        case endpointSlice(EndpointSliceRecord)
        case endpointSliceDeleted(ObjectKey)
        case pod(PodRecord)
        case podDeleted(ObjectKey)
    }

    public let trustDomain: DNSName
    private var services: [ObjectKey: ServiceRecord] = [:]
    private var serviceByClusterIP: [IPAddress: ObjectKey] = [:]
    private var slices: [ObjectKey: EndpointSliceRecord] = [:]
    private var slicesByService: [ObjectKey: Set<ObjectKey>] = [:]
    /// The slices whose endpoints name each pod: a pod's change (meshed, service account) alters their answers.
    private var slicesByPod: [ObjectKey: Set<ObjectKey>] = [:]
    private var pods: [ObjectKey: PodRecord] = [:]
    /// The pods that claim each IP, oldest claim first: a terminating pod and its replacement can hold the
    /// same IP for a while, and the newest claim is the one to answer with.
    private var podsByIP: [IPAddress: [ObjectKey]] = [:]

    public init(trustDomain: DNSName) {
        self.trustDomain = trustDomain
    }

    public var counts: (services: Int, endpointSlices: Int, pods: Int) { (services.count, slices.count, pods.count) }

    /// Applies a change; returns which answers may differ now. An update equal to what is kept (most watch
    /// events: a status or resource-version bump) touches nothing.
    @discardableResult
    public mutating func apply(_ change: Change) -> TouchedAnswers {
        switch change {
        case .allServices(let records):
            services = [:]
            serviceByClusterIP = [:]
            for record in records { apply(.service(record)) }
            return TouchedAnswers(everything: true)
        case .allEndpointSlices(let records):
            slices = [:]
            slicesByService = [:]
            slicesByPod = [:]
            for record in records { apply(.endpointSlice(record)) }
            return TouchedAnswers(everything: true)
        case .allPods(let records):
            pods = [:]
            podsByIP = [:]
            for record in records { apply(.pod(record)) }
            return TouchedAnswers(everything: true)
        case .service(let record):
            let old = services[record.key]
            guard old != record else { return TouchedAnswers() }
            removeService(record.key)
            services[record.key] = record
            for ip in record.clusterIPs { serviceByClusterIP[ip] = record.key }
            return TouchedAnswers(ips: Set(record.clusterIPs + (old?.clusterIPs ?? [])))
        case .serviceDeleted(let key):
            let old = services[key]
            removeService(key)
            return TouchedAnswers(ips: Set(old?.clusterIPs ?? []))
        case .endpointSlice(let record):
            let old = slices[record.key]
            guard old != record else { return TouchedAnswers() }
            removeSlice(record.key)
            slices[record.key] = record
            slicesByService[serviceKey(of: record), default: []].insert(record.key)
            for pod in podKeys(of: record) { slicesByPod[pod, default: []].insert(record.key) }
            return TouchedAnswers(services: Set([serviceKey(of: record)] + (old.map { [serviceKey(of: $0)] } ?? [])))
        case .endpointSliceDeleted(let key):
            guard let old = slices[key] else { return TouchedAnswers() }
            removeSlice(key)
            return TouchedAnswers(services: [serviceKey(of: old)])
        case .pod(let record):
            let old = pods[record.key]
            guard old != record else { return TouchedAnswers() }
            let claimed = old?.ips ?? []
            removePod(record.key, keepingClaimsOn: record.ips)
            pods[record.key] = record
            for ip in record.ips where !claimed.contains(ip) { podsByIP[ip, default: []].append(record.key) }
            return TouchedAnswers(ips: Set(record.ips + claimed), services: servicesNaming(record.key))
        case .podDeleted(let key):
            guard let old = pods[key] else { return TouchedAnswers() }
            removePod(key)
            return TouchedAnswers(ips: Set(old.ips), services: servicesNaming(key))
        }
    }

    /// Whether the answer for `address` may differ after a change that touched `touched`.
    public func mayHaveChanged(_ address: ListenAddress, by touched: TouchedAnswers) -> Bool {
        if touched.everything || touched.ips.contains(address.ip) { return true }
        guard !touched.services.isEmpty, let service = serviceByClusterIP[address.ip] else { return false }
        return touched.services.contains(service)
    }

    private func serviceKey(of slice: EndpointSliceRecord) -> ObjectKey {
        ObjectKey(namespace: slice.key.namespace, name: slice.service)
    }

    private func podKeys(of slice: EndpointSliceRecord) -> Set<ObjectKey> {
        Set(slice.endpoints.compactMap { endpoint in endpoint.pod.map { ObjectKey(namespace: slice.key.namespace, name: $0) } })
    }

    private func servicesNaming(_ pod: ObjectKey) -> Set<ObjectKey> {
        Set((slicesByPod[pod] ?? []).compactMap { slices[$0].map(serviceKey(of:)) })
    }

    /// The answer for an outbound connection's original destination.
    public func answer(for address: ListenAddress) -> DestinationAnswer {
        if let serviceKey = serviceByClusterIP[address.ip], let service = services[serviceKey],
           let port = service.ports.first(where: { $0.port == address.port }) {
            return .endpoints(endpoints(of: service, port: port))
        }
        if let podKey = podsByIP[address.ip]?.last, let pod = pods[podKey] {
            return .endpoints([endpoint(address: address, pod: pod, service: nil)])
        }
        return .notKnown
    }

    private func endpoints(of service: ServiceRecord, port: ServiceRecord.Port) -> [DestinationEndpoint] {
        var found: [ListenAddress: DestinationEndpoint] = [:]
        for sliceKey in slicesByService[service.key] ?? [] {
            guard let slice = slices[sliceKey], let slicePort = slice.ports.first(where: { $0.name == port.name }) else { continue }
            for endpoint in slice.endpoints where endpoint.ready {
                let pod = endpoint.pod.flatMap { pods[ObjectKey(namespace: slice.key.namespace, name: $0)] }
                for ip in endpoint.addresses {
                    let address = ListenAddress(ip: ip, port: slicePort.port)
                    found[address] = self.endpoint(address: address, pod: pod, service: service.key.name,
                                                   namespace: slice.key.namespace, podName: endpoint.pod)
                }
            }
        }
        return found.values.sorted { $0.address.description < $1.address.description }
    }

    private func endpoint(address: ListenAddress, pod: PodRecord?, service: String?, namespace: String? = nil,
                          podName: String? = nil) -> DestinationEndpoint {
        var endpoint = DestinationEndpoint(address: address, namespace: pod?.key.namespace ?? namespace, service: service,
                                           pod: pod?.key.name ?? podName)
        if let pod, pod.meshed,
           let identity = try? WorkloadIdentity(namespace: pod.key.namespace, serviceAccount: pod.serviceAccount, trustDomain: trustDomain) {
            endpoint.identity = identity.tlsName
            endpoint.opaque = pod.opaquePorts.contains(address.port)
        }
        return endpoint
    }

    private mutating func removeService(_ key: ObjectKey) {
        guard let old = services.removeValue(forKey: key) else { return }
        for ip in old.clusterIPs where serviceByClusterIP[ip] == key { serviceByClusterIP[ip] = nil }
    }

    private mutating func removeSlice(_ key: ObjectKey) {
        guard let old = slices.removeValue(forKey: key) else { return }
        let serviceKey = serviceKey(of: old)
        slicesByService[serviceKey]?.remove(key)
        if slicesByService[serviceKey]?.isEmpty == true { slicesByService[serviceKey] = nil }
        for pod in podKeys(of: old) {
            slicesByPod[pod]?.remove(key)
            if slicesByPod[pod]?.isEmpty == true { slicesByPod[pod] = nil }
        }
    }

    /// Forgets a pod; its claims on `kept` IPs stay where they are in the order (an update of the same pod
    /// does not make it the newest claimant again).
    private mutating func removePod(_ key: ObjectKey, keepingClaimsOn kept: [IPAddress] = []) {
        guard let old = pods.removeValue(forKey: key) else { return }
        for ip in old.ips where !kept.contains(ip) {
            podsByIP[ip]?.removeAll { $0 == key }
            if podsByIP[ip]?.isEmpty == true { podsByIP[ip] = nil }
        }
    }
}
