import NIOConcurrencyHelpers
import NIOCore
import NeedleContract
import Prometheus

/// The proxy's metrics, named as Linkerd's proxy names them so dashboards and canary tools work unchanged.
/// Labels are bounded: `target_addr` takes at most `maximumTargets` values; later targets share "overflow".
public final class ProxyMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// `response_latency_ms`, kept apart from the registry so its bucket labels read as Linkerd's do.
    let latencies = LatencyHistogramFamily()
    public let maximumTargets: Int

    private struct TargetKey: Hashable {
        var direction: Direction
        var target: String
        var tls: TLSLabel
        var destination: DestinationLabels
    }

    private struct Targets {
        var metrics: [TargetKey: TargetMetrics] = [:]
        /// How many of them name a pod: pods come and go with every rollout, so they have a cap of their own
        /// (`maximumPodTargets`) and never crowd out Services.
        var withPod = 0
    }

    private let targets = NIOLockedValueBox(Targets())
    /// Label combinations with a `dst_pod`; later pods are counted under their Service, without the pod.
    public let maximumPodTargets: Int
    public let identity: IdentityMetrics

    public init(maximumTargets: Int = 500, maximumPodTargets: Int = 500) {
        self.maximumTargets = maximumTargets
        self.maximumPodTargets = maximumPodTargets
        identity = IdentityMetrics(registry: registry)
    }

    static func descriptor(_ name: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: unit, helpText: help)
    }

    /// `destination`: what discovery said about an outbound destination (DESIGN §8); empty otherwise.
    func target(_ direction: Direction, address: ListenAddress, tls: TLSLabel,
                destination: DestinationLabels = DestinationLabels()) -> TargetMetrics {
        targets.withLockedValue { targets in
            var key = TargetKey(direction: direction, target: address.description, tls: tls, destination: destination)
            if let existing = targets.metrics[key] { return existing }
            if key.destination.pod != nil, targets.withPod >= maximumPodTargets {
                key.destination.pod = nil
                if let existing = targets.metrics[key] { return existing }
            }
            if targets.metrics.count - targets.withPod >= maximumTargets, key.destination.pod == nil {
                key.target = "overflow"
                key.destination = DestinationLabels()
                if case .mesh = key.tls { key.tls = .mesh(clientID: "overflow") }
                if case .meshServer = key.tls { key.tls = .meshServer(serverID: "overflow") }
                if let existing = targets.metrics[key] { return existing }
            }
            let created = TargetMetrics(registry: registry, latencies: latencies, direction: direction, target: key.target, tls: key.tls,
                                        destination: key.destination)
            targets.metrics[key] = created
            if key.destination.pod != nil { targets.withPod += 1 }
            return created
        }
    }

    /// An outbound connection sent to its original destination because discovery could not say where it
    /// goes (DESIGN §8): availability first, and this shows it.
    func recordDiscoveryFallback(reason: String) {
        registry.makeCounter(
            descriptor: Self.descriptor("outbound_discovery_fallback", unit: "total",
                                        help: "Outbound connections sent to their original destination in plaintext because discovery had no answer."),
            labels: [("reason", reason)]
        ).increment()
    }

    public func recordDetection(_ detected: DetectedProtocol, timedOut: Bool) {
        registry.makeCounter(
            descriptor: Self.descriptor("protocol_detect", unit: "total", help: "Connections by detected protocol."),
            labels: [("protocol", detected.metricLabel)]
        ).increment()
        if timedOut {
            registry.makeCounter(descriptor: Self.descriptor("protocol_detect_timeout", unit: "total",
                                                             help: "Detections that ended by timeout (server-speaks-first or idle clients)."))
                .increment()
        }
    }

    /// An inbound connection detected as opaque at the detect timeout whose client then spoke HTTP
    /// (`LateRequestCheck`): closed so the request cannot reach the app unparsed.
    public func recordLateRequestRefused() {
        registry.makeCounter(
            descriptor: Self.descriptor("inbound_late_request_refused", unit: "total",
                                        help: "Inbound connections closed because the client sent HTTP after protocol detection had timed out."),
            labels: []
        ).increment()
    }

    /// An inbound mesh TLS connection that did not authenticate (handshake failed or timed out).
    public func recordMeshTLSFailure() {
        registry.makeCounter(
            descriptor: Self.descriptor("inbound_tls_handshake_failure", unit: "total",
                                        help: "Inbound mesh TLS connections closed because the handshake or the client certificate failed."),
            labels: []
        ).increment()
    }

    public func recordRefused(_ direction: Direction) {
        registry.makeCounter(
            descriptor: Self.descriptor("tcp_refused", unit: "total", help: "Accepted connections closed without forwarding (loop, not redirected, not a pod IP)."),
            labels: [("direction", direction.rawValue)]
        ).increment()
    }

    /// Prometheus text: the registry, then the process metrics read from /proc at scrape time.
    public func render() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        latencies.emit(into: &buffer)
        buffer += ProcessMetrics.read().exposition.utf8
        return buffer
    }
}

