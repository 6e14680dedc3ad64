import NeedleContract
import Testing

@Suite("ProxyEnvironment")
struct ProxyEnvironmentTests {
    /// The downward-API values a kubelet would supply, keyed by field path.
    static let podFieldValues: [String: String] = [
        "status.podIPs": "10.0.0.5,fd00::5",
        "metadata.name": "web-1",
        "metadata.namespace": "shop",
        "spec.serviceAccountName": "web",
        "spec.nodeName": "node-a",
    ]

    /// What the kubelet hands the proxy: literals as written, pod fields from `podFieldValues`.
    static func processEnvironment(_ variables: [EnvironmentVariable]) throws -> [String: String] {
        var environment: [String: String] = [:]
        for variable in variables {
            switch variable.value {
            case .literal(let value):
                environment[variable.name] = value
            case .podField(let path):
                environment[variable.name] = try #require(podFieldValues[path], "no value for field \(path)")
            }
        }
        return environment
    }

    static func literals(_ variables: [EnvironmentVariable]) -> [String: String] {
        var values: [String: String] = [:]
        for variable in variables {
            if case .literal(let value) = variable.value { values[variable.name] = value }
        }
        return values
    }

    @Test("defaults match DESIGN §3.4")
    func defaults() {
        let env = ProxyEnvironment()
        #expect(env.inboundListenAddress.description == "0.0.0.0:4143")
        #expect(env.outboundListenAddress.description == "127.0.0.1:4140")
        #expect(env.adminListenAddress.description == "0.0.0.0:4191")
        #expect(env.inboundPorts.isEmpty)
        #expect(env.inboundIPs.isEmpty)
        #expect(env.opaquePorts.description == "25,587,3306,4444,5432,6379,9300,11211")
        #expect(env.opaquePorts == Mesh.defaultOpaquePorts)
        #expect(env.detectTimeout == ProxyDuration(milliseconds: 10_000))
        #expect(env.inboundConnectTimeout == ProxyDuration(milliseconds: 100))
        #expect(env.outboundConnectTimeout == ProxyDuration(milliseconds: 1000))
        #expect(env.shutdownGracePeriod == ProxyDuration(milliseconds: 30_000))
        #expect(env.shutdownEndpointEnabled == false)
        #expect(env.logLevel == .info)
        #expect(env.logFormat == .plain)
        #expect(env.workers == 1)
        #expect(env.podName == nil)
        #expect(env.podNamespace == nil)
        #expect(env.podServiceAccount == nil)
        #expect(env.nodeName == nil)
        #expect(env.unknownVariables.isEmpty)
    }

    @Test("default rendering spells the DESIGN §3.4 values")
    func defaultRendering() {
        let values = Self.literals(ProxyEnvironment().render())
        #expect(values["NEEDLE_PROXY_INBOUND_LISTEN_ADDR"] == "0.0.0.0:4143")
        #expect(values["NEEDLE_PROXY_OUTBOUND_LISTEN_ADDR"] == "127.0.0.1:4140")
        #expect(values["NEEDLE_PROXY_ADMIN_LISTEN_ADDR"] == "0.0.0.0:4191")
        #expect(values["NEEDLE_PROXY_INBOUND_PORTS"] == "")
        #expect(values["NEEDLE_PROXY_OPAQUE_PORTS"] == "25,587,3306,4444,5432,6379,9300,11211")
        #expect(values["NEEDLE_PROXY_DETECT_TIMEOUT"] == "10s")
        #expect(values["NEEDLE_PROXY_INBOUND_CONNECT_TIMEOUT"] == "100ms")
        #expect(values["NEEDLE_PROXY_OUTBOUND_CONNECT_TIMEOUT"] == "1s")
        #expect(values["NEEDLE_PROXY_SHUTDOWN_GRACE_PERIOD"] == "30s")
        #expect(values["NEEDLE_PROXY_SHUTDOWN_ENDPOINT_ENABLED"] == "false")
        #expect(values["NEEDLE_PROXY_LOG"] == "info")
        #expect(values["NEEDLE_PROXY_LOG_FORMAT"] == "plain")
        #expect(values["NEEDLE_PROXY_WORKERS"] == "1")
    }

    @Test("an empty environment parses to the defaults")
    func emptyEnvironment() throws {
        #expect(try ProxyEnvironment(parsing: [:]) == ProxyEnvironment())
    }

    @Test("unset variables keep their defaults")
    func partialEnvironment() throws {
        let parsed = try ProxyEnvironment(parsing: ["NEEDLE_PROXY_LOG": "warning", "NEEDLE_PROXY_WORKERS": "64"])
        var expected = ProxyEnvironment()
        expected.logLevel = .warning
        expected.workers = 64
        #expect(parsed == expected)
    }

