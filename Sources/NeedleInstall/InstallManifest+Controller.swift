#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleContract

/// needle-controller's objects (DESIGN §7): the identity PKI (trust roots ConfigMap, issuer Secret), its
/// service account and RBAC, its Deployment and the `needle-identity` Service. The `needle-destination`
/// Service comes with the destination service itself.
extension InstallManifest {
    public static let controllerName = "needle-controller"
    /// Where the injector and the controller find the trust anchors (the ConfigMap, mounted).
    public static let trustRootsMountPath = "/var/run/needle/identity"
    public static let issuerMountPath = "/var/run/needle/issuer"
    public static var trustAnchorsFile: String { trustRootsMountPath + "/" + Mesh.trustRootsKey }

    var controllerLabels: [(String, YAMLValue)] {
        [("app.kubernetes.io/name", .string(Self.controllerName)), ("app.kubernetes.io/part-of", "needle"),
         ("app.kubernetes.io/version", .string(Mesh.version))]
    }

    var controllerSelector: YAMLValue { ["app.kubernetes.io/name": .string(Self.controllerName)] }

    func controllerObjects(identity: InstallIdentity) -> [YAMLValue] {
        var objects: [YAMLValue] = [
            ["apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(Mesh.trustRootsConfigMap, labels: controllerLabels),
             "data": .map([(Mesh.trustRootsKey, .string(identity.trustAnchorsPEM))])],
            ["apiVersion": "v1", "kind": "Secret", "metadata": metadata(Mesh.issuerSecret, labels: controllerLabels),
             "type": "kubernetes.io/tls",
             "data": ["tls.crt": .string(Data(identity.issuerCertificatePEM.utf8).base64EncodedString()),
                      "tls.key": .string(Data(identity.issuerKeyPEM.utf8).base64EncodedString()),
                      "ca.crt": .string(Data(identity.trustAnchorsPEM.utf8).base64EncodedString())]],
            ["apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(Self.controllerName, labels: controllerLabels)],
            ["apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": metadata(Self.controllerName, namespaced: false, labels: controllerLabels),
             "rules": [
                ["apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]],
                ["apiGroups": [""], "resources": ["namespaces", "pods", "services"], "verbs": ["get", "list", "watch"]],
                ["apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]],
             ]],
            ["apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": metadata(Self.controllerName, namespaced: false, labels: controllerLabels),
             "roleRef": ["apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": .string(Self.controllerName)],
             "subjects": [["kind": "ServiceAccount", "name": .string(Self.controllerName), "namespace": .string(ns)]]],
            controllerDeployment,
        ]
        if options.highAvailability {
            objects.append(["apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(Self.controllerName, labels: controllerLabels),
                            "spec": ["maxUnavailable": 1, "selector": ["matchLabels": controllerSelector]]])
        }
        objects.append(["apiVersion": "v1", "kind": "Service", "metadata": metadata(Mesh.identityServiceName, labels: controllerLabels),
                        "spec": ["selector": controllerSelector,
                                 "ports": [["name": "identity", "port": .int(Mesh.identityPort), "targetPort": "identity", "protocol": "TCP"]]]])
        return objects
    }

    /// Two replicas (a certify call must not wait for one pod's restart), three with `--ha`.
    var controllerReplicas: Int { options.highAvailability ? max(options.controllerReplicas, 3) : options.controllerReplicas }

    var controllerDeployment: YAMLValue {
        let container: YAMLValue = [
            "name": .string(Self.controllerName), "image": .string(options.injectorImage), "imagePullPolicy": "IfNotPresent",
            "command": ["/usr/local/bin/needle-controller"],
            "args": .list([
                "--trust-anchors", Self.trustAnchorsFile,
                "--issuer-cert", Self.issuerMountPath + "/tls.crt", "--issuer-key", Self.issuerMountPath + "/tls.key",
                "--trust-domain", options.clusterDomain, "--controller-namespace", ns,
            ].map(YAMLValue.string)),
            "ports": [["name": "identity", "containerPort": .int(Mesh.identityPort), "protocol": "TCP"],
                      ["name": "admin", "containerPort": .int(Mesh.controllerAdminPort), "protocol": "TCP"]],
            "readinessProbe": ["httpGet": ["path": "/ready", "port": "admin"], "periodSeconds": 5],
            "livenessProbe": ["httpGet": ["path": "/live", "port": "admin"], "periodSeconds": 10, "failureThreshold": 3],
            "resources": ["requests": ["cpu": "50m", "memory": "64Mi"], "limits": ["memory": "256Mi"]],
            "securityContext": ["allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": ["drop": ["ALL"]]],
            "volumeMounts": [["name": "issuer", "mountPath": .string(Self.issuerMountPath), "readOnly": true],
                             ["name": "trust-roots", "mountPath": .string(Self.trustRootsMountPath), "readOnly": true]],
        ]
        var podSpec: [(String, YAMLValue)] = [
            ("serviceAccountName", .string(Self.controllerName)),
            ("securityContext", Self.podSecurityContext),
            ("terminationGracePeriodSeconds", 30),
            ("containers", [container]),
            ("volumes", [
                ["name": "issuer", "secret": ["secretName": .string(Mesh.issuerSecret)]],
                ["name": "trust-roots", "configMap": ["name": .string(Mesh.trustRootsConfigMap)]],
            ]),
        ]
        if options.highAvailability { podSpec.append(("affinity", Self.spreadAcrossNodes(controllerSelector))) }
        return ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(Self.controllerName, labels: controllerLabels),
                "spec": ["replicas": .int(controllerReplicas),
                         "selector": ["matchLabels": controllerSelector],
                         "template": ["metadata": ["labels": .map(controllerLabels + [(MeshKey.controlPlaneComponentLabel, "controller")]),
                                                   "annotations": [MeshKey.inject: "disabled"]],
                                      "spec": .map(podSpec)]]]
    }
}
