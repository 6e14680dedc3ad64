import NIOCore
import NIOHTTP1
@testable import NeedleProxy
import Testing

@Suite("HTTP/1.1 server exchange state machine")
struct HTTP1ServerExchangeTests {
    typealias Machine = HTTP1ServerExchange<String>

    /// A GET sent upstream on `upstream` (fresh or pooled), with the response head not yet in.
    func inFlightGET(_ m: inout Machine, upstream: String = "u1", reused: Bool = false, headers: [(String, String)] = []) {
        m.requestHead(request(.GET, "/", headers), now: .now())
        m.requestEnd(nil)
        m.upstreamAcquired(1, upstream, reused: reused, writable: true)
        _ = m.drain()
    }

    @Test("a GET: acquire, send, stream the response, release the connection for reuse, await the next head")
    func simpleExchange() {
        var m = Machine()
        m.requestHead(request(.GET, "/a"), now: .now())
        #expect(m.drain() == ["head-received", "count-request", "acquire 1"])
        m.requestEnd(nil)
        #expect(m.drain() == [])
        m.upstreamAcquired(1, "u1", reused: false, writable: true)
        #expect(m.drain() == ["send u1 head GET /a", "flush u1"])
        m.responseHead(response(200, [("content-length", "5")]))
        #expect(m.drain() == ["respond head 200"])
        m.responseBody(bytes(5))
        #expect(m.drain() == ["respond body 5"])
        m.responseEnd(nil)
        #expect(m.drain() == ["count-response 200", "release u1 reusable", "respond end flush", "await-head"])
        #expect(m.isIdle)
    }

    @Test("100 Continue and 103 Early Hints are forwarded before the final response")
    func informationalForwarded() {
        var m = Machine()
        m.requestHead(request(.POST, "/upload", [("expect", "100-continue"), ("content-length", "3")]), now: .now())
        m.upstreamAcquired(1, "u1", reused: false, writable: true)
        _ = m.drain()
        m.responseHead(response(100))
        #expect(m.drain() == ["respond head 100 flush"])
        m.requestBody(bytes(3))
        m.requestEnd(nil)
        #expect(m.drain() == ["send u1 body 3", "flush u1"])
        m.responseHead(response(103, [("link", "</a.css>; rel=preload")]))
        #expect(m.drain() == ["respond head 103 flush"])
        m.responseHead(response(201))
        #expect(m.drain() == ["respond head 201"])
    }

    @Test("an HTTP/1.0 client gets no 1xx (RFC 9110 §15.2)")
    func noInformationalForHTTP10() {
        var m = Machine()
        m.requestHead(request(.GET, "/", version: .http1_0), now: .now())
        m.requestEnd(nil)
        m.upstreamAcquired(1, "u1", reused: false, writable: true)
        _ = m.drain()
        m.responseHead(response(103))
        #expect(m.drain() == [])
    }

    @Test("a keep-alive HTTP/1.0 client is closed after a body that has no length, and kept after one that has")
    func http10BodyWithoutLength() {
        for (headers, end) in [([("content-length", "3")], "respond end flush"), ([], "respond end then close")] {
            var m = Machine()
            m.requestHead(request(.GET, "/", version: .http1_0, [("connection", "keep-alive")]), now: .now())
            m.requestEnd(nil)
            m.upstreamAcquired(1, "u1", reused: false, writable: true)
            _ = m.drain()
            m.responseHead(response(200, headers))
            m.responseBody(bytes(3))
            m.responseEnd(nil)
            #expect(m.drain().contains(end), "\(headers)")
        }
    }

