import Logging
import NIOCore
import NIOPosix
import NeedleContract

/// Opaque TCP: connect to the destination on the client's event loop and splice the two channels. A meshed
/// endpoint is reached over mesh TLS (`MeshTLSClient`): the bytes go through it, and a failed handshake closes
/// the client, never falling back to plaintext.
struct TCPForwarder {
    let connectTimeout: TimeAmount
    let logger: Logger
    /// nil: identity off.
    var meshTLS: MeshTLSClient? = nil

    /// `initial`: bytes read while detecting; `clientInputClosed`: the client's FIN came during detection.
    /// `connected`: how the connect went (the balancer's report, when discovery chose the endpoint).
    func start(_ client: any Channel, target: UpstreamEndpoint, initial: ByteBuffer, clientInputClosed: Bool = false,
               connected: (@Sendable (Bool) -> Void)? = nil) {
        let address: SocketAddress
        let waiting = ConnectingBuffer(allocator: client.allocator)
        do {
            address = try target.socketAddress(meshTLS: meshTLS)
            try client.pipeline.syncOperations.addHandler(waiting)
        } catch {
            connected?(false)
            client.close(promise: nil)
            return
        }
        let secured = NIOLoopBoundBox<EventLoopFuture<Void>?>(nil, eventLoop: client.eventLoop)
        let (meshTLS, timeout) = (self.meshTLS, connectTimeout)
        ClientBootstrap(group: client.eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // `socketAddress(meshTLS:)` already refused mesh TLS without an identity.
                    guard let serverName = target.meshTLSName, let meshTLS else { return }
                    secured.value = try meshTLS.secure(channel, serverName: serverName)
                }
            }
            .connect(to: address)
            .assumeIsolated()
            .flatMap { channel in
                // A meshed endpoint counts as connected once its certificate checked out, within the same timeout.
                MeshTLSClient.whenVerified(channel, secured.value, timeout: timeout)
            }
            .whenComplete { [logger] result in
                switch result {
                case .success(let upstream):
                    connected?(true)
                    guard client.isActive else {
                        upstream.close(promise: nil)
                        return
                    }
                    var first = initial
                    var arrived = waiting.received
                    first.writeBuffer(&arrived)
                    let inputClosed = clientInputClosed || waiting.inputClosed
                    _ = client.pipeline.syncOperations.removeHandler(waiting)
                    Self.splice(client, upstream, initial: first, clientInputClosed: inputClosed)
                case .failure(let error):
                    connected?(false)
                    // A clean close is all a TCP client can be told.
                    logger.debug("upstream connect failed", metadata: ["target": "\(target)", "error": "\(error)"])
                    client.close(promise: nil)
                }
            }
    }

    /// Glues two connected channels on the same event loop, first sending `initial`.
    private static func splice(_ client: any Channel, _ upstream: any Channel, initial: ByteBuffer, clientInputClosed: Bool = false) {
        let (clientGlue, upstreamGlue) = GlueHandler.pair()
        do {
            try client.pipeline.syncOperations.addHandler(clientGlue)
            try upstream.pipeline.syncOperations.addHandler(upstreamGlue)
        } catch {
            client.close(promise: nil)
            upstream.close(promise: nil)
            return
        }
        upstream.closeFuture.whenComplete { _ in client.close(promise: nil) }
        if initial.readableBytes > 0 || clientInputClosed {
            let written = upstream.writeAndFlush(initial)
            if clientInputClosed { written.whenComplete { _ in upstream.close(mode: .output, promise: nil) } }
        }
        try? client.syncOptions?.setOption(.autoRead, value: true)
        try? upstream.syncOptions?.setOption(.autoRead, value: true)
    }
}
