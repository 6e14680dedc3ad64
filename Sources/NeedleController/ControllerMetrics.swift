import NeedleContract
import NeedleHTTPService
import Prometheus

/// needle-controller's Prometheus metrics, served on its admin port.
public final class ControllerMetrics: ServerMetrics, Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let tokenReviewLatency: DurationHistogram
    private let openConnections: Gauge
    private let issuerExpiry: Gauge
    private let servingCertificateExpiry: Gauge

    static let namespace = "needle_controller"

    public init() {
        tokenReviewLatency = registry.makeDurationHistogram(
            descriptor: Self.name("token_review_duration", unit: "seconds", help: "Time the Kubernetes TokenReview API took to answer."),
            buckets: [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                      .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5)])
        openConnections = registry.makeGauge(descriptor: Self.name("open_connections", unit: "", help: "Open identity API connections."))
        issuerExpiry = registry.makeGauge(descriptor: Self.name(
            "issuer_expiry", unit: "timestamp_seconds", help: "Not-after time of the issuer in use, in Unix seconds (0: none loaded)."))
        servingCertificateExpiry = registry.makeGauge(descriptor: Self.name(
            "serving_certificate_expiry", unit: "timestamp_seconds", help: "Not-after time of the controller's own TLS certificate, in Unix seconds."))
        // Every result exists from the start, so a rate over a counter that never moved reads 0, not nothing.
        for result in CertifyResult.allCases { certifyCounter(result).increment(by: Int64(0)) }
    }

    static func name(_ metric: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: namespace, metricName: metric, unitName: unit, helpText: help)
    }

    private func certifyCounter(_ result: CertifyResult) -> Counter {
        registry.makeCounter(descriptor: Self.name("certify", unit: "total", help: "Certify requests answered, by result."),
                             labels: [("result", result.rawValue)])
    }

    public func recordCertify(_ result: CertifyResult) { certifyCounter(result).increment() }

    public func recordTokenReview(duration: Duration) { tokenReviewLatency.record(duration) }

    public func recordIssuerLoad(success: Bool, notAfterUnixSeconds: Double?) {
        registry.makeCounter(descriptor: Self.name("issuer_loads", unit: "total", help: "Issuer and trust anchor (re)loads, by result."),
                             labels: [("result", success ? "success" : "failure")]).increment()
        if let notAfterUnixSeconds { issuerExpiry.set(notAfterUnixSeconds) }
    }

    public func recordServingCertificate(notAfterUnixSeconds: Double) { servingCertificateExpiry.set(notAfterUnixSeconds) }

    public func connectionOpened() { openConnections.increment() }
    public func connectionClosed() { openConnections.decrement() }

    public func render() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
