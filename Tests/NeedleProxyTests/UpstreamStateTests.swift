import NIOCore
@testable import NeedleProxy
import Testing

@Suite("Upstream pool state machine")
struct UpstreamPoolStateTests {
    typealias Pool = UpstreamPoolState<String, String, String>
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    @Test("connect when empty; park a reusable connection; reuse the newest idle one first")
    func reuseNewestFirst() {
        var pool = Pool()
        #expect(pool.acquire("app", waiter: "w1", now: t0) == .connect)
        pool.connected("app")
        #expect(pool.acquire("app", waiter: "w2", now: t0) == .connect)
        pool.connected("app")
        #expect(pool.release("app", "c1", reusable: true, now: t0) == .park)
        #expect(pool.release("app", "c2", reusable: true, now: t0 + .seconds(1)) == .park)
        #expect(pool.takeIdle("app") == "c2")
        #expect(pool.takeIdle("app") == "c1")
        #expect(pool.takeIdle("app") == nil)
        #expect(pool.takeIdle("other") == nil)
    }

    @Test("a connection closed by the server while idle leaves the pool at once")
    func serverClosedIdle() {
        var pool = Pool()
        _ = pool.acquire("app", waiter: "w", now: t0)
        pool.connected("app")
        _ = pool.release("app", "c1", reusable: true, now: t0)
        #expect(pool.idleConnectionClosed("app", "c1") == true)
        #expect(pool.takeIdle("app") == nil)
        #expect(pool.idleConnectionClosed("app", "c1") == false, "only once")
    }

    @Test("a connection that is not reusable is closed")
    func notReusable() {
        var pool = Pool()
        _ = pool.acquire("app", waiter: "w", now: t0)
        pool.connected("app")
        #expect(pool.release("app", "c1", reusable: false, now: t0) == .close("c1"))
        #expect(pool.idleCount == 0)
    }

    @Test("the idle cap closes what does not fit")
    func idleCap() {
        var pool = Pool(limits: .init(maximumIdlePerTarget: 1, maximumConnectionsPerTarget: 10, idleTimeout: .seconds(60)))
        for _ in 0..<2 {
            _ = pool.acquire("app", waiter: "w", now: t0)
            pool.connected("app")
        }
        #expect(pool.release("app", "c1", reusable: true, now: t0) == .park)
        #expect(pool.release("app", "c2", reusable: true, now: t0) == .close("c2"))
    }

    @Test("at the per-destination cap requests wait in order and get released connections")
    func waiters() {
        var pool = Pool(limits: .init(maximumIdlePerTarget: 10, maximumConnectionsPerTarget: 2, idleTimeout: .seconds(60)))
        #expect(pool.acquire("app", waiter: "w1", now: t0) == .connect)
        #expect(pool.acquire("app", waiter: "w2", now: t0) == .connect)
        #expect(pool.acquire("app", waiter: "w3", now: t0) == .wait)
        #expect(pool.acquire("app", waiter: "w4", now: t0) == .wait)
        #expect(pool.acquire("elsewhere", waiter: "x", now: t0) == .connect, "the cap is per destination")
        pool.connected("app")
        pool.connected("app")
        #expect(pool.release("app", "c1", reusable: true, now: t0) == .handOver("c1", to: "w3"))
        #expect(pool.release("app", "c2", reusable: false, now: t0) == .closeAndConnect("c2", for: "w4"))
        #expect(pool.waiterCount("app") == 0)
        #expect(pool.release("app", "c1", reusable: true, now: t0) == .park)
    }

    @Test("a failed connect frees its slot for the next waiter")
    func connectFailureWakesWaiter() {
        var pool = Pool(limits: .init(maximumIdlePerTarget: 10, maximumConnectionsPerTarget: 1, idleTimeout: .seconds(60)))
        #expect(pool.acquire("app", waiter: "w1", now: t0) == .connect)
        #expect(pool.acquire("app", waiter: "w2", now: t0) == .wait)
        #expect(pool.connectFailed("app", .connectFailed, now: t0, jitter: 0) == "w2")
        #expect(pool.connectFailed("app", .connectFailed, now: t0, jitter: 0) == nil)
        #expect(pool.acquire("app", waiter: "w3", now: t0 + .seconds(5)) == .connect)
    }