    @Test("pipelined requests wait for the response in flight, then go in order")
    func pipelining() {
        var m = Machine()
        inFlightGET(&m)
        m.requestHead(request(.POST, "/second", [("content-length", "4")]), now: .now())
        m.requestBody(bytes(4))
        m.requestEnd(nil)
        #expect(m.drain() == [])
        m.responseHead(response(200, [("content-length", "0")]))
        m.responseEnd(nil)
        #expect(m.drain() == ["respond head 200", "count-response 200", "release u1 reusable", "respond end flush",
                              "head-received", "count-request", "acquire 2"])
        m.upstreamAcquired(2, "u2", reused: true, writable: true)
        #expect(m.drain() == ["send u2 head POST /second", "send u2 body 4", "flush u2"])
    }

    @Test("too many queued pipelined parts pause the client until the queue drains")
    func pipelineBackpressure() {
        var m = Machine()
        inFlightGET(&m)
        for _ in 0..<(Machine.maximumQueuedParts / 2) {
            m.requestHead(request(.GET, "/q"), now: .now())
            m.requestEnd(nil)
        }
        #expect(m.drain() == ["client-reading false"])
    }

    @Test("a bodiless GET on a pooled connection the server closed is sent again once, on a new connection")
    func staleConnectionRetry() {
        var m = Machine()
        inFlightGET(&m, reused: true)
        m.upstreamClosed()
        #expect(m.drain() == ["release u1 closed", "acquire 1"])
        m.upstreamAcquired(1, "u2", reused: true, writable: true)
        #expect(m.drain() == ["send u2 head GET /", "flush u2"])
        // The retry is spent: a second stale connection is a 502.
        m.upstreamClosed()
        #expect(m.drain() == ["release u2 closed", "count-response 502", "error 502", "await-head"])
    }

    @Test("no retry for a request with a body, or on a connection made for it")
    func noRetry() {
        var post = Machine()
        post.requestHead(request(.POST, "/p", [("content-length", "2")]), now: .now())
        post.requestBody(bytes(2))
        post.requestEnd(nil)
        post.upstreamAcquired(1, "u1", reused: true, writable: true)
        _ = post.drain()
        post.upstreamClosed()
        #expect(post.drain() == ["release u1 closed", "count-response 502", "error 502", "await-head"])

        var fresh = Machine()
        inFlightGET(&fresh, reused: false)
        fresh.upstreamClosed()
        #expect(fresh.drain() == ["release u1 closed", "count-response 502", "error 502", "await-head"])
    }

    @Test("an upstream that fails after the response head cuts the client off")
    func failureAfterHead() {
        var m = Machine()
        inFlightGET(&m)
        m.responseHead(response(200))
        m.responseBody(bytes(10))
        _ = m.drain()
        m.upstreamClosed()
        #expect(m.drain() == ["release u1 closed", "count-response none", "close"])
        m.requestHead(request(), now: .now())
        #expect(m.drain() == [], "nothing happens after the connection is closing")
    }

    @Test("connect failures: 502, timeouts: 504; the keep-alive connection goes on to the next request")
    func connectFailures() {
        var m = Machine()
        m.requestHead(request(.GET, "/a"), now: .now())
        m.requestEnd(nil)
        m.requestHead(request(.GET, "/b"), now: .now())
        m.requestEnd(nil)
        _ = m.drain()
        m.upstreamUnavailable(1, .connectTimedOut)
        #expect(m.drain() == ["count-response 504", "error 504", "head-received", "count-request", "acquire 2"])
        m.upstreamUnavailable(2, .connectFailed)
        #expect(m.drain() == ["count-response 502", "error 502", "await-head"])
    }

    @Test("a connect failure before the request body ended closes the connection after the 502")
    func failureMidUpload() {
        var m = Machine()
        m.requestHead(request(.POST, "/u", [("content-length", "100")]), now: .now())
        m.requestBody(bytes(10))
        _ = m.drain()
        m.upstreamUnavailable(1, .connectFailed)
        #expect(m.drain() == ["count-response 502", "error 502 close"])
    }

    @Test("Connection: close from the client: the response says so and the connection closes after it")
    func clientAsksClose() {
        var m = Machine()
        inFlightGET(&m, headers: [("connection", "close")])
        m.responseHead(response(200, [("content-length", "0")]))
        m.responseEnd(nil)
        #expect(m.drain() == ["respond head 200 connection=close", "count-response 200", "release u1 reusable", "respond end then close"])
    }

    @Test("a drain closes an idle connection at once, and ends a busy one after its response")
    func quiesce() {
        var idle = Machine()
        idle.quiesce()
        #expect(idle.drain() == ["close"])

        var busy = Machine()
        inFlightGET(&busy)
        busy.quiesce()
        #expect(busy.drain() == [])
        busy.responseHead(response(200, [("content-length", "0")]))
        busy.responseEnd(nil)
        #expect(busy.drain() == ["respond head 200 connection=close", "count-response 200", "release u1 reusable", "respond end then close"])
    }

    @Test("a client FIN: idle closes, in flight finishes first")
    func clientFIN() {
        var idle = Machine()
        idle.clientInputClosed()
        #expect(idle.drain() == ["close"])
        var busy = Machine()
        inFlightGET(&busy)
        busy.clientInputClosed()
        #expect(busy.drain() == [])
        busy.responseHead(response(204))
        #expect(busy.drain() == ["respond head 204 connection=close"])
    }

    @Test("an upgrade: after the 101 the connection becomes a tunnel")
    func upgrade() {
        var m = Machine()
        m.requestHead(request(.GET, "/ws", [("connection", "upgrade"), ("upgrade", "websocket")]), now: .now())
        m.requestEnd(nil)
        m.upstreamAcquired(1, "u1", reused: false, writable: true)
        _ = m.drain()
        m.responseHead(response(101, [("connection", "upgrade"), ("upgrade", "websocket")]))
        #expect(m.drain() == ["respond head 101 connection=upgrade"])
        m.responseEnd(nil)
        #expect(m.drain() == ["count-response 101", "respond end flush", "tunnel u1"])
    }

    @Test("a CONNECT answered 2xx becomes a tunnel; a refused upgrade closes the connection after its answer")
    func connectAndRefusedUpgrade() {
        var connect = Machine()
        connect.requestHead(request(.CONNECT, "db:5432"), now: .now())
        connect.requestEnd(nil)
        connect.upstreamAcquired(1, "u1", reused: false, writable: true)
        _ = connect.drain()
        connect.responseHead(response(200), answering: .CONNECT)
        connect.responseEnd(nil)
        #expect(connect.drain() == ["respond head 200", "count-response 200", "respond end flush", "tunnel u1"])

        var refused = Machine()
        refused.requestHead(request(.GET, "/ws", [("connection", "upgrade"), ("upgrade", "websocket")]), now: .now())
        refused.requestEnd(nil)
        refused.upstreamAcquired(1, "u1", reused: false, writable: true)
        _ = refused.drain()
        refused.responseHead(response(200, [("content-length", "0")]))
        refused.responseEnd(nil)
        #expect(refused.drain() == ["respond head 200 connection=close", "count-response 200", "release u1 reusable",
                                    "respond end then close"])
    }

    @Test("a 101 to a request that asked for no upgrade is a 502, and the connection is not reused")
    func unaskedSwitch() {
        var m = Machine()
        inFlightGET(&m)
        m.responseHead(response(101, [("connection", "upgrade"), ("upgrade", "websocket")]))
        #expect(m.drain() == ["release u1 closed", "count-response 502", "error 502", "await-head"])
    }

    @Test("a parse error mid-request releases the upstream and answers 400 (or cuts off a started response)")
    func malformedMidRequest() {
        var m = Machine()
        m.requestHead(request(.POST, "/", [("transfer-encoding", "chunked")]), now: .now())
        m.upstreamAcquired(1, "u1", reused: false, writable: true)
        _ = m.drain()
        m.requestMalformed(status: .badRequest, reason: "bad chunk", now: .now())
        #expect(m.drain() == ["release u1 closed", "count-response 400", "error 400 close"])

        var idle = Machine()
        idle.requestMalformed(status: .requestHeaderFieldsTooLarge, reason: "too big", now: .now())
        #expect(idle.drain() == ["count-request", "count-response 431", "error 431 close"])
    }

    @Test("a parse error in a pipelined request: the request in flight is still answered, then the connection closes")
    func malformedPipelined() {
        var m = Machine()
        inFlightGET(&m)
        m.requestHead(request(.GET, "/queued"), now: .now())
        m.requestEnd(nil)
        m.requestMalformed(status: .badRequest, reason: "bad header", now: .now())
        #expect(m.drain() == [], "the GET in flight keeps its upstream")
        m.responseHead(response(200, [("content-length", "0")]))
        m.responseEnd(nil)
        #expect(m.drain() == ["respond head 200 connection=close", "count-response 200", "release u1 reusable", "respond end then close"])
    }

    @Test("a pipelined request's latency counts from its arrival, not from when its turn came")
    func queuedLatency() {
        var m = Machine()
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        m.requestHead(request(.GET, "/first"), now: t0)
        m.requestEnd(nil)
        m.upstreamAcquired(1, "u1", reused: false, writable: true)
        m.requestHead(request(.GET, "/second"), now: t0 + .milliseconds(1))
        m.requestEnd(nil)
        m.responseHead(response(200, [("content-length", "0")]))
        m.responseEnd(nil)
        m.upstreamUnavailable(2, .connectFailed)
        var started: [NIODeadline] = []
        while let action = m.nextAction() {
            if case .countResponse(_, let start) = action { started.append(start) }
            if case .completeExchange(_, let start, _, _, _) = action { started.append(start) }
        }
        #expect(started == [t0, t0 + .milliseconds(1)])
    }

    @Test("an upstream that arrives after the client left goes back to the pool")
    func lateUpstream() {
        var m = Machine()
        m.requestHead(request(), now: .now())
        _ = m.drain()
        m.clientClosed()
        #expect(m.drain() == ["count-response none"])
        m.upstreamAcquired(1, "u1", reused: false, writable: true)
        #expect(m.drain() == ["release u1 reusable"])
    }

    @Test("back-pressure: an unwritable upstream pauses the client; an unwritable client pauses the upstream")
    func backpressure() {
        var m = Machine()
        m.requestHead(request(.POST, "/", [("content-length", "100")]), now: .now())
        m.upstreamAcquired(1, "u1", reused: false, writable: true)
        _ = m.drain()
        m.upstreamWritabilityChanged(false)
        #expect(m.drain() == ["client-reading false"])
        m.upstreamWritabilityChanged(true)
        #expect(m.drain() == ["client-reading true"])
        m.clientWritabilityChanged(false)
        #expect(m.drain() == ["upstream-reading u1 false"])
    }

    @Test("a request read in one burst goes upstream in one flush; a body still arriving is flushed once per read burst")
    func flushBatching() {
        var m = Machine()
        m.requestHead(request(.POST, "/", [("content-length", "6")]), now: .now())
        m.upstreamAcquired(1, "u1", reused: true, writable: true)
        m.requestBody(bytes(3))
        #expect(m.drain() == ["head-received", "count-request", "acquire 1", "send u1 head POST /", "send u1 body 3"])
        m.clientReadComplete()
        #expect(m.drain() == ["flush u1"])
        m.clientReadComplete()
        #expect(m.drain() == [], "nothing written since the last flush")
        m.requestBody(bytes(3))
        m.requestEnd(nil)
        #expect(m.drain() == ["send u1 body 3", "flush u1"])
    }

    @Test("bytes held while connecting are bounded: the client pauses past the limit")
    func pendingBytesBound() {
        var m = Machine()
        m.requestHead(request(.POST, "/", [("content-length", "1000000")]), now: .now())
        _ = m.drain()
        m.requestBody(bytes(Machine.maximumPendingBytes + 1))
        #expect(m.drain() == ["client-reading false"])
        m.clientReadComplete()
        m.upstreamAcquired(1, "u1", reused: false, writable: true)
        #expect(m.drain() == ["send u1 head POST /", "send u1 body \(Machine.maximumPendingBytes + 1)", "flush u1",
                              "client-reading true"])
    }

    @Test("a response that ends before its request: the connection is not reused and closes after")
    func earlyResponse() {
        var m = Machine()
        m.requestHead(request(.POST, "/", [("content-length", "100")]), now: .now())
        m.upstreamAcquired(1, "u1", reused: false, writable: true)
        _ = m.drain()
        m.responseHead(response(413))
        m.responseEnd(nil)
        #expect(m.drain() == ["respond head 413", "count-response 413", "release u1 closed", "respond end then close"])
    }
}
