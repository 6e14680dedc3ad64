import NIOConcurrencyHelpers

/// One `response_latency_ms` series, written exactly as Linkerd's proxy writes it: whole-millisecond
/// bucket labels (`le="500"`, not `le="500.0"`) and an integer count. Canary tools (Flagger, Iter8) match
/// `le="500"` literally, and swift-prometheus can only write a bucket as a `Double`, hence this type.
final class LatencyHistogram: Sendable {
    /// Linkerd's bucket upper bounds, in milliseconds; `+Inf` follows them.
    static let boundsMilliseconds: [Int] = [
        1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000,
        10000, 20000, 30000, 40000, 50000,
    ]

    private struct Counts {
        /// Per bucket, not cumulative: a sample adds to one slot; the rendering sums.
        var perBucket = [UInt64](repeating: 0, count: LatencyHistogram.boundsMilliseconds.count + 1)
        var sumMicroseconds: UInt64 = 0
    }

    /// `name="value",…` of the series, escaped once, without `le`.
    private let renderedLabels: [UInt8]
    private let counts = NIOLockedValueBox(Counts())

    init(labels: [(String, String)]) {
        renderedLabels = LatencyHistogram.render(labels: labels)
    }

    func record(milliseconds: Double) {
        let value = milliseconds.isFinite ? max(0, milliseconds) : 0
        let slot = LatencyHistogram.boundsMilliseconds.firstIndex { value <= Double($0) }
            ?? LatencyHistogram.boundsMilliseconds.count
        // Microseconds fit a UInt64 for 584,000 years of latency; the cap keeps a wild clock from trapping.
        let micros = UInt64(min(value * 1000, 1e15))
        counts.withLockedValue { counts in
            counts.perBucket[slot] &+= 1
            counts.sumMicroseconds &+= micros
        }
    }

    /// The `_bucket`, `_sum` and `_count` lines of this series.
    func emit(name: String, into buffer: inout [UInt8]) {
        let snapshot = counts.withLockedValue { $0 }
        var cumulative: UInt64 = 0
        for (slot, count) in snapshot.perBucket.enumerated() {
            cumulative &+= count
            let bound = slot < LatencyHistogram.boundsMilliseconds.count
                ? String(LatencyHistogram.boundsMilliseconds[slot]) : "+Inf"
            line(name + "_bucket", extra: "le=\"\(bound)\"", value: String(cumulative), into: &buffer)
        }
        line(name + "_sum", extra: nil, value: LatencyHistogram.milliseconds(micros: snapshot.sumMicroseconds), into: &buffer)
        line(name + "_count", extra: nil, value: String(cumulative), into: &buffer)
    }

    private func line(_ name: String, extra: String?, value: String, into buffer: inout [UInt8]) {
        buffer += name.utf8
        let hasLabels = !renderedLabels.isEmpty || extra != nil
        if hasLabels { buffer.append(UInt8(ascii: "{")) }
        buffer += renderedLabels
        if let extra {
            if !renderedLabels.isEmpty { buffer.append(UInt8(ascii: ",")) }
            buffer += extra.utf8
        }
        if hasLabels { buffer.append(UInt8(ascii: "}")) }
        buffer.append(UInt8(ascii: " "))
        buffer += value.utf8
        buffer.append(UInt8(ascii: "\n"))
    }

    /// Milliseconds with at most three decimals and no trailing zeros: `12`, `12.5`, `0.042`.
    static func milliseconds(micros: UInt64) -> String {
        let whole = String(micros / 1000)
        var fraction = micros % 1000
        if fraction == 0 { return whole }
        var digits = 3
        while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
        let text = String(fraction)
        return whole + "." + String(repeating: "0", count: digits - text.count) + text
    }

    /// Prometheus text-format label pairs; values escape `\`, `"` and newline as the format requires.
    static func render(labels: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (index, (name, value)) in labels.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += name.utf8
            out += "=\"".utf8
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): out += "\\\\".utf8
                case UInt8(ascii: "\""): out += "\\\"".utf8
                case UInt8(ascii: "\n"): out += "\\n".utf8
                default: out.append(byte)
                }
            }
            out.append(UInt8(ascii: "\""))
        }
        return out
    }
}

/// Every `response_latency_ms` series of the proxy, written together under one `# TYPE` line.
final class LatencyHistogramFamily: Sendable {
    static let name = "response_latency_ms"
    private let series = NIOLockedValueBox<[LatencyHistogram]>([])

    func make(labels: [(String, String)]) -> LatencyHistogram {
        let histogram = LatencyHistogram(labels: labels)
        series.withLockedValue { $0.append(histogram) }
        return histogram
    }

    func emit(into buffer: inout [UInt8]) {
        let all = series.withLockedValue { $0 }
        guard !all.isEmpty else { return }
        buffer += "# HELP \(Self.name) Time from request head to response end, in milliseconds.\n".utf8
        buffer += "# TYPE \(Self.name) histogram\n".utf8
        for histogram in all { histogram.emit(name: Self.name, into: &buffer) }
    }
}
