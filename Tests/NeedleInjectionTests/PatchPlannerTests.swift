import NeedleContract
import NeedleInjection
import Testing

/// Pods for the patch tests, and a way to read the patch an injection produced.
enum PatchFixtures {
    static let app: JSONValue = [
        "name": "app",
        "image": "example/app:1",
        "ports": [["containerPort": 8080, "protocol": "TCP"]],
    ]

    static let enabledNamespace = NamespaceMetadata(name: "shop", annotations: [MeshKey.inject: "enabled"])

    /// A pod whose annotations and labels maps exist (possibly empty); lists are left out unless given.
    static func pod(
        annotations: [String: String] = [:],
        labels: [String: String] = ["app": "web"],
        containers: [JSONValue] = [PatchFixtures.app],
        initContainers: [JSONValue]? = nil,
        volumes: [JSONValue]? = nil
    ) -> JSONValue {
        var spec: [String: JSONValue] = ["containers": .array(containers)]
        if let initContainers { spec["initContainers"] = .array(initContainers) }
        if let volumes { spec["volumes"] = .array(volumes) }
        let metadata: [String: JSONValue] = [
            "name": "web-1",
            "namespace": "shop",
            "annotations": .object(annotations.mapValues(JSONValue.string)),
            "labels": .object(labels.mapValues(JSONValue.string)),
        ]
        return .object(["apiVersion": "v1", "kind": "Pod", "metadata": .object(metadata), "spec": .object(spec)])
    }

    /// `json` with the member at `path` set to `value`, or removed when `value` is nil.
    static func setting(_ value: JSONValue?, at path: [String], in json: JSONValue) -> JSONValue {
        guard let key = path.first else { return value ?? .null }
        var members = json.objectValue ?? [:]
        if path.count == 1 {
            members[key] = value
        } else {
            members[key] = setting(value, at: Array(path.dropFirst()), in: members[key] ?? .object([:]))
        }
        return .object(members)
    }

    static func namespace(_ annotations: [String: String], enabled: Bool = true) -> NamespaceMetadata {
        var all = annotations
        if enabled { all[MeshKey.inject] = "enabled" }
        return NamespaceMetadata(name: "shop", annotations: all)
    }
}

enum PatchTestError: Error { case notInjected }

/// The result of one injection, with lookups into its patch.
struct Injected {
    let result: InjectionResult

    var patch: [PatchOperation] { result.patch }
    var paths: [String] { patch.map(\.path) }

    func ops(at path: String) -> [PatchOperation] { patch.filter { $0.path == path } }
    func op(at path: String) -> PatchOperation? { patch.first { $0.path == path } }

    /// Every container the patch adds, whether added alone or inside a whole list.
    var containers: [JSONValue] {
        patch.flatMap { operation -> [JSONValue] in
            (operation.value.arrayValue ?? [operation.value]).filter { $0["image"] != nil }
        }
    }

    func container(named name: String) throws -> JSONValue {
        try #require(containers.first { $0["name"]?.stringValue == name }, "the patch adds no \(name)")
    }

    func proxy() throws -> JSONValue { try container(named: Mesh.proxyContainerName) }
    func initContainer() throws -> JSONValue { try container(named: Mesh.initContainerName) }

    func envEntry(_ name: String) throws -> JSONValue? {
        let entries = try proxy()["env"]?.arrayValue ?? []
        return entries.first { $0["name"]?.stringValue == name }
    }

    /// The literal value of one proxy environment variable.
    func env(_ name: String) throws -> String? {
        try envEntry(name)?["value"]?.stringValue
    }

    func env(_ variable: ProxyVariable) throws -> String? { try env(variable.rawValue) }

    func initArguments() throws -> [String] {
        (try initContainer()["args"]?.arrayValue ?? []).compactMap(\.stringValue)
    }

    func argument(after flag: String) throws -> String? {
        let arguments = try initArguments()
        guard let index = arguments.firstIndex(of: flag), index + 1 < arguments.count else { return nil }
        return arguments[index + 1]
    }

    var configWarnings: [ConfigWarning] { result.configWarnings }
}

@Suite("Patch plan")
struct PatchPlannerTests {
    typealias F = PatchFixtures

