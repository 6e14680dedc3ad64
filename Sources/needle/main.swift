import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleContract
import NeedleInjection
import NeedleInstall
import NeedleWebhook

@main
struct NeedleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "needle",
        abstract: "The Needle service mesh's operator tool.",
        subcommands: [Install.self, Inject.self, Review.self, Version.self]
    )
}

struct Review: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one AdmissionReview through the injector offline and print the response.",
        discussion: """
            Reads an AdmissionReview (JSON) from FILE, or standard input with '-', and prints the \
            AdmissionReview response the webhook would send. Without --namespaces, namespaces have no \
            annotations and only the pod's own annotations count.
            """
    )

    @Argument(help: "AdmissionReview JSON file, or - for standard input.")
    var file: String = "-"

    @Option(help: "Namespace list as 'kubectl get ns -o yaml' (or -o json) prints it.")
    var namespaces: String?

    @Option(help: "Injector configuration file (YAML or JSON) overriding the embedded defaults.")
    var config: String?

    @Flag(help: "Print the decision, reasons, warnings and patch in readable form instead of JSON.")
    var explain = false

    func run() async throws {
        let configuration: InjectorConfiguration
        let directory: any NamespaceDirectory
        do {
            configuration = try InjectorConfiguration.load(path: config)
            directory = try namespaces.map { try NamespaceFile(path: $0) } ?? NoNamespaces()
        } catch {
            printError("needle review: \(error)")
            throw ExitCode(64)
        }
        let body: Data
        do {
            body = try readInput(file)
        } catch {
            printError("needle review: cannot read \(file): \(error)")
            throw ExitCode(66)
        }
        let reviewer = AdmissionReviewer(injector: Injector(configuration: configuration), namespaces: directory)
        do {
            let (response, summary) = try await reviewer.review(body)
            if explain {
                print(ReviewExplanation(summary: summary).text, terminator: "")
            } else {
                print(String(decoding: response, as: UTF8.self))
            }
        } catch {
            printError("needle review: \(error) (the webhook would answer HTTP \(error.httpStatus))")
            throw ExitCode(65)
        }
    }

    func readInput(_ path: String) throws -> Data {
        if path == "-" {
            var bytes: [UInt8] = []
            while let line = readLine(strippingNewline: false) { bytes += Array(line.utf8) }
            return Data(bytes)
        }
        return try Data(contentsOf: URL(filePath: path))
    }
}

