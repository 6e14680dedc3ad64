@testable import NeedleProxy
import NeedleContract
import Testing

@Suite("DNS")
struct DNSTests {
    @Test("resolv.conf as the kubelet writes it: servers, search domains, ndots; comments and unknown lines ignored")
    func configuration() throws {
        let text = """
        # written by the kubelet
        search shop.svc.cluster.local svc.cluster.local cluster.local
        nameserver 10.96.0.10
        nameserver fd00::10
        nameserver not-an-address
        options ndots:5 timeout:2 attempts:3 rotate
        sortlist 10.0.0.0/8
        """
        let parsed = ResolverConfiguration(parsing: text)
        #expect(parsed.nameServers == [try IPAddress(parsing: "10.96.0.10"), try IPAddress(parsing: "fd00::10")])
        #expect(parsed.search == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"])
        #expect(parsed.ndots == 5 && parsed.timeoutSeconds == 2 && parsed.attempts == 3)
        #expect(ResolverConfiguration(parsing: "").nameServers.isEmpty)
    }

    @Test("names are tried as resolv.conf(5) says: absolute as is, short ones through the search list first")
    func candidates() {
        var configuration = ResolverConfiguration()
        configuration.search = ["shop.svc.cluster.local", "cluster.local"]
        configuration.ndots = 5
        #expect(configuration.candidates(for: "needle-identity.needle.svc.cluster.local.") == ["needle-identity.needle.svc.cluster.local"])
        #expect(configuration.candidates(for: "needle-identity.needle.svc") == [
            "needle-identity.needle.svc.shop.svc.cluster.local", "needle-identity.needle.svc.cluster.local", "needle-identity.needle.svc"])
        configuration.ndots = 1
        #expect(configuration.candidates(for: "a.b").first == "a.b")
    }

    @Test("a query asks for one name and type, recursion desired")
    func query() throws {
        let bytes = try #require(DNSMessage.query(id: 0xBEEF, name: "a.bc.", type: .aaaa))
        #expect(bytes == [0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x61, 2, 0x62, 0x63, 0, 0, 28, 0, 1])
        #expect(DNSMessage.query(id: 1, name: "a..b", type: .a) == nil)
        #expect(DNSMessage.query(id: 1, name: String(repeating: "a", count: 64) + ".b", type: .a) == nil)
        #expect(DNSMessage.query(id: 1, name: "", type: .a) == nil)
    }

    /// An answer as a server writes it: the question, then records whose owner names point back at it.
    func response(id: UInt16 = 7, flags: UInt16 = 0x8180, name: String = "svc.example", type: UInt16 = 1,
                  records: [(owner: [UInt8], type: UInt16, ttl: UInt32, data: [UInt8])]) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF), 0, 1, 0, UInt8(records.count), 0, 0, 0, 0]
        bytes += DNSMessage.encodeName(name) ?? []
        bytes += [UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
        for record in records {
            bytes += record.owner + [UInt8(record.type >> 8), UInt8(record.type & 0xFF), 0, 1]
            bytes += [UInt8(record.ttl >> 24), UInt8(record.ttl >> 16 & 0xFF), UInt8(record.ttl >> 8 & 0xFF), UInt8(record.ttl & 0xFF)]
            bytes += [UInt8(record.data.count >> 8), UInt8(record.data.count & 0xFF)] + record.data
        }
        return bytes
    }

    let toQuestion: [UInt8] = [0xC0, 12]  // a compression pointer to the question's name

    @Test("A and AAAA answers, through a CNAME, with the smallest TTL")
    func answers() throws {
        let a = response(records: [(toQuestion, 1, 30, [10, 96, 0, 20]), (toQuestion, 1, 10, [10, 96, 0, 21])])
        #expect(try DNSMessage.answer(a, id: 7, name: "svc.example", type: .a)
            == .addresses([try IPAddress(parsing: "10.96.0.20"), try IPAddress(parsing: "10.96.0.21")], ttl: 10))
        let target = DNSMessage.encodeName("real.example") ?? []
        // The CNAME's data is a name; the A record's owner is that name, written out again.
        let cname = response(records: [(toQuestion, 5, 60, target), (target, 1, 20, [192, 0, 2, 1])])
        #expect(try DNSMessage.answer(cname, id: 7, name: "SVC.example.", type: .a) == .addresses([try IPAddress(parsing: "192.0.2.1")], ttl: 20))
        let six = response(type: 28, records: [(toQuestion, 28, 5, [0xFD, 0] + Array(repeating: 0, count: 13) + [0x20])])
        #expect(try DNSMessage.answer(six, id: 7, name: "svc.example", type: .aaaa) == .addresses([try IPAddress(parsing: "fd00::20")], ttl: 5))
        // Records for other names, or of the wrong size, are not answers.
        let stray = response(records: [(DNSMessage.encodeName("other.example") ?? [], 1, 5, [1, 2, 3, 4]), (toQuestion, 1, 5, [1, 2, 3])])
        #expect(try DNSMessage.answer(stray, id: 7, name: "svc.example", type: .a) == .noSuchName)
    }

    @Test("NXDOMAIN, SERVFAIL and truncation are told apart")
    func failures() throws {
        #expect(try DNSMessage.answer(response(flags: 0x8183, records: []), id: 7, name: "svc.example", type: .a) == .noSuchName)
        #expect(try DNSMessage.answer(response(flags: 0x8182, records: []), id: 7, name: "svc.example", type: .a) == .serverFailure(2))
        #expect(try DNSMessage.answer(response(flags: 0x8380, records: []), id: 7, name: "svc.example", type: .a) == .serverFailure(0))
    }

    @Test("answers to another query, or broken ones, are refused and never crash", arguments: [
        "wrong id", "not a response", "other question", "cut", "pointer loop", "pointer out of range",
    ])
    func malformed(kind: String) {
        var bytes = response(records: [(toQuestion, 1, 30, [10, 0, 0, 1])])
        var id: UInt16 = 7
        var name = "svc.example"
        switch kind {
        case "wrong id": id = 8
        case "not a response": bytes[2] &= 0x7F
        case "other question": name = "evil.example"
        case "cut": bytes = Array(bytes.prefix(bytes.count - 3))
        case "pointer loop": bytes.replaceSubrange(12..<14, with: [0xC0, 12])
        default: bytes[bytes.count - 16] = 0xFF  // the record's owner pointer now points past the end
        }
        #expect(throws: DNSMessage.Malformed.self) { try DNSMessage.answer(bytes, id: id, name: name, type: .a) }
    }
}