/// The counters of one (direction, target, tls) combination, made once and reused by every connection.
public final class TargetMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let latencies: LatencyHistogramFamily
    private let labels: [(String, String)]
    let requests: Counter
    let tcpOpen: Counter
    let tcpClose: Counter
    let tcpOpenConnections: Gauge
    let readBytes: Counter
    let writeBytes: Counter
    private let responses = NIOLockedValueBox<[Int: ResponseSeries]>([:])

    init(registry: PrometheusCollectorRegistry, latencies: LatencyHistogramFamily, direction: Direction, target: String,
         tls: TLSLabel, destination: DestinationLabels = DestinationLabels()) {
        self.registry = registry
        self.latencies = latencies
        labels = [("direction", direction.rawValue), ("target_addr", target)] + tls.labels + destination.labels
        requests = registry.makeCounter(descriptor: ProxyMetrics.descriptor("request", unit: "total", help: "HTTP requests."), labels: labels)
        tcpOpen = registry.makeCounter(descriptor: ProxyMetrics.descriptor("tcp_open", unit: "total", help: "TCP connections opened."), labels: labels)
        tcpClose = registry.makeCounter(descriptor: ProxyMetrics.descriptor("tcp_close", unit: "total", help: "TCP connections closed."), labels: labels)
        tcpOpenConnections = registry.makeGauge(descriptor: ProxyMetrics.descriptor("tcp_open_connections", unit: "", help: "TCP connections open."), labels: labels)
        readBytes = registry.makeCounter(descriptor: ProxyMetrics.descriptor("tcp_read_bytes", unit: "total", help: "Bytes read from the client side."), labels: labels)
        writeBytes = registry.makeCounter(descriptor: ProxyMetrics.descriptor("tcp_write_bytes", unit: "total", help: "Bytes written to the client side."), labels: labels)
    }

    public func connectionOpened() {
        tcpOpen.increment()
        tcpOpenConnections.increment()
    }

    public func connectionClosed() {
        tcpClose.increment()
        tcpOpenConnections.decrement()
    }

    /// The response counter and latency histogram for one status (nil: the exchange failed before any
    /// status), made on first use and shared by every connection of this target.
    func responseSeries(status: Int?) -> ResponseSeries {
        let code = status ?? 0
        return responses.withLockedValue { cache -> ResponseSeries in
            if let entry = cache[code] { return entry }
            let statusLabel = status.map(String.init) ?? ""
            let classification = (status ?? 599) >= 500 ? "failure" : "success"
            let responseLabels = labels + [("status_code", statusLabel), ("classification", classification)]
            let series = ResponseSeries(
                status: status,
                count: registry.makeCounter(descriptor: ProxyMetrics.descriptor("response", unit: "total", help: "HTTP responses."),
                                            labels: responseLabels),
                latency: latencies.make(labels: labels + [("status_code", statusLabel)]))
            cache[code] = series
            return series
        }
    }
}