    func inject(
        _ pod: JSONValue,
        namespace: NamespaceMetadata? = PatchFixtures.enabledNamespace,
        configuration: InjectorConfiguration = InjectorConfiguration(),
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Injected {
        let subject = AdmissionSubject(kindGroup: "", kind: "Pod", subResource: "", operation: "CREATE", namespace: "shop", object: pod)
        let evaluation = Injector(configuration: configuration).evaluate(subject, namespace: namespace)
        guard case .done(let result) = evaluation, result.decision.outcome == .injected else {
            Issue.record("expected an injection, got \(evaluation)", sourceLocation: sourceLocation)
            throw PatchTestError.notInjected
        }
        return Injected(result: result)
    }

    // MARK: Native sidecar mode

    @Test("native mode without initContainers adds the whole list: needle-init, then needle-proxy")
    func nativeWithoutInitContainers() throws {
        let injected = try inject(F.pod())
        #expect(injected.patch.allSatisfy { $0.op == "add" })
        #expect(injected.paths.filter { $0.hasPrefix("/spec/initContainers") } == ["/spec/initContainers"])
        #expect(!injected.paths.contains { $0.hasPrefix("/spec/containers") })

        let list = try #require(injected.op(at: "/spec/initContainers")?.value.arrayValue)
        #expect(list.map { $0["name"]?.stringValue } == ["needle-init", "needle-proxy"])
        try #require(list.count == 2)

        let proxy = list[1]
        #expect(proxy["restartPolicy"]?.stringValue == "Always")
        let startup = try #require(proxy["startupProbe"])
        #expect(startup["httpGet"]?["path"]?.stringValue == "/ready")
        #expect(startup["httpGet"]?["port"]?.intValue == 4191)
        #expect(proxy["lifecycle"] == nil)
        #expect(list[0]["restartPolicy"] == nil)
    }

    @Test("native mode with initContainers puts needle-init at 0 and needle-proxy at 1")
    func nativeWithInitContainers() throws {
        let migrate: JSONValue = ["name": "migrate", "image": "example/migrate:1"]
        let injected = try inject(F.pod(initContainers: [migrate]))
        #expect(injected.paths.filter { $0.hasPrefix("/spec/initContainers") } == ["/spec/initContainers/0", "/spec/initContainers/1"])
        #expect(injected.op(at: "/spec/initContainers/0")?.value["name"]?.stringValue == "needle-init")
        #expect(injected.op(at: "/spec/initContainers/1")?.value["name"]?.stringValue == "needle-proxy")
        #expect(injected.op(at: "/spec/initContainers/1")?.value["restartPolicy"]?.stringValue == "Always")
        // needle-init must be added before needle-proxy so that index 1 lands right after it.
        let initIndex = try #require(injected.paths.firstIndex(of: "/spec/initContainers/0"))
        let proxyIndex = try #require(injected.paths.firstIndex(of: "/spec/initContainers/1"))
        #expect(initIndex < proxyIndex)
    }

    @Test("a null initContainers list is created whole")
    func nullInitContainers() throws {
        let pod = F.setting(.null, at: ["spec", "initContainers"], in: F.pod())
        let injected = try inject(pod)
        #expect(injected.op(at: "/spec/initContainers")?.value.arrayValue?.count == 2)
        #expect(injected.op(at: "/spec/initContainers/0") == nil)
    }

    // MARK: Classic mode

    @Test("classic mode without initContainers: list created with needle-init, proxy first container with postStart await")
    func classicWithoutInitContainers() throws {
        let injected = try inject(F.pod(annotations: ["config.needle.dev/native-sidecar": "false"]))
        #expect(injected.patch.allSatisfy { $0.op == "add" })
        let list = try #require(injected.op(at: "/spec/initContainers")?.value.arrayValue)
        #expect(list.map { $0["name"]?.stringValue } == ["needle-init"])

        let proxy = try #require(injected.op(at: "/spec/containers/0")?.value)
        #expect(proxy["name"]?.stringValue == "needle-proxy")
        let command = proxy["lifecycle"]?["postStart"]?["exec"]?["command"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(command.contains("await"))
        #expect(command.first == Mesh.proxyBinary)
        #expect(proxy["restartPolicy"] == nil)
        #expect(proxy["startupProbe"] == nil)
    }

    @Test("classic mode with initContainers appends needle-init after them")
    func classicWithInitContainers() throws {
        let migrate: JSONValue = ["name": "migrate", "image": "example/migrate:1"]
        let injected = try inject(F.pod(annotations: ["config.needle.dev/native-sidecar": "false"], initContainers: [migrate]))
        #expect(injected.paths.filter { $0.hasPrefix("/spec/initContainers") } == ["/spec/initContainers/-"])
        #expect(injected.op(at: "/spec/initContainers/-")?.value["name"]?.stringValue == "needle-init")
        #expect(injected.op(at: "/spec/containers/0")?.value["name"]?.stringValue == "needle-proxy")
    }

    @Test("classic mode with proxy-await disabled has no postStart hook")
    func classicWithoutAwait() throws {
        let injected = try inject(F.pod(annotations: [
            "config.needle.dev/native-sidecar": "false",
            "config.needle.dev/proxy-await": "disabled",
        ]))
        let proxy = try #require(injected.op(at: "/spec/containers/0")?.value)
        #expect(proxy["name"]?.stringValue == "needle-proxy")
        #expect(proxy["lifecycle"] == nil)
        #expect(injected.configWarnings.isEmpty)
    }

    @Test("classic mode from the injector configuration and from the namespace")
    func classicFromConfigurationAndNamespace() throws {
        var configuration = InjectorConfiguration()
        configuration.nativeSidecar = false
        configuration.proxyAwait = false
        let fromConfiguration = try inject(F.pod(), configuration: configuration)
        let proxy = try #require(fromConfiguration.op(at: "/spec/containers/0")?.value)
        #expect(proxy["lifecycle"] == nil)

        let fromNamespace = try inject(F.pod(), namespace: F.namespace(["config.needle.dev/native-sidecar": "false"]))
        #expect(fromNamespace.op(at: "/spec/containers/0")?.value["name"]?.stringValue == "needle-proxy")
        #expect(fromNamespace.op(at: "/metadata/annotations/config.needle.dev~1native-sidecar")?.value.stringValue == "false")
    }

    // MARK: Metadata and volumes

    @Test("annotation and label keys are escaped in paths; nothing is replaced")
    func escapedPaths() throws {
        let injected = try inject(F.pod(annotations: ["team": "a"]))
        for path in injected.paths {
            #expect(!path.contains("needle.dev/"), "unescaped key in \(path)")
        }
        #expect(injected.op(at: "/metadata/annotations/needle.dev~1proxy-version")?.value.stringValue == Mesh.version)
        #expect(injected.op(at: "/metadata/annotations/needle.dev~1injected-by")?.value.stringValue == "needle-injector/\(Mesh.version)")
        #expect(injected.op(at: "/metadata/labels/needle.dev~1workload-ns")?.value.stringValue == "shop")
        #expect(injected.op(at: "/metadata/labels/needle.dev~1control-plane-ns")?.value.stringValue == "needle")
        #expect(injected.patch.allSatisfy { $0.op == "add" })
    }

    @Test("JSON pointer escaping: ~ before /")
    func pointerEscaping() {
        #expect(JSONPointer.escape("needle.dev/inject") == "needle.dev~1inject")
        #expect(JSONPointer.escape("a~b") == "a~0b")
        #expect(JSONPointer.escape("~1") == "~01")
        #expect(JSONPointer.escape("a/~b") == "a~1~0b")
        #expect(JSONPointer(["metadata", "annotations", "x/y~z"]).description == "/metadata/annotations/x~1y~0z")
        #expect(JSONPointer("/spec/volumes").appendingEnd.description == "/spec/volumes/-")
        #expect(JSONPointer("/spec/containers").appending(index: 0).description == "/spec/containers/0")
    }

    @Test("missing or null annotations, labels and volumes are created whole", arguments: [false, true])
    func missingMaps(explicitNull: Bool) throws {
        // Absent (`.none`) or present as JSON null (`.some(.null)`).
        let value: JSONValue?
        if explicitNull { value = .some(.null) } else { value = .none }
        var pod = F.pod()
        pod = F.setting(value, at: ["metadata", "annotations"], in: pod)
        pod = F.setting(value, at: ["metadata", "labels"], in: pod)
        pod = F.setting(value, at: ["spec", "volumes"], in: pod)
        let injected = try inject(pod)

        #expect(injected.ops(at: "/metadata/annotations").count == 1)
        let annotations = try #require(injected.op(at: "/metadata/annotations")?.value)
        #expect(annotations.stringMap == [
            MeshKey.proxyVersion: Mesh.version,
            MeshKey.injectedBy: "needle-injector/\(Mesh.version)",
        ])
        let labels = try #require(injected.op(at: "/metadata/labels")?.value)
        #expect(labels.stringMap == [MeshKey.workloadNamespaceLabel: "shop", MeshKey.controlPlaneNamespaceLabel: "needle"])
        let volumes = try #require(injected.op(at: "/spec/volumes")?.value.arrayValue)
        #expect(volumes.count == 1)
        #expect(volumes.first?["name"]?.stringValue == "needle-init-xtables-lock")
        #expect(volumes.first?["emptyDir"]?.objectValue != nil)

        #expect(!injected.paths.contains { $0.hasPrefix("/metadata/annotations/") })
        #expect(!injected.paths.contains { $0.hasPrefix("/metadata/labels/") })
        #expect(!injected.paths.contains { $0.hasPrefix("/spec/volumes/") })
    }

