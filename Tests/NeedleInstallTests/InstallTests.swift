#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleContract
import NeedleInjection
@testable import NeedleInstall
import NeedleWebhook
import Testing
import Yams

@Suite("needle install")
struct InstallTests {
    func objects(_ configure: (inout InstallOptions) -> Void = { _ in }) throws -> [YAMLValue] {
        var options = InstallOptions()
        configure(&options)
        let manifest = InstallManifest(options: options)
        let (certificates, _) = try InstallCertificates.make(manifest: manifest, authority: nil)
        return try manifest.objects(certificates: certificates)
    }

    func object(_ kind: String, in objects: [YAMLValue]) throws -> YAMLValue {
        try #require(objects.first { $0["kind"]?.stringValue == kind }, "no \(kind)")
    }

    @Test("the objects refer to each other by the right names")
    func crossReferences() throws {
        let all = try objects()
        let webhook = try object("MutatingWebhookConfiguration", in: all)
        guard case .list(let hooks) = webhook["webhooks"], let hook = hooks.first else { Issue.record("no webhooks"); return }
        #expect(hook["name"]?.stringValue == "needle-injector.needle.dev")
        #expect(hook["clientConfig"]?["service"]?["name"]?.stringValue == "needle-injector")
        #expect(hook["clientConfig"]?["service"]?["namespace"]?.stringValue == "needle")
        #expect(hook["clientConfig"]?["service"]?["path"]?.stringValue == "/inject")
        #expect(hook["failurePolicy"]?.stringValue == "Ignore")
        #expect(try object("Service", in: all)["metadata"]?["name"]?.stringValue == "needle-injector")
        let deployment = try object("Deployment", in: all)
        let podSpec = deployment["spec"]?["template"]?["spec"]
        #expect(podSpec?["serviceAccountName"]?.stringValue == "needle-injector")
        guard case .list(let volumes) = podSpec?["volumes"] else { Issue.record("no volumes"); return }
        #expect(volumes.contains { $0["secret"]?["secretName"]?.stringValue == "needle-injector-tls" })
        #expect(try object("Secret", in: all)["metadata"]?["name"]?.stringValue == "needle-injector-tls")
        #expect(deployment["spec"]?["template"]?["metadata"]?["labels"]?[MeshKey.controlPlaneComponentLabel]?.stringValue == "injector")
    }

    @Test("with the identity PKI, the controller's objects follow and the injector turns identity on")
    func identity() throws {
        let identity = try InstallIdentity.make(trustDomain: "cluster.local")
        // What install makes is what the controller will accept.
        _ = try InstallIdentity.checked(trustAnchorsPEM: identity.trustAnchorsPEM, issuerCertificatePEM: identity.issuerCertificatePEM,
                                        issuerKeyPEM: identity.issuerKeyPEM)
        let manifest = InstallManifest(options: InstallOptions())
        let (certificates, _) = try InstallCertificates.make(manifest: manifest, authority: nil)
        let all = try manifest.objects(certificates: certificates, identity: .shipped(identity))
        let names = all.compactMap { object -> String? in
            guard let kind = object["kind"]?.stringValue, let name = object["metadata"]?["name"]?.stringValue else { return nil }
            return "\(kind)/\(name)"
        }
        for expected in ["ConfigMap/needle-identity-trust-roots", "Secret/needle-identity-issuer", "ServiceAccount/needle-controller",
                         "ClusterRole/needle-controller", "ClusterRoleBinding/needle-controller", "Deployment/needle-controller",
                         "Service/needle-identity", "Service/needle-destination"] {
            #expect(names.contains(expected), "\(expected)")
        }
        let config = all.first { $0["metadata"]?["name"]?.stringValue == InstallManifest.configMapName }?["data"]?["config.yaml"]?.stringValue ?? ""
        let configSettings = try #require(try Yams.load(yaml: config) as? [String: String])
        #expect(configSettings["trustAnchorsFile"] == InstallManifest.trustAnchorsFile)
        // Without a PKI identity stays off; with cert-manager's, the trust roots are the issuer Secret's ca.crt.
        #expect(!(try manifest.objects(certificates: nil)).contains { $0["metadata"]?["name"]?.stringValue == "needle-controller" })
        let managed = try manifest.objects(certificates: nil, identity: .certManager)
        #expect(!managed.contains { $0["metadata"]?["name"]?.stringValue == "needle-identity-issuer" && $0["kind"]?.stringValue == "Secret" })
        let text = try YAMLValue.stream(managed)
        #expect(text.contains("key: ca.crt") && text.contains("path: ca-bundle.crt"))
    }

