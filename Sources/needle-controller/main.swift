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
import NeedleController
import NeedleDiscovery
import NeedleHTTPService
import NeedleKubernetes
import NeedleServerKit

@main
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "needle-controller",
        abstract: "Needle's control plane: the identity service that certifies proxies (POST \(IdentityAPI.certifyPath) over TLS) and the destination service that tells them where addresses go (GET \(DestinationAPI.path) over mutual TLS)."
    )

    @Option(help: "Identity API listen address (IP:PORT).")
    var identityListen = "0.0.0.0:\(Mesh.identityPort)"

    @Option(help: "Destination API listen address (IP:PORT); mutual TLS, clients need a certificate from the trust anchors.")
    var destinationListen = "0.0.0.0:\(Mesh.destinationPort)"

    @Option(help: "Admin listen address for /metrics, /ready, /live (IP:PORT).")
    var adminListen = "0.0.0.0:\(Mesh.controllerAdminPort)"

    @Option(help: "PEM bundle of trust anchors; re-read when it changes.")
    var trustAnchors: String

    @Option(help: "PEM issuer (intermediate CA) certificate, signed by a trust anchor; re-read when it changes.")
    var issuerCert: String

    @Option(help: "PEM ECDSA P-256 key of the issuer; re-read when it changes.")
    var issuerKey: String

    @Option(help: "Trust domain of workload identities.")
    var trustDomain = Mesh.defaultClusterDomain

    @Option(help: "Namespace the controller runs in (its own identity is needle-controller in it).")
    var controllerNamespace = Mesh.controlPlaneNamespace

    @Option(help: "Lifetime of issued certificates: a duration like 24h or 90m, at least 1m.")
    var certificateLifetime = "24h"

    @Option(help: "Kubernetes API server URL, when not running in a pod (in a pod the service account is used).")
    var kubeAPIServer: String?

    @Option(help: "CA bundle for --kube-api-server.")
    var kubeCAFile: String?

    @Option(help: "Bearer token file for --kube-api-server (re-read on every request).")
    var kubeTokenFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: "Seconds between checks of the issuer files (and of the controller's own certificate).")
    var issuerCheckInterval = 5

    @Option(help: "Most connections served at once; more are refused.")
    var maxConnections = 1024

    @Option(help: "Seconds requests in flight may take to finish after SIGTERM.")
    var shutdownGracePeriod = 20

    func validate() throws {
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level \"\(logLevel)\" is not one of trace, debug, info, notice, warning, error, critical")
        }
        _ = try lifetime()
        guard DNSName.isValid(trustDomain) else { throw ValidationError("--trust-domain \"\(trustDomain)\": expected \(DNSName.acceptedFormat)") }
        guard DNSName.isLabel(controllerNamespace) else {
            throw ValidationError("--controller-namespace \"\(controllerNamespace)\": expected \(DNSName.labelFormat)")
        }
        guard (1...3600).contains(issuerCheckInterval) else { throw ValidationError("--issuer-check-interval must be 1 to 3600 seconds") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard (1...600).contains(shutdownGracePeriod) else { throw ValidationError("--shutdown-grace-period must be 1 to 600 seconds") }
    }

    func lifetime() throws -> TimeInterval {
        guard let duration = try? ProxyDuration(parsing: certificateLifetime), duration.milliseconds >= 60_000 else {
            throw ValidationError("--certificate-lifetime \"\(certificateLifetime)\": expected a duration of at least 1m, like 24h or 90m")
        }
        return TimeInterval(duration.milliseconds) / 1000
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "needle-controller")
        let identityAddress: ListenAddress
        let destinationAddress: ListenAddress
        let adminAddress: ListenAddress
        do {
            identityAddress = try ListenAddress(parsing: identityListen)
            destinationAddress = try ListenAddress(parsing: destinationListen)
            adminAddress = try ListenAddress(parsing: adminListen)
        } catch {
            throw ValidationError("bad listen address: \(error)")
        }
        guard let access = kubeAPIServer.map({ KubernetesAPIAccess(server: $0, caFile: kubeCAFile, tokenFile: kubeTokenFile) })
            ?? KubernetesAPIAccess.inCluster(environment: ProcessInfo.processInfo.environment)
        else {
            throw ValidationError("no Kubernetes API: pass --kube-api-server URL, or run in a pod (TokenReviews need the API)")
        }

        let metrics = ControllerMetrics()
        let store: IssuerStore
        do {
            let domain = try DNSName(parsing: trustDomain)
            store = try IssuerStore(
                files: .init(trustAnchors: trustAnchors, issuerCertificate: issuerCert, issuerKey: issuerKey),
                controllerIdentity: WorkloadIdentity.controller(trustDomain: domain, namespace: controllerNamespace),
                lifetime: try lifetime())
        } catch {
            logger.critical("cannot load the issuer", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        metrics.recordIssuerLoad(success: true, notAfterUnixSeconds: store.issuer.notAfter.timeIntervalSince1970)
        metrics.recordServingCertificate(notAfterUnixSeconds: store.serving.notAfter.timeIntervalSince1970)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let kubernetes = KubernetesClient(access: access, group: group, userAgent: "needle-controller", readTimeout: .seconds(15))
        let service = IdentityService(issuers: store, tokenReviewer: KubernetesTokenReviewer(client: kubernetes), metrics: metrics,
                                      logger: logger)
        var configuration = HTTPSServer.Configuration()
        configuration.listenHost = identityAddress.ip.description
        configuration.listenPort = identityAddress.port
        configuration.adminHost = adminAddress.ip.description
        configuration.adminPort = adminAddress.port
        configuration.maxConnections = maxConnections
        configuration.shutdownGracePeriod = .seconds(shutdownGracePeriod)
        let server = HTTPSServer(configuration: configuration, service: service, tlsContext: { store.serving.context },
                                 metrics: metrics, logger: logger, group: group)
        // Discovery: Services, EndpointSlices and pods, each listed and watched, kept in one catalog.
        let catalog = DestinationCatalog(trustDomain: store.controllerIdentity.trustDomain)
        let watchClient = KubernetesClient(access: access, group: group, userAgent: "needle-controller",
                                           readTimeout: .seconds(Int64(ResourceWatch<PodObject>.watchTimeoutSeconds + 30)))
        let watches = DestinationWatches(client: watchClient, catalog: catalog, logger: logger)
        let watching = Task { await watches.run() }
        var destinationConfiguration = configuration
        destinationConfiguration.listenHost = destinationAddress.ip.description
        destinationConfiguration.listenPort = destinationAddress.port
        destinationConfiguration.servesAdmin = false
        // Each proxy's lookups are streams of one HTTP/2 connection (each lookup a connection otherwise).
        destinationConfiguration.servesHTTP2 = true
        // A proxy has one stream per destination it uses: room for many more than HTTP/2's usual 100.
        destinationConfiguration.maxConcurrentStreams = 10_000
        let destinations = HTTPSServer(configuration: destinationConfiguration, service: DestinationService(catalog: catalog, logger: logger),
                                       tlsContext: { store.serving.mutualContext }, metrics: metrics, logger: logger, group: group)
        let bound: (service: SocketAddress, admin: SocketAddress?)
        let boundDestinations: SocketAddress
        do {
            bound = try await server.start()
            boundDestinations = try await destinations.start().service
        } catch {
            logger.critical("cannot bind", metadata: ["error": "\(error)"])
            watching.cancel()
            try? await group.shutdownGracefully()
            throw ExitCode(1)
        }
        logger.notice("serving", metadata: [
            "identity": "\(bound.service)", "destinations": "\(boundDestinations)", "admin": "\(bound.admin.map { "\($0)" } ?? "none")",
            "tls_name": "\(store.controllerIdentity.tlsName)",
            "issuer_not_after": "\(store.issuer.notAfter)", "kubernetes": "\(access.server)", "version": "\(Mesh.version)",
        ])

        let refresher = Task {
            await IssuerRefreshLoop.run(store: store, metrics: metrics, logger: logger, interval: .seconds(issuerCheckInterval))
        }
        let signal = await ShutdownSignals.next()
        logger.notice("shutting down: finishing requests in flight", metadata: ["signal": "\(signal)"])
        refresher.cancel()
        watching.cancel()
        // Streams never end on their own: end them first, so the drain does not wait out its grace period.
        catalog.finishAll()
        await destinations.shutdown()
        await server.shutdown()
        await kubernetes.shutdown()
        await watchClient.shutdown()
        try? await group.shutdownGracefully()
        logger.notice("stopped")
    }
}
