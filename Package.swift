// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Needle",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "needle-injector", targets: ["needle-injector"]),
        .executable(name: "needle", targets: ["needle"]),
        .executable(name: "needle-init", targets: ["needle-init"]),
        .executable(name: "needle-proxy", targets: ["needle-proxy"]),
        .executable(name: "needle-controller", targets: ["needle-controller"]),
        .library(name: "NeedleContract", targets: ["NeedleContract"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // Pure contract shared by the injector and the proxy: names, ports, value formats, proxy environment.
        .target(name: "NeedleContract"),
        // Pure injection logic: decision, config annotations, patch plan. No I/O.
        .target(name: "NeedleInjection", dependencies: ["NeedleContract"]),
        // What the proxy and the injector both serve with: admin responder, shutdown signals, drain on NIO's
        // quiesce, connection cap. No Foundation.
        .target(
            name: "NeedleServerKit",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
            ]
        ),
        // A request/response service over HTTPS (one route, whole bodies): the webhook's and the controller's
        // identity API's server, with per-phase deadlines, a connection cap and a graceful drain.
        .target(
            name: "NeedleHTTPService",
            dependencies: [
                "NeedleContract",
                "NeedleServerKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Workload identity's pure core (DESIGN §7): certificate requests checked, certificates issued by an
        // issuer checked against the trust anchors, TokenReview requests and verdicts. No I/O.
        .target(
            name: "NeedleIdentity",
            dependencies: [
                "NeedleContract",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // Discovery's pure core (DESIGN §8): Services, EndpointSlices and pods as kept records, the answer for
        // an IP:port, and the event lines between two answers. No I/O.
        .target(name: "NeedleDiscovery", dependencies: ["NeedleContract"]),
        // The Kubernetes API client of the injector and the controller: access, token, TLS.
        .target(
            name: "NeedleKubernetes",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The webhook: AdmissionReview codec, namespace directory, TLS, metrics.
        .target(
            name: "NeedleWebhook",
            dependencies: [
                "NeedleKubernetes",
                "NeedleInjection",
                "NeedleServerKit",
                "NeedleHTTPService",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // The micro-proxy: listeners, detection, forwarding, HTTP/1.1 and HTTP/2, metrics, admin. No Foundation.
        .target(
            name: "NeedleProxy",
            dependencies: [
                "NeedleContract",
                "NeedleServerKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "needle-proxy",
            dependencies: ["NeedleProxy", "NeedleServerKit", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
        // Fuzzing harnesses for the proxy's pure parts, and their libFuzzer entry points (Fuzz/run). Debug
        // builds only: the harnesses reach internal types through @testable import.
        .target(name: "CNeedleFuzzer", path: "Fuzz/CNeedleFuzzer"),
        .target(
            name: "NeedleProxyFuzzing",
            dependencies: ["NeedleProxy", "NeedleInjection", "CNeedleFuzzer", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOHTTP1", package: "swift-nio")]
        ),
        .executableTarget(name: "needle-fuzz-http1-exchange", dependencies: ["NeedleProxyFuzzing"], path: "Fuzz/HTTP1Exchange"),
        .executableTarget(name: "needle-fuzz-protocol-detection", dependencies: ["NeedleProxyFuzzing"], path: "Fuzz/ProtocolDetection"),
        .executableTarget(name: "needle-fuzz-http1-wire", dependencies: ["NeedleProxyFuzzing"], path: "Fuzz/HTTP1Wire"),
        .executableTarget(name: "needle-fuzz-dns-answer", dependencies: ["NeedleProxyFuzzing"], path: "Fuzz/DNSAnswer"),
        .executableTarget(name: "needle-fuzz-json-review", dependencies: ["NeedleProxyFuzzing"], path: "Fuzz/JSONReview"),
        // needle-init: the iptables plan (pure) and its application. No Foundation: it ships in the proxy image.
        .target(name: "NeedleInit", dependencies: ["NeedleContract"]),
        .executableTarget(
            name: "needle-init",
            // No argument parser: InitCommandLine (NeedleContract) parses what the injector renders.
            dependencies: ["NeedleInit"]
        ),
        .executableTarget(
            name: "needle-injector",
            dependencies: ["NeedleWebhook", "NeedleServerKit", "NeedleHTTPService", "NeedleKubernetes",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The control plane's services: identity (certify) and discovery (destinations). Thin I/O around
        // NeedleIdentity and NeedleDiscovery.
        .target(
            name: "NeedleController",
            dependencies: [
                "NeedleIdentity",
                "NeedleDiscovery",
                "NeedleHTTPService",
                "NeedleKubernetes",
                "NeedleContract",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "needle-controller",
            dependencies: ["NeedleController", "NeedleDiscovery", "NeedleServerKit", "NeedleHTTPService", "NeedleKubernetes",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // needle install / inject: manifests, certificates, offline workload injection.
        .target(
            name: "NeedleInstall",
            dependencies: ["NeedleInjection", "NeedleWebhook", "NeedleIdentity", .product(name: "Yams", package: "Yams")]
        ),
        .executableTarget(
            name: "needle",
            dependencies: ["NeedleWebhook", "NeedleInstall", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "NeedleContractTests", dependencies: ["NeedleContract"]),
        .testTarget(
            name: "NeedleServerKitTests",
            dependencies: ["NeedleServerKit", .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(name: "NeedleInjectionTests", dependencies: ["NeedleInjection"]),
        .testTarget(name: "NeedleHTTPServiceTests", dependencies: ["NeedleHTTPService"]),
        // A throwaway PKI (trust anchor, issuer, CSRs) for the identity and controller tests.
        .target(
            name: "IdentityTestSupport",
            dependencies: [
                "NeedleContract",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            path: "Tests/IdentityTestSupport"
        ),
        .testTarget(name: "NeedleIdentityTests", dependencies: ["NeedleIdentity", "IdentityTestSupport"]),
        .testTarget(name: "NeedleDiscoveryTests", dependencies: ["NeedleDiscovery", "NeedleContract"]),
        .testTarget(name: "NeedleControllerTests", dependencies: ["NeedleController", "NeedleIdentity", "NeedleDiscovery", "IdentityTestSupport"]),
        .testTarget(name: "NeedleInitTests", dependencies: ["NeedleInit"]),
        .testTarget(name: "NeedleProxyTests", dependencies: ["NeedleProxy", "NeedleProxyFuzzing", "NeedleIdentity", "IdentityTestSupport"]),
        .testTarget(name: "NeedleInstallTests", dependencies: ["NeedleInstall"], exclude: ["Workloads"]),
        // Fixtures are read from the source tree (#filePath) so the refresh switch can rewrite the goldens.
        .testTarget(name: "NeedleWebhookTests", dependencies: ["NeedleWebhook", "NeedleKubernetes"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
