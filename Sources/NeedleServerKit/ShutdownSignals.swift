#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch

/// SIGTERM and SIGINT, as the start of a drain, for the proxy and the injector. The default actions are
/// switched off so the process always gets to finish what is in flight.
public enum ShutdownSignals {
    /// Calls `handler` with the signal's name ("SIGTERM", "SIGINT") for every signal that arrives. Keep the
    /// returned sources alive for as long as signals should be handled.
    public static func install(_ handler: @escaping @Sendable (String) -> Void) -> [any DispatchSourceSignal] {
        let queue = DispatchQueue(label: "needle.shutdown-signals")
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { handler(name) }
            source.resume()
            sources.append(source)
        }
        return sources
    }

    /// Waits for the first SIGTERM or SIGINT and returns its name.
    public static func next() async -> String {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        let sources = install { continuation.yield($0) }
        var iterator = stream.makeAsyncIterator()
        let name = await iterator.next() ?? "end of signals"
        withExtendedLifetime(sources) {}
        return name
    }
}
