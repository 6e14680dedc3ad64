import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NeedleContract

/// For one client HTTP/2 connection: upstream HTTP/2 (h2c) connections, every client stream mapped to a
/// stream of its own there, so a slow stream never blocks another. Which connection a new stream goes to
/// is `HTTP2UpstreamSession`'s decision: a connection that failed, closed or sent GOAWAY is replaced.
final class HTTP2UpstreamProvider: UpstreamProvider, ClosableUpstreams {
    /// Makes the connection of an upstream HTTP/2 connection on `eventLoop`: `configure` adds the HTTP/2
    /// handlers in its channel initializer; the future succeeds once it can carry streams (a meshed peer
    /// verified, for instance).
    typealias Dialer = (_ eventLoop: any EventLoop,
                        _ configure: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void) -> EventLoopFuture<any Channel>

    private let eventLoop: any EventLoop
    private let dial: Dialer
    private var session = HTTP2UpstreamSession<ObjectIdentifier>()
    private var connections: [ObjectIdentifier: (channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer)] = [:]
    /// Streams asked for while the connection is being made.
    private var waiting: [EventLoopPromise<UpstreamConnection>] = []

    init(eventLoop: any EventLoop, dial: @escaping Dialer) {
        self.eventLoop = eventLoop
        self.dial = dial
    }

    /// To a destination's endpoint (or the original destination), h2c or mesh TLS.
    convenience init(eventLoop: any EventLoop, target: UpstreamEndpoint, connectTimeout: TimeAmount, meshTLS: MeshTLSClient? = nil) {
        self.init(eventLoop: eventLoop, dial: Self.endpointDialer(target, connectTimeout: connectTimeout, meshTLS: meshTLS))
    }

    static func endpointDialer(_ target: UpstreamEndpoint, connectTimeout: TimeAmount, meshTLS: MeshTLSClient?) -> Dialer {
        return { eventLoop, configure in
            let address: SocketAddress
            do {
                address = try target.socketAddress(meshTLS: meshTLS)
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
            let secured = NIOLoopBoundBox<EventLoopFuture<Void>?>(nil, eventLoop: eventLoop)
            return ClientBootstrap(group: eventLoop)
                .connectTimeout(connectTimeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let serverName = target.meshTLSName, let meshTLS {
                            secured.value = try meshTLS.secure(channel, serverName: serverName)
                        }
                        try configure(channel.pipeline.syncOperations)
                    }
                }
                .connect(to: address)
                .flatMap { channel in
                    // A meshed endpoint counts as connected once its certificate checked out, within the same timeout.
                    MeshTLSClient.whenVerified(channel, secured.value, timeout: connectTimeout)
                }
        }
    }

    func acquireImmediately() -> UpstreamConnection? { nil }

    func acquire() -> EventLoopFuture<UpstreamConnection> {
        let promise = eventLoop.makePromise(of: UpstreamConnection.self)
        switch session.streamRequested() {
        case .open(let id):
            openStream(on: id, promise: promise)
        case .wait:
            waiting.append(promise)
        case .connect:
            waiting.append(promise)
            connect()
        case .refuse:
            promise.fail(UpstreamFailure.connectFailed("the client connection is closing"))
        }
        return promise.futureResult
    }

    func release(_ connection: UpstreamConnection, reusable: Bool) {
        connection.handler.delegate = nil
        // A stream that finished cleanly closes itself; one cut short is reset.
        if !reusable { connection.channel.close(promise: nil) }
    }

    /// The endpoint left its destination: streams in flight finish, no new one opens here. False while a
    /// connection is still being made for waiting streams: ask again later.
    func retire() -> Bool {
        guard let closeNow = session.retire() else { return false }
        for id in closeNow { connections[id]?.channel.close(promise: nil) }
        return true
    }

    /// The client connection is gone: so are its upstream connections.
    func close() {
        for id in session.shutDown() { connections[id]?.channel.close(promise: nil) }
        let failed = waiting
        waiting = []
        for promise in failed { promise.fail(UpstreamFailure.connectFailed("the client connection closed")) }
    }

    private func openStream(on id: ObjectIdentifier, promise: EventLoopPromise<UpstreamConnection>) {
        guard let connection = connections[id] else {
            promise.fail(UpstreamFailure.connectFailed("upstream HTTP/2 connection is gone"))
            return
        }
        let handlerBox = NIOLoopBound(UpstreamHandler(), eventLoop: eventLoop)
        let streamPromise = eventLoop.makePromise(of: (any Channel).self)
        connection.multiplexer.createStreamChannel(promise: streamPromise) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                try stream.pipeline.syncOperations.addHandler(handlerBox.value)
            }
        }
        session.streamOpened(on: id)
        streamPromise.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let stream):
                stream.closeFuture.assumeIsolated().whenComplete { [self] _ in
                    if session.streamClosed(on: id) { connections[id]?.channel.close(promise: nil) }
                }
                promise.assumeIsolated().succeed(UpstreamConnection(channel: stream, handler: handlerBox.value))
            case .failure(let error):
                if session.streamClosed(on: id) { connections[id]?.channel.close(promise: nil) }
                promise.fail(UpstreamFailure.connectFailed("cannot open an upstream stream: \(error)"))
            }
        }
    }

    private func connect() {
        let multiplexerBox = NIOLoopBoundBox<NIOHTTP2Handler.StreamMultiplexer?>(nil, eventLoop: eventLoop)
        let goAwayWatcher = NIOLoopBound(GoAwayWatcher(), eventLoop: eventLoop)
        dial(eventLoop) { sync in
            multiplexerBox.value = try sync.configureHTTP2Pipeline(
                mode: .client,
                connectionConfiguration: .init(),
                streamConfiguration: .init()
            ) { pushed in
                // Servers may not push to a client that never enabled it; refuse any stream they open.
                pushed.close()
            }
            try sync.addHandler(goAwayWatcher.value)
        }
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    guard let multiplexer = multiplexerBox.value else {
                        channel.close(promise: nil)
                        connectFinished(.failure(UpstreamFailure.connectFailed("HTTP/2 pipeline not configured")))
                        return
                    }
                    let id = ObjectIdentifier(channel)
                    goAwayWatcher.value.onGoAway = { [self] in
                        if session.goAwayReceived(on: id) { connections[id]?.channel.close(promise: nil) }
                    }
                    channel.closeFuture.assumeIsolated().whenComplete { [self] _ in
                        session.connectionClosed(id)
                        connections[id] = nil
                    }
                    connections[id] = (channel, multiplexer)
                    connectFinished(.success(id))
                case .failure(let error):
                    connectFinished(.failure(UpstreamFailure.wrap(error)))
                }
            }
    }

    private func connectFinished(_ result: Result<ObjectIdentifier, UpstreamFailure>) {
        let promises = waiting
        waiting = []
        switch result {
        case .success(let id):
            guard session.connected(id) else {
                connections[id]?.channel.close(promise: nil)
                for promise in promises { promise.fail(UpstreamFailure.connectFailed("the client connection closed")) }
                return
            }
            for promise in promises { openStream(on: id, promise: promise) }
        case .failure(let error):
            session.connectFailed()
            for promise in promises { promise.fail(error) }
        }
    }
}

@available(*, unavailable)
extension HTTP2UpstreamProvider: Sendable {}

/// Sits after the HTTP/2 handler of an upstream connection, where connection-level frames arrive, and
/// reports a GOAWAY from the server.
final class GoAwayWatcher: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    var onGoAway: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload { onGoAway?() }
    }
}

@available(*, unavailable)
extension GoAwayWatcher: Sendable {}