struct Install: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the control plane's manifests, with fresh certificates: needle install | kubectl apply -f -",
        discussion: """
            Without --ca-cert/--ca-key a new CA is made; keep it (--ca-out DIR) and pass it back on upgrades so \
            the webhook's caBundle stays valid while pods roll.
            """
    )

    @Option(help: "Control-plane namespace.")
    var namespace = Mesh.controlPlaneNamespace
    @Option(help: "Injector replicas (3 or more with --ha).")
    var replicas = 1
    @Option(help: "Webhook failurePolicy: Ignore or Fail (default Ignore; Fail with --ha).")
    var failurePolicy: String?
    @Flag(help: "High availability: 3 replicas, a PodDisruptionBudget, pod anti-affinity, failurePolicy Fail.")
    var ha = false
    @Option(help: "Proxy image the injector adds to pods.")
    var proxyImage: String?
    @Option(help: "Injector image.")
    var injectorImage = InstallOptions().injectorImage
    @Option(help: "CA certificate (PEM) to sign the serving certificate with.")
    var caCert: String?
    @Option(help: "CA private key (PEM, ECDSA P-256) for --ca-cert.")
    var caKey: String?
    @Option(help: "Write the CA (ca.crt, ca.key) to this directory, for upgrades.")
    var caOut: String?
    @Option(help: "needle-controller replicas (3 or more with --ha).")
    var controllerReplicas = 2
    @Option(help: "PEM bundle of the mesh's trust anchors (default: a new trust anchor, 10 years).")
    var identityTrustAnchors: String?
    @Option(help: "PEM issuer certificate, an intermediate CA signed by a trust anchor (default: a new one, 1 year).")
    var identityIssuerCert: String?
    @Option(help: "PEM ECDSA P-256 key of --identity-issuer-cert.")
    var identityIssuerKey: String?
    @Option(help: "Write the identity PKI (trust-anchors.crt, issuer.crt, issuer.key) to this directory, for upgrades.")
    var identityOut: String?

    func validate() throws {
        if let failurePolicy, !InstallOptions.failurePolicies.contains(failurePolicy) {
            throw ValidationError("--failure-policy \"\(failurePolicy)\" is invalid: expected Ignore or Fail")
        }
        guard (1...100).contains(replicas) else { throw ValidationError("--replicas must be 1 to 100") }
        if (caCert == nil) != (caKey == nil) { throw ValidationError("--ca-cert and --ca-key go together") }
        let identityFlags = [identityTrustAnchors, identityIssuerCert, identityIssuerKey].filter { $0 != nil }.count
        if identityFlags != 0 && identityFlags != 3 {
            throw ValidationError("--identity-trust-anchors, --identity-issuer-cert and --identity-issuer-key go together")
        }
        guard (1...100).contains(controllerReplicas) else { throw ValidationError("--controller-replicas must be 1 to 100") }
        guard DNSName.isLabel(namespace) else {
            throw ValidationError("--namespace \"\(namespace)\" is not a valid namespace name (lower-case letters, digits, '-', at most 63)")
        }
    }

    func run() throws {
        var options = InstallOptions()
        options.namespace = namespace
        options.replicas = replicas
        options.highAvailability = ha
        options.failurePolicy = failurePolicy ?? (ha ? "Fail" : "Ignore")
        options.proxyImage = proxyImage
        options.injectorImage = injectorImage
        options.controllerReplicas = controllerReplicas
        let manifest = InstallManifest(options: options)
        do {
            var authority: CertificateAuthority? = nil
            if let caCert, let caKey {
                authority = try CertificateAuthority(certificatePEM: String(contentsOfFile: caCert, encoding: .utf8),
                                                     privateKeyPEM: String(contentsOfFile: caKey, encoding: .utf8))
            }
            let (certificates, usedAuthority) = try InstallCertificates.make(manifest: manifest, authority: authority)
            if let caOut {
                try FileManager.default.createDirectory(atPath: caOut, withIntermediateDirectories: true)
                try Data(certificates.caPEM.utf8).write(to: URL(filePath: caOut + "/ca.crt"))
                try Data(usedAuthority.privateKeyPEM.utf8).write(to: URL(filePath: caOut + "/ca.key"))
                try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: caOut + "/ca.key")
            } else if authority == nil {
                printError("needle install: made a new CA; to keep it for upgrades, run with --ca-out DIR (or pass --ca-cert/--ca-key)")
            }
            let identity: InstallIdentity
            if let identityTrustAnchors, let identityIssuerCert, let identityIssuerKey {
                identity = try InstallIdentity.checked(trustAnchorsPEM: String(contentsOfFile: identityTrustAnchors, encoding: .utf8),
                                                       issuerCertificatePEM: String(contentsOfFile: identityIssuerCert, encoding: .utf8),
                                                       issuerKeyPEM: String(contentsOfFile: identityIssuerKey, encoding: .utf8))
            } else {
                identity = try InstallIdentity.make(trustDomain: options.clusterDomain)
                if identityOut == nil {
                    printError("needle install: made a new identity trust anchor and issuer; to keep them for upgrades, run with --identity-out DIR")
                }
            }
            if let identityOut {
                try FileManager.default.createDirectory(atPath: identityOut, withIntermediateDirectories: true)
                try Data(identity.trustAnchorsPEM.utf8).write(to: URL(filePath: identityOut + "/trust-anchors.crt"))
                try Data(identity.issuerCertificatePEM.utf8).write(to: URL(filePath: identityOut + "/issuer.crt"))
                try Data(identity.issuerKeyPEM.utf8).write(to: URL(filePath: identityOut + "/issuer.key"))
                try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: identityOut + "/issuer.key")
            }
            print(try YAMLValue.stream(try manifest.objects(certificates: certificates, identity: .shipped(identity))), terminator: "")
        } catch {
            printError("needle install: \(error)")
            throw ExitCode(1)
        }
    }
}

struct Inject: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mark (or, with --manual, inject) the workloads in a YAML stream.",
        discussion: """
            Pods and the pod templates of Deployments, ReplicaSets, ReplicationControllers, StatefulSets, \
            DaemonSets, Jobs and CronJobs get needle.dev/inject: enabled. With --manual the sidecar is added \
            by the webhook's own code (only the workload's annotations count offline; 'disabled' and \
            hostNetwork still skip). Other documents pass through unchanged. A report goes to stderr.
            """
    )

    @Argument(help: "YAML file, or - for standard input.")
    var file: String = "-"
    @Flag(help: "Apply the full injection instead of the annotation.")
    var manual = false
    @Option(help: "Injector configuration file (YAML or JSON) for --manual.")
    var config: String?

    func run() throws {
        let text: String
        do {
            text = file == "-" ? Self.readStandardInput() : try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            printError("needle inject: cannot read \(file): \(error)")
            throw ExitCode(66)
        }
        do {
            let configuration = try InjectorConfiguration.load(path: config)
            let injector = WorkloadInjector(injector: Injector(configuration: configuration), mode: manual ? .manual : .annotate)
            let (output, report) = try injector.inject(text)
            print(output, terminator: "")
            for line in report { printError(line) }
        } catch {
            printError("needle inject: \(error)")
            throw ExitCode(65)
        }
    }

    static func readStandardInput() -> String {
        var text = ""
        while let line = readLine(strippingNewline: false) { text += line }
        return text
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("needle \(Mesh.version)") }
}

func printError(_ message: String) {
    TextOutput.errorLine(message)
}
