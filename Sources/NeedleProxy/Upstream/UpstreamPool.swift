import NIOCore
import NIOPosix
import NeedleContract

/// Keep-alive HTTP/1.1 connections to destinations, for one event loop (used only there, so no locks).
/// The rules are `UpstreamPoolState`'s; this class makes, watches and closes the connections.
/// The idle cap is generous on purpose: a cap below the client concurrency closes and reopens connections
/// on every burst, and each reconnect leaves a TIME_WAIT that makes the next connect() slower (the
/// benchmark showed system time per request rising fourfold).
final class UpstreamPool {
    let eventLoop: any EventLoop
    let connectTimeout: TimeAmount
    /// nil: identity off; no endpoint is reached over mesh TLS.
    let meshTLS: MeshTLSClient?
    private var state: UpstreamPoolState<UpstreamEndpoint, HTTP1UpstreamConnection, EventLoopPromise<HTTP1UpstreamConnection>>
    /// One repeating sweep per pool closes connections idle for too long (cheaper than a timer per request).
    private var sweeper: RepeatedTask?

    init(eventLoop: any EventLoop, connectTimeout: TimeAmount, meshTLS: MeshTLSClient? = nil, limits: UpstreamPoolState<UpstreamEndpoint, HTTP1UpstreamConnection, EventLoopPromise<HTTP1UpstreamConnection>>.Limits = .init()) {
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.meshTLS = meshTLS
        self.state = UpstreamPoolState(limits: limits)
    }

    func provider(for target: UpstreamEndpoint) -> PooledProvider {
        PooledProvider(pool: self, target: target)
    }

    func checkoutIdle(_ target: UpstreamEndpoint) -> HTTP1UpstreamConnection? {
        guard let connection = state.takeIdle(target) else { return nil }
        connection.reused = true
        return connection
    }

    func checkout(_ target: UpstreamEndpoint) -> EventLoopFuture<HTTP1UpstreamConnection> {
        let promise = eventLoop.makePromise(of: HTTP1UpstreamConnection.self)
        switch state.acquire(target, waiter: promise, now: .now()) {
        case .use(let connection):
            connection.reused = true
            promise.assumeIsolated().succeed(connection)
        case .connect:
            connect(target, for: promise)
        case .wait:
            break
        case .failFast(.connectTimedOut):
            promise.fail(UpstreamFailure.connectTimeout)
        case .failFast(.connectFailed):
            promise.fail(UpstreamFailure.connectFailed("backing off after failed connects"))
        }
        return promise.futureResult
    }

    func checkin(_ connection: HTTP1UpstreamConnection, target: UpstreamEndpoint, reusable: Bool) {
        connection.handler.delegate = nil
        let reusable = reusable && !connection.handler.peerClosed && connection.channel.isActive
        switch state.release(target, connection, reusable: reusable, now: .now()) {
        case .park:
            connection.setReading(true)  // to notice a server-side close while idle
            startSweeper()
        case .close(let connection):
            connection.channel.close(promise: nil)
        case .handOver(let connection, let waiter):
            connection.reused = true
            waiter.assumeIsolated().succeed(connection)
        case .closeAndConnect(let connection, let waiter):
            connection.channel.close(promise: nil)
            connect(target, for: waiter)
        }
    }

    /// The connection became a tunnel: it no longer counts against its destination's cap.
    func detach(_ connection: HTTP1UpstreamConnection) {
        connection.handler.delegate = nil
        if let waiter = state.detach(connection.endpoint) { connect(connection.endpoint, for: waiter) }
    }

    /// Closes every idle connection (shutdown).
    func closeIdle() {
        for connection in state.removeAllIdle() { connection.channel.close(promise: nil) }
        sweeper?.cancel()
        sweeper = nil
    }

    private func startSweeper() {
        guard sweeper == nil else { return }
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let interval = TimeAmount.nanoseconds(max(state.limits.idleTimeout.nanoseconds / 4, 1_000_000))
        sweeper = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            loopBound.value.sweep()
        }
    }

    private func sweep() {
        for connection in state.sweep(now: .now()) { connection.channel.close(promise: nil) }
        if state.idleCount == 0, !state.hasBackoffs {
            sweeper?.cancel()
            sweeper = nil
        }
    }

    private func connect(_ target: UpstreamEndpoint, for promise: EventLoopPromise<HTTP1UpstreamConnection>) {
        makeConnection(target).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let connection):
                state.connected(target)
                promise.assumeIsolated().succeed(connection)
            case .failure(let error):
                promise.fail(error)
                let next = state.connectFailed(target, UpstreamFailure.classify(error), now: .now(),
                                               jitter: Double.random(in: 0...1))
                startSweeper()  // forgets the back-off once it is long over
                if let next { connect(target, for: next) }
            }
        }
    }

    private func makeConnection(_ target: UpstreamEndpoint) -> EventLoopFuture<HTTP1UpstreamConnection> {
        let address: SocketAddress
        do {
            address = try target.socketAddress(meshTLS: meshTLS)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let handlerBox = NIOLoopBound(HTTP1UpstreamHandler(), eventLoop: eventLoop)
        let secured = NIOLoopBoundBox<EventLoopFuture<Void>?>(nil, eventLoop: eventLoop)
        let meshTLS = self.meshTLS
        let timeout = connectTimeout
        let connected = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let serverName = target.meshTLSName, let meshTLS {
                        secured.value = try meshTLS.secure(channel, serverName: serverName)
                    }
                    try channel.pipeline.syncOperations.addHandler(handlerBox.value)
                }
            }
            .connect(to: address)
            .assumeIsolated()
            .flatMap { channel in
                // A meshed endpoint counts as connected once its certificate checked out, within the same timeout.
                MeshTLSClient.whenVerified(channel, secured.value, timeout: timeout)
            }
            .flatMapErrorThrowing { error in throw UpstreamFailure.wrap(error) }
        return connected
            .map { [self] channel in
                let connection = HTTP1UpstreamConnection(channel: channel, handler: handlerBox.value, endpoint: target)
                connection.handler.onPeerClosed = { [self] in
                    if state.idleConnectionClosed(target, connection) { connection.channel.close(promise: nil) }
                }
                channel.closeFuture.assumeIsolated().whenComplete { [self] _ in
                    _ = state.idleConnectionClosed(target, connection)
                }
                return connection
            }
            .nonisolated()
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}

final class PooledProvider: HTTP1UpstreamProvider {
    let pool: UpstreamPool
    let target: UpstreamEndpoint

    init(pool: UpstreamPool, target: UpstreamEndpoint) {
        self.pool = pool
        self.target = target
    }

    // A pooled connection may have served a balanced destination before: its requests are the client's now.
    func acquire() -> EventLoopFuture<HTTP1UpstreamConnection> {
        pool.checkout(target).assumeIsolated().map { connection in
            connection.endpointMetrics = nil
            return connection
        }.nonisolated()
    }

    func acquireImmediately() -> HTTP1UpstreamConnection? {
        let connection = pool.checkoutIdle(target)
        connection?.endpointMetrics = nil
        return connection
    }

    func release(_ connection: HTTP1UpstreamConnection, reusable: Bool) {
        pool.checkin(connection, target: connection.endpoint, reusable: reusable)
    }

    func detach(_ connection: HTTP1UpstreamConnection) {
        pool.detach(connection)
    }
}

@available(*, unavailable)
extension PooledProvider: Sendable {}
