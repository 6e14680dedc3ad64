import NIOCore
import NIOHTTP1
@testable import NeedleProxy
import NeedleContract
import Testing

@Suite("Protocol detection")
struct ProtocolDetectorTests {
    func detect(_ text: String, _ reading: RequestLineReading = .strict) -> ProtocolDetector.Result {
        ProtocolDetector.detect(Array(text.utf8), reading: reading)
    }

    @Test("HTTP/1.x request lines, judged as they arrive")
    func http1() {
        for reading in [RequestLineReading.strict, .lenient] {
            #expect(detect("GET / HTTP/1.1\r\n", reading) == .detected(.http1))
            #expect(detect("POST /echo?x=1 HTTP/1.0\r\nHost: a\r\n", reading) == .detected(.http1))
            #expect(detect("M-SEARCH * HTTP/1.1\r\n", reading) == .detected(.http1))
            for prefix in ["G", "GET", "GET "] {
                #expect(detect(prefix, reading) == .needMoreData, "\(prefix)")
            }
        }
        for prefix in ["GET ", "GET / HTTP/1", "GET / HTTP/1.1", "GET / HTTP/1.1\r"] {
            #expect(detect(prefix, .strict) == .needMoreData, "\(prefix)")
        }
        // Read leniently, a word, whitespace and the start of a target settle it: the strict parser judges the rest.
        for prefix in ["GET /", "POST /", "POST / HTTP/1.1\r"] {
            #expect(detect(prefix, .lenient) == .detected(.http1), "\(prefix)")
        }
        #expect(detect("GET ", .lenient) == .needMoreData)
    }

    @Test("outbound reads strictly: anything but a well-formed request line is opaque, at once", arguments: [
        "get / HTTP/1.1\r\n", "GET / HTTP/2.0\r\n", "GET  / HTTP/1.1\r\n", "GET / HTTP/1.1\n", "\u{0}\u{1}binary",
        "SSH-2.0-OpenSSH_9.0\r\n", "GET /\u{7f} HTTP/1.1\r\n", "\r\nGET / HTTP/1.1\r\n", "ping ping",
    ])
    func strictOpaque(text: String) {
        #expect(detect(text, .strict) == .detected(.opaque))
    }

    @Test("inbound reads leniently: what a lenient server could take for a request is HTTP/1, so the strict parser sees it", arguments: [
        "get / HTTP/1.1\r\n", "GET / HTTP/2.0\r\n", "GET  / HTTP/1.1\r\n", "GET / HTTP/1.1\n", "\r\nGET / HTTP/1.1\r\n",
        " GET / HTTP/1.1\r\n", "POST\t/\thttp/1.1\r\n", "GET /\u{7f} HTTP/1.1\r\n", "GET\r/ HTTP/1.1\n", "FOO-BAR /x HTTP/9\n",
        "GET /client-id\r\n", "POST /x\r\n", "POST /x RTSP/1.0\r\n", "SOURCE /x ICE/1.0\r\n", "get key\r\n", "EHLO mail.example\r\n",
    ])
    func lenientHTTP(text: String) {
        #expect(detect(text, .lenient) == .detected(.http1))
    }

    @Test("inbound, what no server takes for a request is opaque, binary protocols at their first byte", arguments: [
        "\u{0}\u{1}binary", "SSH-2.0-OpenSSH_9.0\r\n", "*1\r\n$4\r\nPING\r\n", "PING\r\n", "PING \r\n",
        "/ HTTP/1.1\r\n", "GET\n/ HTTP/1.1\r\n", "G\u{0}", "\u{0}\u{0}\u{0}\u{8}\u{4}\u{d2}\u{16}\u{2f}",
        "ping\nping ping\n",
    ])
    func lenientOpaque(text: String) {
        #expect(detect(text, .lenient) == .detected(.opaque))
    }

