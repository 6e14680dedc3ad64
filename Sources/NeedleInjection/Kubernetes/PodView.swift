/// A container port as the pod declares it.
public struct ContainerPort: Hashable, Sendable {
    public var name: String?
    public var number: Int
    public var isTCP: Bool
}

/// The few facts of one container the injector reads.
public struct ContainerView: Hashable, Sendable {
    public var name: String
    public var ports: [ContainerPort]
    /// Integer `httpGet` ports of the liveness, readiness and startup probes.
    public var probePorts: [Int]
    /// `Always` marks a native sidecar among init containers.
    public var restartPolicy: String?

    /// The members `init` reads: what a parser must keep of each container.
    static let shape = JSONShape.members([
        .init("name"), .init("ports"), .init("restartPolicy"),
        .init("livenessProbe", probe), .init("readinessProbe", probe), .init("startupProbe", probe),
    ])
    private static let probe = JSONShape.members([.init("httpGet")])

    init(_ json: JSONValue) {
        name = json["name"]?.stringValue ?? ""
        ports = (json["ports"]?.arrayValue ?? []).compactMap { port in
            guard let number = port["containerPort"]?.intValue else { return nil }
            let proto = port["protocol"]?.stringValue ?? "TCP"
            return ContainerPort(name: port["name"]?.stringValue, number: number, isTCP: proto == "TCP")
        }
        probePorts = ["livenessProbe", "readinessProbe", "startupProbe"].compactMap { probe in
            json[probe]?["httpGet"]?["port"]?.intValue
        }
        restartPolicy = json["restartPolicy"]?.stringValue
    }
}

/// A read-only view of the Pod fields the decision and the patch depend on. Missing and `null` fields read
/// the same as empty ones; the raw JSON stays the source for everything else.
public struct PodView: Sendable {
    public let json: JSONValue
    public let name: String?
    public let generateName: String?
    public let namespace: String?
    public let annotations: [String: String]
    public let labels: [String: String]
    public let hostNetwork: Bool
    public let osName: String?
    public let containers: [ContainerView]
    public let initContainers: [ContainerView]
    public let volumeNames: [String]

    /// Which top-level maps and lists exist (non-null), so the patch knows whether to create them first.
    public let hasAnnotations: Bool
    public let hasLabels: Bool
    public let hasVolumes: Bool
    public let hasInitContainers: Bool
    public let hasContainers: Bool

    /// Everything the decision, the configuration and the patch read of a pod (this view's fields and
    /// `shapeProblem`'s). A parser keeps these and drops the rest (env, resources, mounts, status...): the
    /// patch only adds, so nothing else of the pod is ever needed.
    public static let shape = JSONShape.members([
        .init("metadata", .members([.init("name"), .init("generateName"), .init("namespace"), .init("annotations"), .init("labels")])),
        .init("spec", .members([
            .init("hostNetwork"), .init("os"),
            .init("containers", .elements(ContainerView.shape)), .init("initContainers", .elements(ContainerView.shape)),
            .init("volumes", .elements(.members([.init("name")]))),
        ])),
    ])

    /// What the webhook reads of an AdmissionReview around the pod; the rest (userInfo, oldObject,
    /// options) is only checked as JSON.
    public static let admissionReviewShape = JSONShape.members([
        .init("apiVersion"), .init("kind"),
        .init("request", .members([
            .init("uid"), .init("kind"), .init("subResource"), .init("name"), .init("namespace"), .init("operation"),
            .init("dryRun"), .init("object", shape),
        ])),
    ])

    public init(_ json: JSONValue) {
        self.json = json
        let metadata = json["metadata"]
        let spec = json["spec"]
        name = metadata?["name"]?.stringValue
        generateName = metadata?["generateName"]?.stringValue
        namespace = metadata?["namespace"]?.stringValue
        annotations = metadata?["annotations"]?.stringMap ?? [:]
        labels = metadata?["labels"]?.stringMap ?? [:]
        hostNetwork = spec?["hostNetwork"]?.boolValue ?? false
        osName = spec?["os"]?["name"]?.stringValue
        containers = (spec?["containers"]?.arrayValue ?? []).map(ContainerView.init)
        initContainers = (spec?["initContainers"]?.arrayValue ?? []).map(ContainerView.init)
        volumeNames = (spec?["volumes"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        hasAnnotations = metadata?["annotations"]?.objectValue != nil
        hasLabels = metadata?["labels"]?.objectValue != nil
        hasVolumes = spec?["volumes"]?.arrayValue != nil
        hasInitContainers = spec?["initContainers"]?.arrayValue != nil
        hasContainers = spec?["containers"]?.arrayValue != nil
    }

    /// Why no patch could apply to this object, if so: the patch adds into `metadata`, its annotations and
    /// labels, and the `spec` lists, so each must be of its type, or missing or null (then created whole).
    /// The API server only sends well-formed pods; this answers anyone else with a clear 400.
    public var shapeProblem: String? {
        func wrong(_ value: JSONValue?, expected: (JSONValue) -> Bool) -> Bool {
            guard let value, !value.isNull else { return false }
            return !expected(value)
        }
        let isObject: (JSONValue) -> Bool = { $0.objectValue != nil }
        let isList: (JSONValue) -> Bool = { $0.arrayValue != nil }
        if wrong(json["metadata"], expected: isObject) { return "metadata must be an object" }
        for key in ["annotations", "labels"] where wrong(json["metadata"]?[key], expected: isObject) {
            return "metadata.\(key) must be an object of strings"
        }
        guard let spec = json["spec"], spec.objectValue != nil else { return "spec must be an object" }
        for key in ["containers", "initContainers", "volumes"] where wrong(spec[key], expected: isList) {
            return "spec.\(key) must be a list"
        }
        return nil
    }

    /// A name for logs: the name, or the generateName prefix of a pod a controller is creating.
    public var displayName: String {
        if let name, !name.isEmpty { return name }
        if let generateName, !generateName.isEmpty { return generateName + "<generated>" }
        return "<unnamed>"
    }

    public var allContainers: [ContainerView] { initContainers + containers }
}
