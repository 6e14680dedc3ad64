#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NIOEmbedded
@testable import NeedleProxy
import Logging
import NeedleContract
import Testing

@Suite("Header-read timer")
struct HeaderReadTimerTests {
    @Test("a head that does not complete in time gets 408 and the connection closes (through the proxy handler)")
    func slowHead() throws {
        let loop = EmbeddedEventLoop()
        let metrics = ProxyMetrics().target(.inbound, address: ListenAddress(ip: .v4(0x7F00_0001), port: 8080), tls: .disabled)
        let upstreams = FakeHTTP1Upstreams(loop: loop)
        let handler = HTTP1ProxyHandler(upstreams: upstreams, metrics: RequestMetrics(target: metrics),
                                        headerTimer: HeaderReadTimer(timeout: .seconds(10)), startTunnel: { _, _, _ in })
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nX-Slow: a"))
        loop.advanceTime(by: .seconds(9))
        #expect(channel.isActive)
        loop.advanceTime(by: .seconds(1))
        #expect(try written(channel).hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(!channel.isActive)
        #expect(upstreams.pending.isEmpty, "nothing of the request went upstream")
    }

    func started(_ timer: HeaderReadTimer, on loop: EmbeddedEventLoop) -> NIOLoopBoundBox<Int> {
        let fired = NIOLoopBoundBox(0, eventLoop: loop)
        timer.start(on: loop, bytesAlreadyRead: true) { fired.value += 1 }
        return fired
    }

    @Test("an idle keep-alive connection is not timed; each head is timed from its own first byte")
    func idleIsNotTimed() {
        let loop = EmbeddedEventLoop()
        let timer = HeaderReadTimer(timeout: .seconds(10))
        let fired = started(timer, on: loop)
        loop.advanceTime(by: .seconds(6))
        timer.headReceived()
        timer.awaitNextHead()
        loop.advanceTime(by: .seconds(60))
        #expect(fired.value == 0, "no bytes: an idle connection")
        timer.bytesArrived()
        loop.advanceTime(by: .seconds(9))
        #expect(fired.value == 0)
        timer.headReceived()
        loop.advanceTime(by: .seconds(30))
        #expect(fired.value == 0, "the head arrived in time")
    }

    @Test("the check left from an earlier request re-arms for the head being read now")
    func rearm() {
        let loop = EmbeddedEventLoop()
        let timer = HeaderReadTimer(timeout: .seconds(10))
        let fired = started(timer, on: loop)
        loop.advanceTime(by: .seconds(1))
        timer.headReceived()
        timer.awaitNextHead()
        loop.advanceTime(by: .seconds(5))
        timer.bytesArrived()                  // this head started at t = 6 s
        loop.advanceTime(by: .seconds(5))     // t = 11 s: the first check fires, too early
        #expect(fired.value == 0)
        loop.advanceTime(by: .seconds(5))     // t = 16 s: 10 s after this head began
        #expect(fired.value == 1)
    }

    @Test("a stopped timer never fires")
    func stopped() {
        let loop = EmbeddedEventLoop()
        let timer = HeaderReadTimer(timeout: .seconds(10))
        let fired = started(timer, on: loop)
        timer.stop()
        timer.awaitNextHead()
        timer.bytesArrived()
        loop.advanceTime(by: .seconds(60))
        #expect(fired.value == 0)
    }
}

@Suite("Accept failures (EmbeddedChannel)")
struct AcceptFailureHandlerTests {
    // EmbeddedChannel does not model autoRead, so this checks the handler's decision; the e2e suite checks
    // the effect (no spin with 128 descriptors).
    @Test("out of descriptors: accepting pauses, then resumes; other errors do not pause it")
    func pauseOnEMFILE() throws {
        let loop = EmbeddedEventLoop()
        let handler = AcceptFailureHandler(logger: Logger(label: "test"), direction: .inbound)
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        channel.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        #expect(handler.isPaused)
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ENFILE, reason: "accept"))
        loop.advanceTime(by: AcceptFailureHandler.pause - .milliseconds(1))
        #expect(handler.isPaused)
        loop.advanceTime(by: .milliseconds(1))
        #expect(!handler.isPaused)
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNABORTED, reason: "accept"))
        #expect(!handler.isPaused)
    }
}