/// The metrics one response status feeds.
struct ResponseSeries: Sendable {
    let status: Int?
    let count: Counter
    let latency: LatencyHistogram

    func record(latencyMilliseconds: Double) {
        count.increment()
        latency.record(milliseconds: latencyMilliseconds)
    }
}

/// What an HTTP exchange reports; one per client connection (or HTTP/2 stream). A request is counted once
/// its upstream is known, under the labels of the endpoint it went to when discovery chose one (`tls`,
/// `server_id`, `dst_pod` of that endpoint), else under the connection's; its response under the same. It
/// keeps the series of the last status it saw: a connection's responses mostly share one status and
/// endpoint, and this spares each of them the target's lock and table look-up.
struct RequestMetrics {
    let target: TargetMetrics
    /// The endpoint's metrics for the exchange in flight, once its upstream is known (nil: the connection's).
    private var exchangeTarget: TargetMetrics?
    /// A request started and not yet counted (its upstream is not known yet).
    private var requestPending = false
    /// The request in flight was counted under an upstream already: a second upstream is a retry.
    private var requestCounted = false
    private var lastSeries: ResponseSeries?
    private var lastSeriesTarget: ObjectIdentifier?

    init(target: TargetMetrics) {
        self.target = target
    }

    mutating func requestStarted() {
        requestPending = true
        requestCounted = false
    }

    /// The exchange's upstream is known; `endpoint`: the metrics of the endpoint discovery chose, if any.
    /// Known again for the same request (the one retry on a fresh connection, maybe to another endpoint):
    /// the request counts again there, so the endpoint that answers has a request for its response.
    mutating func upstreamKnown(_ endpoint: TargetMetrics?) {
        exchangeTarget = endpoint
        if requestCounted {
            (endpoint ?? target).requests.increment()
        } else {
            countPendingRequest()
        }
    }

    mutating func responseCompleted(status: Int?, since start: NIODeadline, now: NIODeadline = .now()) {
        countPendingRequest()
        requestCounted = false
        let elapsed = now - start
        let owner = exchangeTarget ?? target
        exchangeTarget = nil
        let series: ResponseSeries
        if let last = lastSeries, last.status == status, lastSeriesTarget == ObjectIdentifier(owner) {
            series = last
        } else {
            series = owner.responseSeries(status: status)
            lastSeries = series
            lastSeriesTarget = ObjectIdentifier(owner)
        }
        series.record(latencyMilliseconds: Double(elapsed.nanoseconds) / 1_000_000)
    }

    private mutating func countPendingRequest() {
        guard requestPending else { return }
        requestPending = false
        requestCounted = true
        (exchangeTarget ?? target).requests.increment()
    }
}

/// The proxy's certificate, named as Linkerd's proxy names these.
public final class IdentityMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let expiration: Gauge
    private let refresh: Gauge

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        expiration = registry.makeGauge(descriptor: ProxyMetrics.descriptor(
            "identity_cert_expiration", unit: "timestamp_seconds", help: "When the certificate in use expires, in Unix seconds."))
        refresh = registry.makeGauge(descriptor: ProxyMetrics.descriptor(
            "identity_cert_refresh", unit: "timestamp_seconds", help: "When the certificate in use was obtained, in Unix seconds."))
    }

    func certified(expiresAt: Double, at: Double) {
        expiration.set(expiresAt)
        refresh.set(at)
    }

    func refreshed(ok: Bool) {
        registry.makeCounter(descriptor: ProxyMetrics.descriptor("identity_cert_refreshes", unit: "total",
                                                                 help: "Certificate requests to the identity service, by result."),
                             labels: [("result", ok ? "ok" : "error")]).increment()
    }
}
