import ArgumentParser
import NeedleContract
import NeedleInit

@main
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "needle-init",
        abstract: "Redirects the pod's TCP traffic through needle-proxy with iptables, then exits."
    )

    @Option(help: "Port of the proxy's inbound listener.")
    var inboundProxyPort = String(Mesh.inboundProxyPort)
    @Option(help: "Port of the proxy's outbound listener.")
    var outboundProxyPort = String(Mesh.outboundProxyPort)
    @Option(help: "uid the proxy runs as; its own traffic is not redirected.")
    var proxyUid = String(Mesh.proxyUID)
    @Option(help: "Inbound ports (N or LO-HI, comma-separated) that bypass the proxy.")
    var inboundPortsToIgnore = String(Mesh.adminPort)
    @Option(help: "Outbound destination ports that bypass the proxy.")
    var outboundPortsToIgnore = ""
    @Option(help: "CIDRs that bypass the proxy (as inbound source and outbound destination).")
    var subnetsToIgnore = ""
    @Option(help: "Only these inbound ports are redirected (default: all not ignored).")
    var portsToRedirect = ""
    @Option(help: "iptables backend: auto (nft, then legacy), nft or legacy.")
    var iptablesMode = "auto"
    @Option(help: "Log format: plain or json.")
    var logFormat = "plain"
    @Flag(help: "Apply the rules with ip6tables (IPv6).")
    var ipv6 = false
    @Flag(help: "Print the iptables-restore input and change nothing.")
    var dryRun = false
    @Flag(help: "Remove every rule and chain needle-init added.")
    var cleanup = false

    func run() throws {
        let parsed = InitArguments.parse(
            inboundProxyPort: inboundProxyPort, outboundProxyPort: outboundProxyPort, proxyUID: proxyUid,
            inboundPortsToIgnore: inboundPortsToIgnore, outboundPortsToIgnore: outboundPortsToIgnore,
            subnetsToIgnore: subnetsToIgnore, portsToRedirect: portsToRedirect, iptablesMode: iptablesMode,
            logFormat: logFormat, ipv6: ipv6)
        let arguments: InitArguments
        switch parsed {
        case .success(let value):
            arguments = value
        case .failure(let problems):
            for problem in problems.lines { TextOutput.errorLine("needle-init: \(problem)") }
            throw ExitCode(64)
        }
        let log = InitLog(format: arguments.logFormat)
        do {
            try InitRun(arguments: arguments, log: log).perform(dryRun: dryRun, cleanup: cleanup)
        } catch {
            log.error("\(error)")
            throw ExitCode(1)
        }
    }
}