    @Test("when no more bytes come: nothing is opaque, a ClientHello's start is opaque, any other start as at the limit")
    func atEnd() {
        #expect(ProtocolDetector.detectAtEnd([UInt8](), reading: .lenient) == .opaque)
        #expect(ProtocolDetector.detectAtEnd(Array("POST".utf8), reading: .lenient) == .http1)
        #expect(ProtocolDetector.detectAtEnd(Array("POST /".utf8), reading: .strict) == .opaque)
        #expect(ProtocolDetector.detectAtEnd(Array("HELLO".utf8), reading: .lenient) == .http1)
        #expect(ProtocolDetector.detectAtEnd(Array("PRI * HTTP/2".utf8), reading: .lenient) == .http1)
        #expect(ProtocolDetector.detectAtEnd(Array(TLSFixtures.clientHello(serverName: "a.example").prefix(20)), reading: .lenient) == .opaque)
        #expect(ProtocolDetector.detectAtEnd(Array("PING\r\n".utf8), reading: .lenient) == .opaque)
        #expect(ProtocolDetector.detectAtEnd(Array("GET / HTTP/1.1\r\n".utf8), reading: .strict) == .http1)
    }

    @Test("a late first request after a silent detect timeout is refused; anything else passes")
    func lateRequest() {
        #expect(LateRequestCheck.judge(Array("GET / HTTP/1.1\r\nneedle-client-id: x\r\n".utf8)) == .refuse)
        #expect(LateRequestCheck.judge(Array("GET /client-id\r\n".utf8)) == .refuse)
        #expect(LateRequestCheck.judge(ProtocolDetector.http2Preface) == .refuse)
        #expect(LateRequestCheck.judge(Array("POST".utf8)) == .wait)
        #expect(LateRequestCheck.judgeAtDeadline(Array("POST".utf8)) == .refuse, "half a request line, the rest after the deadline")
        #expect(LateRequestCheck.judge(Array("EHLO client.example\r\n".utf8)) == .refuse, "a word and an argument could be a request")
        #expect(LateRequestCheck.judge(Array("QUIT\r\n".utf8)) == .pass)
        #expect(LateRequestCheck.judge([0x00, 0x00, 0x01]) == .pass)
        #expect(LateRequestCheck.judge(Array(("POST /" + String(repeating: "a", count: ProtocolDetector.maximumBytes)).utf8)) == .refuse)
    }

    @Test("the HTTP/2 preface, also in pieces")
    func http2() {
        let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        #expect(detect(preface) == .detected(.http2))
        #expect(detect(preface + "\u{0}\u{0}") == .detected(.http2))
        #expect(detect(String(preface.prefix(10))) == .needMoreData)
        #expect(detect("PRI * HTTP/2.0\r\n\r\nXX") == .detected(.opaque))
        // Not the preface after all, but a line a lenient server reads as a request.
        #expect(detect("PRI * HTTP/2.0\r\n\r\nXX", .lenient) == .detected(.http1))
    }

    @Test("a ClientHello with SNI is TLS and names the server")
    func tlsWithSNI() {
        let hello = TLSFixtures.clientHello(serverName: "orders.shop.svc.cluster.local")
        #expect(ProtocolDetector.detect(hello) == .detected(.tls(serverName: "orders.shop.svc.cluster.local")))
        // Partial records wait for the rest.
        #expect(ProtocolDetector.detect(Array(hello.prefix(40))) == .needMoreData)
        #expect(ProtocolDetector.detect(Array(hello.prefix(3))) == .needMoreData)
    }

    @Test("a ClientHello without SNI is TLS without a name; other TLS-looking bytes are opaque")
    func tlsWithoutSNI() {
        #expect(ProtocolDetector.detect(TLSFixtures.clientHello(serverName: nil)) == .detected(.tls(serverName: nil)))
        #expect(ProtocolDetector.detect([0x16, 0x02, 0x00, 0x00, 0x05, 0x01]) == .detected(.opaque))
        #expect(ProtocolDetector.detect([0x16, 0x03, 0x01, 0x00, 0x05, 0x02]) == .detected(.opaque))
    }

    @Test("detection is bounded: a never-ending request line is decided at the limit, passed through outbound, parsed (and refused) inbound")
    func bounded() {
        let long = "POST /" + String(repeating: "a", count: ProtocolDetector.maximumBytes)
        #expect(detect(long, .strict) == .detected(.opaque))
        #expect(detect(long, .lenient) == .detected(.http1))
        let word = String(repeating: "A", count: ProtocolDetector.maximumBytes)
        #expect(detect(String(word.prefix(ProtocolDetector.maximumBytes - 1)), .lenient) == .needMoreData)
        #expect(detect(word, .lenient) == .detected(.http1))
        #expect(detect(String(repeating: " ", count: ProtocolDetector.maximumBytes), .lenient) == .detected(.http1))
    }

