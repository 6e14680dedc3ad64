import NeedleContract

/// Builds the two containers and the volume the patch adds (DESIGN §3.2), as raw JSON.
struct SidecarSpec {
    let settings: ProxySettings
    let configuration: InjectorConfiguration
    let pod: PodView
    let xtablesLockVolume: String
    /// The projected service-account token volume, when identity is on.
    let identityTokenVolume: String?

    static let probeTimeoutSeconds: JSONValue = 1

    /// `NEEDLE_PROXY_INBOUND_PORTS`: TCP container ports of every container and init container, plus integer
    /// `httpGet` probe ports (the kubelet's probes arrive through the inbound proxy too).
    var inboundPorts: PortSet {
        var numbers = Set<Int>()
        for container in pod.allContainers {
            for port in container.ports where port.isTCP { numbers.insert(port.number) }
            numbers.formUnion(container.probePorts)
        }
        return PortSet(numbers.sorted().compactMap { PortRange($0, $0) })
    }

    var environment: ProxyEnvironment {
        var env = ProxyEnvironment()
        env.inboundPorts = inboundPorts
        env.opaquePorts = settings.opaquePorts
        env.detectTimeout = settings.detectTimeout
        env.inboundConnectTimeout = settings.inboundConnectTimeout
        env.outboundConnectTimeout = settings.outboundConnectTimeout
        env.shutdownGracePeriod = settings.shutdownGracePeriod
        env.shutdownEndpointEnabled = settings.adminShutdown
        env.logLevel = settings.logLevel
        env.logFormat = settings.logFormat
        env.identity = identityTokenVolume == nil ? nil : configuration.identity
        env.destination = env.identity == nil ? nil : configuration.destination
        return env
    }

    var proxyContainer: JSONValue {
        var container: [String: JSONValue] = [
            "name": .string(Mesh.proxyContainerName),
            "image": .string(settings.image),
            "imagePullPolicy": .string(configuration.imagePullPolicy),
            "command": [.string(Mesh.proxyBinary)],
            "ports": [
                ["name": .string(Mesh.inboundPortName), "containerPort": .integer(Int64(Mesh.inboundProxyPort)), "protocol": "TCP"],
                ["name": .string(Mesh.adminPortName), "containerPort": .integer(Int64(Mesh.adminPort)), "protocol": "TCP"],
            ],
            "env": .array(environment.render().map(Self.envEntry)),
            "livenessProbe": Self.adminProbe(path: "/live", period: 10, failureThreshold: 3),
            "readinessProbe": Self.adminProbe(path: "/ready", period: 10, failureThreshold: 3),
            "securityContext": [
                "runAsUser": .integer(Int64(Mesh.proxyUID)),
                "runAsGroup": .integer(Int64(Mesh.proxyGID)),
                "runAsNonRoot": true,
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "capabilities": ["drop": ["ALL"]],
                "seccompProfile": ["type": "RuntimeDefault"],
            ],
            "terminationMessagePolicy": "FallbackToLogsOnError",
        ]
        if let identityTokenVolume {
            container["volumeMounts"] = [["name": .string(identityTokenVolume), "mountPath": .string(Mesh.identityTokenDirectory), "readOnly": true]]
        }
        if let resources = resources(cpuRequest: settings.cpuRequest, cpuLimit: settings.cpuLimit,
                                     memoryRequest: settings.memoryRequest, memoryLimit: settings.memoryLimit) {
            container["resources"] = resources
        }
        if settings.nativeSidecar {
            // A restartable init container: the app starts only after the startup probe passes, and a Job
            // completes when its app containers exit.
            container["restartPolicy"] = "Always"
            container["startupProbe"] = Self.adminProbe(path: "/ready", period: 1, failureThreshold: 120)
        } else if settings.proxyAwait {
            // Classic mode: the kubelet starts the next container only after postStart returns.
            container["lifecycle"] = ["postStart": ["exec": ["command": .array(awaitCommand)]]]
        }
        return .object(container)
    }

