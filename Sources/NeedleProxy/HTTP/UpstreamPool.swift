import NIOCore
import NIOHTTP1
import NIOPosix
import NeedleContract

/// Keep-alive HTTP/1.1 connections to destinations, per event loop (used only on that loop, so no locks).
/// Idle connections are closed after `idleTimeout`, and at most `maximumIdlePerTarget` wait per destination.
/// The cap is generous on purpose: a cap below the client concurrency closes and reopens connections on
/// every burst, and each reconnect leaves a TIME_WAIT that makes the next connect() slower (the benchmark
/// showed system time per request rising fourfold).
final class UpstreamPool {
    let eventLoop: any EventLoop
    let connectTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let maximumIdlePerTarget: Int
    private var idle: [ListenAddress: [UpstreamConnection]] = [:]
    private(set) var openConnections = 0
    /// One repeating sweep per pool closes connections idle for too long (cheaper than a timer per request).
    private var sweeper: RepeatedTask?

    init(eventLoop: any EventLoop, connectTimeout: TimeAmount, idleTimeout: TimeAmount = .seconds(60), maximumIdlePerTarget: Int = 1024) {
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maximumIdlePerTarget = maximumIdlePerTarget
    }

    func provider(for target: ListenAddress) -> PooledProvider {
        PooledProvider(pool: self, target: target)
    }

    func checkout(_ target: ListenAddress) -> EventLoopFuture<UpstreamConnection> {
        if let connection = checkoutIdle(target) { return eventLoop.makeSucceededFuture(connection) }
        return connect(target)
    }

    func checkoutIdle(_ target: ListenAddress) -> UpstreamConnection? {
        while var list = idle[target], let connection = list.popLast() {
            idle[target] = list.isEmpty ? nil : list
            connection.idleSince = nil
            if connection.channel.isActive {
                connection.reused = true
                return connection
            }
        }
        return nil
    }

    func checkin(_ connection: UpstreamConnection, target: ListenAddress, reusable: Bool) {
        connection.handler.delegate = nil
        guard reusable, connection.channel.isActive, (idle[target]?.count ?? 0) < maximumIdlePerTarget else {
            connection.channel.close(promise: nil)
            return
        }
        connection.setReading(true)  // notice a server-side close while idle
        connection.idleSince = .now()
        idle[target, default: []].append(connection)
        startSweeper()
    }

    private func startSweeper() {
        guard sweeper == nil else { return }
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let interval = TimeAmount.nanoseconds(max(idleTimeout.nanoseconds / 4, 1_000_000))
        sweeper = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            loopBound.value.sweep()
        }
    }

    private func sweep() {
        let cutoff = NIODeadline.now() - idleTimeout
        for (target, list) in idle {
            let (stale, fresh) = (list.filter { ($0.idleSince ?? .now()) < cutoff }, list.filter { ($0.idleSince ?? .now()) >= cutoff })
            idle[target] = fresh.isEmpty ? nil : fresh
            for connection in stale { connection.channel.close(promise: nil) }
        }
    }

    private func remove(_ connection: UpstreamConnection, target: ListenAddress) {
        guard var list = idle[target] else { return }
        list.removeAll { $0 === connection }
        idle[target] = list.isEmpty ? nil : list
    }

    /// Closes every idle connection (shutdown).
    func closeIdle() {
        for connection in idle.values.joined() { connection.channel.close(promise: nil) }
        idle = [:]
        sweeper?.cancel()
        sweeper = nil
    }

    private func connect(_ target: ListenAddress) -> EventLoopFuture<UpstreamConnection> {
        let address: SocketAddress
        do {
            address = try OriginalDestination.socketAddress(target)
        } catch {
            return eventLoop.makeFailedFuture(UpstreamFailure.connectFailed("\(error)"))
        }
        let handlerBox = NIOLoopBound(UpstreamHandler(), eventLoop: eventLoop)
        let codecBox = NIOLoopBound(
            [HTTPRequestEncoder(), ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))] as [any RemovableChannelHandler],
            eventLoop: eventLoop)
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Encoder before decoder: the decoder watches outgoing request heads to parse HEAD responses.
                    try channel.pipeline.syncOperations.addHandlers(codecBox.value)
                    try channel.pipeline.syncOperations.addHandler(handlerBox.value)
                }
            }
            .connect(to: address)
            .assumeIsolated()
            .flatMapErrorThrowing { error in throw Self.classify(error) }
            .map { [self] channel in
                let connection = UpstreamConnection(channel: channel, handler: handlerBox.value)
                connection.codecHandlers = codecBox.value
                openConnections += 1
                channel.closeFuture.assumeIsolated().whenComplete { [self] _ in
                    openConnections -= 1
                    remove(connection, target: target)
                }
                return connection
            }
            .nonisolated()
    }

    static func classify(_ error: any Error) -> UpstreamFailure {
        if let error = error as? ChannelError, case .connectTimeout = error { return .connectTimeout }
        return .connectFailed("\(error)")
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}

final class PooledProvider: UpstreamProvider {
    let pool: UpstreamPool
    let target: ListenAddress

    init(pool: UpstreamPool, target: ListenAddress) {
        self.pool = pool
        self.target = target
    }

    func acquire() -> EventLoopFuture<UpstreamConnection> { pool.checkout(target) }
    func acquireImmediately() -> UpstreamConnection? { pool.checkoutIdle(target) }

    func release(_ connection: UpstreamConnection, reusable: Bool) {
        pool.checkin(connection, target: target, reusable: reusable)
    }
}

@available(*, unavailable)
extension PooledProvider: Sendable {}
