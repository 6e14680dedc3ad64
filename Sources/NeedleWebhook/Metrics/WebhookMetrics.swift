import NeedleInjection
import NeedleHTTPService
import Prometheus

/// The injector's Prometheus metrics, served on the admin port.
public final class WebhookMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let latency: DurationHistogram
    private let openConnections: Gauge
    private let certificateExpiry: Gauge

    static let namespace = "needle_injector"

    public init() {
        latency = registry.makeDurationHistogram(
            descriptor: Self.name("admission_duration", unit: "seconds", help: "Time from a complete request body to the reply."),
            buckets: [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                      .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                      .seconds(1), .seconds(5)]
        )
        openConnections = registry.makeGauge(descriptor: Self.name("open_connections", unit: "", help: "Open webhook connections."))
        certificateExpiry = registry.makeGauge(descriptor: Self.name(
            "serving_certificate_expiry", unit: "timestamp_seconds", help: "Not-after time of the serving certificate, in Unix seconds."))
    }

    static func name(_ metric: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: namespace, metricName: metric, unitName: unit, helpText: help)
    }

    public func recordAdmission(_ result: InjectionResult, duration: Duration) {
        registry.makeCounter(
            descriptor: Self.name("admissions", unit: "total", help: "Admission reviews answered, by outcome and reason."),
            labels: [("outcome", result.decision.outcome.rawValue), ("reason", result.decision.reason.rawValue)]
        ).increment()
        for warning in result.configWarnings {
            registry.makeCounter(
                descriptor: Self.name("config_warnings", unit: "total", help: "Config annotations ignored as invalid, by annotation."),
                labels: [("annotation", warning.annotation.key)]
            ).increment()
        }
        if result.decision.reason == .invalidInjectValue {
            registry.makeCounter(
                descriptor: Self.name("config_warnings", unit: "total", help: "Config annotations ignored as invalid, by annotation."),
                labels: [("annotation", "needle.dev/inject")]
            ).increment()
        }
        latency.record(duration)
    }

    /// Requests answered with an HTTP error (bad input, namespace lookup failure), by status code.
    public func recordHTTPError(status: Int) {
        registry.makeCounter(
            descriptor: Self.name("http_errors", unit: "total", help: "Requests answered with an HTTP error, by status."),
            labels: [("status", String(status))]
        ).increment()
    }

    public func recordCertificateLoad(success: Bool, notAfterUnixSeconds: Int64?) {
        registry.makeCounter(
            descriptor: Self.name("certificate_loads", unit: "total", help: "Serving certificate (re)loads, by result."),
            labels: [("result", success ? "success" : "failure")]
        ).increment()
        if let notAfterUnixSeconds { certificateExpiry.set(Double(notAfterUnixSeconds)) }
    }

    public func connectionOpened() { openConnections.increment() }
    public func connectionClosed() { openConnections.decrement() }

    public func render() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}

extension WebhookMetrics: ServerMetrics {}