    @Test("a corrupt ClientHello never crashes the SNI parser")
    func corruptHello() {
        var hello = TLSFixtures.clientHello(serverName: "a.example")
        for index in stride(from: 5, to: hello.count, by: 3) {
            var broken = hello
            broken[index] = 0xFF
            _ = TLSClientHello.serverName(inHandshake: Array(broken.dropFirst(5)))
        }
        hello.removeLast(4)
        #expect(TLSClientHello.serverName(inHandshake: Array(hello.dropFirst(5))) == nil)
    }
}

enum TLSFixtures {
    /// A minimal but well-formed TLS 1.2 ClientHello record, optionally with an SNI extension.
    static func clientHello(serverName: String?) -> [UInt8] {
        var extensions: [UInt8] = []
        if let serverName {
            let name = Array(serverName.utf8)
            let entry: [UInt8] = [0x00] + u16(name.count) + name
            let list = u16(entry.count) + entry
            extensions += [0x00, 0x00] + u16(list.count) + list
        }
        extensions += [0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]  // ec_point_formats
        var body: [UInt8] = [0x03, 0x03] + Array(repeating: 0x42, count: 32)  // version, random
        body += [0x00]  // session id
        body += u16(4) + [0x13, 0x01, 0xc0, 0x2f]  // cipher suites
        body += [0x01, 0x00]  // compression
        body += u16(extensions.count) + extensions
        let handshake: [UInt8] = [0x01] + u24(body.count) + body
        return [0x16, 0x03, 0x01] + u16(handshake.count) + handshake
    }

    static func u16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
    static func u24(_ value: Int) -> [UInt8] { [UInt8(value >> 16 & 0xFF)] + u16(value) }
}

@Suite("Routing policy")
struct RoutePolicyTests {
    func policy(inboundIPs: String = "10.0.0.5", opaque: String = "5432") throws -> RoutePolicy {
        var environment = ProxyEnvironment()
        environment.inboundIPs = try inboundIPs.split(separator: ",").map { try IPAddress(parsing: String($0)) }
        environment.opaquePorts = try PortSet(parsing: opaque)
        return RoutePolicy(environment: environment)
    }

    func address(_ text: String) throws -> ListenAddress { try ListenAddress(parsing: text) }

    @Test("inbound goes to the original destination when it is a pod IP")
    func inboundForward() throws {
        #expect(try policy().route(.inbound, originalDestination: address("10.0.0.5:8080")) == .forward(try address("10.0.0.5:8080"), skipDetection: false))
        #expect(try policy().route(.inbound, originalDestination: address("10.0.0.5:5432")) == .forward(try address("10.0.0.5:5432"), skipDetection: true))
    }

    @Test("inbound refuses other IPs, the proxy's own ports and unredirected connections")
    func inboundRefuse() throws {
        let policy = try policy()
        for destination in ["10.0.0.6:8080", "10.0.0.5:4143", "10.0.0.5:4140"] {
            guard case .refuse = policy.route(.inbound, originalDestination: try address(destination)) else {
                Issue.record("\(destination) should be refused")
                continue
            }
        }
        guard case .refuse = policy.route(.inbound, originalDestination: nil) else {
            Issue.record("a connection without an original destination should be refused")
            return
        }
    }

    @Test("without NEEDLE_PROXY_INBOUND_IPS any destination IP is accepted inbound")
    func noInboundIPs() throws {
        #expect(try policy(inboundIPs: "").route(.inbound, originalDestination: address("192.168.1.1:80"))
                == .forward(try address("192.168.1.1:80"), skipDetection: false))
    }

    @Test("outbound goes anywhere but back into the outbound listener")
    func outbound() throws {
        let policy = try policy()
        #expect(policy.route(.outbound, originalDestination: try address("10.9.9.9:443")) == .forward(try address("10.9.9.9:443"), skipDetection: false))
        guard case .refuse = policy.route(.outbound, originalDestination: try address("127.0.0.1:4140")) else {
            Issue.record("a loop into the outbound listener should be refused")
            return
        }
    }
}

