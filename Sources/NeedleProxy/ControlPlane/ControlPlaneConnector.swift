import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NeedleContract

/// Connects to a control-plane service (identity, destination) at its address, an IP or a DNS name the
/// proxy's own resolver looks up, trying each address in turn; TLS verified for the service's TLS name, then
/// the caller's handlers (HTTP/1.1 or HTTP/2 as it speaks).
struct ControlPlaneConnector: Sendable {
    let service: ControlPlaneService
    let group: any EventLoopGroup
    let resolver: DNSResolver

    static let connectTimeout = TimeAmount.seconds(5)

    /// `loop`: the connection's event loop (any of the group's when nil).
    func connect(context: NIOSSLContext, on loop: (any EventLoop)? = nil,
                 handlers: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void) -> EventLoopFuture<any Channel> {
        let loop = loop ?? group.next()
        let serverName = service.tlsName.description
        // A bootstrap per connection attempt (bootstraps are not Sendable; attempts run in callbacks).
        let bootstrap: @Sendable () -> ClientBootstrap = {
            ClientBootstrap(group: loop)
                .connectTimeout(Self.connectTimeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                        try handlers(sync)
                    }
                }
        }
        let port = service.address.port
        let addresses: EventLoopFuture<[SocketAddress]>
        switch service.address.host {
        case .ip(let ip):
            addresses = loop.makeCompletedFuture { [try SocketAddress(ipAddress: ip.description, port: port)] }
        case .name(let name):
            let resolver = self.resolver
            addresses = loop.makeFutureWithTask { try await resolver.resolve(name, port: port) }
        }
        return addresses.flatMap { Self.connectFirst(bootstrap, $0[...], loop: loop) }
    }

    /// Each address in turn until one connects; the last error if none does.
    private static func connectFirst(_ bootstrap: @escaping @Sendable () -> ClientBootstrap, _ addresses: ArraySlice<SocketAddress>,
                                     loop: any EventLoop, lastError: (any Error)? = nil) -> EventLoopFuture<any Channel> {
        guard let first = addresses.first else {
            return loop.makeFailedFuture(lastError ?? IdentityError("no address to connect to"))
        }
        return bootstrap().connect(to: first).flatMapError { error in
            connectFirst(bootstrap, addresses.dropFirst(), loop: loop, lastError: error)
        }
    }
}
