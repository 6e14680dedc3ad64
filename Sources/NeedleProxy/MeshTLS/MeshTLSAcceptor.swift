import NIOCore
import NIOSSL
import NIOTLS
import NeedleContract

/// Sits behind the TLS handler of a mesh connection until the handshake is done (DESIGN §7): asks for reads
/// meanwhile, bounds the handshake in time, then names the peer from its verified certificate and hands the
/// connection on. A handshake that fails (no client certificate, another CA, expired, TLS 1.2) or a
/// certificate without exactly one mesh name closes the connection; nothing reaches the app.
final class MeshTLSAcceptor: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    typealias Authenticated = (_ context: ChannelHandlerContext, _ peer: String) -> Void
    typealias Failed = (_ reason: String) -> Void

    private let timeout: TimeAmount
    private let trustDomain: DNSName
    private let onAuthenticated: Authenticated
    private let onFailure: Failed
    private var timer: Scheduled<Void>?
    private var phase = Phase.handshaking

    private enum Phase { case handshaking, handedOn, failed }

    init(timeout: TimeAmount, trustDomain: DNSName, onAuthenticated: @escaping Authenticated, onFailure: @escaping Failed) {
        self.timeout = timeout
        self.trustDomain = trustDomain
        self.onAuthenticated = onAuthenticated
        self.onFailure = onFailure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            handler.fail("the TLS handshake did not finish in time", context: context)
        }
        context.read()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if phase == .handshaking { context.read() }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard phase == .handshaking, let tls = event as? TLSUserEvent, case .handshakeCompleted = tls else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        timer?.cancel()
        let certificate = (try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self))?.peerCertificate
        guard let certificate else {
            fail("the peer showed no certificate", context: context)
            return
        }
        let peer: String
        switch PeerIdentity.workload(of: certificate, trustDomain: trustDomain) {
        case .success(let workload): peer = workload.tlsName
        case .failure(let problem):
            fail(problem.description, context: context)
            return
        }
        phase = .handedOn
        onAuthenticated(context, peer)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard phase == .handshaking else {
            context.fireErrorCaught(error)
            return
        }
        fail("the TLS handshake failed: \(error)", context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if phase == .handshaking { fail("the peer closed the connection during the TLS handshake", context: context) }
        context.fireChannelInactive()
    }

    private func fail(_ reason: String, context: ChannelHandlerContext) {
        guard phase == .handshaking else { return }
        phase = .failed
        timer?.cancel()
        onFailure(reason)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension MeshTLSAcceptor: Sendable {}