@Suite("Hop-by-hop headers")
struct HeaderFilterTests {
    @Test("hop-by-hop fields and those Connection names are dropped; end-to-end fields stay")
    func drops() {
        let headers = HTTPHeaders([("Host", "a"), ("Connection", "keep-alive, x-trace"), ("Keep-Alive", "timeout=5"),
                                   ("X-Trace", "1"), ("TE", "trailers"), ("Proxy-Connection", "x"), ("Accept", "*/*"),
                                   ("Transfer-Encoding", "chunked")])
        let (filtered, upgrade) = HeaderFilter.forwardable(headers)
        #expect(upgrade == nil)
        #expect(filtered["host"] == ["a"])
        #expect(filtered["accept"] == ["*/*"])
        #expect(filtered["transfer-encoding"] == ["chunked"])
        for name in ["connection", "keep-alive", "x-trace", "te", "proxy-connection"] {
            #expect(filtered[name].isEmpty, "\(name) should be dropped")
        }
    }

    @Test("an upgrade keeps Upgrade and Connection: upgrade")
    func upgrade() {
        let (filtered, upgrade) = HeaderFilter.forwardable(HTTPHeaders([("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Host", "a")]))
        #expect(upgrade == "websocket")
        #expect(filtered["upgrade"] == ["websocket"])
        #expect(filtered["connection"] == ["upgrade"])
    }

    @Test("Connection tokens: any case, spaces and tabs, empty items, several Connection fields")
    func tokens() {
        let headers = HTTPHeaders([("connection", " \tKeep-Alive ,, X-TRACE\t"), ("Connection", "x-other"), ("x-trace", "1"),
                                   ("X-Other", "2"), ("X-Kept", "3"), ("KEEP-ALIVE", "timeout=5")])
        let (filtered, upgrade) = HeaderFilter.forwardable(headers)
        #expect(upgrade == nil)
        #expect(filtered.map { $0.name } == ["X-Kept"])
    }

    @Test("a message without hop-by-hop fields comes back unchanged, in order")
    func untouched() {
        let fields = [("Host", "a"), ("Content-Type", "text/plain"), ("Cache-Control", "no-cache"), ("Upgrade-Insecure-Requests", "1"),
                      ("Transfer-Encoding", "chunked"), ("Trailers", "x"), ("TEE", "y")]
        let (filtered, upgrade) = HeaderFilter.forwardable(HTTPHeaders(fields))
        #expect(upgrade == nil)
        #expect(filtered.map { "\($0.name): \($0.value)" } == fields.map { "\($0.0): \($0.1)" })
    }

    @Test("Upgrade without Connection: upgrade is dropped and is no upgrade")
    func upgradeNotNominated() {
        let (filtered, upgrade) = HeaderFilter.forwardable(HTTPHeaders([("Upgrade", "websocket"), ("Connection", "keep-alive")]))
        #expect(upgrade == nil)
        #expect(filtered.isEmpty)
    }
}

@Suite("Metrics")
struct ProxyMetricsTests {
    @Test("a balanced request and its response are counted under the endpoint it went to; a failure before any upstream under the connection")
    func perEndpoint() throws {
        let metrics = ProxyMetrics()
        let address = try ListenAddress(parsing: "10.96.0.10:80")
        let connection = metrics.target(.outbound, address: address, tls: .notProvidedByServiceDiscovery,
                                         destination: DestinationLabels(namespace: "shop", service: "web"))
        let web1 = metrics.target(.outbound, address: address, tls: .meshServer(serverID: "web.shop.serviceaccount.identity.needle.td"),
                                  destination: DestinationLabels(namespace: "shop", service: "web", pod: "web-1"))
        var exchange = RequestMetrics(target: connection)
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        exchange.requestStarted()
        exchange.upstreamKnown(web1)
        exchange.responseCompleted(status: 200, since: start, now: start + .milliseconds(2))
        exchange.requestStarted()
        exchange.responseCompleted(status: 502, since: start, now: start + .milliseconds(1))
        exchange.requestStarted()
        exchange.upstreamKnown(web1)
        exchange.responseCompleted(status: 200, since: start, now: start + .milliseconds(2))
        let text = String(decoding: metrics.render(), as: UTF8.self)
        let pod = #"tls="true",server_id="web.shop.serviceaccount.identity.needle.td",dst_namespace="shop",dst_service="web",dst_pod="web-1""#
        #expect(text.contains(#"request_total{direction="outbound",target_addr="10.96.0.10:80","# + pod + "} 2"))
        #expect(text.contains(#"response_total{direction="outbound",target_addr="10.96.0.10:80","# + pod + #",status_code="200",classification="success"} 2"#))
        let plain = #"tls="no_identity",no_tls_reason="not_provided_by_service_discovery",dst_namespace="shop",dst_service="web""#
        #expect(text.contains(#"request_total{direction="outbound",target_addr="10.96.0.10:80","# + plain + "} 1"))
        #expect(text.contains(#"response_total{direction="outbound",target_addr="10.96.0.10:80","# + plain + #",status_code="502",classification="failure"} 1"#))
    }

