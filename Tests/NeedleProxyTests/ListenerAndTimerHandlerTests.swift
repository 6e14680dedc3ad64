#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NIOEmbedded
@testable import NeedleProxy
import Logging
import Testing

@Suite("Header-read timeout (EmbeddedChannel)")
struct HeaderReadTimeoutHandlerTests {
    func connected(_ handler: HeaderReadTimeoutHandler) throws -> (EmbeddedChannel, EmbeddedEventLoop) {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, loop)
    }

    func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test("a head that does not complete in time gets 408 and the connection closes")
    func slowHead() throws {
        let (channel, loop) = try connected(HeaderReadTimeoutHandler(timeout: .seconds(10), bytesAlreadyRead: true))
        try channel.writeInbound(ByteBuffer(string: "X-Slow: a"))
        loop.advanceTime(by: .seconds(9))
        #expect(channel.isActive)
        loop.advanceTime(by: .seconds(1))
        #expect(try written(channel).hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(!channel.isActive)
    }

    @Test("an idle keep-alive connection is not timed; each head is timed from its own first byte")
    func idleIsNotTimed() throws {
        let timer = HeaderReadTimeoutHandler(timeout: .seconds(10), bytesAlreadyRead: true)
        let (channel, loop) = try connected(timer)
        loop.advanceTime(by: .seconds(6))
        timer.headReceived()
        timer.awaitNextHead()
        loop.advanceTime(by: .seconds(60))
        #expect(channel.isActive, "no bytes: an idle connection")
        try channel.writeInbound(ByteBuffer(string: "GET / HT"))
        loop.advanceTime(by: .seconds(9))
        #expect(channel.isActive)
        timer.headReceived()
        loop.advanceTime(by: .seconds(30))
        #expect(channel.isActive, "the head arrived in time")
        #expect(try written(channel).isEmpty)
    }

    @Test("the check left from an earlier request re-arms for the head being read now")
    func rearm() throws {
        let timer = HeaderReadTimeoutHandler(timeout: .seconds(10), bytesAlreadyRead: true)
        let (channel, loop) = try connected(timer)
        loop.advanceTime(by: .seconds(1))
        timer.headReceived()
        timer.awaitNextHead()
        loop.advanceTime(by: .seconds(5))
        try channel.writeInbound(ByteBuffer(string: "GET"))  // this head started at t = 6 s
        loop.advanceTime(by: .seconds(5))                    // t = 11 s: the first check fires, too early
        #expect(channel.isActive)
        loop.advanceTime(by: .seconds(5))                    // t = 16 s: 10 s after this head began
        #expect(!channel.isActive)
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
