import NeedleContract
import Testing

// The value formats of DESIGN §3.4, exercised through the public API only.

@Suite("ProxyDuration")
struct ProxyDurationTests {
    @Test("parses <integer><unit> and 0", arguments: [
        ("0", 0),
        ("0ms", 0),
        ("100ms", 100),
        ("10s", 10_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        ("7d", 604_800_000),
        ("168h", 604_800_000),
    ])
    func parses(text: String, milliseconds: Int) throws {
        let duration = try ProxyDuration(parsing: text)
        #expect(duration.milliseconds == milliseconds)
        #expect(duration == ProxyDuration(milliseconds: milliseconds))
    }

    @Test("renders the largest whole unit", arguments: [
        (0, "0"),
        (1, "1ms"),
        (1500, "1500ms"),
        (1000, "1s"),
        (90_000, "90s"),
        (60_000, "1m"),
        (5_400_000, "90m"),
        (3_600_000, "1h"),
        (7_200_000, "2h"),
        (86_400_000, "1d"),
        (90_000_000, "25h"),
    ])
    func renders(milliseconds: Int, text: String) {
        #expect(ProxyDuration(milliseconds: milliseconds).description == text)
    }

    @Test("rejects malformed and out-of-range values", arguments: [
        "", "10", "1.5s", "-1s", "10 s", " 10s", "10s ", "10S", "s", "ms", "8d", "604801s", "10081m",
        "99999999999999999999s", "1h30m", "+1s", "0x10s", "10sec",
    ])
    func rejects(text: String) throws {
        let error = try #require(throws: FormatError.self) { try ProxyDuration(parsing: text) }
        #expect(error.expected == ProxyDuration.acceptedFormat)
        #expect(error.value == text)
    }

    @Test("description parses back to the same duration", arguments: [
        0, 1, 100, 999, 1000, 1500, 59_999, 60_000, 90_000, 3_600_000, 3_600_001, 86_400_000, 604_800_000,
    ])
    func roundTrip(milliseconds: Int) throws {
        let duration = ProxyDuration(milliseconds: milliseconds)
        #expect(try ProxyDuration(parsing: duration.description) == duration)
    }

    @Test("factories and ordering")
    func factoriesAndOrdering() {
        #expect(ProxyDuration.seconds(10).milliseconds == 10_000)
        #expect(ProxyDuration.milliseconds(100).milliseconds == 100)
        #expect(ProxyDuration.milliseconds(999) < ProxyDuration.seconds(1))
        #expect(!(ProxyDuration.seconds(1) < ProxyDuration.milliseconds(1000)))
    }
}

@Suite("PortSet")
struct PortSetTests {
    @Test("empty string is the empty set")
    func empty() throws {
        let ports = try PortSet(parsing: "")
        #expect(ports.isEmpty)
        #expect(ports.ranges.isEmpty)
        #expect(ports.description == "")
        #expect(!ports.contains(80))
    }

    @Test("parses ports and ranges", arguments: [
        ("80", "80"),
        ("25,587", "25,587"),
        ("8000-8100", "8000-8100"),
        (" 80 , 443 ", "80,443"),
        ("443,80", "443,80"),
        ("80,80,443,80", "80,443"),
        ("1-65535", "1-65535"),
        ("65535", "65535"),
        ("25,8000-8100,443", "25,8000-8100,443"),
        ("7-7", "7"),
    ])
    func parses(text: String, rendered: String) throws {
        let ports = try PortSet(parsing: text)
        #expect(ports.description == rendered)
        #expect(try PortSet(parsing: ports.description) == ports)
    }

    @Test("keeps written order and drops duplicates")
    func orderAndDuplicates() throws {
        let ports = try PortSet(parsing: "443,80,443,8000-8100,80")
        #expect(ports.ranges.map(\.description) == ["443", "80", "8000-8100"])
        #expect(ports.description == "443,80,8000-8100")
    }