    @Test("after a failed connect the destination backs off: requests fail fast with the same reason, doubling, until a connect succeeds")
    func connectBackoff() {
        var pool = Pool()
        #expect(pool.acquire("app", waiter: "w1", now: t0) == .connect)
        #expect(pool.connectFailed("app", .connectTimedOut, now: t0, jitter: 0) == nil)
        // First failure: 100 ms, half of it random (jitter 0: 50 ms).
        #expect(pool.acquire("app", waiter: "w2", now: t0 + .milliseconds(49)) == .failFast(.connectTimedOut))
        #expect(pool.acquire("other", waiter: "x", now: t0 + .milliseconds(49)) == .connect, "back-off is per destination")
        #expect(pool.acquire("app", waiter: "w3", now: t0 + .milliseconds(50)) == .connect)
        #expect(pool.connectFailed("app", .connectFailed, now: t0 + .milliseconds(60), jitter: 1) == nil)
        // Second failure in a row: 200 ms (jitter 1: all of it).
        #expect(pool.acquire("app", waiter: "w4", now: t0 + .milliseconds(259)) == .failFast(.connectFailed))
        #expect(pool.acquire("app", waiter: "w5", now: t0 + .milliseconds(260)) == .connect)
        pool.connected("app")
        #expect(pool.acquire("app", waiter: "w6", now: t0 + .milliseconds(261)) == .connect, "a success ends the back-off")
    }

    @Test("the back-off delay doubles up to the maximum and keeps its upper half random")
    func backoffDelays() {
        let pool = Pool()
        #expect(pool.backoffDelay(failures: 1, jitter: 0) == .milliseconds(50))
        #expect(pool.backoffDelay(failures: 1, jitter: 1) == .milliseconds(100))
        #expect(pool.backoffDelay(failures: 3, jitter: 1) == .milliseconds(400))
        #expect(pool.backoffDelay(failures: 10, jitter: 1) == .seconds(2))
        #expect(pool.backoffDelay(failures: 1_000, jitter: 0.5) == .milliseconds(1500))
    }

    @Test("a back-off long over is forgotten by the sweep, so failed destinations do not accumulate")
    func backoffForgotten() {
        var pool = Pool()
        _ = pool.acquire("gone", waiter: "w", now: t0)
        _ = pool.connectFailed("gone", .connectFailed, now: t0, jitter: 0)
        #expect(pool.hasBackoffs)
        _ = pool.sweep(now: t0 + .seconds(1))
        #expect(pool.hasBackoffs, "still within a maximum delay of its end")
        _ = pool.sweep(now: t0 + .seconds(3))
        #expect(!pool.hasBackoffs)
    }

    @Test("the sweep removes connections idle longer than the timeout, and only those")
    func sweep() {
        var pool = Pool(limits: .init(maximumIdlePerTarget: 10, maximumConnectionsPerTarget: 10, idleTimeout: .seconds(60)))
        for _ in 0..<2 {
            _ = pool.acquire("app", waiter: "w", now: t0)
            pool.connected("app")
        }
        _ = pool.release("app", "old", reusable: true, now: t0)
        _ = pool.release("app", "new", reusable: true, now: t0 + .seconds(50))
        #expect(pool.sweep(now: t0 + .seconds(61)) == ["old"])
        #expect(pool.takeIdle("app") == "new")
        #expect(pool.removeAllIdle() == [])
    }
}

@Suite("HTTP/2 upstream session state machine")
struct HTTP2UpstreamSessionTests {
    @Test("the first stream connects, later ones wait, then all use the connection")
    func connectOnce() {
        var session = HTTP2UpstreamSession<String>()
        #expect(session.streamRequested() == .connect)
        #expect(session.streamRequested() == .wait)
        #expect(session.connected("c1") == true)
        #expect(session.streamRequested() == .open(on: "c1"))
    }

    @Test("a failed connect is not remembered: the next stream tries again")
    func connectFailureNotCached() {
        var session = HTTP2UpstreamSession<String>()
        #expect(session.streamRequested() == .connect)
        session.connectFailed()
        #expect(session.streamRequested() == .connect)
    }

    @Test("a connection that closed (the app restarted) is replaced for the next stream")
    func replacedAfterClose() {
        var session = HTTP2UpstreamSession<String>()
        _ = session.streamRequested()
        _ = session.connected("c1")
        session.connectionClosed("c1")
        #expect(session.streamRequested() == .connect)
        #expect(session.connected("c2") == true)
        #expect(session.streamRequested() == .open(on: "c2"))
    }

    @Test("GOAWAY: streams in flight finish on the old connection, new streams go to a new one, then it closes")
    func goAway() {
        var session = HTTP2UpstreamSession<String>()
        _ = session.streamRequested()
        _ = session.connected("c1")
        session.streamOpened(on: "c1")
        session.streamOpened(on: "c1")
        #expect(session.goAwayReceived(on: "c1") == false, "two streams still in flight")
        #expect(session.drainingConnections == ["c1"])
        #expect(session.streamRequested() == .connect)
        #expect(session.streamClosed(on: "c1") == false)
        #expect(session.streamClosed(on: "c1") == true, "the last stream is done: close it")
        #expect(session.connected("c2") == true)
        #expect(session.streamRequested() == .open(on: "c2"))
    }

    @Test("GOAWAY on an idle connection: close it now")
    func goAwayIdle() {
        var session = HTTP2UpstreamSession<String>()
        _ = session.streamRequested()
        _ = session.connected("c1")
        #expect(session.goAwayReceived(on: "c1") == true)
    }

