#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NeedleContract
import NeedleInit

// needle-init [options]: the command line is InitCommandLine's, the one the injector renders.
let commandLine: InitCommandLine
do {
    commandLine = try InitCommandLine(parsing: Array(CommandLine.arguments.dropFirst()))
} catch {
    for problem in error.lines { TextOutput.errorLine("needle-init: \(problem)") }
    exit(64)
}
if commandLine.help {
    print(InitCommandLine.usage, terminator: "")
    exit(0)
}
let log = InitLog(format: commandLine.logFormat)
do {
    try InitRun(commandLine: commandLine, log: log).perform()
} catch {
    log.error("\(error)")
    exit(1)
}
