#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleContract
import NeedleInjection

/// What `needle install` renders.
public struct InstallOptions: Sendable {
    public var namespace = Mesh.controlPlaneNamespace
    public var replicas = 1
    public var failurePolicy = "Ignore"
    public var highAvailability = false
    public var proxyImage: String?
    public var injectorImage = "ghcr.io/needle-mesh/needle-injector:\(Mesh.version)"
    public var clusterDomain = "cluster.local"
    public var controllerReplicas = 2

    public init() {}

    public static let failurePolicies = ["Ignore", "Fail"]
}

/// The serving certificate material the manifests carry.
public struct InstallCertificates: Sendable {
    public var caPEM: String
    public var certificatePEM: String
    public var keyPEM: String

    public init(caPEM: String, certificatePEM: String, keyPEM: String) {
        self.caPEM = caPEM
        self.certificatePEM = certificatePEM
        self.keyPEM = keyPEM
    }
}

/// The control plane as Kubernetes objects. `certificates` nil renders the cert-manager flavour used by
/// Deploy/: no Secret contents and no caBundle, but an `inject-ca-from` annotation.
public struct InstallManifest {
    public static let injectorName = "needle-injector"
    public static let webhookName = "needle-injector.needle.dev"
    public static let tlsSecretName = "needle-injector-tls"
    public static let configMapName = "needle-injector-config"
    public static let certificateName = "needle-injector-serving"

    public let options: InstallOptions

    public init(options: InstallOptions) {
        self.options = options
    }

    var ns: String { options.namespace }
    var name: String { Self.injectorName }

    public var serviceDNSNames: [String] {
        ["\(name).\(ns).svc", "\(name).\(ns).svc.\(options.clusterDomain)"]
    }

    var commonLabels: [(String, YAMLValue)] {
        [("app.kubernetes.io/name", .string(name)), ("app.kubernetes.io/part-of", "needle"),
         ("app.kubernetes.io/version", .string(Mesh.version))]
    }

    func metadata(_ objectName: String, namespaced: Bool = true, labels: [(String, YAMLValue)]? = nil,
                  annotations: [(String, YAMLValue)] = []) -> YAMLValue {
        var pairs: [(String, YAMLValue)] = [("name", .string(objectName))]
        if namespaced { pairs.append(("namespace", .string(ns))) }
        pairs.append(("labels", .map(labels ?? commonLabels)))
        if !annotations.isEmpty { pairs.append(("annotations", .map(annotations))) }
        return .map(pairs)
    }

    /// `identity`: where the mesh PKI comes from; with one, the injector turns identity on and the
    /// controller's objects follow the injector's.
    public func objects(certificates: InstallCertificates?, identity: IdentitySource = .none) throws -> [YAMLValue] {
        let on = identity != .none
        var objects: [YAMLValue] = [namespaceObject, serviceAccount, clusterRole, clusterRoleBinding, try configMap(identity: on)]
        if let certificates { objects.append(secret(certificates)) }
        objects.append(deployment(identity: identity))
        if options.highAvailability { objects.append(podDisruptionBudget) }
        objects.append(service)
        objects.append(webhookConfiguration(caPEM: certificates?.caPEM))
        if on { objects += controllerObjects(identity: identity) }
        return objects
    }

    var namespaceObject: YAMLValue {
        ["apiVersion": "v1", "kind": "Namespace",
         "metadata": metadata(ns, namespaced: false,
                              labels: commonLabels + [(MeshKey.admissionWebhooksLabel, "disabled")],
                              annotations: [(MeshKey.inject, "disabled")])]
    }

