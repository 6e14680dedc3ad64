import NIOCore
import NIOHTTP1
import NIOPosix

/// The plain-HTTP admin listener of the proxy and the injector: `AdminHandler` behind NIO's HTTP/1.1 server
/// pipeline (which also closes idle admin connections on quiesce).
public enum AdminListener {
    public static func bind(group: any EventLoopGroup, host: String, port: Int, state: AdminHandler.State) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(state: state))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}
