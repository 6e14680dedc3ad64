#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleContract

/// needle-controller's objects (DESIGN §7): the identity PKI (trust roots ConfigMap, issuer Secret), its
/// service account and RBAC, its Deployment and the `needle-identity` and `needle-destination` Services.
/// Where the identity PKI of an install comes from.
public enum IdentitySource: Equatable, Sendable {
    /// No identity: proxies run plaintext.
    case none
    /// Made or given by `needle install`: a trust-roots ConfigMap and an issuer Secret in the manifest.
    case shipped(InstallIdentity)
    /// Made in the cluster by cert-manager (Deploy/): a self-signed trust anchor and an issuer Certificate
    /// signed by it; the trust anchor is the issuer Secret's `ca.crt`.
    case certManager
}

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

    /// The trust anchors as a volume, mounted at `trustRootsMountPath` by the injector and the controller:
    /// the ConfigMap `needle install` ships, or only the `ca.crt` of cert-manager's issuer Secret (the key
    /// never reaches the injector's pod).
    func trustRootsVolume(_ identity: IdentitySource) -> YAMLValue? {
        switch identity {
        case .none:
            return nil
        case .shipped:
            return ["name": "trust-roots", "configMap": ["name": .string(Mesh.trustRootsConfigMap)]]
        case .certManager:
            return ["name": "trust-roots", "secret": ["secretName": .string(Mesh.issuerSecret),
                                                      "items": [["key": "ca.crt", "path": .string(Mesh.trustRootsKey)]]]]
        }
    }

    func controllerObjects(identity: IdentitySource) -> [YAMLValue] {
        var objects: [YAMLValue] = []
        if case .shipped(let pki) = identity {
            objects += [
                ["apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(Mesh.trustRootsConfigMap, labels: controllerLabels),
                 "data": .map([(Mesh.trustRootsKey, .string(pki.trustAnchorsPEM))])],
                ["apiVersion": "v1", "kind": "Secret", "metadata": metadata(Mesh.issuerSecret, labels: controllerLabels),
                 "type": "kubernetes.io/tls",
                 "data": ["tls.crt": .string(Data(pki.issuerCertificatePEM.utf8).base64EncodedString()),
                          "tls.key": .string(Data(pki.issuerKeyPEM.utf8).base64EncodedString()),
                          "ca.crt": .string(Data(pki.trustAnchorsPEM.utf8).base64EncodedString())]],
            ]
        }
        objects += [
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
            controllerDeployment(identity: identity),
        ]
        if options.highAvailability {
            objects.append(["apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(Self.controllerName, labels: controllerLabels),
                            "spec": ["maxUnavailable": 1, "selector": ["matchLabels": controllerSelector]]])
        }
        objects.append(["apiVersion": "v1", "kind": "Service", "metadata": metadata(Mesh.identityServiceName, labels: controllerLabels),
                        "spec": ["selector": controllerSelector,
                                 "ports": [["name": "identity", "port": .int(Mesh.identityPort), "targetPort": "identity", "protocol": "TCP"]]]])
        objects.append(["apiVersion": "v1", "kind": "Service", "metadata": metadata(Mesh.destinationServiceName, labels: controllerLabels),
                        "spec": ["selector": controllerSelector,
                                 "ports": [["name": "destination", "port": .int(Mesh.destinationPort), "targetPort": "destination",
                                            "protocol": "TCP"]]]])
        return objects
    }

    /// Two replicas (a certify call must not wait for one pod's restart), three with `--ha`.
    /// cert-manager's side of the identity PKI (Deploy/): a self-signed trust anchor (10 years), a CA Issuer
    /// from it, and the issuer Certificate (1 year, renewed a month ahead) the controller signs with.
    var identityCertManagerObjects: [YAMLValue] {
        let anchor = "needle-identity-trust-anchor"
        return [
            ["apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": metadata(anchor, labels: controllerLabels),
             "spec": ["isCA": true, "commonName": .string("root.identity.needle.\(options.clusterDomain)"), "secretName": .string(anchor),
                      "duration": "87600h", "privateKey": ["algorithm": "ECDSA", "size": 256],
                      "issuerRef": ["name": "needle-selfsigned", "kind": "Issuer"]]],
            ["apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": metadata(anchor, labels: controllerLabels),
             "spec": ["ca": ["secretName": .string(anchor)]]],
            ["apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": metadata(Mesh.issuerSecret, labels: controllerLabels),
             "spec": ["isCA": true, "commonName": .string("identity.needle.\(options.clusterDomain)"), "secretName": .string(Mesh.issuerSecret),
                      "duration": "8760h", "renewBefore": "720h",
                      "privateKey": ["algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"],
                      "usages": ["cert sign", "crl sign"],
                      "issuerRef": ["name": .string(anchor), "kind": "Issuer"]]],
        ]
    }

    var controllerReplicas: Int { options.highAvailability ? max(options.controllerReplicas, 3) : options.controllerReplicas }

    func controllerDeployment(identity: IdentitySource) -> YAMLValue {
        let container: YAMLValue = [
            "name": .string(Self.controllerName), "image": .string(options.injectorImage), "imagePullPolicy": "IfNotPresent",
            "command": ["/usr/local/bin/needle-controller"],
            "args": .list([
                "--trust-anchors", Self.trustAnchorsFile,
                "--issuer-cert", Self.issuerMountPath + "/tls.crt", "--issuer-key", Self.issuerMountPath + "/tls.key",
                "--trust-domain", options.clusterDomain, "--controller-namespace", ns,
            ].map(YAMLValue.string)),
            "ports": [["name": "identity", "containerPort": .int(Mesh.identityPort), "protocol": "TCP"],
                      ["name": "destination", "containerPort": .int(Mesh.destinationPort), "protocol": "TCP"],
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
            ("volumes", .list([["name": "issuer", "secret": ["secretName": .string(Mesh.issuerSecret)]]]
                + (trustRootsVolume(identity).map { [$0] } ?? []))),
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