    @Test("contains")
    func contains() throws {
        let ports = try PortSet(parsing: "25,8000-8100")
        #expect(ports.contains(25))
        #expect(ports.contains(8000))
        #expect(ports.contains(8050))
        #expect(ports.contains(8100))
        #expect(!ports.contains(24))
        #expect(!ports.contains(26))
        #expect(!ports.contains(7999))
        #expect(!ports.contains(8101))
    }

    @Test("array literal and formUnion")
    func literalAndUnion() {
        var ports: PortSet = [25, 587, 25]
        #expect(ports.description == "25,587")
        ports.formUnion([587, 3306])
        #expect(ports.description == "25,587,3306")
        let invalid: PortSet = [0, 70000, 80]
        #expect(invalid.description == "80")
    }

    @Test("rejects bad items", arguments: [
        "0", "65536", "70000", "1-70000", "100-50", "a", "80,", ",80", "1-2-3", "-5", "5-", "80,,443", "80 443",
        "0-10", "http", "+80", "99999999999999999999",
    ])
    func rejects(text: String) throws {
        let error = try #require(throws: FormatError.self) { try PortSet(parsing: text) }
        #expect(error.expected == PortSet.acceptedFormat)
        #expect(error.value == text)
    }

    @Test("PortRange bounds")
    func portRange() throws {
        #expect(PortRange(0, 10) == nil)
        #expect(PortRange(10, 5) == nil)
        #expect(PortRange(1, 65536) == nil)
        let range = try #require(PortRange(10, 20))
        #expect(range.contains(10) && range.contains(20) && !range.contains(21) && !range.contains(9))
        #expect(!range.isSinglePort)
        let single = try #require(PortRange(7, 7))
        #expect(single.isSinglePort)
        #expect(single.description == "7")
        #expect(range.description == "10-20")
    }
}

@Suite("IPAddress")
struct IPAddressTests {
    @Test("IPv4 parses and prints", arguments: [
        ("10.0.0.1", UInt32(0x0A00_0001)),
        ("0.0.0.0", UInt32(0)),
        ("127.0.0.1", UInt32(0x7F00_0001)),
        ("255.255.255.255", UInt32(0xFFFF_FFFF)),
        ("192.168.1.20", UInt32(0xC0A8_0114)),
    ])
    func v4(text: String, value: UInt32) throws {
        let address = try IPAddress(parsing: text)
        #expect(address == .v4(value))
        #expect(address.isIPv4)
        #expect(address.bitWidth == 32)
        #expect(address.description == text)
    }

    @Test("IPv6 parses to the right value", arguments: [
        ("::", IPAddress.v6(high: 0, low: 0)),
        ("::1", IPAddress.v6(high: 0, low: 1)),
        ("fd00::1", IPAddress.v6(high: 0xFD00_0000_0000_0000, low: 1)),
        ("2001:db8::8:800:200c:417a", IPAddress.v6(high: 0x2001_0DB8_0000_0000, low: 0x0008_0800_200C_417A)),
        ("::ffff:10.0.0.1", IPAddress.v6(high: 0, low: 0x0000_FFFF_0A00_0001)),
        ("1:2:3:4:5:6:7:8", IPAddress.v6(high: 0x0001_0002_0003_0004, low: 0x0005_0006_0007_0008)),
        ("1::", IPAddress.v6(high: 0x0001_0000_0000_0000, low: 0)),
        ("FD00::AB", IPAddress.v6(high: 0xFD00_0000_0000_0000, low: 0xAB)),
    ])
    func v6(text: String, value: IPAddress) throws {
        let address = try IPAddress(parsing: text)
        #expect(address == value)
        #expect(!address.isIPv4)
        #expect(address.bitWidth == 128)
        #expect(try IPAddress(parsing: address.description) == address)
    }

