import NeedleContract
@testable import NeedleProxy
import Testing

@Suite("Where outbound connections go, from what discovery said")
struct OutboundDestinationTests {
    func endpoint(_ text: String, identity: String? = nil, opaque: Bool = false, service: String? = "web",
                  pod: String? = nil) throws -> DestinationEndpoint {
        DestinationEndpoint(address: try ListenAddress(parsing: text), identity: identity, opaque: opaque, namespace: "shop",
                            service: service, pod: pod)
    }

    @Test("routes become destinations; an empty endpoint set and an unanswered wait are fallbacks")
    func fromRoutes() throws {
        let a = try endpoint("10.0.0.1:80")
        #expect(OutboundDestination(nil) == .original(nil))
        #expect(OutboundDestination(.original(.notKnown)) == .original(.notKnown))
        #expect(OutboundDestination(.endpoints([a])) == .discovered([a]))
        #expect(OutboundDestination(.endpoints([])) == .original(.noEndpoints))
        #expect(OutboundDestination(.wait) == .original(.noAnswer(afterMilliseconds: 0)))
    }

    @Test("fallback reasons are a fixed set of words, whatever the error said; not known is no fallback")
    func fallbackReasons() {
        #expect(DiscoveryFallback.notKnown.metricReason == nil)
        #expect(DiscoveryFallback.noEndpoints.metricReason == "no_endpoints")
        #expect(DiscoveryFallback.noAnswer(afterMilliseconds: 1000).metricReason == "timeout")
        #expect(DiscoveryFallback.unavailable("cannot reach 10.96.0.20:8086: connection refused").metricReason == "unavailable")
        #expect(DiscoveryFallback.unavailable("x").description == "x")
    }

    @Test("one opaque endpoint makes the connection opaque: requests cannot be spread where they are not read")
    func opaque() throws {
        let plain = try endpoint("10.0.0.1:80")
        let opaque = try endpoint("10.0.0.2:80", opaque: true)
        #expect(!OutboundDestination.discovered([plain]).isOpaque)
        #expect(OutboundDestination.discovered([plain, opaque]).isOpaque)
        #expect(!OutboundDestination.original(.notKnown).isOpaque)
    }

    @Test("tls label: the one server all endpoints are, plaintext for mixed or unmeshed sets, false with identity off")
    func tlsLabels() throws {
        let name = "web.shop.serviceaccount.identity.needle.cluster.local"
        let meshed = try [endpoint("10.0.0.1:80", identity: name), endpoint("10.0.0.2:80", identity: name)]
        let mixed = try [endpoint("10.0.0.1:80", identity: name), endpoint("10.0.0.3:80")]
        #expect(OutboundDestination.discovered(meshed).tlsLabel(identityOn: true) == .meshServer(serverID: name))
        #expect(OutboundDestination.discovered(mixed).tlsLabel(identityOn: true) == .notProvidedByServiceDiscovery)
        #expect(OutboundDestination.original(.notKnown).tlsLabel(identityOn: true) == .notProvidedByServiceDiscovery)
        #expect(OutboundDestination.discovered(meshed).tlsLabel(identityOn: false) == .disabled)
        #expect(OutboundDestination.tlsLabel(for: mixed[0], identityOn: true) == .meshServer(serverID: name))
        #expect(OutboundDestination.tlsLabel(for: mixed[1], identityOn: true) == .notProvidedByServiceDiscovery)
        #expect(TLSLabel.meshServer(serverID: name).labels.map { "\($0.0)=\($0.1)" } == ["tls=true", "server_id=\(name)"])
    }

    @Test("dst labels: what every endpoint shares; a pod only when there is one")
    func destinationLabels() throws {
        let pods = try [endpoint("10.0.0.1:80", pod: "web-1"), endpoint("10.0.0.2:80", pod: "web-2")]
        let shared = OutboundDestination.discovered(pods).destinationLabels
        #expect(shared == DestinationLabels(namespace: "shop", service: "web", pod: nil))
        #expect(shared.labels.map(\.0) == ["dst_namespace", "dst_service"])
        let one = OutboundDestination.discovered([pods[0]]).destinationLabels
        #expect(one.pod == "web-1")
        #expect(DestinationLabels(pods[1]).labels.map(\.1) == ["shop", "web", "web-2"])
        let other = try endpoint("10.0.0.3:80", service: "api")
        #expect(DestinationLabels(shared: [pods[0], other]).service == nil)
        #expect(OutboundDestination.original(.notKnown).destinationLabels.labels.isEmpty)
    }

    @Test("the balancer's random source spreads its picks")
    func randomSpread() {
        var random = SplitMix64(seed: 42)
        var counts = [0, 0, 0, 0]
        for _ in 0..<4000 { counts[Int.random(in: 0..<4, using: &random)] += 1 }
        #expect(counts.allSatisfy { (850...1150).contains($0) }, "\(counts)")
        var again = SplitMix64(seed: 42)
        var first = SplitMix64(seed: 42)
        #expect(again.next() == first.next(), "a seed gives one sequence")
    }
}
