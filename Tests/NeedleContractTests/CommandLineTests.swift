import NeedleContract
import Testing

@Suite("needle-init command line")
struct InitCommandLineTests {
    @Test("the defaults render the four always-written options and parse back")
    func defaults() throws {
        let defaults = InitCommandLine()
        #expect(defaults.rendered() == ["--inbound-proxy-port", "4143", "--outbound-proxy-port", "4140",
                                        "--proxy-uid", "2102", "--inbound-ports-to-ignore", "4191"])
        #expect(try InitCommandLine(parsing: defaults.rendered()) == defaults)
        #expect(try InitCommandLine(parsing: []) == defaults)
    }

    @Test("every option survives render and parse")
    func roundTrip() throws {
        var commandLine = InitCommandLine()
        commandLine.inboundProxyPort = 15006
        commandLine.outboundProxyPort = 15001
        commandLine.proxyUID = 0
        commandLine.inboundPortsToIgnore = try PortSet(parsing: "4191,9000-9100")
        commandLine.outboundPortsToIgnore = try PortSet(parsing: "25,443")
        commandLine.subnetsToIgnore = try [CIDR](parsingCIDRList: "10.0.0.0/8,fd00::/8")
        commandLine.portsToRedirect = try PortSet(parsing: "8080")
        commandLine.iptablesMode = .legacy
        commandLine.logFormat = .json
        commandLine.ipv6 = .off
        commandLine.dryRun = true
        commandLine.cleanup = true
        let rendered = commandLine.rendered()
        #expect(try InitCommandLine(parsing: rendered) == commandLine)
        #expect(rendered.contains("fd00::/8") == false, "subnets are one comma list")
        #expect(rendered.contains("10.0.0.0/8,fd00::/8"))
        // Each option on its own, so a default elsewhere cannot hide a lost one.
        for mode in IPv6Redirect.allCases {
            var one = InitCommandLine()
            one.ipv6 = mode
            #expect(try InitCommandLine(parsing: one.rendered()) == one)
        }
    }

    @Test("--flag=value is accepted and the last of a repeated flag wins")
    func spellings() throws {
        let parsed = try InitCommandLine(parsing: ["--ipv6=off", "--proxy-uid", "1", "--proxy-uid=7", "-h"])
        #expect(parsed.ipv6 == .off && parsed.proxyUID == 7 && parsed.help)
    }

    @Test("every bad argument is reported, one line each, naming what is accepted")
    func problems() {
        do {
            _ = try InitCommandLine(parsing: [
                "--inbound-proxy-port", "0", "--outbound-proxy-port", "70000", "--proxy-uid", "-1",
                "--inbound-ports-to-ignore", "1-2-3", "--outbound-ports-to-ignore", "x", "--subnets-to-ignore", "10.0.0.1/8",
                "--ports-to-redirect", "99999", "--iptables-mode", "fast", "--log-format", "xml", "--ipv6", "maybe",
                "--dry-run=yes", "--bogus", "--log-format",
            ])
            Issue.record("expected problems")
        } catch {
            #expect(error.lines.count == 13, "\(error.lines)")
            for flag in ["--inbound-proxy-port", "--outbound-proxy-port", "--proxy-uid", "--inbound-ports-to-ignore",
                         "--outbound-ports-to-ignore", "--subnets-to-ignore", "--ports-to-redirect", "--iptables-mode",
                         "--log-format \"xml\"", "--ipv6 \"maybe\" is invalid: expected on or off", "--dry-run takes no value",
                         "unknown argument \"--bogus\"", "--log-format needs a value"] {
                #expect(error.lines.contains { $0.hasPrefix(flag) }, "\(flag) not reported: \(error.lines)")
            }
        }
    }

    @Test("the two proxy ports must differ")
    func samePorts() {
        #expect(throws: InitCommandLine.Problems.self) {
            try InitCommandLine(parsing: ["--inbound-proxy-port", "4140"])
        }
    }

    @Test("the usage names every flag")
    func usage() {
        for flag in InitCommandLine.Flag.allCases { #expect(InitCommandLine.usage.contains(flag.rawValue)) }
    }
}

@Suite("needle-proxy command line")
struct ProxyCommandLineTests {
    @Test("serve and await render and parse back")
    func roundTrip() throws {
        #expect(try ProxyCommandLine(parsing: []) == .serve)
        #expect(ProxyCommandLine.serve.rendered().isEmpty)
        let hook = ProxyCommandLine.await(timeout: ProxyCommandLine.defaultAwaitTimeout)
        #expect(hook.rendered() == ["await", "--timeout", "120s"])
        #expect(try ProxyCommandLine(parsing: hook.rendered()) == hook)
        #expect(try ProxyCommandLine(parsing: ["await"]) == hook)
        #expect(try ProxyCommandLine(parsing: ["await", "--timeout=5s"]) == .await(timeout: .seconds(5)))
        let odd = ProxyCommandLine.await(timeout: .milliseconds(1500))
        #expect(try ProxyCommandLine(parsing: odd.rendered()) == odd)
    }

    @Test("bad arguments name what is accepted", arguments: [["serve"], ["await", "--timeout"], ["await", "--timeout", "soon"],
                                                              ["await", "--wait", "1s"]])
    func bad(arguments: [String]) {
        do {
            _ = try ProxyCommandLine(parsing: arguments)
            Issue.record("\(arguments) parsed")
        } catch {
            #expect("\(error)".contains("expected"))
        }
    }
}