    @Test("the webhook never matches its own namespace, kube-system or kube-node-lease")
    func selectors() throws {
        let all = try objects { $0.namespace = "mesh-system" }
        let webhook = try object("MutatingWebhookConfiguration", in: all)
        let text = try YAMLValue.stream([webhook])
        for excluded in ["kube-system", "kube-node-lease", "mesh-system", "needle.dev/admission-webhooks", "needle.dev/control-plane-component"] {
            #expect(text.contains(excluded), "\(excluded)")
        }
        #expect(try object("Namespace", in: all)["metadata"]?["labels"]?[MeshKey.admissionWebhooksLabel]?.stringValue == "disabled")
    }

    @Test("--ha means 3 replicas, a PodDisruptionBudget and anti-affinity")
    func highAvailability() throws {
        let all = try objects { $0.highAvailability = true; $0.failurePolicy = "Fail" }
        #expect(try object("Deployment", in: all)["spec"]?["replicas"] == .int(3))
        #expect(all.contains { $0["kind"]?.stringValue == "PodDisruptionBudget" })
        #expect(try object("Deployment", in: all)["spec"]?["template"]?["spec"]?["affinity"] != nil)
    }

    @Test("a given CA signs the serving certificate and stays the caBundle")
    func keepsCA() throws {
        let authority = try CertificateAuthority.generate(commonName: "kept", validity: 86_400 * 30)
        let reloaded = try CertificateAuthority(certificatePEM: try authority.certificatePEM, privateKeyPEM: authority.privateKeyPEM)
        let manifest = InstallManifest(options: InstallOptions())
        let (certificates, used) = try InstallCertificates.make(manifest: manifest, authority: reloaded)
        #expect(certificates.caPEM == (try authority.certificatePEM))
        #expect(used.privateKeyPEM == authority.privateKeyPEM)
        let other = try CertificateAuthority.generate(commonName: "other", validity: 86_400)
        #expect(throws: (any Error).self) {
            _ = try CertificateAuthority(certificatePEM: try authority.certificatePEM, privateKeyPEM: other.privateKeyPEM)
        }
    }

    @Test("the rendered YAML parses back to the same objects, strings that look like numbers quoted")
    func yamlRoundTrip() throws {
        let text = try YAMLValue.stream(try objects())
        let documents = try Array(Yams.load_all(yaml: text))
        #expect(documents.count == 9)
        let config = try #require(documents.compactMap { $0 as? [String: Any] }.first { $0["kind"] as? String == "ConfigMap" })
        let data = try #require(config["data"] as? [String: String])
        let configText = try #require(data["config.yaml"])
        let loaded = try Yams.load(yaml: configText)
        let settings = try #require(loaded as? [String: String])
        var configuration = InjectorConfiguration()
        try configuration.apply(settings)
        #expect(configuration.controlPlaneNamespace == "needle")
    }
}

@Suite("Deploy/ kustomize base")
struct DeployTests {
    static let root = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let deploy = root.appending(path: "Deploy")

    /// The files Deploy/ must hold: `needle install`'s objects without the Secret and caBundle, plus cert-manager's.
    static func expectedFiles() throws -> [(String, String)] {
        let manifest = InstallManifest(options: InstallOptions())
        let objects = try manifest.objects(certificates: nil, identity: .certManager)
        func kinds(_ names: Set<String>) -> [YAMLValue] { objects.filter { names.contains($0["kind"]?.stringValue ?? "") } }
        let header = "# Generated from `needle install`'s objects (Tests/NeedleInstallTests keeps them in step).\n"
        var files: [(String, String)] = [
            ("namespace.yaml", header + (try YAMLValue.stream(kinds(["Namespace"])))),
            ("rbac.yaml", header + (try YAMLValue.stream(kinds(["ServiceAccount", "ClusterRole", "ClusterRoleBinding"])))),
            ("config.yaml", header + (try YAMLValue.stream(kinds(["ConfigMap"])))),
            ("deployment.yaml", header + (try YAMLValue.stream(kinds(["Deployment"])))),
            ("service.yaml", header + (try YAMLValue.stream(kinds(["Service"])))),
            ("webhook.yaml", header + (try YAMLValue.stream(kinds(["MutatingWebhookConfiguration"])))),
            ("certificates.yaml", header + (try YAMLValue.stream(manifest.certManagerObjects))),
        ]
        let resources = files.map { "  - \($0.0)" }.joined(separator: "\n")
        files.append(("kustomization.yaml", """
            # The Needle control plane for GitOps installs; the webhook certificate comes from cert-manager.
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources:
            \(resources)

            """))
        return files
    }