    @Test("missing metadata is created whole")
    func missingMetadata() throws {
        let pod = F.setting(.none, at: ["metadata"], in: F.pod())
        let injected = try inject(pod)
        let metadata = try #require(injected.op(at: "/metadata")?.value)
        #expect(metadata["annotations"]?.stringMap[MeshKey.proxyVersion] == Mesh.version)
        #expect(metadata["labels"]?.stringMap[MeshKey.workloadNamespaceLabel] == "shop")
        #expect(!injected.paths.contains { $0.hasPrefix("/metadata/") })
    }

    @Test("existing annotations, labels and volumes get per-key adds and an append")
    func existingMaps() throws {
        let data: JSONValue = ["name": "data", "emptyDir": [:]]
        let injected = try inject(F.pod(annotations: ["team": "a"], labels: ["app": "web"], volumes: [data]))
        #expect(injected.op(at: "/metadata/annotations") == nil)
        #expect(injected.op(at: "/metadata/labels") == nil)
        #expect(injected.op(at: "/spec/volumes") == nil)
        #expect(Set(injected.paths.filter { $0.hasPrefix("/metadata/annotations/") }) == [
            "/metadata/annotations/needle.dev~1proxy-version", "/metadata/annotations/needle.dev~1injected-by",
        ])
        #expect(Set(injected.paths.filter { $0.hasPrefix("/metadata/labels/") }) == [
            "/metadata/labels/needle.dev~1workload-ns", "/metadata/labels/needle.dev~1control-plane-ns",
        ])
        #expect(injected.ops(at: "/spec/volumes/-").count == 1)
        #expect(injected.op(at: "/spec/volumes/-")?.value["name"]?.stringValue == "needle-init-xtables-lock")
    }

    @Test("existing annotations and labels are never overwritten")
    func noOverwrite() throws {
        let injected = try inject(F.pod(
            annotations: [MeshKey.proxyVersion: "old"],
            labels: [MeshKey.workloadNamespaceLabel: "custom"]
        ))
        #expect(injected.op(at: "/metadata/annotations/needle.dev~1proxy-version") == nil)
        #expect(injected.op(at: "/metadata/annotations/needle.dev~1injected-by") != nil)
        #expect(injected.op(at: "/metadata/labels/needle.dev~1workload-ns") == nil)
        #expect(injected.op(at: "/metadata/labels/needle.dev~1control-plane-ns") != nil)
    }

    @Test("the xtables lock volume gets a free name", arguments: [
        (["needle-init-xtables-lock"], "needle-init-xtables-lock-2"),
        (["needle-init-xtables-lock", "needle-init-xtables-lock-2"], "needle-init-xtables-lock-3"),
        (["needle-init-xtables-lock-2"], "needle-init-xtables-lock"),
    ])
    func volumeCollision(taken: [String], expected: String) throws {
        let volumes = taken.map { name -> JSONValue in ["name": .string(name), "emptyDir": [:]] }
        let injected = try inject(F.pod(volumes: volumes))
        #expect(injected.op(at: "/spec/volumes/-")?.value["name"]?.stringValue == expected)
        let mounts = try injected.initContainer()["volumeMounts"]?.arrayValue ?? []
        #expect(mounts.count == 1)
        #expect(mounts.first?["name"]?.stringValue == expected)
        #expect(mounts.first?["mountPath"]?.stringValue == "/run")
    }

    // MARK: The containers

    @Test("proxy container follows DESIGN §3.2")
    func proxyContainer() throws {
        let proxy = try inject(F.pod()).proxy()
        #expect(proxy["image"]?.stringValue == InjectorConfiguration().proxyImage)
        let ports = proxy["ports"]?.arrayValue ?? []
        #expect(ports.map { $0["containerPort"]?.intValue } == [4143, 4191])
        #expect(ports.map { $0["name"]?.stringValue } == ["needle-proxy", "needle-admin"])
        #expect(proxy["livenessProbe"]?["httpGet"]?["path"]?.stringValue == "/live")
        #expect(proxy["livenessProbe"]?["httpGet"]?["port"]?.intValue == 4191)
        #expect(proxy["readinessProbe"]?["httpGet"]?["path"]?.stringValue == "/ready")
        #expect(proxy["readinessProbe"]?["httpGet"]?["port"]?.intValue == 4191)
        let security = try #require(proxy["securityContext"])
        #expect(security["runAsUser"]?.intValue == 2102)
        #expect(security["runAsNonRoot"]?.boolValue == true)
        #expect(security["readOnlyRootFilesystem"]?.boolValue == true)
        #expect(security["allowPrivilegeEscalation"]?.boolValue == false)
        #expect(security["capabilities"]?["drop"]?.arrayValue?.compactMap(\.stringValue) == ["ALL"])
        #expect(security["seccompProfile"]?["type"]?.stringValue == "RuntimeDefault")
        #expect(proxy["terminationMessagePolicy"]?.stringValue == "FallbackToLogsOnError")
        #expect(proxy["resources"]?["requests"]?["cpu"]?.stringValue == "10m")
        #expect(proxy["resources"]?["requests"]?["memory"]?.stringValue == "20Mi")
        #expect(proxy["resources"]?["limits"]?["memory"]?.stringValue == "128Mi")
        #expect(proxy["resources"]?["limits"]?["cpu"] == nil)
    }

    @Test("init container follows DESIGN §3.2 and §3.5")
    func initContainer() throws {
        let injected = try inject(F.pod())
        let container = try injected.initContainer()
        #expect(container["command"]?.arrayValue?.compactMap(\.stringValue) == ["/usr/lib/needle/needle-init"])
        #expect(try injected.initArguments() == [
            "--inbound-proxy-port", "4143", "--outbound-proxy-port", "4140", "--proxy-uid", "2102",
            "--inbound-ports-to-ignore", "4191",
        ])
        let security = try #require(container["securityContext"])
        #expect(security["runAsUser"]?.intValue == 0)
        #expect(security["allowPrivilegeEscalation"]?.boolValue == false)
        #expect(security["readOnlyRootFilesystem"]?.boolValue == true)
        #expect(Set(security["capabilities"]?["add"]?.arrayValue?.compactMap(\.stringValue) ?? []) == ["NET_ADMIN", "NET_RAW"])
        #expect(security["capabilities"]?["drop"]?.arrayValue?.compactMap(\.stringValue) == ["ALL"])
    }

    @Test("the proxy environment parses back and takes pod facts from the downward API")
    func environmentParsesBack() throws {
        let injected = try inject(F.pod())
        let entries = try injected.proxy()["env"]?.arrayValue ?? []
        var literals: [String: String] = [:]
        for entry in entries {
            let name = try #require(entry["name"]?.stringValue)
            if let value = entry["value"]?.stringValue { literals[name] = value }
        }
        // Without trust anchors in the injector's configuration, identity is off: none of its variables.
        #expect(entries.count == ProxyEnvironment().render().count)
        #expect(!literals.keys.contains { $0.hasPrefix("NEEDLE_PROXY_IDENTITY_") || $0.hasPrefix("NEEDLE_PROXY_DESTINATION_") })
        let parsed = try ProxyEnvironment(parsing: literals)
        #expect(parsed.detectTimeout == .seconds(10))
        #expect(parsed.inboundPorts.description == "8080")
        #expect(try injected.envEntry("NEEDLE_PROXY_INBOUND_IPS")?["valueFrom"]?["fieldRef"]?["fieldPath"]?.stringValue == "status.podIPs")
        #expect(try injected.envEntry("NEEDLE_POD_NAME")?["valueFrom"]?["fieldRef"]?["fieldPath"]?.stringValue == "metadata.name")
    }

    @Test("inbound ports: TCP container ports of all containers plus integer httpGet probe ports, sorted")
    func inboundPorts() throws {
        let app: JSONValue = [
            "name": "app",
            "image": "example/app:1",
            "ports": [
                ["containerPort": 8080, "name": "http"],
                ["containerPort": 53, "protocol": "UDP", "name": "dns"],
                ["containerPort": 9090, "protocol": "TCP"],
            ],
            "livenessProbe": ["httpGet": ["port": 8081, "path": "/healthz"]],
            "readinessProbe": ["httpGet": ["port": "http", "path": "/ready"]],
            "startupProbe": ["tcpSocket": ["port": 7000]],
        ]
        let cache: JSONValue = ["name": "cache", "image": "example/cache:1", "ports": [["containerPort": 8080], ["containerPort": 443]]]
        let migrate: JSONValue = ["name": "migrate", "image": "example/migrate:1", "ports": [["containerPort": 5000]]]
        let injected = try inject(F.pod(containers: [app, cache], initContainers: [migrate]))
        let value = try #require(try injected.env(.inboundPorts))
        #expect(value == "443,5000,8080,8081,9090")
        let ports = try PortSet(parsing: value)
        #expect(!ports.contains(53))
        #expect(!ports.contains(7000))
    }

    @Test("a pod without ports has an empty inbound port list")
    func noPorts() throws {
        let bare: JSONValue = ["name": "app", "image": "example/app:1"]
        #expect(try inject(F.pod(containers: [bare])).env(.inboundPorts) == "")
    }

    // MARK: Config annotations

    @Test("pod annotation sets the log level")
    func podLogLevel() throws {
        let injected = try inject(F.pod(annotations: ["config.needle.dev/proxy-log-level": "debug"]))
        #expect(try injected.env(.logLevel) == "debug")
        #expect(injected.result.warnings.isEmpty)
        // The pod already shows it: not re-added.
        #expect(injected.op(at: "/metadata/annotations/config.needle.dev~1proxy-log-level") == nil)
    }

    @Test("a namespace value applies and is copied onto the pod")
    func namespaceInherited() throws {
        let namespace = F.namespace(["config.needle.dev/detect-timeout": "3s"])
        let injected = try inject(F.pod(), namespace: namespace)
        #expect(try injected.env(.detectTimeout) == "3s")
        #expect(injected.op(at: "/metadata/annotations/config.needle.dev~1detect-timeout")?.value.stringValue == "3s")
        // needle.dev/inject is not a config annotation: not copied.
        #expect(injected.op(at: "/metadata/annotations/needle.dev~1inject") == nil)

        let withoutMap = try inject(F.setting(.none, at: ["metadata", "annotations"], in: F.pod()), namespace: namespace)
        let annotations = try #require(withoutMap.op(at: "/metadata/annotations")?.value)
        #expect(annotations.stringMap["config.needle.dev/detect-timeout"] == "3s")
        #expect(annotations.stringMap[MeshKey.inject] == nil)
    }

    @Test("a pod enabled in a namespace that is not enabled still gets the namespace's config")
    func podEnabledNamespaceConfig() throws {
        let namespace = F.namespace(["config.needle.dev/proxy-log-level": "trace"], enabled: false)
        let injected = try inject(F.pod(annotations: [MeshKey.inject: "enabled"]), namespace: namespace)
        #expect(injected.result.decision.reason == .podEnabled)
        #expect(try injected.env(.logLevel) == "trace")
    }

    @Test("the pod's value overrides the namespace's")
    func podOverridesNamespace() throws {
        let namespace = F.namespace(["config.needle.dev/detect-timeout": "3s"])
        let injected = try inject(F.pod(annotations: ["config.needle.dev/detect-timeout": "5s"]), namespace: namespace)
        #expect(try injected.env(.detectTimeout) == "5s")
        #expect(injected.op(at: "/metadata/annotations/config.needle.dev~1detect-timeout") == nil)
        #expect(injected.result.warnings.isEmpty)
    }

    @Test("an invalid pod value is ignored with a warning naming the annotation and the accepted format")
    func invalidPodValue() throws {
        let injected = try inject(F.pod(annotations: ["config.needle.dev/detect-timeout": "10 s"]))
        #expect(try injected.env(.detectTimeout) == "10s")
        #expect(injected.configWarnings.count == 1)
        let warning = try #require(injected.configWarnings.first)
        #expect(warning.annotation == .detectTimeout)
        #expect(warning.value == "10 s")
        #expect(warning.source == "pod")
        #expect(warning.description.contains("config.needle.dev/detect-timeout"))
        #expect(warning.description.contains(ProxyDuration.acceptedFormat))
        #expect(injected.result.warnings == [warning.description])
    }

    @Test("an invalid namespace value is ignored, not copied, and the warning names the namespace")
    func invalidNamespaceValue() throws {
        let injected = try inject(F.pod(), namespace: F.namespace(["config.needle.dev/detect-timeout": "soon"]))
        #expect(try injected.env(.detectTimeout) == "10s")
        #expect(injected.op(at: "/metadata/annotations/config.needle.dev~1detect-timeout") == nil)
        let warning = try #require(injected.configWarnings.first)
        #expect(injected.configWarnings.count == 1)
        #expect(warning.source == "namespace shop")
        #expect(warning.description.contains("shop"))
        #expect(warning.description.contains("\"soon\""))
    }

    @Test("every config annotation reports an invalid value and changes nothing", arguments: [
        (ConfigAnnotation.proxyImage, "has space"),
        (.proxyImage, ""),
        (.proxyLogLevel, "verbose"),
        (.proxyLogFormat, "xml"),
        (.proxyCPURequest, "lots"),
        (.proxyCPULimit, "-1"),
        (.proxyMemoryRequest, "20MB"),
        (.proxyMemoryLimit, "1 Gi"),
        (.skipInboundPorts, "0"),
        (.skipOutboundPorts, "1-70000"),
        (.skipSubnets, "10.0.0.1/8"),
        (.opaquePorts, "80,"),
        (.nativeSidecar, "no"),
        (.proxyAwait, "true"),
        (.shutdownGracePeriod, "30"),
        (.detectTimeout, "8d"),
        (.inboundConnectTimeout, "1.5s"),
        (.outboundConnectTimeout, "-1s"),
        (.proxyAdminShutdown, "yes"),
    ] as [(ConfigAnnotation, String)])
    func invalidValues(annotation: ConfigAnnotation, value: String) throws {
        let baseline = try inject(F.pod(annotations: ["team": "a"]))
        let injected = try inject(F.pod(annotations: ["team": "a", annotation.key: value]))
        #expect(injected.configWarnings.count == 1)
        let warning = try #require(injected.configWarnings.first)
        #expect(warning.annotation == annotation)
        #expect(warning.description.contains(annotation.key))
        #expect(warning.description.contains(annotation.acceptedFormat))
        #expect(injected.patch == baseline.patch)
    }

    @Test("opaque ports resolve named container ports")
    func opaqueNamedPorts() throws {
        let app: JSONValue = ["name": "app", "image": "example/app:1", "ports": [["name": "db", "containerPort": 15432]]]
        let injected = try inject(F.pod(annotations: ["config.needle.dev/opaque-ports": "db, 8000-8010"], containers: [app]))
        let value = try #require(try injected.env(.opaquePorts))
        #expect(value == "15432,8000-8010")
        #expect(try PortSet(parsing: value).contains(15432))
        #expect(injected.configWarnings.isEmpty)
    }

    @Test("an unknown opaque port name is a warning; the defaults stay")
    func opaqueUnknownName() throws {
        let injected = try inject(F.pod(annotations: ["config.needle.dev/opaque-ports": "3306,nosuch"]))
        #expect(try injected.env(.opaquePorts) == "25,587,3306,4444,5432,6379,9300,11211")
        let warning = try #require(injected.configWarnings.first)
        #expect(warning.annotation == .opaquePorts)
        #expect(warning.description.contains("nosuch"))
    }

    @Test("an empty opaque-ports annotation means no opaque ports")
    func opaqueEmpty() throws {
        let injected = try inject(F.pod(annotations: ["config.needle.dev/opaque-ports": ""]))
        #expect(try injected.env(.opaquePorts) == "")
        #expect(injected.configWarnings.isEmpty)
    }

    @Test("skip-inbound-ports adds to the admin port", arguments: [
        ("9000", "4191,9000"),
        ("4191", "4191"),
        ("9000-9010, 22", "4191,9000-9010,22"),
    ])
    func skipInboundPorts(annotation: String, expected: String) throws {
        let injected = try inject(F.pod(annotations: ["config.needle.dev/skip-inbound-ports": annotation]))
        #expect(try injected.argument(after: "--inbound-ports-to-ignore") == expected)
    }

    @Test("skip-outbound-ports and skip-subnets become needle-init arguments, absent by default")
    func skipOutboundAndSubnets() throws {
        let plain = try inject(F.pod())
        #expect(try !plain.initArguments().contains("--outbound-ports-to-ignore"))
        #expect(try !plain.initArguments().contains("--subnets-to-ignore"))

        let injected = try inject(F.pod(annotations: [
            "config.needle.dev/skip-outbound-ports": "5432,6379",
            "config.needle.dev/skip-subnets": "10.0.0.0/8, fd00::/8",
        ]))
        #expect(try injected.argument(after: "--outbound-ports-to-ignore") == "5432,6379")
        #expect(try injected.argument(after: "--subnets-to-ignore") == "10.0.0.0/8,fd00::/8")
    }

    @Test("a memory request above the limit is lowered to the limit, with a warning")
    func memoryRequestAboveLimit() throws {
        let injected = try inject(F.pod(annotations: ["config.needle.dev/proxy-memory-request": "256Mi"]))
        let resources = try #require(try injected.proxy()["resources"])
        #expect(resources["requests"]?["memory"]?.stringValue == "128Mi")
        #expect(resources["limits"]?["memory"]?.stringValue == "128Mi")
        let warning = try #require(injected.configWarnings.first)
        #expect(injected.configWarnings.count == 1)
        #expect(warning.annotation == .proxyMemoryRequest)
        #expect(warning.description.contains("128Mi"))
    }

    @Test("a CPU request above the limit is lowered to the limit, with a warning")
    func cpuRequestAboveLimit() throws {
        let injected = try inject(F.pod(annotations: [
            "config.needle.dev/proxy-cpu-request": "200m",
            "config.needle.dev/proxy-cpu-limit": "0.1",
        ]))
        let resources = try #require(try injected.proxy()["resources"])
        #expect(resources["requests"]?["cpu"]?.stringValue == "0.1")
        #expect(resources["limits"]?["cpu"]?.stringValue == "0.1")
        #expect(injected.configWarnings.map(\.annotation) == [.proxyCPURequest])
    }

    @Test("a request below the limit is kept as written")
    func requestBelowLimit() throws {
        let injected = try inject(F.pod(annotations: [
            "config.needle.dev/proxy-memory-request": "64Mi",
            "config.needle.dev/proxy-memory-limit": "1Gi",
            "config.needle.dev/proxy-cpu-limit": "500m",
        ]))
        let resources = try #require(try injected.proxy()["resources"])
        #expect(resources["requests"]?["memory"]?.stringValue == "64Mi")
        #expect(resources["limits"]?["memory"]?.stringValue == "1Gi")
        #expect(resources["limits"]?["cpu"]?.stringValue == "500m")
        #expect(injected.configWarnings.isEmpty)
    }

    @Test("other annotations reach the proxy and both containers' image")
    func otherAnnotations() throws {
        let injected = try inject(F.pod(annotations: [
            "config.needle.dev/proxy-image": "registry.example/needle-proxy:dev",
            "config.needle.dev/proxy-log-format": "json",
            "config.needle.dev/proxy-admin-shutdown": "enabled",
            "config.needle.dev/shutdown-grace-period": "2m",
            "config.needle.dev/inbound-connect-timeout": "250ms",
            "config.needle.dev/outbound-connect-timeout": "2s",
        ]))
        #expect(try injected.proxy()["image"]?.stringValue == "registry.example/needle-proxy:dev")
        #expect(try injected.initContainer()["image"]?.stringValue == "registry.example/needle-proxy:dev")
        #expect(try injected.env(.logFormat) == "json")
        #expect(try injected.env(.shutdownEndpointEnabled) == "true")
        #expect(try injected.env(.shutdownGracePeriod) == "2m")
        #expect(try injected.env(.inboundConnectTimeout) == "250ms")
        #expect(try injected.env(.outboundConnectTimeout) == "2s")
        #expect(injected.configWarnings.isEmpty)
    }

    // MARK: Injector configuration

    @Test("configuration keys change the values")
    func configurationApply() throws {
        var configuration = InjectorConfiguration()
        try configuration.apply([
            "proxyImage": "registry.example/needle-proxy:9",
            "proxyVersion": "9.0.0",
            "imagePullPolicy": "Always",
            "detectTimeout": "3s",
            "nativeSidecar": "false",
            "proxyAwait": "false",
            "proxyMemoryLimit": "",
            "proxyCPULimit": "500m",
            "opaquePorts": "3306,5432",
            "proxyLogLevel": "debug",
            "proxyLogFormat": "json",
            "proxyAdminShutdown": "true",
            "controlPlaneNamespace": "mesh-system",
            "clusterDomain": "corp.local",
        ])
        #expect(configuration.proxyImage == "registry.example/needle-proxy:9")
        #expect(configuration.proxyVersion == "9.0.0")
        #expect(configuration.imagePullPolicy == "Always")
        #expect(configuration.detectTimeout == .seconds(3))
        #expect(configuration.nativeSidecar == false)
        #expect(configuration.proxyAwait == false)
        #expect(configuration.proxyMemoryLimit == nil)
        #expect(configuration.proxyCPULimit?.text == "500m")
        #expect(configuration.opaquePorts == [3306, 5432])
        #expect(configuration.proxyLogLevel == .debug)
        #expect(configuration.proxyLogFormat == .json)
        #expect(configuration.proxyAdminShutdown == true)
        #expect(configuration.controlPlaneNamespace == "mesh-system")
        #expect(configuration.clusterDomain == "corp.local")

        // The injection uses them.
        let injected = try inject(F.pod(), configuration: configuration)
        let proxy = try #require(injected.op(at: "/spec/containers/0")?.value)
        #expect(proxy["image"]?.stringValue == "registry.example/needle-proxy:9")
        #expect(proxy["imagePullPolicy"]?.stringValue == "Always")
        #expect(proxy["lifecycle"] == nil)
        #expect(proxy["resources"]?["limits"]?["memory"] == nil)
        #expect(try injected.env(.detectTimeout) == "3s")
        #expect(try injected.env(.opaquePorts) == "3306,5432")
        #expect(injected.op(at: "/metadata/annotations/needle.dev~1proxy-version")?.value.stringValue == "9.0.0")
        #expect(injected.op(at: "/metadata/labels/needle.dev~1control-plane-ns")?.value.stringValue == "mesh-system")
    }

    @Test("an empty settings map changes nothing")
    func configurationEmpty() throws {
        var configuration = InjectorConfiguration()
        try configuration.apply([:])
        #expect(configuration == InjectorConfiguration())
    }

    @Test("unknown keys and bad values are all reported at once, one problem each")
    func configurationErrors() throws {
        let settings = [
            "nope": "1",
            "detectTimeout": "3 s",
            "proxyLogLevel": "loud",
            "imagePullPolicy": "Sometimes",
            "proxyImage": "a b",
            "proxyMemoryRequest": "lots",
            "nativeSidecar": "yes",
            "proxyLogFormat": "json",  // valid: not a problem
        ]
        let error = try #require(throws: ConfigurationError.self) {
            var configuration = InjectorConfiguration()
            try configuration.apply(settings)
        }
        #expect(error.problems.count == 7)
        let keys = error.problems.map { problem in String(problem.prefix { $0 != ":" }) }
        #expect(Set(keys) == ["nope", "detectTimeout", "proxyLogLevel", "imagePullPolicy", "proxyImage", "proxyMemoryRequest", "nativeSidecar"])
        #expect(keys.count == Set(keys).count)
        let unknown = try #require(error.problems.first { $0.hasPrefix("nope:") })
        #expect(unknown.contains("unknown key"))
        let detect = try #require(error.problems.first { $0.hasPrefix("detectTimeout:") })
        #expect(detect.contains(ProxyDuration.acceptedFormat))
        #expect(error.description.split(separator: "\n").count == 8)
    }
}

@Suite("JSON pointer")
struct JSONPointerTests {
    @Test("~ and / in tokens are escaped, ~ first (RFC 6901)")
    func escaping() {
        #expect(JSONPointer.escape("plain-key") == "plain-key")
        #expect(JSONPointer.escape("needle.dev/inject") == "needle.dev~1inject")
        #expect(JSONPointer.escape("a~1b") == "a~01b", "an existing ~1 is not read as a slash")
        #expect(JSONPointer.escape("~/é") == "~0~1é")
        #expect(JSONPointer(["metadata", "annotations", "x/y"]).description == "/metadata/annotations/x~1y")
    }
}
