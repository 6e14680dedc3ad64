import NIOCore
import NIOSSL
import NIOTLS
import NeedleContract

/// The client side of mesh TLS (DESIGN §7), for connections to meshed endpoints: SNI is the endpoint's TLS
/// name, the chain is verified against the trust anchors (TLS 1.3, the identity's client context), and the
/// server's certificate must name exactly that workload. A connection counts as made only once all of this
/// held; a failure fails the connection, never falling back to plaintext.
struct MeshTLSClient: Sendable {
    let trustDomain: DNSName
    /// The client context of the certificate in use now; nil while there is none (expired, not yet issued).
    let currentContext: @Sendable () -> NIOSSLContext?

    init(trustDomain: DNSName, currentContext: @escaping @Sendable () -> NIOSSLContext?) {
        self.trustDomain = trustDomain
        self.currentContext = currentContext
    }

    init(identity: ProxyIdentity) {
        self.init(trustDomain: identity.workload.trustDomain) { identity.clientContext }
    }

    /// Adds the TLS handlers to a new upstream channel (in its initializer, before the caller's handlers).
    /// The returned future succeeds once the peer is verified; it fails, and the channel closes, otherwise.
    func secure(_ channel: any Channel, serverName: String) throws -> EventLoopFuture<Void> {
        guard let context = currentContext() else {
            throw UpstreamFailure.connectFailed("no certificate in use to originate mesh TLS with")
        }
        let verified = channel.eventLoop.makePromise(of: Void.self)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
        try sync.addHandler(MeshTLSServerCheck(expected: serverName, trustDomain: trustDomain, verified: verified))
        return verified.futureResult
    }

    /// The connected `channel` once `verified` (from `secure`) succeeded, within `timeout`; at once when
    /// the connection is plaintext (`verified` nil). A timeout closes the channel and fails as a connect
    /// timeout (the exchange answers 504, as for a connect that took too long).
    static func whenVerified(_ channel: any Channel, _ verified: EventLoopFuture<Void>?,
                             timeout: TimeAmount) -> EventLoopFuture<any Channel> {
        guard let verified else { return channel.eventLoop.makeSucceededFuture(channel) }
        let timedOut = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            timedOut.value = true
            channel.close(promise: nil)
        }
        return verified.always { _ in deadline.cancel() }
            .flatMapErrorThrowing { error in throw timedOut.value ? UpstreamFailure.connectTimeout : error }
            .map { channel }
    }
}

/// Sits behind the client TLS handler until the handshake is done, checks that the server is the workload
/// discovery named, then steps aside. Bounded in time by whoever waits for `verified` (the connect timeout).
final class MeshTLSServerCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let expected: String
    private let trustDomain: DNSName
    private let verified: EventLoopPromise<Void>
    private var done = false

    init(expected: String, trustDomain: DNSName, verified: EventLoopPromise<Void>) {
        self.expected = expected
        self.trustDomain = trustDomain
        self.verified = verified
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail("the connection was set up again before the TLS handshake finished", context: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard !done, let tls = event as? TLSUserEvent, case .handshakeCompleted = tls else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        let certificate = (try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self))?.peerCertificate
        guard let certificate else {
            fail("the endpoint showed no certificate", context: context)
            return
        }
        switch PeerIdentity.workload(of: certificate, trustDomain: trustDomain) {
        case .success(let workload) where workload.tlsName == expected:
            done = true
            verified.succeed()
            context.fireUserInboundEventTriggered(event)
            _ = context.pipeline.syncOperations.removeHandler(context: context)
        case .success(let workload):
            fail("the endpoint is \(workload.tlsName), not \(expected)", context: context)
        case .failure(let problem):
            fail(problem.description, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !done else {
            context.fireErrorCaught(error)
            return
        }
        fail("the TLS handshake with the endpoint failed: \(error)", context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail("the endpoint closed the connection during the TLS handshake", context: context)
        context.fireChannelInactive()
    }

    private func fail(_ reason: String, context: ChannelHandlerContext?) {
        guard !done else { return }
        done = true
        verified.fail(UpstreamFailure.connectFailed("mesh TLS: \(reason)"))
        context?.close(promise: nil)
    }
}

@available(*, unavailable)
extension MeshTLSServerCheck: Sendable {}