    // RFC 5952: lower case, no leading zeros, the longest run (two or more) of zero groups as "::",
    // the first run on a tie, and a single zero group never compressed.
    @Test("IPv6 prints in RFC 5952 form", arguments: [
        ("::", "::"),
        ("0:0:0:0:0:0:0:0", "::"),
        ("::1", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("fd00::1", "fd00::1"),
        ("2001:db8::8:800:200c:417a", "2001:db8::8:800:200c:417a"),
        ("2001:0db8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("fd00:0:0:1:0:0:0:1", "fd00:0:0:1::1"),
        ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
        ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
        ("1:0:0:0:0:0:0:0", "1::"),
        ("2001:db8:0:0:1:0:0:0", "2001:db8:0:0:1::"),
    ])
    func v6Description(text: String, rendered: String) throws {
        #expect(try IPAddress(parsing: text).description == rendered)
    }

    @Test("rejects malformed addresses", arguments: [
        "", "256.0.0.1", "1.2.3", "01.2.3.4", "1.2.3.4.5", "1.2.3.-4", "1..2.3", " 1.2.3.4",
        "1::2::3", "12345::", ":1", "1:", "g::1", ":::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "::1.2.3",
        "::1.2.3.4:5", "localhost",
    ])
    func rejects(text: String) throws {
        let error = try #require(throws: FormatError.self) { try IPAddress(parsing: text) }
        #expect(error.expected == IPAddress.acceptedFormat)
    }
}

@Suite("ListenAddress")
struct ListenAddressTests {
    @Test("round-trips", arguments: ["0.0.0.0:4143", "127.0.0.1:4140", "[::]:4143", "[fd00::1]:80", "[::1]:65535", "10.1.2.3:1"])
    func roundTrip(text: String) throws {
        let address = try ListenAddress(parsing: text)
        #expect(address.description == text)
        #expect(try ListenAddress(parsing: address.description) == address)
    }

    @Test("splits host and port")
    func parts() throws {
        let v4 = try ListenAddress(parsing: "0.0.0.0:4143")
        #expect(v4.ip == .v4(0))
        #expect(v4.port == 4143)
        let v6 = try ListenAddress(parsing: "[fd00::1]:80")
        #expect(v6.ip == .v6(high: 0xFD00_0000_0000_0000, low: 1))
        #expect(v6.port == 80)
        #expect(ListenAddress(ip: .v6(high: 0, low: 0), port: 4143).description == "[::]:4143")
        #expect(ListenAddress(ip: .v4(0x7F00_0001), port: 4140).description == "127.0.0.1:4140")
        #expect(try ListenAddress(parsing: "[FD00::1]:80").description == "[fd00::1]:80")
    }

    @Test("rejects", arguments: [
        "0.0.0.0", ":80", "0.0.0.0:0", "0.0.0.0:65536", "[::1]80", "::1:80", "localhost:80", "[::1]", "[::1]:",
        "0.0.0.0:", "0.0.0.0:http", "[1.2.3.4]:80", "[::1:80", "0.0.0.0:-1", "", "256.0.0.0:80",
    ])
    func rejects(text: String) throws {
        let error = try #require(throws: FormatError.self) { try ListenAddress(parsing: text) }
        #expect(error.expected == ListenAddress.acceptedFormat)
    }
}

@Suite("CIDR")
struct CIDRTests {
    @Test("parses", arguments: [
        ("10.0.0.0/8", 8),
        ("0.0.0.0/0", 0),
        ("10.1.2.3/32", 32),
        ("fd00::/8", 8),
        ("::/0", 0),
        ("fd00::1/128", 128),
        ("2001:db8::/32", 32),
    ])
    func parses(text: String, prefixLength: Int) throws {
        let cidr = try CIDR(parsing: text)
        #expect(cidr.prefixLength == prefixLength)
        #expect(cidr.address.isIPv4 == !text.contains(":"))
        #expect(cidr.description == text)
    }

    @Test("contains", arguments: [
        ("10.0.0.0/8", "10.0.0.0"),
        ("10.0.0.0/8", "10.255.1.2"),
        ("0.0.0.0/0", "203.0.113.9"),
        ("10.1.2.3/32", "10.1.2.3"),
        ("192.168.0.0/23", "192.168.1.255"),
        ("fd00::/8", "fd12:3456::1"),
        ("fd00::1/128", "fd00::1"),
        ("2001:db8::/96", "2001:db8::ffff:ffff"),
        ("2001:db8::/64", "2001:db8:0:0:ffff::1"),
        ("::/0", "fe80::1"),
    ])
    func contains(network: String, address: String) throws {
        let cidr = try CIDR(parsing: network)
        let ip = try IPAddress(parsing: address)
        #expect(cidr.contains(ip))
    }

    @Test("does not contain", arguments: [
        ("10.0.0.0/8", "11.0.0.1"),
        ("10.0.0.0/8", "9.255.255.255"),
        ("10.1.2.3/32", "10.1.2.4"),
        ("192.168.0.0/23", "192.168.2.0"),
        ("fd00::/8", "fe80::1"),
        ("fd00::1/128", "fd00::2"),
        ("2001:db8::/96", "2001:db8::1:0:0"),
        ("2001:db8::/64", "2001:db8:0:1::1"),
        // Families never match each other.
        ("::/0", "10.0.0.1"),
        ("fd00::/8", "10.0.0.1"),
        ("0.0.0.0/0", "::1"),
        ("10.0.0.0/8", "::ffff:10.0.0.1"),
    ])
    func doesNotContain(network: String, address: String) throws {
        let cidr = try CIDR(parsing: network)
        let ip = try IPAddress(parsing: address)
        #expect(!cidr.contains(ip))
    }

    @Test("rejects", arguments: [
        "10.0.0.0/33", "10.0.0.1/8", "10.0.0.0", "fd00::/129", "fd00::1/64", "10.0.0.0/", "/8", "10.0.0.0/8/8",
        "10.0.0.0/-1", "10.0.0.0/x", "", "10.0.0/8",
    ])
    func rejects(text: String) throws {
        let error = try #require(throws: FormatError.self) { try CIDR(parsing: text) }
        #expect(error.expected == CIDR.acceptedFormat)
    }

    @Test("list parsing")
    func list() throws {
        #expect(try [CIDR](parsingCIDRList: "").isEmpty)
        let list = try [CIDR](parsingCIDRList: "10.0.0.0/8, fd00::/8,10.0.0.0/8")
        #expect(list.map(\.description) == ["10.0.0.0/8", "fd00::/8"])
        let first = try CIDR(parsing: "10.0.0.0/8")
        let second = try CIDR(parsing: "fd00::/8")
        #expect(list == [first, second])
    }

    @Test("list rejects any bad item", arguments: ["10.0.0.0/8,", ",10.0.0.0/8", "10.0.0.0/8,10.0.0.1/8", "10.0.0.0/8;fd00::/8", "x"])
    func listRejects(text: String) throws {
        let error = try #require(throws: FormatError.self) { try [CIDR](parsingCIDRList: text) }
        #expect(error.expected == Array<CIDR>.acceptedListFormat)
        #expect(error.value == text)
    }
}

@Suite("ResourceQuantity")
struct ResourceQuantityTests {
    @Test("accepts Kubernetes quantities", arguments: [
        "100m", "0.5", "1", "64Mi", "1Gi", "1e3", "1E3", ".5", "5.", "+1", "2k", "1e-3", "1E+2", "128974848", "1Ki", "2Ti",
    ])
    func accepts(text: String) throws {
        let quantity = try ResourceQuantity(parsing: text)
        #expect(quantity.text == text)
        #expect(quantity.description == text)
    }

    @Test("rejects", arguments: ["lots", "1.5.0", "64MB", "-1", "", "1 Gi", "Mi", ".", "+", "1e", "1mi", "64 ", " 64", "1Gib", "0x10"])
    func rejects(text: String) throws {
        let error = try #require(throws: FormatError.self) { try ResourceQuantity(parsing: text) }
        #expect(error.expected == ResourceQuantity.acceptedFormat)
    }

    @Test("approximate values")
    func approximateValue() throws {
        #expect(try ResourceQuantity(parsing: "64Mi").approximateValue == 67_108_864)
        #expect(try ResourceQuantity(parsing: "1Gi").approximateValue == 1_073_741_824)
        #expect(try ResourceQuantity(parsing: "1e3").approximateValue == 1000)
        #expect(try ResourceQuantity(parsing: "1E3").approximateValue == 1000)
        #expect(try ResourceQuantity(parsing: "2k").approximateValue == 2000)
        #expect(try ResourceQuantity(parsing: "0.5").approximateValue == 0.5)
        #expect(try ResourceQuantity(parsing: "1M").approximateValue == 1_000_000)
        let milli = try ResourceQuantity(parsing: "100m").approximateValue
        #expect(abs(milli - 0.1) < 1e-12)
        // A request/limit comparison must see 128Mi > 100M (134217728 > 100000000).
        #expect(try ResourceQuantity(parsing: "128Mi").approximateValue > ResourceQuantity(parsing: "100M").approximateValue)
    }
}

@Suite("Enumerated spellings")
struct SpellingTests {
    @Test("LogLevel accepts its spellings", arguments: LogLevel.allCases)
    func logLevel(level: LogLevel) throws {
        #expect(try LogLevel(parsing: level.rawValue) == level)
    }

    @Test("LogLevel rejects others", arguments: ["Info", "INFO", "warn", "fatal", "", " info"])
    func logLevelRejects(text: String) throws {
        let error = try #require(throws: FormatError.self) { try LogLevel(parsing: text) }
        #expect(error.expected == LogLevel.acceptedFormat)
    }

    @Test("LogLevel spellings are exactly the five of DESIGN §3.3")
    func logLevelSet() {
        #expect(LogLevel.allCases.map(\.rawValue) == ["trace", "debug", "info", "warning", "error"])
        #expect(LogFormat.allCases.map(\.rawValue) == ["plain", "json"])
    }

    @Test("LogFormat")
    func logFormat() throws {
        #expect(try LogFormat(parsing: "plain") == .plain)
        #expect(try LogFormat(parsing: "json") == .json)
        for text in ["JSON", "Plain", "text", ""] {
            let error = try #require(throws: FormatError.self) { try LogFormat(parsing: text) }
            #expect(error.expected == LogFormat.acceptedFormat)
        }
    }

    @Test("parseBool accepts true and false only")
    func bool() throws {
        #expect(try parseBool("true") == true)
        #expect(try parseBool("false") == false)
    }

    @Test("parseBool rejects", arguments: ["True", "FALSE", "yes", "no", "1", "0", "", "on", "enabled"])
    func boolRejects(text: String) throws {
        let error = try #require(throws: FormatError.self) { try parseBool(text) }
        #expect(error.value == text)
        #expect(error.expected == "true or false")
    }

    @Test("parseEnabled accepts enabled and disabled only")
    func enabled() throws {
        #expect(try parseEnabled("enabled") == true)
        #expect(try parseEnabled("disabled") == false)
    }

    @Test("parseEnabled rejects", arguments: ["Enabled", "DISABLED", "true", "yes", "1", "", "enable"])
    func enabledRejects(text: String) throws {
        let error = try #require(throws: FormatError.self) { try parseEnabled(text) }
        #expect(error.value == text)
        #expect(error.expected == "enabled or disabled")
    }

    @Test("FormatError description names the value, the detail and the expected format")
    func formatErrorDescription() {
        let error = FormatError(value: "8d", expected: "a duration", detail: "longer than 7d")
        #expect(error.description == "\"8d\" is not valid (longer than 7d); expected a duration")
        #expect(FormatError(value: "x", expected: "y").description == "\"x\" is not valid; expected y")
    }
}
