/// Who a meshed workload is (DESIGN §7): its namespace and service account, within a trust domain. Both the
/// controller, which certifies it, and the proxy, which asks and then proves it, derive its names here.
public struct WorkloadIdentity: Hashable, Sendable, CustomStringConvertible {
    public let namespace: String
    public let serviceAccount: String
    public let trustDomain: DNSName

    /// `namespace` must be a DNS label, `serviceAccount` a DNS name, as Kubernetes requires of both.
    public init(namespace: String, serviceAccount: String, trustDomain: DNSName) throws(FormatError) {
        guard DNSName.isLabel(namespace) else { throw FormatError(value: namespace, expected: "a namespace: " + DNSName.labelFormat) }
        guard DNSName.isValid(serviceAccount) else {
            throw FormatError(value: serviceAccount, expected: "a service account name: " + DNSName.acceptedFormat)
        }
        self.namespace = namespace
        self.serviceAccount = serviceAccount
        self.trustDomain = trustDomain
    }

    /// The controller's own identity: service account `needle-controller` in the control-plane namespace.
    public static func controller(trustDomain: DNSName, namespace: String = Mesh.controlPlaneNamespace) throws(FormatError) -> WorkloadIdentity {
        try WorkloadIdentity(namespace: namespace, serviceAccount: Mesh.controllerServiceAccount, trustDomain: trustDomain)
    }

    /// The URI SAN: `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>`.
    public var spiffeID: String { "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)" }

    /// The DNS SAN, SNI and metric label: `<sa>.<ns>.serviceaccount.identity.needle.<trust-domain>`.
    public var tlsName: String { "\(serviceAccount).\(namespace).serviceaccount.identity.needle.\(trustDomain)" }

    /// The user name a TokenReview reports for this service account's tokens.
    public var serviceAccountUsername: String { "system:serviceaccount:\(namespace):\(serviceAccount)" }

    public var description: String { tlsName }

    /// The identity a TLS name stands for in `trustDomain`, the inverse of `tlsName`; nil for any other
    /// name. The namespace is the label before the mesh suffix; a service account name may hold dots.
    public init?(tlsName: String, trustDomain: DNSName) {
        let suffix = ".serviceaccount.identity.needle.\(trustDomain)"
        guard tlsName.hasSuffix(suffix) else { return nil }
        let names = tlsName.dropLast(suffix.count)
        guard let dot = names.lastIndex(of: "."),
              let identity = try? WorkloadIdentity(namespace: String(names[names.index(after: dot)...]),
                                                   serviceAccount: String(names[..<dot]), trustDomain: trustDomain)
        else { return nil }
        self = identity
    }

    /// The identity a TokenReview's user name stands for, if it is a service account's
    /// (`system:serviceaccount:<namespace>:<name>`); nil for any other user.
    public init?(serviceAccountUsername username: String, trustDomain: DNSName) {
        let parts = username.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "system", parts[1] == "serviceaccount",
              let identity = try? WorkloadIdentity(namespace: String(parts[2]), serviceAccount: String(parts[3]), trustDomain: trustDomain)
        else { return nil }
        self = identity
    }
}
