import NeedleContract
import NeedleInit
import Testing

@Suite("iptables plan")
struct IptablesPlanTests {
    let empty = NatTable(parsing: "")

    @Test("the default plan, exactly")
    func defaultPlan() {
        let plan = IptablesPlan.apply(RedirectOptions(), current: empty)
        #expect(plan == """
            *nat
            :NEEDLE_INBOUND - [0:0]
            :NEEDLE_OUTBOUND - [0:0]
            -A NEEDLE_INBOUND -p tcp -m multiport --dports 4191 -m comment --comment "needle/ignore-inbound-ports" -j RETURN
            -A NEEDLE_INBOUND -p tcp -m comment --comment "needle/redirect-inbound" -j REDIRECT --to-ports 4143
            -A NEEDLE_OUTBOUND -m owner --uid-owner 2102 -m comment --comment "needle/ignore-proxy-uid" -j RETURN
            -A NEEDLE_OUTBOUND -o lo -m comment --comment "needle/ignore-loopback" -j RETURN
            -A NEEDLE_OUTBOUND -p tcp -m comment --comment "needle/redirect-outbound" -j REDIRECT --to-ports 4140
            -A PREROUTING -m comment --comment "needle/install-inbound" -j NEEDLE_INBOUND
            -A OUTPUT -m comment --comment "needle/install-outbound" -j NEEDLE_OUTBOUND
            COMMIT

            """)
    }

    @Test("every option shows up in its rule")
    func everyOption() throws {
        var options = RedirectOptions()
        options.inboundProxyPort = 5143
        options.outboundProxyPort = 5140
        options.proxyUID = 3000
        options.inboundPortsToIgnore = try PortSet(parsing: "4191,9000-9100")
        options.outboundPortsToIgnore = try PortSet(parsing: "5432")
        options.subnetsToIgnore = try [CIDR](parsingCIDRList: "10.0.0.0/8,fd00::/8")
        options.portsToRedirect = try PortSet(parsing: "8080,8443")
        let lines = IptablesPlan.apply(options, current: empty).split(separator: "\n").map(String.init)
        #expect(lines.contains("-A NEEDLE_INBOUND -p tcp -m multiport --dports 4191,9000:9100 -m comment --comment \"needle/ignore-inbound-ports\" -j RETURN"))
        #expect(lines.contains("-A NEEDLE_INBOUND -s 10.0.0.0/8 -m comment --comment \"needle/ignore-inbound-subnet\" -j RETURN"))
        #expect(lines.contains("-A NEEDLE_INBOUND -p tcp -m multiport --dports 8080,8443 -m comment --comment \"needle/redirect-inbound\" -j REDIRECT --to-ports 5143"))
        #expect(lines.contains("-A NEEDLE_OUTBOUND -m owner --uid-owner 3000 -m comment --comment \"needle/ignore-proxy-uid\" -j RETURN"))
        #expect(lines.contains("-A NEEDLE_OUTBOUND -p tcp -m multiport --dports 5432 -m comment --comment \"needle/ignore-outbound-ports\" -j RETURN"))
        #expect(lines.contains("-A NEEDLE_OUTBOUND -d 10.0.0.0/8 -m comment --comment \"needle/ignore-outbound-subnet\" -j RETURN"))
        #expect(lines.contains("-A NEEDLE_OUTBOUND -p tcp -m comment --comment \"needle/redirect-outbound\" -j REDIRECT --to-ports 5140"))
        // IPv6 subnets belong to the ip6tables run only.
        #expect(!lines.contains { $0.contains("fd00::/8") })
        options.ipv6 = true
        let v6 = IptablesPlan.apply(options, current: empty)
        #expect(v6.contains("-A NEEDLE_OUTBOUND -d fd00::/8 "))
        #expect(!v6.contains("10.0.0.0/8"))
        // Ignore rules come before the redirect in each chain.
        let inbound = lines.filter { $0.hasPrefix("-A NEEDLE_INBOUND") }
        #expect(inbound.last?.contains("REDIRECT") == true)
        let outbound = lines.filter { $0.hasPrefix("-A NEEDLE_OUTBOUND") }
        #expect(outbound.first?.contains("--uid-owner") == true)
        #expect(outbound.last?.contains("REDIRECT") == true)
    }

    @Test("jumps already in the table are not added again")
    func idempotentJumps() {
        let table = NatTable(parsing: """
            *nat
            :PREROUTING ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :NEEDLE_INBOUND - [0:0]
            :NEEDLE_OUTBOUND - [0:0]
            -A PREROUTING -m comment --comment "needle/install-inbound" -j NEEDLE_INBOUND
            -A OUTPUT -m comment --comment "needle/install-outbound" -j NEEDLE_OUTBOUND
            -A NEEDLE_INBOUND -p tcp -j REDIRECT --to-ports 4143
            COMMIT
            """)
        let plan = IptablesPlan.apply(RedirectOptions(), current: table)
        #expect(!plan.contains("-A PREROUTING"))
        #expect(!plan.contains("-A OUTPUT"))
        // The chain declarations stay: iptables-restore flushes a declared chain, replacing its rules.
        #expect(plan.contains(":NEEDLE_INBOUND - [0:0]"))
    }

    @Test("multiport lists split at 15 slots, a range taking two")
    func multiportSplitting() throws {
        let twenty = PortSet((1...20).compactMap { PortRange($0 * 10, $0 * 10) })
        let groups = IptablesPlan.multiportGroups(twenty)
        #expect(groups.count == 2)
        #expect(groups[0].split(separator: ",").count == 15)
        #expect(groups[1] == "160,170,180,190,200")
        let ranges = try PortSet(parsing: "1-2,3-4,5-6,7-8,9-10,11-12,13-14,15")
        #expect(IptablesPlan.multiportGroups(ranges) == ["1:2,3:4,5:6,7:8,9:10,11:12,13:14,15"])
        let overflow = try PortSet(parsing: "1-2,3-4,5-6,7-8,9-10,11-12,13-14,15-16")
        #expect(IptablesPlan.multiportGroups(overflow) == ["1:2,3:4,5:6,7:8,9:10,11:12,13:14", "15:16"])
        #expect(IptablesPlan.multiportGroups(PortSet()) == [])
    }

    @Test("cleanup deletes the jumps exactly as saved, then flushes and deletes the chains")
    func cleanup() {
        let table = NatTable(parsing: """
            *filter
            -A INPUT -j NEEDLE_INBOUND
            COMMIT
            *nat
            :PREROUTING ACCEPT [0:0]
            :NEEDLE_INBOUND - [0:0]
            :NEEDLE_OUTBOUND - [0:0]
            -A PREROUTING -m comment --comment "needle/install-inbound" -j NEEDLE_INBOUND
            -A PREROUTING -j KUBE-SERVICES
            -A OUTPUT -m comment --comment "needle/install-outbound" -j NEEDLE_OUTBOUND
            -A NEEDLE_INBOUND -p tcp -j REDIRECT --to-ports 4143
            COMMIT
            """)
        #expect(IptablesPlan.cleanup(current: table) == """
            *nat
            -D PREROUTING -m comment --comment "needle/install-inbound" -j NEEDLE_INBOUND
            -D OUTPUT -m comment --comment "needle/install-outbound" -j NEEDLE_OUTBOUND
            -F NEEDLE_INBOUND
            -X NEEDLE_INBOUND
            -F NEEDLE_OUTBOUND
            -X NEEDLE_OUTBOUND
            COMMIT

            """)
        #expect(IptablesPlan.cleanup(current: NatTable(parsing: "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")) == nil)
    }

    @Test("expected rule counts follow the options")
    func ruleCounts() throws {
        var options = RedirectOptions()
        #expect(IptablesPlan.expectedRuleCounts(options) == ["NEEDLE_INBOUND": 2, "NEEDLE_OUTBOUND": 3])
        options.outboundPortsToIgnore = try PortSet(parsing: "1,2")
        options.subnetsToIgnore = try [CIDR](parsingCIDRList: "10.0.0.0/8")
        #expect(IptablesPlan.expectedRuleCounts(options) == ["NEEDLE_INBOUND": 3, "NEEDLE_OUTBOUND": 5])
    }
}

@Suite("IPv6 families")
struct FamilyChoiceTests {
    static let dualStack = """
        00000000000000000000000000000001 01 80 10 80       lo
        fd000000000000000000000000000005 02 40 00 80     eth0
        fe80000000000000a8c0fffffe000005 02 40 20 80     eth0
        """
    static let linkLocalOnly = """
        00000000000000000000000000000001 01 80 10 80       lo
        fe80000000000000a8c0fffffe000005 02 40 20 80     eth0
        """

    @Test("a routable IPv6 address means both families; link-local or loopback alone means IPv4 only")
    func decide() {
        #expect(FamilyChoice.decide(.on, ifInet6: Self.dualStack) == FamilyChoice(families: [false, true], ipv6Skipped: nil))
        #expect(FamilyChoice.decide(.on, ifInet6: Self.linkLocalOnly).families == [false])
        #expect(FamilyChoice.decide(.on, ifInet6: Self.linkLocalOnly).ipv6Skipped == "no IPv6 address on the pod network")
        #expect(FamilyChoice.decide(.on, ifInet6: nil).ipv6Skipped == "the kernel has no IPv6")
        #expect(FamilyChoice.decide(.off, ifInet6: Self.dualStack).families == [false])
    }

    @Test("the kernel's list parses; malformed lines are skipped")
    func parse() {
        let addresses = PodIPv6Addresses(ifInet6: Self.dualStack + "\nnot a line\nzz000000000000000000000000000005 02 40 00 80 eth1\n")
        #expect(addresses.entries.count == 3)
        #expect(addresses.routable.map(PodIPv6Addresses.display) == ["fd00:0:0:0:0:0:0:5"])
    }

    @Test("each family's options come from the one command line")
    func options() throws {
        let commandLine = try InitCommandLine(parsing: ["--subnets-to-ignore", "10.0.0.0/8,fd00::/8", "--proxy-uid", "3000"])
        let v6 = RedirectOptions(commandLine, ipv6: true)
        #expect(v6.proxyUID == 3000 && v6.subnetsOfFamily.map(\.description) == ["fd00::/8"])
        #expect(RedirectOptions(commandLine, ipv6: false).subnetsOfFamily.map(\.description) == ["10.0.0.0/8"])
        #expect(RedirectOptions(InitCommandLine(), ipv6: false) == RedirectOptions())
    }
}

@Suite("backends")
struct IptablesBackendTests {
    @Test("auto tries nft, then legacy; commands per family")
    func candidates() {
        #expect(IptablesBackend.candidates(.auto, ipv6: false).map(\.restoreCommand) == ["iptables-nft-restore", "iptables-legacy-restore"])
        #expect(IptablesBackend.candidates(.legacy, ipv6: true).map(\.saveCommand) == ["ip6tables-legacy-save"])
    }
}