    /// Classic mode's postStart hook: `needle-proxy await --timeout 120s`.
    private var awaitCommand: [JSONValue] {
        ([Mesh.proxyBinary] + ProxyCommandLine.await(timeout: ProxyCommandLine.defaultAwaitTimeout).rendered()).map(JSONValue.string)
    }

    var initContainer: JSONValue {
        var commandLine = InitCommandLine()
        commandLine.inboundPortsToIgnore.formUnion(settings.skipInboundPorts)
        commandLine.outboundPortsToIgnore = settings.skipOutboundPorts
        commandLine.subnetsToIgnore = settings.skipSubnets
        commandLine.ipv6 = configuration.ipv6 ? .on : .off
        var container: [String: JSONValue] = [
            "name": .string(Mesh.initContainerName),
            "image": .string(settings.image),
            "imagePullPolicy": .string(configuration.imagePullPolicy),
            "command": [.string(Mesh.initBinary)],
            "args": .array(commandLine.rendered().map(JSONValue.string)),
            // Root with only the two capabilities iptables needs; everything else dropped.
            "securityContext": [
                "runAsUser": 0,
                "runAsNonRoot": false,
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "privileged": false,
                "capabilities": ["add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]],
                "seccompProfile": ["type": "RuntimeDefault"],
            ],
            "volumeMounts": [["name": .string(xtablesLockVolume), "mountPath": "/run"]],
            "terminationMessagePolicy": "FallbackToLogsOnError",
        ]
        if let resources = resources(cpuRequest: ResourceQuantity(unchecked: "10m"), cpuLimit: ResourceQuantity(unchecked: "100m"),
                                     memoryRequest: ResourceQuantity(unchecked: "10Mi"), memoryLimit: ResourceQuantity(unchecked: "50Mi")) {
            container["resources"] = resources
        }
        return .object(container)
    }

    var volume: JSONValue {
        ["name": .string(xtablesLockVolume), "emptyDir": [:]]
    }

    /// The token the proxy proves its workload with (DESIGN §7): projected by the kubelet for the identity
    /// audience and rotated by it, whatever `automountServiceAccountToken` says.
    var tokenVolume: JSONValue? {
        guard let identityTokenVolume else { return nil }
        return [
            "name": .string(identityTokenVolume),
            "projected": [
                "sources": [[
                    "serviceAccountToken": [
                        "audience": .string(Mesh.identityTokenAudience),
                        "expirationSeconds": .integer(Int64(Mesh.identityTokenLifetimeSeconds)),
                        "path": .string(Mesh.identityTokenVolume),
                    ],
                ]],
            ],
        ]
    }

    static func adminProbe(path: String, period: Int64, failureThreshold: Int64) -> JSONValue {
        [
            "httpGet": ["path": .string(path), "port": .integer(Int64(Mesh.adminPort))],
            "periodSeconds": .integer(period),
            "failureThreshold": .integer(failureThreshold),
            "timeoutSeconds": probeTimeoutSeconds,
        ]
    }

    static func envEntry(_ variable: EnvironmentVariable) -> JSONValue {
        switch variable.value {
        case .literal(let value):
            return ["name": .string(variable.name), "value": .string(value)]
        case .podField(let path):
            return ["name": .string(variable.name), "valueFrom": ["fieldRef": ["fieldPath": .string(path)]]]
        }
    }

    func resources(cpuRequest: ResourceQuantity?, cpuLimit: ResourceQuantity?,
                   memoryRequest: ResourceQuantity?, memoryLimit: ResourceQuantity?) -> JSONValue? {
        var requests: [String: JSONValue] = [:]
        var limits: [String: JSONValue] = [:]
        if let cpuRequest { requests["cpu"] = .string(cpuRequest.text) }
        if let memoryRequest { requests["memory"] = .string(memoryRequest.text) }
        if let cpuLimit { limits["cpu"] = .string(cpuLimit.text) }
        if let memoryLimit { limits["memory"] = .string(memoryLimit.text) }
        var resources: [String: JSONValue] = [:]
        if !requests.isEmpty { resources["requests"] = .object(requests) }
        if !limits.isEmpty { resources["limits"] = .object(limits) }
        return resources.isEmpty ? nil : .object(resources)
    }
}
