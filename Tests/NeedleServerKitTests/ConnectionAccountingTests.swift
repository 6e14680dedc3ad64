import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing
@testable import NeedleServerKit

@Suite("Connection limit and drain")
struct ConnectionAccountingTests {
    @Test("the limit admits up to its cap, and frees a place when a counted channel closes")
    func limit() async throws {
        let limit = ConnectionLimit(maximum: 1)
        let closed = NIOLockedValueBox(0)
        let first = EmbeddedChannel()
        let second = EmbeddedChannel()
        let admitted = limit.admit(first, onClose: { closed.withLockedValue { $0 += 1 } })
        #expect(admitted)
        #expect(!limit.admit(second))
        #expect(limit.openConnections == 1)
        _ = try first.finish()
        #expect(limit.openConnections == 0)
        #expect(closed.withLockedValue { $0 } == 1)
        #expect(limit.admit(second))
        _ = try second.finish()
    }

    /// A listener on loopback whose connections close `closeAfter` after the quiesce event, or never (nil).
    final class QuiesceObserver: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let closeAfter: TimeAmount?
        init(closeAfter: TimeAmount?) { self.closeAfter = closeAfter }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard event is ChannelShouldQuiesceEvent, let closeAfter else { return }
            let channel = context.channel
            context.eventLoop.scheduleTask(in: closeAfter) { channel.close(promise: nil) }
        }
    }

    func drainTime(closeAfter: TimeAmount?, grace: Duration) async throws -> (finished: Bool, took: Duration) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let drain = ConnectionDrain(group: group)
        let server = try await ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(drain.makeListenerHandler(channel: channel)) }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(QuiesceObserver(closeAfter: closeAfter)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let address = try #require(server.localAddress)
        let client = try await ClientBootstrap(group: group).connect(to: address).get()
        // The accepted side exists once the listener has read the connection; a round trip through the
        // loop after connecting is enough on loopback.
        try await Task.sleep(for: .milliseconds(50))
        let clock = ContinuousClock()
        let start = clock.now
        let finished = await drain.drain(gracePeriod: grace)
        let took = clock.now - start
        try? await client.close()
        try? await server.closeFuture.get()
        // Let the accepted side see the close before the loop goes away.
        try? await Task.sleep(for: .milliseconds(100))
        try? await group.shutdownGracefully()
        return (finished, took)
    }

    @Test("drain returns once the last connection closed after the quiesce event")
    func drainFinishes() async throws {
        let result = try await drainTime(closeAfter: .milliseconds(100), grace: .seconds(10))
        #expect(result.finished)
        #expect(result.took < .seconds(5))
    }

    @Test("drain gives up at the grace period when a connection ignores the quiesce event")
    func drainGivesUp() async throws {
        let result = try await drainTime(closeAfter: nil, grace: .milliseconds(300))
        #expect(!result.finished)
        #expect(result.took >= .milliseconds(300))
    }
}
