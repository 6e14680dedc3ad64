import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NeedleContract

/// For one client HTTP/2 connection: one upstream HTTP/2 (h2c) connection, opened on the first request,
/// with every client stream mapped to a stream of its own there, so a slow stream never blocks another.
final class HTTP2UpstreamProvider: UpstreamProvider {
    private let eventLoop: any EventLoop
    private let target: ListenAddress
    private let connectTimeout: TimeAmount
    private var multiplexer: EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer>?
    private var connection: (any Channel)?

    init(eventLoop: any EventLoop, target: ListenAddress, connectTimeout: TimeAmount) {
        self.eventLoop = eventLoop
        self.target = target
        self.connectTimeout = connectTimeout
    }

    func acquire() -> EventLoopFuture<UpstreamConnection> {
        let multiplexer = self.multiplexer ?? connect()
        self.multiplexer = multiplexer
        let eventLoop = self.eventLoop
        return multiplexer.flatMap { multiplexer in
            let promise = eventLoop.makePromise(of: (any Channel).self)
            let handlerBox = NIOLoopBound(UpstreamHandler(), eventLoop: eventLoop)
            multiplexer.createStreamChannel(promise: promise) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                    try stream.pipeline.syncOperations.addHandler(handlerBox.value)
                }
            }
            return promise.futureResult.map { stream in
                UpstreamConnection(channel: stream, handler: handlerBox.value)
            }
        }
    }

    func acquireImmediately() -> UpstreamConnection? { nil }

    func release(_ connection: UpstreamConnection, reusable: Bool) {
        connection.handler.delegate = nil
        // A stream that finished cleanly closes itself; one cut short is reset.
        if !reusable { connection.channel.close(promise: nil) }
    }

    /// The client connection is gone: so is its upstream connection.
    func close() {
        connection?.close(promise: nil)
        connection = nil
        multiplexer = nil
    }

    private func connect() -> EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer> {
        let address: SocketAddress
        do {
            address = try OriginalDestination.socketAddress(target)
        } catch {
            return eventLoop.makeFailedFuture(UpstreamFailure.connectFailed("\(error)"))
        }
        let multiplexerBox = NIOLoopBoundBox<NIOHTTP2Handler.StreamMultiplexer?>(nil, eventLoop: eventLoop)
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    multiplexerBox.value = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client,
                        connectionConfiguration: .init(),
                        streamConfiguration: .init()
                    ) { pushed in
                        // Servers may not push to a client that never enabled it; refuse any stream they open.
                        pushed.close()
                    }
                }
            }
            .connect(to: address)
            .assumeIsolated()
            .flatMapErrorThrowing { error in throw UpstreamPool.classify(error) }
            .flatMapThrowing { [self] channel in
                connection = channel
                guard let multiplexer = multiplexerBox.value else {
                    throw UpstreamFailure.connectFailed("HTTP/2 pipeline not configured")
                }
                return multiplexer
            }
            .nonisolated()
    }
}

@available(*, unavailable)
extension HTTP2UpstreamProvider: Sendable {}
