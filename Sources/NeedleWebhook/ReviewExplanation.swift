#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleInjection

/// The human-readable form of a review, for `needle review --explain`.
public struct ReviewExplanation {
    public let summary: ReviewSummary

    public init(summary: ReviewSummary) { self.summary = summary }

    public var text: String {
        let result = summary.result
        var lines = [
            "decision:  \(result.decision.outcome.rawValue)",
            "reason:    \(result.decision.reason.rawValue)",
            "pod:       \(summary.namespace)/\(summary.podName)",
            "review:    \(summary.apiVersion) uid \(summary.uid)\(summary.dryRun ? " (dry run)" : "")",
        ]
        if result.warnings.isEmpty {
            lines.append("warnings:  none")
        } else {
            lines.append("warnings:")
            lines += result.warnings.map { "  - \($0)" }
        }
        if result.patch.isEmpty {
            lines.append("patch:     none")
        } else {
            lines.append("patch:     \(result.patch.count) operations")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for operation in result.patch {
                let value = (try? encoder.encode(operation.value)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
                lines.append("  \(operation.op) \(operation.path) = \(value)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
