import NeedleContract
import NeedleInjection
import Testing

/// Pods and admission subjects for the decision tests (DESIGN §3.1).
enum DecisionFixtures {
    static func pod(
        annotations: [String: String]? = nil,
        labels: [String: String]? = nil,
        containers: [String] = ["app"],
        initContainers: [String]? = nil,
        podNamespace: String = "shop",
        spec extra: [String: JSONValue] = [:]
    ) -> JSONValue {
        var metadata: [String: JSONValue] = ["name": "web-1", "namespace": .string(podNamespace)]
        if let annotations { metadata["annotations"] = .object(annotations.mapValues(JSONValue.string)) }
        if let labels { metadata["labels"] = .object(labels.mapValues(JSONValue.string)) }
        var spec: [String: JSONValue] = [
            "containers": .array(containers.map { name -> JSONValue in ["name": .string(name), "image": "example/app:1"] }),
        ]
        if let initContainers {
            spec["initContainers"] = .array(initContainers.map { name -> JSONValue in ["name": .string(name), "image": "example/init:1"] })
        }
        for (key, value) in extra { spec[key] = value }
        return ["apiVersion": "v1", "kind": "Pod", "metadata": .object(metadata), "spec": .object(spec)]
    }

    static func subject(
        _ object: JSONValue?,
        kindGroup: String = "",
        kind: String = "Pod",
        subResource: String = "",
        operation: String = "CREATE",
        namespace: String = "shop"
    ) -> AdmissionSubject {
        AdmissionSubject(kindGroup: kindGroup, kind: kind, subResource: subResource, operation: operation,
                         namespace: namespace, object: object)
    }

    static func namespace(inject value: String?) -> NamespaceMetadata {
        NamespaceMetadata(name: "shop", annotations: value.map { [MeshKey.inject: $0] } ?? [:])
    }

    static let enabledNamespace = namespace(inject: "enabled")
}

@Suite("Injection decision")
struct DecisionTests {
    typealias F = DecisionFixtures

    /// The decision, failing the test when the policy asks for the namespace instead.
    func decide(_ subject: AdmissionSubject, _ namespace: NamespaceMetadata?,
                sourceLocation: SourceLocation = #_sourceLocation) throws -> Decision {
        let evaluation = InjectionPolicy.evaluate(subject, namespace: namespace)
        guard case .decided(let decision) = evaluation else {
            Issue.record("expected a decision, got \(evaluation)", sourceLocation: sourceLocation)
            throw DecisionTestError.undecided
        }
        return decision
    }

    enum DecisionTestError: Error { case undecided }

    // MARK: Rule 1: not a pod CREATE

    @Test("other kinds are not applicable", arguments: [("apps", "Deployment"), ("", "Service"), ("apps", "Pod"), ("", "pod")])
    func notAPod(kindGroup: String, kind: String) throws {
        let decision = try decide(F.subject(F.pod(annotations: [MeshKey.inject: "enabled"]), kindGroup: kindGroup, kind: kind),
                                  F.enabledNamespace)
        #expect(decision == Decision(.notAPod))
        #expect(decision.outcome == .notApplicable)
        #expect(decision.warnings.isEmpty)
    }

    @Test("subresources are not applicable", arguments: ["status", "ephemeralcontainers", "binding"])
    func subresource(name: String) throws {
        let decision = try decide(F.subject(F.pod(), subResource: name), F.enabledNamespace)
        #expect(decision.reason == .subresource)
        #expect(decision.outcome == .notApplicable)
    }

    @Test("operations other than CREATE are not applicable", arguments: ["UPDATE", "DELETE", "CONNECT", "create"])
    func notACreate(operation: String) throws {
        let decision = try decide(F.subject(F.pod(annotations: [MeshKey.inject: "enabled"]), operation: operation), F.enabledNamespace)
        #expect(decision.reason == .notACreate)
        #expect(decision.outcome == .notApplicable)
    }

    @Test("not applicable is decided without the namespace")
    func notApplicableNeedsNoNamespace() throws {
        #expect(try decide(F.subject(F.pod(), kindGroup: "apps", kind: "Deployment"), nil).reason == .notAPod)
        #expect(try decide(F.subject(F.pod(), subResource: "status"), nil).reason == .subresource)
        #expect(try decide(F.subject(F.pod(), operation: "UPDATE"), nil).reason == .notACreate)
        #expect(try decide(F.subject(F.pod(), subResource: "status", operation: "UPDATE"), nil).outcome == .notApplicable)
    }

    @Test("a Pod CREATE without a usable object is not treated as a pod")
    func missingObject() throws {
        #expect(try decide(F.subject(Optional<JSONValue>.none), F.enabledNamespace).outcome == .notApplicable)
        #expect(try decide(F.subject(JSONValue.string("not an object")), F.enabledNamespace).outcome == .notApplicable)
        #expect(try decide(F.subject(JSONValue.null), F.enabledNamespace).outcome == .notApplicable)
    }

