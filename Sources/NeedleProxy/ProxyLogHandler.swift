#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import NeedleContract

/// One line per event on standard error, plain (`time level message key=value`) or JSON. No Foundation.
public struct ProxyLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public let format: LogFormat
    public let label: String

    public init(label: String, level: NeedleContract.LogLevel, format: LogFormat) {
        self.label = label
        self.format = format
        switch level {
        case .trace: logLevel = .trace
        case .debug: logLevel = .debug
        case .info: logLevel = .info
        case .warning: logLevel = .warning
        case .error: logLevel = .error
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        let time = Self.timestamp()
        var line: String
        switch format {
        case .plain:
            line = "\(time) \(event.level) \(event.message)"
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        case .json:
            line = "{\"time\":\(TextOutput.jsonQuoted(time)),\"level\":\(TextOutput.jsonQuoted("\(event.level)")),\"msg\":\(TextOutput.jsonQuoted("\(event.message)"))"
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) { line += ",\(TextOutput.jsonQuoted(key)):\(TextOutput.jsonQuoted("\(value)"))" }
            line += "}"
        }
        TextOutput.errorLine(line)
    }

    /// RFC 3339 UTC with milliseconds.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}
