#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Logging
import NIOConcurrencyHelpers
import NeedleContract
import NeedleProxy
import NeedleServerKit

// needle-proxy [await [--timeout 120s]]. Configuration comes only from NEEDLE_PROXY_* variables.
// No argument parser: the proxy stays free of Foundation, which one would pull in.
let arguments = Array(CommandLine.arguments.dropFirst())
let environmentValues = processEnvironment()

let environment: ProxyEnvironment
do {
    environment = try ProxyEnvironment(parsing: environmentValues)
} catch {
    for problem in error.problems { TextOutput.errorLine("needle-proxy: \(problem)") }
    exit(ProxyEnvironmentError.exitCode)
}

let commandLine: ProxyCommandLine
do {
    commandLine = try ProxyCommandLine(parsing: arguments)
} catch {
    TextOutput.errorLine("needle-proxy: \(error)")
    exit(64)
}
if case .await(let timeout) = commandLine {
    exit(AwaitReady.run(adminAddress: environment.adminListenAddress, timeout: timeout))
}

LoggingSystem.bootstrap { label in
    ProxyLogHandler(label: label, level: environment.logLevel, format: environment.logFormat)
}
let logger = Logger(label: "needle-proxy")
for name in environment.unknownVariables {
    logger.warning("unknown variable ignored", metadata: ["variable": "\(name)"])
}

let server: ProxyServer
do {
    server = try ProxyServer(environment: environment, logger: logger)
} catch {
    TextOutput.errorLine("needle-proxy: \(error.description)")
    exit(ProxyEnvironmentError.exitCode)
}
let signalSources = ShutdownSignals.install { server.requestShutdown($0) }

// The main thread blocks here instead of running an async main: an async main ends the main thread with
// dispatch_main's pthread_exit, whose forced unwind makes a static executable sort every unwind entry
// (~190 M instructions at start, and 2 MiB of unwind tables resident for good).
let served = DispatchSemaphore(value: 0)
let failure = NIOLockedValueBox<String?>(nil)
Task.detached {
    do {
        try await server.run()
    } catch {
        failure.withLockedValue { $0 = "\(error)" }
    }
    served.signal()
}
served.wait()
if let error = failure.withLockedValue({ $0 }) {
    logger.error("cannot serve", metadata: ["error": "\(error)"])
    exit(1)
}
withExtendedLifetime(signalSources) {}
exit(0)