    var serviceAccount: YAMLValue {
        ["apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(name)]
    }

    var clusterRole: YAMLValue {
        ["apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": metadata(name, namespaced: false),
         "rules": [["apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]]]]
    }

    var clusterRoleBinding: YAMLValue {
        ["apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": metadata(name, namespaced: false),
         "roleRef": ["apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": .string(name)],
         "subjects": [["kind": "ServiceAccount", "name": .string(name), "namespace": .string(ns)]]]
    }

    /// The injector configuration file: the embedded defaults with this install's choices, every key
    /// spelled out so operators see what they may change; written by the YAML library, values as strings.
    func configurationText(identity: Bool) throws -> String {
        var configuration = InjectorConfiguration()
        if let proxyImage = options.proxyImage { configuration.proxyImage = proxyImage }
        configuration.controlPlaneNamespace = ns
        configuration.clusterDomain = options.clusterDomain
        if identity { configuration.trustAnchorsFile = Self.trustAnchorsFile }
        return try YAMLValue.stream([.map(configuration.settings.map { ($0.key, YAMLValue.string($0.value)) })])
    }

    func configMap(identity: Bool) throws -> YAMLValue {
        ["apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(Self.configMapName),
         "data": ["config.yaml": .string(try configurationText(identity: identity))]]
    }

    func secret(_ certificates: InstallCertificates) -> YAMLValue {
        ["apiVersion": "v1", "kind": "Secret", "metadata": metadata(Self.tlsSecretName), "type": "kubernetes.io/tls",
         "data": ["tls.crt": .string(Data(certificates.certificatePEM.utf8).base64EncodedString()),
                  "tls.key": .string(Data(certificates.keyPEM.utf8).base64EncodedString()),
                  "ca.crt": .string(Data(certificates.caPEM.utf8).base64EncodedString())]]
    }

    var selectorLabels: YAMLValue { ["app.kubernetes.io/name": .string(name)] }

    func deployment(identity: IdentitySource) -> YAMLValue {
        let replicas = options.highAvailability ? max(options.replicas, 3) : options.replicas
        var volumes: [YAMLValue] = [
            ["name": "tls", "secret": ["secretName": .string(Self.tlsSecretName)]],
            ["name": "config", "configMap": ["name": .string(Self.configMapName)]],
        ]
        if let trustRoots = trustRootsVolume(identity) { volumes.append(trustRoots) }
        var podSpec: [(String, YAMLValue)] = [
            ("serviceAccountName", .string(name)),
            ("securityContext", Self.podSecurityContext),
            ("terminationGracePeriodSeconds", 30),
            ("containers", [container(identity: identity != .none)]),
            ("volumes", .list(volumes)),
        ]
        if options.highAvailability { podSpec.append(("affinity", Self.spreadAcrossNodes(selectorLabels))) }
        return ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(name),
                "spec": ["replicas": .int(replicas),
                         "selector": ["matchLabels": selectorLabels],
                         "template": ["metadata": ["labels": .map(commonLabels + [(MeshKey.controlPlaneComponentLabel, "injector")]),
                                                   "annotations": [MeshKey.inject: "disabled"]],
                                      "spec": .map(podSpec)]]]
    }

    func container(identity: Bool) -> YAMLValue {
        var mounts: [YAMLValue] = [["name": "tls", "mountPath": "/var/run/needle/tls", "readOnly": true],
                                   ["name": "config", "mountPath": "/etc/needle", "readOnly": true]]
        if identity { mounts.append(["name": "trust-roots", "mountPath": .string(Self.trustRootsMountPath), "readOnly": true]) }
        return ["name": .string(name), "image": .string(options.injectorImage), "imagePullPolicy": "IfNotPresent",
         "args": ["--tls-cert", "/var/run/needle/tls/tls.crt", "--tls-key", "/var/run/needle/tls/tls.key",
                  "--config", "/etc/needle/config.yaml"],
         "ports": [["name": "https", "containerPort": .int(Mesh.injectorPort), "protocol": "TCP"],
                   ["name": "admin", "containerPort": .int(Mesh.injectorAdminPort), "protocol": "TCP"]],
         "readinessProbe": ["httpGet": ["path": "/ready", "port": "admin"], "periodSeconds": 5],
         "livenessProbe": ["httpGet": ["path": "/live", "port": "admin"], "periodSeconds": 10, "failureThreshold": 3],
         "resources": ["requests": ["cpu": "50m", "memory": "64Mi"], "limits": ["memory": "256Mi"]],
         "securityContext": ["allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                             "capabilities": ["drop": ["ALL"]]],
         "volumeMounts": .list(mounts)]
    }

    /// Non-root, with the default seccomp profile: every control-plane pod.
    static let podSecurityContext: YAMLValue = [
        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": ["type": "RuntimeDefault"],
    ]

    /// Replicas on different nodes where possible (`--ha`).
    static func spreadAcrossNodes(_ selector: YAMLValue) -> YAMLValue {
        ["podAntiAffinity": ["preferredDuringSchedulingIgnoredDuringExecution": [[
            "weight": 100,
            "podAffinityTerm": ["labelSelector": ["matchLabels": selector], "topologyKey": "kubernetes.io/hostname"],
        ]]]]
    }

    var podDisruptionBudget: YAMLValue {
        ["apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(name),
         "spec": ["maxUnavailable": 1, "selector": ["matchLabels": selectorLabels]]]
    }

    var service: YAMLValue {
        ["apiVersion": "v1", "kind": "Service", "metadata": metadata(name),
         "spec": ["selector": selectorLabels,
                  "ports": [["name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"]]]]
    }

    func webhookConfiguration(caPEM: String?) -> YAMLValue {
        var clientConfig: [(String, YAMLValue)] = [
            ("service", ["name": .string(name), "namespace": .string(ns), "path": .string(Mesh.injectorPath), "port": 443]),
        ]
        var annotations: [(String, YAMLValue)] = []
        if let caPEM {
            clientConfig.append(("caBundle", .string(Data(caPEM.utf8).base64EncodedString())))
        } else {
            annotations.append(("cert-manager.io/inject-ca-from", .string("\(ns)/\(Self.certificateName)")))
        }
        return ["apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                "metadata": metadata(name, namespaced: false, annotations: annotations),
                "webhooks": [[
                    "name": .string(Self.webhookName),
                    "clientConfig": .map(clientConfig),
                    "rules": [["operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                               "scope": "Namespaced"]],
                    "namespaceSelector": ["matchExpressions": [
                        ["key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "kube-node-lease", .string(ns)]],
                        ["key": .string(MeshKey.admissionWebhooksLabel), "operator": "NotIn", "values": ["disabled"]],
                    ]],
                    "objectSelector": ["matchExpressions": [["key": .string(MeshKey.controlPlaneComponentLabel), "operator": "DoesNotExist"]]],
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 10,
                    "failurePolicy": .string(options.failurePolicy),
                    "reinvocationPolicy": "IfNeeded",
                    "matchPolicy": "Equivalent",
                ]]]
    }

    /// cert-manager objects for Deploy/: a self-signed issuer, a CA, a CA issuer and the serving certificate,
    /// then the identity PKI.
    public var certManagerObjects: [YAMLValue] { webhookCertManagerObjects + identityCertManagerObjects }

    var webhookCertManagerObjects: [YAMLValue] {
        let selfSigned = "needle-selfsigned"
        let caName = "needle-ca"
        return [
            ["apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": metadata(selfSigned), "spec": ["selfSigned": [:]]],
            ["apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": metadata(caName),
             "spec": ["isCA": true, "commonName": "needle-ca", "secretName": .string(caName), "duration": "87600h",
                      "privateKey": ["algorithm": "ECDSA", "size": 256],
                      "issuerRef": ["name": .string(selfSigned), "kind": "Issuer"]]],
            ["apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": metadata(caName), "spec": ["ca": ["secretName": .string(caName)]]],
            ["apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": metadata(Self.certificateName),
             "spec": ["secretName": .string(Self.tlsSecretName), "duration": "8760h", "renewBefore": "720h",
                      "dnsNames": .list(serviceDNSNames.map(YAMLValue.string)),
                      "privateKey": ["algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"],
                      "usages": ["server auth", "digital signature"],
                      "issuerRef": ["name": .string(caName), "kind": "Issuer"]]],
        ]
    }
}