    @Test("render then parse gives back the same environment")
    func roundTrip() throws {
        var original = ProxyEnvironment()
        original.inboundListenAddress = try ListenAddress(parsing: "[::]:5143")
        original.outboundListenAddress = try ListenAddress(parsing: "127.0.0.1:5140")
        original.adminListenAddress = try ListenAddress(parsing: "[fd00::1]:5191")
        original.inboundPorts = try PortSet(parsing: "80,443,8000-8100")
        original.opaquePorts = try PortSet(parsing: "3306,9000-9010")
        original.detectTimeout = .seconds(3)
        original.inboundConnectTimeout = .milliseconds(250)
        original.outboundConnectTimeout = ProxyDuration(milliseconds: 90_000)
        original.shutdownGracePeriod = ProxyDuration(milliseconds: 3_600_000)
        original.shutdownEndpointEnabled = true
        original.logLevel = .debug
        original.logFormat = .json
        original.workers = 4

        let parsed = try ProxyEnvironment(parsing: Self.processEnvironment(original.render()))

        var expected = original
        expected.inboundIPs = [.v4(0x0A00_0005), .v6(high: 0xFD00_0000_0000_0000, low: 5)]
        expected.podName = "web-1"
        expected.podNamespace = "shop"
        expected.podServiceAccount = "web"
        expected.nodeName = "node-a"
        #expect(parsed == expected)
        #expect(parsed.unknownVariables.isEmpty)
    }

    @Test("the default environment round-trips too")
    func defaultRoundTrip() throws {
        let parsed = try ProxyEnvironment(parsing: Self.processEnvironment(ProxyEnvironment().render()))
        #expect(parsed.inboundIPs.count == 2)
        var withoutPodFields = parsed
        withoutPodFields.inboundIPs = []
        withoutPodFields.podName = nil
        withoutPodFields.podNamespace = nil
        withoutPodFields.podServiceAccount = nil
        withoutPodFields.nodeName = nil
        #expect(withoutPodFields == ProxyEnvironment())
    }

    static let anchorsPEM = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"

    static func withIdentity() throws -> ProxyEnvironment {
        var environment = ProxyEnvironment()
        let trustDomain = try DNSName(parsing: "cluster.local")
        environment.identity = IdentitySettings(
            service: ControlPlaneService(address: try ServiceAddress(parsing: "needle-identity.needle.svc.cluster.local.:8080"),
                                        tlsName: try DNSName(parsing: "needle-controller.needle.serviceaccount.identity.needle.cluster.local")),
            trustAnchorsPEM: anchorsPEM, trustDomain: trustDomain)
        environment.destination = ControlPlaneService(
            address: try ServiceAddress(parsing: "needle-destination.needle.svc.cluster.local.:8086"),
            tlsName: try DNSName(parsing: "needle-controller.needle.serviceaccount.identity.needle.cluster.local"))
        return environment
    }

    @Test("every ProxyVariable is rendered exactly once (identity on), and nothing else")
    func renderedNames() throws {
        let names = try Self.withIdentity().render().map(\.name)
        for name in names {
            #expect(ProxyVariable(rawValue: name) != nil, "\(name) is not a ProxyVariable")
        }
        #expect(names.count == ProxyVariable.allCases.count)
        #expect(Set(names).count == names.count)
        #expect(Set(names) == Set(ProxyVariable.allCases.map(\.rawValue)))
    }