    @Test("an endpoint that left discovery: streams in flight finish, no new one starts, idle connections close now")
    func retire() {
        var session = HTTP2UpstreamSession<String>()
        _ = session.streamRequested()
        _ = session.connected("c1")
        session.streamOpened(on: "c1")
        let busy = session.retire()
        #expect(busy == [], "one stream in flight: nothing to close yet")
        #expect(session.streamRequested() == .refuse)
        #expect(session.streamClosed(on: "c1") == true, "its last stream is done: close it")

        var idle = HTTP2UpstreamSession<String>()
        _ = idle.streamRequested()
        _ = idle.connected("c1")
        let closeNow = idle.retire()
        #expect(closeNow == ["c1"])

        var connecting = HTTP2UpstreamSession<String>()
        _ = connecting.streamRequested()
        let later = connecting.retire()
        #expect(later == nil, "streams are waiting for the connect: retire once it is made")
        #expect(connecting.connected("c1") == true)
    }

    @Test("after the client connection is gone every upstream connection closes and nothing new starts")
    func shutDown() {
        var session = HTTP2UpstreamSession<String>()
        _ = session.streamRequested()
        _ = session.connected("c1")
        session.streamOpened(on: "c1")
        _ = session.goAwayReceived(on: "c1")
        _ = session.streamRequested()
        #expect(session.shutDown() == ["c1"])
        #expect(session.streamRequested() == .refuse)
        #expect(session.connected("c2") == false, "a connect that finishes after shutdown is closed")
    }
}

@Suite("HTTP/2 stream exchange state machine")
struct HTTP2StreamExchangeTests {
    @Test("one request per stream, forwarded with 1xx, released when both sides ended")
    func simple() {
        var m = HTTP2StreamExchange<String>()
        m.requestHead(request(.POST, "/rpc", version: .http2), now: .now())
        m.requestBody(bytes(7))
        #expect(m.drain() == ["count-request", "acquire"])
        m.upstreamAcquired("s1", writable: true)
        #expect(m.drain() == ["send s1 head POST /rpc", "send s1 body 7", "flush s1", "upstream-reading s1 true"])
        m.requestEnd(nil)
        #expect(m.drain() == ["send s1 end", "flush s1"])
        m.responseHead(response(100, version: .http2))
        m.responseHead(response(200, version: .http2))
        m.responseBody(bytes(3))
        m.responseEnd(nil)
        #expect(m.drain() == ["respond head 100 flush", "respond head 200", "respond body 3 flush", "respond end flush",
                              "release s1 reusable", "count-response 200"])
    }

    @Test("no upstream: 502 or 504 on the stream; a reset after the head resets the client stream")
    func failures() {
        var refused = HTTP2StreamExchange<String>()
        refused.requestHead(request(.GET, "/", version: .http2), now: .now())
        _ = refused.drain()
        refused.upstreamUnavailable(.connectFailed)
        #expect(refused.drain() == ["count-response 502", "error 502"])

        var timedOut = HTTP2StreamExchange<String>()
        timedOut.requestHead(request(.GET, "/", version: .http2), now: .now())
        _ = timedOut.drain()
        timedOut.upstreamUnavailable(.connectTimedOut)
        #expect(timedOut.drain() == ["count-response 504", "error 504"])

        var cut = HTTP2StreamExchange<String>()
        cut.requestHead(request(.GET, "/", version: .http2), now: .now())
        cut.upstreamAcquired("s1", writable: true)
        cut.responseHead(response(200, version: .http2))
        _ = cut.drain()
        cut.upstreamClosed()
        #expect(cut.drain() == ["release s1 closed", "count-response none", "close"])
    }

    @Test("a client stream reset while waiting for the upstream gives the upstream stream back, closed")
    func clientReset() {
        var m = HTTP2StreamExchange<String>()
        m.requestHead(request(.GET, "/", version: .http2), now: .now())
        _ = m.drain()
        m.clientClosed()
        #expect(m.drain() == ["count-response none"])
        m.upstreamAcquired("s1", writable: true)
        #expect(m.drain() == ["release s1 closed"])
    }
}

@Suite("Accept failure log rate limit")
struct LogRateLimiterTests {
    @Test("one line per interval, with the count of failures not logged")
    func rateLimit() {
        var limiter = LogRateLimiter(interval: .seconds(10))
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let first = limiter.shouldLog(now: t0)
        #expect(first == 0)
        var logged = 0
        for i in 1...1000 where limiter.shouldLog(now: t0 + .milliseconds(Int64(i))) != nil { logged += 1 }
        #expect(logged == 0)
        let next = limiter.shouldLog(now: t0 + .seconds(11))
        #expect(next == 1000)
        let soonAfter = limiter.shouldLog(now: t0 + .seconds(12))
        #expect(soonAfter == nil)
    }
}