    // MARK: Rule 2: host network

    @Test("host network skips, even when the pod asks for injection")
    func hostNetwork() throws {
        let pod = F.pod(annotations: [MeshKey.inject: "enabled"], spec: ["hostNetwork": true])
        #expect(try decide(F.subject(pod), F.enabledNamespace) == Decision(.hostNetwork))
        // Decided without looking the namespace up.
        #expect(try decide(F.subject(pod), nil) == Decision(.hostNetwork))
        #expect(Reason.hostNetwork.rawValue == "host network")
        #expect(Reason.hostNetwork.outcome == .skipped)
    }

    @Test("host network beats an existing sidecar")
    func hostNetworkFirst() throws {
        let pod = F.pod(containers: ["app", "needle-proxy"], spec: ["hostNetwork": true])
        #expect(try decide(F.subject(pod), F.enabledNamespace).reason == .hostNetwork)
    }

    @Test("hostNetwork false does not skip")
    func hostNetworkFalse() throws {
        let pod = F.pod(spec: ["hostNetwork": false])
        #expect(try decide(F.subject(pod), F.enabledNamespace).reason == .namespaceEnabled)
    }

    // MARK: Rule 3: sidecar already present

    @Test("a known proxy container means a sidecar is present", arguments: ["needle-proxy", "linkerd-proxy", "istio-proxy"])
    func proxyContainer(name: String) throws {
        let pod = F.pod(annotations: [MeshKey.inject: "enabled"], containers: ["app", name])
        #expect(try decide(F.subject(pod), F.enabledNamespace) == Decision(.sidecarPresent))
        #expect(try decide(F.subject(pod), nil) == Decision(.sidecarPresent))
    }

    @Test("a known init container or native sidecar means a sidecar is present",
          arguments: ["needle-init", "linkerd-init", "istio-init", "needle-proxy", "linkerd-proxy", "istio-proxy"])
    func initContainer(name: String) throws {
        let pod = F.pod(initContainers: ["migrate", name])
        #expect(try decide(F.subject(pod), F.enabledNamespace) == Decision(.sidecarPresent))
    }

    @Test("similar names are not sidecars", arguments: ["needle-proxy-2", "proxy", "Needle-Proxy", "my-istio-proxy"])
    func similarNames(name: String) throws {
        let pod = F.pod(containers: ["app", name], initContainers: [name + "-init"])
        #expect(try decide(F.subject(pod), F.enabledNamespace).reason == .namespaceEnabled)
    }

    @Test("sidecar present beats the control-plane label")
    func sidecarBeatsControlPlane() throws {
        let pod = F.pod(labels: [MeshKey.controlPlaneComponentLabel: "injector"], containers: ["app", "istio-proxy"])
        #expect(try decide(F.subject(pod), F.enabledNamespace).reason == .sidecarPresent)
    }

    // MARK: Rule 4: control plane

    @Test("the control-plane label skips, whatever its value")
    func controlPlane() throws {
        for value in ["injector", ""] {
            let pod = F.pod(annotations: [MeshKey.inject: "enabled"], labels: [MeshKey.controlPlaneComponentLabel: value])
            #expect(try decide(F.subject(pod), F.enabledNamespace) == Decision(.controlPlane))
        }
    }

    @Test("the control-plane label beats a windows pod")
    func controlPlaneBeatsWindows() throws {
        let pod = F.pod(labels: [MeshKey.controlPlaneComponentLabel: "injector"], spec: ["os": ["name": "windows"]])
        #expect(try decide(F.subject(pod), F.enabledNamespace).reason == .controlPlane)
    }

    // MARK: Rule 5: windows

    @Test("windows pods are skipped, even when the pod asks for injection")
    func windows() throws {
        let pod = F.pod(annotations: [MeshKey.inject: "enabled"], spec: ["os": ["name": "windows"]])
        #expect(try decide(F.subject(pod), F.enabledNamespace) == Decision(.windows))
        #expect(try decide(F.subject(pod), nil) == Decision(.windows))
    }

    @Test("linux pods are not windows pods")
    func linux() throws {
        let pod = F.pod(spec: ["os": ["name": "linux"]])
        #expect(try decide(F.subject(pod), F.enabledNamespace).reason == .namespaceEnabled)
    }

    // MARK: Rule 6: pod annotation

    @Test("pod disabled in an enabled namespace is skipped")
    func podDisabled() throws {
        let pod = F.pod(annotations: [MeshKey.inject: "disabled"])
        #expect(try decide(F.subject(pod), F.enabledNamespace) == Decision(.podDisabled))
        #expect(Reason.podDisabled.outcome == .skipped)
    }

