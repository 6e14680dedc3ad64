import NIOCore

/// At most one log line per interval. Pure: the caller passes the time.
struct LogRateLimiter {
    let interval: TimeAmount
    private var lastLogged: NIODeadline?
    private var suppressed = 0

    init(interval: TimeAmount) {
        self.interval = interval
    }

    /// nil when this occurrence should not be logged; otherwise how many were skipped since the last line.
    mutating func shouldLog(now: NIODeadline) -> Int? {
        if let lastLogged, now - lastLogged < interval {
            suppressed += 1
            return nil
        }
        lastLogged = now
        defer { suppressed = 0 }
        return suppressed
    }
}
