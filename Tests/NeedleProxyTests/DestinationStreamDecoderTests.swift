import NIOCore
import NeedleContract
@testable import NeedleProxy
import Testing

@Suite("Destination answer decoding")
struct DestinationStreamDecoderTests {
    @Test("lines split anywhere decode the same, and feed a resolution")
    func split() throws {
        let body = "reset\nadd 10.0.0.1:8080 identity=web.shop.serviceaccount.identity.needle.cluster.local opaque=false service=web\nsync\nremove 10.0.0.1:8080\nsync\n"
        let bytes = Array(body.utf8)
        for cut in [1, 2, 7, 13, bytes.count] {
            var decoder = DestinationStreamDecoder()
            var resolution = DestinationResolution()
            var events: [DestinationEvent] = []
            var start = 0
            while start < bytes.count {
                let end = min(start + cut, bytes.count)
                guard case .success(let decoded) = decoder.receive(ByteBuffer(bytes: bytes[start..<end])) else {
                    Issue.record("a well-formed answer failed to decode")
                    return
                }
                events += decoded
                start = end
            }
            #expect(events.count == 5, "cut \(cut)")
            for event in events.prefix(3) { resolution.receive(event) }
            guard case .endpoints(let endpoints) = resolution.known else {
                Issue.record("no endpoints after the first batch")
                return
            }
            #expect(endpoints.first?.identity == "web.shop.serviceaccount.identity.needle.cluster.local")
        }
    }

    @Test("a malformed line or one over the limit fails the stream with the reason")
    func failures() {
        var decoder = DestinationStreamDecoder()
        guard case .failure(.malformed) = decoder.receive(ByteBuffer(string: "reset\nadd nowhere\n")) else {
            Issue.record("a malformed line was accepted")
            return
        }
        var long = DestinationStreamDecoder()
        let result = long.receive(ByteBuffer(string: String(repeating: "a", count: DestinationAPI.maximumLineBytes + 1)))
        #expect(result == .failure(.lineTooLong))
    }
}