    @Test("a request retried on another endpoint counts at both; its response under the one that answered")
    func retriedElsewhere() throws {
        let metrics = ProxyMetrics()
        let address = try ListenAddress(parsing: "10.96.0.10:80")
        let connection = metrics.target(.outbound, address: address, tls: .notProvidedByServiceDiscovery)
        let tls = TLSLabel.meshServer(serverID: "web.shop.serviceaccount.identity.needle.td")
        let web1 = metrics.target(.outbound, address: address, tls: tls, destination: DestinationLabels(namespace: "shop", service: "web", pod: "web-1"))
        let web2 = metrics.target(.outbound, address: address, tls: tls, destination: DestinationLabels(namespace: "shop", service: "web", pod: "web-2"))
        var exchange = RequestMetrics(target: connection)
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        exchange.requestStarted()
        exchange.upstreamKnown(web1)   // a stale pooled connection: the request is retried
        exchange.upstreamKnown(web2)
        exchange.responseCompleted(status: 200, since: start, now: start + .milliseconds(2))
        exchange.requestStarted()
        exchange.upstreamKnown(web2)
        exchange.responseCompleted(status: 200, since: start, now: start + .milliseconds(2))
        let text = String(decoding: metrics.render(), as: UTF8.self)
        func labels(_ pod: String) -> String {
            #"direction="outbound",target_addr="10.96.0.10:80",tls="true",server_id="web.shop.serviceaccount.identity.needle.td","#
                + #"dst_namespace="shop",dst_service="web",dst_pod=""# + pod + "\""
        }
        #expect(text.contains("request_total{\(labels("web-1"))} 1"))
        #expect(!text.contains("response_total{\(labels("web-1"))"))
        #expect(text.contains("request_total{\(labels("web-2"))} 2"))
        #expect(text.contains("response_total{\(labels("web-2")),status_code=\"200\",classification=\"success\"} 2"))
    }