    @Test("pod disabled is decided without the namespace")
    func podDisabledNoNamespace() throws {
        let pod = F.pod(annotations: [MeshKey.inject: "disabled"])
        #expect(try decide(F.subject(pod), nil) == Decision(.podDisabled))
    }

    @Test("pod enabled needs the namespace (for its config annotations), then injects")
    func podEnabled() throws {
        let pod = F.pod(annotations: [MeshKey.inject: "enabled"])
        #expect(InjectionPolicy.evaluate(F.subject(pod), namespace: nil) == .needsNamespace)
        for namespace in [F.namespace(inject: nil), F.namespace(inject: "disabled"), F.enabledNamespace, F.namespace(inject: "bogus")] {
            let decision = try decide(F.subject(pod), namespace)
            #expect(decision == Decision(.podEnabled))
            #expect(decision.outcome == .injected)
        }
    }

    @Test("an unknown pod value is a skip with a warning naming it", arguments: ["Enabled", "true", "yes", "", "disable"])
    func podUnknownValue(value: String) throws {
        let pod = F.pod(annotations: [MeshKey.inject: value])
        for namespace in [F.enabledNamespace, nil] as [NamespaceMetadata?] {
            let decision = try decide(F.subject(pod), namespace)
            #expect(decision.reason == .invalidInjectValue)
            #expect(decision.outcome == .skipped)
            #expect(decision.warnings.count == 1)
            let warning = try #require(decision.warnings.first)
            #expect(warning.contains("\"\(value)\""))
            #expect(warning.contains(MeshKey.inject))
            #expect(warning.contains("pod"))
        }
    }

    @Test("a very long unknown value is shortened in the warning")
    func longValue() throws {
        let value = String(repeating: "x", count: 1000)
        let decision = try decide(F.subject(F.pod(annotations: [MeshKey.inject: value])), nil)
        let warning = try #require(decision.warnings.first)
        #expect(decision.reason == .invalidInjectValue)
        #expect(warning.count < 256)
    }

    // MARK: Rule 7: namespace annotation

    @Test("no pod annotation and no namespace yet: the namespace decides")
    func needsNamespace() {
        #expect(InjectionPolicy.evaluate(F.subject(F.pod()), namespace: nil) == .needsNamespace)
        #expect(InjectionPolicy.evaluate(F.subject(F.pod(annotations: ["team": "a"])), namespace: nil) == .needsNamespace)
    }

    @Test("namespace enabled injects")
    func namespaceEnabled() throws {
        let decision = try decide(F.subject(F.pod()), F.enabledNamespace)
        #expect(decision == Decision(.namespaceEnabled))
        #expect(decision.outcome == .injected)
    }

    @Test("namespace disabled or without the annotation is not enabled", arguments: [nil, "disabled"] as [String?])
    func namespaceNotEnabled(value: String?) throws {
        let decision = try decide(F.subject(F.pod()), F.namespace(inject: value))
        #expect(decision == Decision(.notEnabled))
        #expect(decision.outcome == .skipped)
        #expect(Reason.notEnabled.rawValue == "not enabled")
    }

    @Test("an unknown namespace value is a skip with a warning naming the value and the namespace")
    func namespaceUnknownValue() throws {
        let namespace = NamespaceMetadata(name: "payments", annotations: [MeshKey.inject: "on"])
        let decision = try decide(F.subject(F.pod(), namespace: "payments"), namespace)
        #expect(decision.reason == .invalidInjectValue)
        #expect(decision.outcome == .skipped)
        let warning = try #require(decision.warnings.first)
        #expect(decision.warnings.count == 1)
        #expect(warning.contains("\"on\""))
        #expect(warning.contains("payments"))
        #expect(warning.contains(MeshKey.inject))
    }

    @Test("the namespace's other annotations do not matter")
    func namespaceOtherAnnotations() throws {
        let namespace = NamespaceMetadata(name: "shop", annotations: ["needle.dev/injection": "enabled"], labels: [MeshKey.inject: "enabled"])
        #expect(try decide(F.subject(F.pod()), namespace).reason == .notEnabled)
    }

    @Test("null annotations and labels read as empty")
    func nullMaps() throws {
        let pod: JSONValue = [
            "metadata": ["name": "web-1", "annotations": .null, "labels": .null],
            "spec": ["containers": [["name": "app", "image": "app:1"]], "initContainers": .null],
        ]
        #expect(try decide(F.subject(pod), F.enabledNamespace).reason == .namespaceEnabled)
    }

    // MARK: Injector wiring

    @Test("Injector asks for the request's namespace, or the pod's own when the request has none")
    func injectorNeedsNamespace() {
        let injector = Injector()
        #expect(injector.evaluate(F.subject(F.pod()), namespace: nil) == .needsNamespace("shop"))
        let pod = F.pod(podNamespace: "prod")
        #expect(injector.evaluate(F.subject(pod, namespace: ""), namespace: nil) == .needsNamespace("prod"))
    }