    @Test("Deploy/ holds exactly what needle install renders, with cert-manager plumbing")
    func inStep() throws {
        let refresh = ProcessInfo.processInfo.environment["NEEDLE_REFRESH_DEPLOY"] == "1"
        for (name, content) in try Self.expectedFiles() {
            let file = Self.deploy.appending(path: name)
            if refresh {
                try FileManager.default.createDirectory(at: Self.deploy, withIntermediateDirectories: true)
                try Data(content.utf8).write(to: file)
                continue
            }
            let stored = (try? String(contentsOf: file, encoding: .utf8)) ?? "<missing>"
            #expect(stored == content, "Deploy/\(name) is out of step with needle install; run with NEEDLE_REFRESH_DEPLOY=1")
        }
        let webhook = try String(contentsOf: Self.deploy.appending(path: "webhook.yaml"), encoding: .utf8)
        #expect(webhook.contains("cert-manager.io/inject-ca-from: needle/needle-injector-serving"))
        #expect(!webhook.contains("caBundle"))
    }
}

@Suite("needle inject")
struct InjectTests {
    static let workloads = URL(filePath: #filePath).deletingLastPathComponent().appending(path: "Workloads/workloads.yaml")

    func run(_ mode: WorkloadInjector.Mode) throws -> (String, [String]) {
        let text = try String(contentsOf: Self.workloads, encoding: .utf8)
        return try WorkloadInjector(injector: Injector(), mode: mode).inject(text)
    }

    @Test("annotate mode marks every workload kind and leaves the rest byte for byte")
    func annotate() throws {
        let (output, report) = try run(.annotate)
        #expect(output.hasPrefix("# Workload fixtures for needle inject"))
        #expect(output.contains("mode: \"fast\"   # a comment that must survive"))
        let documents = try Array(Yams.load_all(yaml: output)).compactMap { $0 as? [String: Any] }
        #expect(documents.count == 7)
        for line in ["deployment/web: annotated", "statefulset/db: annotated", "cronjob/report: annotated", "pod/debug: annotated",
                     "replicaset/legacy: annotated", "replicationcontroller/older: annotated", "job/once: skipped"] {
            #expect(report.contains { $0.hasPrefix(line) }, "\(line) in \(report)")
        }
        #expect(output.contains("needle.dev/inject: disabled"))
    }

    @Test("manual mode injects templates exactly like the webhook injects the same pod")
    func manualMatchesWebhook() throws {
        let (output, report) = try run(.manual)
        #expect(report.contains("deployment/web: injected"))
        #expect(report.contains("daemonset/agent: skipped (host network)"))
        #expect(report.contains("job/once: skipped (needle.dev/inject: disabled)"))
        let documents = try Array(Yams.load_all(yaml: output)).compactMap { $0 as? [String: Any] }
        let deployment = try #require(documents.first { $0["kind"] as? String == "Deployment" })
        let template = try #require((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])
        let initContainers = try #require((template["spec"] as? [String: Any])?["initContainers"] as? [[String: Any]])
        #expect(initContainers.map { $0["name"] as? String } == ["needle-init", "needle-proxy"])

        // The same pod through the webhook's code gives the same template.
        let composed = try Yams.compose(yaml: """
            metadata:
              labels: {app: web}
              annotations: {needle.dev/inject: enabled}
            spec:
              containers:
              - name: web
                image: example/web:1.0
                ports:
                - {name: http, containerPort: 8080}
                readinessProbe:
                  httpGet: {path: /ready, port: 8081}
            """)
        let podJSON = try WorkloadInjector.jsonValue(try #require(composed))
        let subject = AdmissionSubject(kindGroup: "", kind: "Pod", subResource: "", operation: "CREATE", namespace: "shop", object: podJSON)
        guard case .done(let result) = Injector().evaluate(subject, namespace: NamespaceMetadata(name: "shop")) else {
            Issue.record("no decision")
            return
        }
        var expected = podJSON
        for operation in result.patch {
            let tokens = operation.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map {
                String($0).replacing("~1", with: "/").replacing("~0", with: "~")
            }
            expected = try WorkloadInjector.jsonValue(try WorkloadInjector.adding(WorkloadInjector.node(operation.value), at: tokens,
                                                                                 to: WorkloadInjector.node(expected)))
        }
        let templateComposed = try Yams.compose(yaml: try Yams.dump(object: template))
        let templateNode = try #require(templateComposed)
        #expect(try WorkloadInjector.jsonValue(templateNode) == expected)
    }
}
