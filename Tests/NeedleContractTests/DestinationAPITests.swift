import NeedleContract
import Testing

@Suite("Destination API lines")
struct DestinationAPITests {
    func address(_ text: String) throws -> ListenAddress { try ListenAddress(parsing: text) }

    @Test("every event renders to one line and parses back to itself")
    func roundTrip() throws {
        let events: [DestinationEvent] = [
            .reset, .notKnown, .sync, .remove(try address("10.0.1.5:8080")), .remove(try address("[fd00::5]:8080")),
            .add(DestinationEndpoint(address: try address("10.0.1.5:8080"))),
            .add(DestinationEndpoint(address: try address("10.0.1.6:8080"), identity: "web.shop.serviceaccount.identity.needle.cluster.local",
                                     opaque: true, namespace: "shop", service: "web", pod: "web-7d9f-x2")),
        ]
        for event in events {
            let line = event.line
            #expect(!line.contains("\n"))
            #expect(try DestinationEvent(line: Substring(line)) == event, "\(line)")
        }
        #expect(DestinationEvent.add(DestinationEndpoint(address: try address("10.0.1.5:80"), identity: "a.b", service: "web")).line
            == "add 10.0.1.5:80 identity=a.b opaque=false service=web")
        #expect(DestinationAPI.target(for: try address("10.96.0.10:80")) == "/v1/destinations?address=10.96.0.10:80")
    }

    @Test("malformed lines are refused with what is accepted", arguments: [
        "", "hello", "reset now", "sync 1", "remove", "remove web:80", "add", "add 10.0.0.1", "add 10.0.0.1:80 opaque=yes",
        "add 10.0.0.1:80 identity=", "add 10.0.0.1:80 identity=Not_A_Name", "add 10.0.0.1:80 colour=red",
        "add 10.0.0.1:80 pod=a pod=b", "add 10.0.0.1:80 service=a.b", "add 10.0.0.1:80  pod=a", "add 10.0.0.1:80 pod",
    ])
    func malformed(line: String) {
        #expect(throws: FormatError.self) { try DestinationEvent(line: Substring(line)) }
    }

    @Test("a line over the limit is refused before it is parsed")
    func tooLong() {
        let line = "add 10.0.0.1:80 pod=" + String(repeating: "a", count: DestinationAPI.maximumLineBytes)
        #expect(throws: FormatError.self) { try DestinationEvent(line: Substring(line)) }
    }
}