    @Test("Injector returns no patch for a skip and keeps the decision's warnings")
    func injectorSkip() throws {
        let evaluation = Injector().evaluate(F.subject(F.pod(annotations: [MeshKey.inject: "maybe"])), namespace: F.enabledNamespace)
        guard case .done(let result) = evaluation else {
            Issue.record("expected a result, got \(evaluation)")
            return
        }
        #expect(result.decision.reason == .invalidInjectValue)
        #expect(result.patch.isEmpty)
        #expect(result.warnings == result.decision.warnings)
        #expect(result.warnings.count == 1)
    }
}

@Suite("Injector configuration settings")
struct InjectorConfigurationSettingsTests {
    @Test("settings applied over the defaults give the same configuration back")
    func roundTrip() throws {
        var configuration = InjectorConfiguration()
        try configuration.apply(["proxyCPULimit": "1", "proxyMemoryLimit": "", "ipv6": "false", "proxyAdminShutdown": "true",
                                 "detectTimeout": "3s", "opaquePorts": "25,3306", "clusterDomain": "example.org",
                                 "trustAnchorsFile": "roots.pem"])
        var loaded = InjectorConfiguration()
        try loaded.apply(Dictionary(uniqueKeysWithValues: configuration.settings.map { ($0.key, $0.value) }))
        #expect(loaded == configuration)
        #expect(!loaded.ipv6 && loaded.proxyMemoryLimit == nil)
        #expect(Set(configuration.settings.map(\.key)) == Set(InjectorConfiguration.keys.map(\.key)))
    }

    @Test("the proxy defaults are the proxy's own")
    func proxyDefaults() {
        let configuration = InjectorConfiguration()
        let proxy = ProxyEnvironment()
        #expect(configuration.detectTimeout == proxy.detectTimeout)
        #expect(configuration.inboundConnectTimeout == proxy.inboundConnectTimeout)
        #expect(configuration.outboundConnectTimeout == proxy.outboundConnectTimeout)
        #expect(configuration.shutdownGracePeriod == proxy.shutdownGracePeriod)
        #expect(configuration.opaquePorts == proxy.opaquePorts)
        #expect(configuration.proxyLogLevel == proxy.logLevel && configuration.proxyLogFormat == proxy.logFormat)
        #expect(configuration.proxyAdminShutdown == proxy.shutdownEndpointEnabled)
    }
}

@Suite("Pods the patch cannot apply to")
struct PodShapeTests {
    typealias F = DecisionFixtures
    static let classic: JSONValue = .string("false")

    func evaluate(_ pod: JSONValue) -> Injector.Evaluation {
        Injector().evaluate(F.subject(pod), namespace: F.enabledNamespace)
    }

    func pod(spec: JSONValue?) -> JSONValue {
        var object: [String: JSONValue] = ["metadata": ["name": "web-1", "annotations": ["config.needle.dev/native-sidecar": Self.classic]]]
        if let spec { object["spec"] = spec }
        return .object(object)
    }

    @Test("a spec that is not an object, or a list or map of the wrong type, is malformed", arguments: [
        (JSONValue?.none, "spec must be an object"), (.some(.null), "spec must be an object"), (.some("text"), "spec must be an object"),
        (.some([1]), "spec must be an object"), (.some(["containers": ["name": "app"]]), "spec.containers must be a list"),
        (.some(["containers": [], "volumes": "x"]), "spec.volumes must be a list"),
        (.some(["containers": [], "initContainers": 3]), "spec.initContainers must be a list"),
    ])
    func malformed(spec: JSONValue?, problem: String) {
        guard case .malformed(let text) = evaluate(pod(spec: spec)) else {
            Issue.record("not malformed")
            return
        }
        #expect(text.contains(problem), "\(text)")
    }

    @Test("wrong-typed metadata maps are malformed")
    func metadata() {
        for metadata: JSONValue in [["annotations": [1]], ["labels": "x"], 7] {
            let pod: JSONValue = ["metadata": metadata, "spec": ["containers": []]]
            guard case .malformed = evaluate(pod) else {
                Issue.record("\(metadata) not malformed")
                continue
            }
        }
    }

    @Test("classic mode creates a missing or null containers list whole")
    func classicContainers() throws {
        for spec: JSONValue in [[:], ["containers": nil]] {
            guard case .done(let result) = evaluate(pod(spec: spec)) else {
                Issue.record("\(spec) not decided")
                continue
            }
            let containers = result.patch.filter { $0.path.hasPrefix("/spec/containers") }
            #expect(containers.map(\.path) == ["/spec/containers"])
            #expect(containers.first?.value.arrayValue?.first?["name"] == "needle-proxy")
        }
    }
}
