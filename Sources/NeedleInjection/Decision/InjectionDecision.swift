import NeedleContract

/// What the injector does with one admission request.
public enum Outcome: String, Sendable, CaseIterable {
    /// The sidecar is added.
    case injected
    /// A pod the injector looked at and left alone.
    case skipped
    /// Not a pod CREATE at all: allowed without a look.
    case notApplicable = "not-applicable"
}

/// Why. The text is stable: it appears in logs, the `reason` metric label and `auditAnnotations`.
public enum Reason: String, Sendable, CaseIterable {
    case notAPod = "not a pod"
    case subresource = "subresource"
    case notACreate = "not a create"
    case hostNetwork = "host network"
    case sidecarPresent = "sidecar already present"
    case controlPlane = "control-plane component"
    case windows = "windows pod"
    case podDisabled = "pod annotation disabled"
    case invalidInjectValue = "invalid inject annotation"
    case podEnabled = "pod annotation enabled"
    case namespaceEnabled = "namespace annotation enabled"
    case notEnabled = "not enabled"

    public var outcome: Outcome {
        switch self {
        case .notAPod, .subresource, .notACreate: return .notApplicable
        case .podEnabled, .namespaceEnabled: return .injected
        default: return .skipped
        }
    }
}

/// The decision and any warning it raised (an unknown `needle.dev/inject` value).
public struct Decision: Equatable, Sendable {
    public var reason: Reason
    public var warnings: [String]
    public var outcome: Outcome { reason.outcome }

    public init(_ reason: Reason, warnings: [String] = []) {
        self.reason = reason
        self.warnings = warnings
    }
}

/// The parts of an AdmissionRequest the decision reads.
public struct AdmissionSubject: Sendable {
    public var kindGroup: String
    public var kind: String
    public var subResource: String
    public var operation: String
    public var namespace: String
    public var pod: PodView?

    public init(kindGroup: String, kind: String, subResource: String, operation: String, namespace: String, object: JSONValue?) {
        self.kindGroup = kindGroup
        self.kind = kind
        self.subResource = subResource
        self.operation = operation
        self.namespace = namespace
        if kindGroup.isEmpty, kind == "Pod", let object, object.objectValue != nil {
            self.pod = PodView(object)
        } else {
            self.pod = nil
        }
    }
}

/// The annotations of the pod's namespace.
public struct NamespaceMetadata: Equatable, Sendable {
    public var name: String
    public var annotations: [String: String]
    public var labels: [String: String]

    public init(name: String, annotations: [String: String] = [:], labels: [String: String] = [:]) {
        self.name = name
        self.annotations = annotations
        self.labels = labels
    }
}

/// DESIGN §3.1: the first matching rule decides.
public enum InjectionPolicy {
    public enum Evaluation: Equatable, Sendable {
        case decided(Decision)
        /// The pod would be injected or its namespace decides: look the namespace up and ask again.
        case needsNamespace
    }

    public static func evaluate(_ subject: AdmissionSubject, namespace: NamespaceMetadata?) -> Evaluation {
        guard subject.kindGroup.isEmpty, subject.kind == "Pod" else { return .decided(Decision(.notAPod)) }
        guard subject.subResource.isEmpty else { return .decided(Decision(.subresource)) }
        guard subject.operation == "CREATE" else { return .decided(Decision(.notACreate)) }
        guard let pod = subject.pod else { return .decided(Decision(.notAPod)) }
        if pod.hostNetwork { return .decided(Decision(.hostNetwork)) }
        if hasSidecar(pod) { return .decided(Decision(.sidecarPresent)) }
        if pod.labels[MeshKey.controlPlaneComponentLabel] != nil { return .decided(Decision(.controlPlane)) }
        if pod.osName == "windows" { return .decided(Decision(.windows)) }

        if let value = pod.annotations[MeshKey.inject] {
            switch InjectMode(rawValue: value) {
            case .disabled: return .decided(Decision(.podDisabled))
            case .enabled:
                // Injected regardless of the namespace, but its config annotations still apply.
                guard namespace != nil else { return .needsNamespace }
                return .decided(Decision(.podEnabled))
            case nil:
                return .decided(Decision(.invalidInjectValue, warnings: [invalidInjectWarning(value, on: "pod")]))
            }
        }
        guard let namespace else { return .needsNamespace }
        guard let value = namespace.annotations[MeshKey.inject] else { return .decided(Decision(.notEnabled)) }
        switch InjectMode(rawValue: value) {
        case .enabled: return .decided(Decision(.namespaceEnabled))
        case .disabled: return .decided(Decision(.notEnabled))
        case nil:
            return .decided(Decision(.invalidInjectValue, warnings: [invalidInjectWarning(value, on: "namespace \(namespace.name)")]))
        }
    }

    public static func hasSidecar(_ pod: PodView) -> Bool {
        pod.containers.contains { Mesh.knownProxyContainerNames.contains($0.name) }
            || pod.initContainers.contains {
                Mesh.knownProxyContainerNames.contains($0.name) || Mesh.knownInitContainerNames.contains($0.name)
            }
    }

    static func invalidInjectWarning(_ value: String, on owner: String) -> String {
        "\(MeshKey.inject)=\"\(truncated(value))\" on the \(owner) is not enabled or disabled; the pod was not injected"
    }
}

/// Keeps warnings short: the API server may cut warnings longer than 256 characters.
func truncated(_ value: String, limit: Int = 64) -> String {
    value.count <= limit ? value : String(value.prefix(limit)) + "…"
}
