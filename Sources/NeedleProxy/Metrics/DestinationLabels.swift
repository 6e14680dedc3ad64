import NeedleContract

/// The `dst_namespace`, `dst_service` and `dst_pod` labels of outbound metrics (Linkerd's names), from what
/// discovery said. A label is written only when it is known; a connection balanced over several pods names
/// their Service, not a pod.
struct DestinationLabels: Hashable, Sendable {
    var namespace: String?
    var service: String?
    var pod: String?

    init(namespace: String? = nil, service: String? = nil, pod: String? = nil) {
        self.namespace = namespace
        self.service = service
        self.pod = pod
    }

    /// One endpoint's labels.
    init(_ endpoint: DestinationEndpoint) {
        self.init(namespace: endpoint.namespace, service: endpoint.service, pod: endpoint.pod)
    }

    /// What all of `endpoints` share: a label they disagree on is left out.
    init(shared endpoints: [DestinationEndpoint]) {
        func common(_ value: (DestinationEndpoint) -> String?) -> String? {
            guard let first = endpoints.first.flatMap(value) else { return nil }
            return endpoints.allSatisfy { value($0) == first } ? first : nil
        }
        self.init(namespace: common(\.namespace), service: common(\.service), pod: common(\.pod))
    }

    var labels: [(String, String)] {
        var labels: [(String, String)] = []
        if let namespace { labels.append(("dst_namespace", namespace)) }
        if let service { labels.append(("dst_service", service)) }
        if let pod { labels.append(("dst_pod", pod)) }
        return labels
    }
}