    @Test("pods have a label cap of their own: rollouts never push Services into overflow")
    func podCap() throws {
        let metrics = ProxyMetrics(maximumTargets: 1, maximumPodTargets: 1)
        let address = try ListenAddress(parsing: "10.96.0.10:80")
        let tls = TLSLabel.meshServer(serverID: "web.shop.serviceaccount.identity.needle.td")
        let first = metrics.target(.outbound, address: address, tls: tls, destination: DestinationLabels(namespace: "shop", service: "web", pod: "web-1"))
        let second = metrics.target(.outbound, address: address, tls: tls, destination: DestinationLabels(namespace: "shop", service: "web", pod: "web-2"))
        let service = metrics.target(.outbound, address: address, tls: tls, destination: DestinationLabels(namespace: "shop", service: "web"))
        #expect(first !== second)
        #expect(second === service, "a pod past the cap is counted under its Service")
        first.connectionOpened()
        second.connectionOpened()
        let text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(text.contains(#"dst_service="web",dst_pod="web-1"} 1"#))
        #expect(text.contains(#"dst_service="web"} 1"#), "the service target is not overflow")
        #expect(!text.contains("web-2") && !text.contains("overflow"))
    }

    @Test("Linkerd's names and labels, and bounded target labels")
    func names() throws {
        let metrics = ProxyMetrics(maximumTargets: 2)
        let target = metrics.target(.inbound, address: try ListenAddress(parsing: "10.0.0.5:8080"), tls: .disabled)
        target.connectionOpened()
        var connection = RequestMetrics(target: target)
        connection.requestStarted()
        // One connection's statuses change (its cached series must follow), a second shares the series.
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        connection.responseCompleted(status: 503, since: start, now: start + .milliseconds(12))
        connection.responseCompleted(status: 200, since: start, now: start + .milliseconds(3))
        connection.responseCompleted(status: 200, since: start, now: start + .milliseconds(3))
        var another = RequestMetrics(target: target)
        another.responseCompleted(status: 200, since: start, now: start + .milliseconds(3))
        another.responseCompleted(status: 503, since: start, now: start + .milliseconds(2))
        _ = metrics.target(.outbound, address: try ListenAddress(parsing: "10.0.0.6:80"), tls: .disabled)
        let overflow = metrics.target(.outbound, address: try ListenAddress(parsing: "10.0.0.7:80"), tls: .disabled)
        overflow.connectionOpened()
        let text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(text.contains(#"request_total{direction="inbound",target_addr="10.0.0.5:8080",tls="false"} 1"#))
        #expect(text.contains(#"response_total{direction="inbound",target_addr="10.0.0.5:8080",tls="false",status_code="503",classification="failure"} 2"#))
        #expect(text.contains(#"status_code="200",classification="success"} 3"#))
        #expect(text.contains(#"response_latency_ms_bucket{direction="inbound",target_addr="10.0.0.5:8080",tls="false",status_code="503",le="10"} 1"#))
        #expect(text.contains(#"response_latency_ms_bucket{direction="inbound",target_addr="10.0.0.5:8080",tls="false",status_code="503",le="20"} 2"#))
        #expect(text.contains(#"response_latency_ms_bucket{direction="inbound",target_addr="10.0.0.5:8080",tls="false",status_code="503",le="+Inf"} 2"#))
        #expect(text.contains(#"response_latency_ms_sum{direction="inbound",target_addr="10.0.0.5:8080",tls="false",status_code="503"} 14"#))
        #expect(text.contains(#"response_latency_ms_count{direction="inbound",target_addr="10.0.0.5:8080",tls="false",status_code="503"} 2"#))
        let lines = text.split(separator: "\n")
        #expect(lines.filter { $0 == "# TYPE response_latency_ms histogram" }.count == 1, "one TYPE line for the family")
        #expect(lines.filter { $0.contains("le=\"") && $0.contains(".0\"") }.isEmpty, "no bucket label is written as a Double")
        #expect(text.contains(#"tcp_open_total{direction="outbound",target_addr="overflow",tls="false"} 1"#))
        #expect(text.contains("process_resident_memory_bytes "))
        #expect(text.contains("process_open_fds "))
    }
}

@Suite("Latency histogram text")
struct LatencyHistogramTests {
    @Test("buckets are cumulative, bounds inclusive, labels as Linkerd writes them")
    func buckets() {
        let histogram = LatencyHistogram(labels: [("direction", "outbound"), ("note", "a \"quoted\\ value\n")])
        histogram.record(milliseconds: 1)      // le="1": the bound is inclusive
        histogram.record(milliseconds: 1.5)
        histogram.record(milliseconds: 499.25)
        histogram.record(milliseconds: 60_000) // past the last bound: +Inf only
        histogram.record(milliseconds: -3)     // a clock step back counts as 0
        var buffer: [UInt8] = []
        histogram.emit(name: "response_latency_ms", into: &buffer)
        let lines = String(decoding: buffer, as: UTF8.self).split(separator: "\n").map(String.init)
        let labels = #"direction="outbound",note="a \"quoted\\ value\n""#
        #expect(lines.first == "response_latency_ms_bucket{\(labels),le=\"1\"} 2")
        #expect(lines.contains("response_latency_ms_bucket{\(labels),le=\"2\"} 3"))
        #expect(lines.contains("response_latency_ms_bucket{\(labels),le=\"400\"} 3"))
        #expect(lines.contains("response_latency_ms_bucket{\(labels),le=\"500\"} 4"))
        #expect(lines.contains("response_latency_ms_bucket{\(labels),le=\"50000\"} 4"))
        #expect(lines.contains("response_latency_ms_bucket{\(labels),le=\"+Inf\"} 5"))
        #expect(lines.contains("response_latency_ms_sum{\(labels)} 60501.75"))
        #expect(lines.last == "response_latency_ms_count{\(labels)} 5")
        #expect(lines.count == LatencyHistogram.boundsMilliseconds.count + 3)
    }

    @Test("milliseconds are written without trailing zeros")
    func sums() {
        #expect(LatencyHistogram.milliseconds(micros: 0) == "0")
        #expect(LatencyHistogram.milliseconds(micros: 12_000) == "12")
        #expect(LatencyHistogram.milliseconds(micros: 12_500) == "12.5")
        #expect(LatencyHistogram.milliseconds(micros: 42) == "0.042")
        #expect(LatencyHistogram.milliseconds(micros: 1_050) == "1.05")
    }
}