    @Test("pod fields come from the downward API")
    func podFields() {
        var fields: [String: String] = [:]
        for variable in ProxyEnvironment().render() {
            if case .podField(let path) = variable.value { fields[variable.name] = path }
        }
        #expect(fields == [
            "NEEDLE_PROXY_INBOUND_IPS": "status.podIPs",
            "NEEDLE_POD_NAME": "metadata.name",
            "NEEDLE_POD_NAMESPACE": "metadata.namespace",
            "NEEDLE_POD_SERVICE_ACCOUNT": "spec.serviceAccountName",
            "NEEDLE_NODE_NAME": "spec.nodeName",
        ])
    }

    @Test("every bad variable is reported, one problem each", arguments: ["0", "65", "x"])
    func allProblemsReported(workers: String) throws {
        let environment = [
            "NEEDLE_PROXY_DETECT_TIMEOUT": "10 s",
            "NEEDLE_PROXY_WORKERS": workers,
            "NEEDLE_PROXY_INBOUND_LISTEN_ADDR": "0.0.0.0",
            "NEEDLE_PROXY_SHUTDOWN_ENDPOINT_ENABLED": "yes",
            "NEEDLE_PROXY_LOG": "debug",  // valid: not a problem
        ]
        let error = try #require(throws: ProxyEnvironmentError.self) { try ProxyEnvironment(parsing: environment) }
        #expect(error.problems.count == 4)
        #expect(Set(error.problems.map(\.variable)) == [
            "NEEDLE_PROXY_DETECT_TIMEOUT", "NEEDLE_PROXY_WORKERS", "NEEDLE_PROXY_INBOUND_LISTEN_ADDR",
            "NEEDLE_PROXY_SHUTDOWN_ENDPOINT_ENABLED",
        ])

        let detect = try #require(error.problems.first { $0.variable == "NEEDLE_PROXY_DETECT_TIMEOUT" })
        #expect(detect.value == "10 s")
        #expect(detect.expected == ProxyDuration.acceptedFormat)
        let workersProblem = try #require(error.problems.first { $0.variable == "NEEDLE_PROXY_WORKERS" })
        #expect(workersProblem.value == workers)
        #expect(workersProblem.expected.contains("64"))
        let listen = try #require(error.problems.first { $0.variable == "NEEDLE_PROXY_INBOUND_LISTEN_ADDR" })
        #expect(listen.value == "0.0.0.0")
        #expect(listen.expected == ListenAddress.acceptedFormat)
        let flag = try #require(error.problems.first { $0.variable == "NEEDLE_PROXY_SHUTDOWN_ENDPOINT_ENABLED" })
        #expect(flag.value == "yes")
        #expect(flag.expected == "true or false")

        let lines = error.description.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 4)
        for problem in error.problems {
            #expect(lines.contains { $0.contains(problem.variable) && $0.contains("\"\(problem.value ?? "")\"") && $0.contains(problem.expected) })
        }
        #expect(ProxyEnvironmentError.exitCode == 64)
    }

    @Test("workers accepts 1 through 64", arguments: ["1", "2", "64"])
    func workersValid(text: String) throws {
        let parsed = try ProxyEnvironment(parsing: ["NEEDLE_PROXY_WORKERS": text])
        #expect(String(parsed.workers) == text)
    }

    @Test("each malformed value is reported under its own variable", arguments: [
        ("NEEDLE_PROXY_OUTBOUND_LISTEN_ADDR", "127.0.0.1"),
        ("NEEDLE_PROXY_ADMIN_LISTEN_ADDR", "[::]4191"),
        ("NEEDLE_PROXY_INBOUND_PORTS", "80,"),
        ("NEEDLE_PROXY_INBOUND_IPS", "10.0.0.5,nope"),
        ("NEEDLE_PROXY_OPAQUE_PORTS", "0"),
        ("NEEDLE_PROXY_INBOUND_CONNECT_TIMEOUT", "1.5s"),
        ("NEEDLE_PROXY_OUTBOUND_CONNECT_TIMEOUT", "8d"),
        ("NEEDLE_PROXY_SHUTDOWN_GRACE_PERIOD", "30"),
        ("NEEDLE_PROXY_LOG", "Info"),
        ("NEEDLE_PROXY_LOG_FORMAT", "text"),
        ("NEEDLE_PROXY_WORKERS", "-1"),
        ("NEEDLE_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "True"),
    ])
    func singleProblem(variable: String, value: String) throws {
        let error = try #require(throws: ProxyEnvironmentError.self) {
            try ProxyEnvironment(parsing: [variable: value, "NEEDLE_PROXY_LOG_FORMAT_UNUSED": "x"])
        }
        #expect(error.problems.count == 1)
        #expect(error.problems.first?.variable == variable)
        #expect(error.problems.first?.value == value)
        #expect(error.problems.first?.expected.isEmpty == false)
    }

    @Test("inbound IPs accept IPv4 and IPv6, and the empty string")
    func inboundIPs() throws {
        let parsed = try ProxyEnvironment(parsing: ["NEEDLE_PROXY_INBOUND_IPS": "10.0.0.5, fd00::5"])
        #expect(parsed.inboundIPs == [.v4(0x0A00_0005), .v6(high: 0xFD00_0000_0000_0000, low: 5)])
        #expect(try ProxyEnvironment(parsing: ["NEEDLE_PROXY_INBOUND_IPS": ""]).inboundIPs.isEmpty)
    }

    @Test("unknown NEEDLE_PROXY_* variables are listed, not fatal; identity settings without its address and foreign variables are ignored")
    func unknownVariables() throws {
        let parsed = try ProxyEnvironment(parsing: [
            "NEEDLE_PROXY_FOO": "1",
            "NEEDLE_PROXY_BAR": "",
            "NEEDLE_PROXY_IDENTITY_X": "x",
            "NEEDLE_PROXY_IDENTITY_TRUST_ANCHORS": "pem",
            "NEEDLE_OTHER": "y",
            "PATH": "/usr/bin",
            "HOME": "/",
            "NEEDLE_PROXY_LOG": "error",
        ])
        #expect(parsed.unknownVariables == ["NEEDLE_PROXY_BAR", "NEEDLE_PROXY_FOO", "NEEDLE_PROXY_IDENTITY_X"])
        #expect(parsed.logLevel == .error)
        #expect(parsed.identity == nil)
    }

    @Test("identity settings round-trip, and the workload's names follow from the pod's namespace and service account")
    func identityRoundTrip() throws {
        let original = try Self.withIdentity()
        let rendered = original.render()
        let parsed = try ProxyEnvironment(parsing: Self.processEnvironment(rendered))
        #expect(parsed.identity == original.identity)
        #expect(parsed.destination == original.destination)
        #expect(parsed.unknownVariables.isEmpty)
        let literals = Self.literals(rendered)
        #expect(literals["NEEDLE_PROXY_IDENTITY_SVC_ADDR"] == "needle-identity.needle.svc.cluster.local.:8080")
        #expect(literals["NEEDLE_PROXY_IDENTITY_TOKEN_FILE"] == "/var/run/secrets/tokens/needle-identity-token")
        #expect(literals["NEEDLE_PROXY_IDENTITY_TRUST_ANCHORS"] == Self.anchorsPEM)
        #expect(parsed.workloadIdentity?.tlsName == "web.shop.serviceaccount.identity.needle.cluster.local")
        #expect(parsed.workloadIdentity?.spiffeID == "spiffe://cluster.local/ns/shop/sa/web")
        // Identity off renders none of it.
        #expect(!ProxyEnvironment().render().contains { $0.name.hasPrefix("NEEDLE_PROXY_IDENTITY_") || $0.name.hasPrefix("NEEDLE_PROXY_DESTINATION_") })
    }

    @Test("with identity on, every missing or malformed setting is named, each once")
    func identityProblems() throws {
        do {
            _ = try ProxyEnvironment(parsing: [
                "NEEDLE_PROXY_IDENTITY_SVC_ADDR": "needle-identity.needle.svc.cluster.local:8080",
                "NEEDLE_PROXY_IDENTITY_TRUST_ANCHORS": "not pem",
                "NEEDLE_PROXY_IDENTITY_TRUST_DOMAIN": "Cluster.Local",
                "NEEDLE_POD_NAMESPACE": "shop",
            ])
            Issue.record("expected problems")
        } catch {
            let byVariable = Dictionary(grouping: error.problems, by: \.variable)
            #expect(Set(byVariable.keys) == ["NEEDLE_PROXY_IDENTITY_SVC_NAME", "NEEDLE_PROXY_IDENTITY_TRUST_ANCHORS",
                                             "NEEDLE_PROXY_IDENTITY_TOKEN_FILE", "NEEDLE_PROXY_IDENTITY_TRUST_DOMAIN",
                                             "NEEDLE_POD_SERVICE_ACCOUNT"])
            #expect(byVariable.values.allSatisfy { $0.count == 1 })
            let missing = try #require(byVariable["NEEDLE_PROXY_IDENTITY_TOKEN_FILE"]?.first)
            #expect(missing.value == nil)
            #expect(missing.description == "NEEDLE_PROXY_IDENTITY_TOKEN_FILE is not set but NEEDLE_PROXY_IDENTITY_SVC_ADDR needs it: expected an absolute file path")
            #expect(byVariable["NEEDLE_PROXY_IDENTITY_TRUST_ANCHORS"]?.first?.value == "not pem")
        }
    }

    @Test("discovery without identity is refused: it is reached over mutual TLS")
    func destinationNeedsIdentity() {
        #expect(throws: ProxyEnvironmentError.self) {
            try ProxyEnvironment(parsing: ["NEEDLE_PROXY_DESTINATION_SVC_ADDR": "10.96.0.20:8086"])
        }
    }

    @Test("a known-variable set has no unknowns")
    func knownOnly() throws {
        let environment = try Self.processEnvironment(ProxyEnvironment().render())
        #expect(try ProxyEnvironment(parsing: environment).unknownVariables.isEmpty)
    }
}
