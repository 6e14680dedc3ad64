#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NeedleContract

/// process_* metrics from /proc, read at scrape time (no Foundation).
struct ProcessMetrics {
    var residentBytes: Int?
    var cpuSeconds: Double?
    var openFileDescriptors: Int?
    var startTimeSeconds: Double?

    static func read() -> ProcessMetrics {
        var metrics = ProcessMetrics()
        let pageSize = sysconf(Int32(_SC_PAGESIZE))
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        if let statm = LocalFile.read("/proc/self/statm"), let resident = statm.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) {
            metrics.residentBytes = resident * pageSize
        }
        // Fields after the parenthesised command name (which may contain spaces).
        if let stat = LocalFile.read("/proc/self/stat"), let close = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
            if fields.count > 19, let user = Double(fields[11]), let system = Double(fields[12]), ticks > 0 {
                metrics.cpuSeconds = (user + system) / ticks
                if let started = Double(fields[19]), let boot = bootTime() {
                    metrics.startTimeSeconds = boot + started / ticks
                }
            }
        }
        metrics.openFileDescriptors = countDirectoryEntries("/proc/self/fd")
        return metrics
    }

    var exposition: String {
        var text = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: String?) {
            guard let value else { return }
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", residentBytes.map(String.init))
        metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpuSeconds.map { "\($0)" })
        metric("process_open_fds", "gauge", "Number of open file descriptors.", openFileDescriptors.map(String.init))
        metric("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", startTimeSeconds.map { "\($0)" })
        return text
    }

    static func bootTime() -> Double? {
        guard let stat = LocalFile.read("/proc/stat") else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6))
        }
        return nil
    }

    static func countDirectoryEntries(_ path: String) -> Int? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                raw[0] == UInt8(ascii: ".") && (raw[1] == 0 || (raw[1] == UInt8(ascii: ".") && raw[2] == 0))
            }
            if !isDot { count += 1 }
        }
        return count - 1  // the descriptor opendir itself holds
    }
}
