import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import NIOPosix
import NeedleContract
import NeedleHTTPService
import NeedleInjection
import NeedleKubernetes
import NeedleServerKit
import NeedleWebhook
#if canImport(Glibc)
import Glibc
#endif

@main
struct InjectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "needle-injector",
        abstract: "Needle's sidecar injector: a mutating admission webhook serving POST /inject over HTTPS."
    )

    @Option(help: "Webhook listen address (IP:PORT).")
    var listen = "0.0.0.0:\(Mesh.injectorPort)"

    @Option(help: "Admin listen address for /metrics, /ready, /live (IP:PORT).")
    var adminListen = "0.0.0.0:\(Mesh.injectorAdminPort)"

    @Option(help: "PEM serving certificate (chain); re-read when it changes.")
    var tlsCert: String?

    @Option(help: "PEM private key of the serving certificate; re-read when it changes.")
    var tlsKey: String?

    @Option(help: "Injector configuration (YAML or JSON) overriding the embedded defaults.")
    var config: String?

    @Option(help: "Namespace list as 'kubectl get ns -o yaml' prints it, instead of the Kubernetes API.")
    var namespaces: String?

    @Option(help: "Kubernetes API server URL, when not running in a pod (in a pod the service account is used).")
    var kubeAPIServer: String?

    @Option(help: "CA bundle for --kube-api-server.")
    var kubeCAFile: String?

    @Option(help: "Bearer token file for --kube-api-server (re-read on every request).")
    var kubeTokenFile: String?

    @Flag(help: "Development mode: self-signed certificate for localhost and Webhook/dev/namespaces.yaml.")
    var dev = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: "Seconds between checks of the certificate files.")
    var certificateCheckInterval = 5

    @Option(help: "Most connections served at once; more are refused.")
    var maxConnections = 512

    @Option(help: "Seconds a connection may take to send a request head (and to finish the TLS handshake).")
    var headerTimeout = 10

    @Option(help: "Seconds a client may take to send a request body.")
    var bodyTimeout = 10

    @Option(help: "Seconds reviews in flight may take to finish after SIGTERM.")
    var shutdownGracePeriod = 20

    @Option(help: "Event loops (threads) serving connections and reviews; default one per core.")
    var eventLoops = System.coreCount

    @Option(help: "Directory for the --dev certificate files.")
    var devDirectory = FileManager.default.temporaryDirectory.path + "/needle-dev"

    func validate() throws {
        if !dev && (tlsCert == nil || tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key are required (or --dev for a self-signed development certificate)")
        }
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level \"\(logLevel)\" is not one of trace, debug, info, notice, warning, error, critical")
        }
        guard (1...3600).contains(certificateCheckInterval) else {
            throw ValidationError("--certificate-check-interval must be 1 to 3600 seconds")
        }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard (1...256).contains(eventLoops) else { throw ValidationError("--event-loops must be 1 to 256") }
        for (flag, value) in [("--header-timeout", headerTimeout), ("--body-timeout", bodyTimeout),
                              ("--shutdown-grace-period", shutdownGracePeriod)] where !(1...600).contains(value) {
            throw ValidationError("\(flag) must be 1 to 600 seconds")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "needle-injector")

        let webhookAddress: ListenAddress
        let adminAddress: ListenAddress
        do {
            webhookAddress = try ListenAddress(parsing: listen)
            adminAddress = try ListenAddress(parsing: adminListen)
        } catch {
            throw ValidationError("bad listen address: \(error)")
        }

        let configuration: InjectorConfiguration
        let directory: any NamespaceDirectory
        var kubernetes: KubernetesNamespaces? = nil
        let group = MultiThreadedEventLoopGroup(numberOfThreads: eventLoops)
        var certificatePath = tlsCert ?? ""
        var keyPath = tlsKey ?? ""
        do {
            configuration = try InjectorConfiguration.load(path: config)
            if let identity = configuration.identity {
                logger.notice("identity on: proxies get a certificate from the identity service",
                              metadata: ["identity": "\(identity.service.address)", "trust_domain": "\(identity.trustDomain)"])
            } else {
                logger.notice("identity off: no trustAnchorsFile in the configuration, proxies run plaintext")
            }
            if dev && tlsCert == nil {
                let files = try DevelopmentCertificates.write(to: devDirectory)
                certificatePath = files.certificate
                keyPath = files.key
                logger.notice("development certificate for localhost and 127.0.0.1", metadata: ["ca": "\(files.ca)"])
                print("needle-injector: development CA written to \(files.ca)")
                print("needle-injector: try  curl --cacert \(files.ca) -H 'Content-Type: application/json' "
                      + "--data @Webhook/examples/pod.json https://localhost:\(webhookAddress.port)/inject")
            }
            if let namespaces {
                directory = try NamespaceFile(path: namespaces)
            } else if dev {
                directory = try NamespaceFile(path: "Webhook/dev/namespaces.yaml")
            } else if let access = kubeAPIServer.map({ KubernetesAPIAccess(server: $0, caFile: kubeCAFile, tokenFile: kubeTokenFile) })
                        ?? KubernetesAPIAccess.inCluster(environment: ProcessInfo.processInfo.environment) {
                let source = try KubernetesNamespaces(access: access, group: group, logger: logger)
                kubernetes = source
                directory = source
                logger.notice("namespaces from the Kubernetes API", metadata: ["server": "\(access.server)"])
            } else {
                throw ValidationError("no namespace source: pass --namespaces FILE or --kube-api-server URL, or run in a pod")
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }

        let certificate: ServingCertificate
        do {
            certificate = try ServingCertificate(certificatePath: certificatePath, keyPath: keyPath)
        } catch {
            logger.critical("cannot load the serving certificate", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }

        let metrics = WebhookMetrics()
        metrics.recordCertificateLoad(success: true, notAfterUnixSeconds: Int64(certificate.notAfter.timeIntervalSince1970))
        let reviewer = AdmissionReviewer(injector: Injector(configuration: configuration), namespaces: directory)
        let service = WebhookService(reviewer: reviewer, metrics: metrics, logger: logger)

        var serverConfiguration = HTTPSServer.Configuration()
        serverConfiguration.listenHost = webhookAddress.ip.description
        serverConfiguration.listenPort = webhookAddress.port
        serverConfiguration.adminHost = adminAddress.ip.description
        serverConfiguration.adminPort = adminAddress.port
        serverConfiguration.maxConnections = maxConnections
        serverConfiguration.headerTimeout = .seconds(Int64(headerTimeout))
        serverConfiguration.bodyTimeout = .seconds(Int64(bodyTimeout))
        serverConfiguration.shutdownGracePeriod = .seconds(shutdownGracePeriod)

        let server = HTTPSServer(configuration: serverConfiguration, service: service, tlsContext: { certificate.context },
                                 metrics: metrics, logger: logger, group: group)
        let bound: (service: SocketAddress, admin: SocketAddress?)
        do {
            bound = try await server.start()
        } catch {
            logger.critical("cannot bind", metadata: ["error": "\(error)"])
            try? await group.shutdownGracefully()
            throw ExitCode(1)
        }
        logger.notice("serving", metadata: ["webhook": "\(bound.service)", "admin": "\(bound.admin.map { "\($0)" } ?? "none")",
                                             "version": "\(Mesh.version)"])

        let watcher = kubernetes.map { source in Task { await source.run() } }
        let reloader = Task {
            await CertificateReloadLoop.run(certificate: certificate, metrics: metrics, logger: logger,
                                            interval: .seconds(certificateCheckInterval))
        }
        let signal = await ShutdownSignals.next()
        logger.notice("shutting down: finishing reviews in flight", metadata: ["signal": "\(signal)"])
        reloader.cancel()
        await server.shutdown()
        watcher?.cancel()
        await kubernetes?.shutdown()
        try? await group.shutdownGracefully()
        logger.notice("stopped")
    }
}
