import NIOCore

/// One `UpstreamPool` per event loop. Each pool is reachable only from its own loop: `NIOLoopBound`
/// checks that on every access, in release builds too, so the pools need no locks.
final class UpstreamPools: Sendable {
    private let pools: [ObjectIdentifier: NIOLoopBoundBox<UpstreamPool?>]
    private let connectTimeout: TimeAmount
    private let meshTLS: MeshTLSClient?

    init(group: any EventLoopGroup, connectTimeout: TimeAmount, meshTLS: MeshTLSClient? = nil) {
        var pools: [ObjectIdentifier: NIOLoopBoundBox<UpstreamPool?>] = [:]
        for loop in group.makeIterator() {
            // Made empty here (off the loop); the pool itself is created on first use, on its loop.
            pools[ObjectIdentifier(loop)] = .makeEmptyBox(valueType: UpstreamPool.self, eventLoop: loop)
        }
        self.pools = pools
        self.connectTimeout = connectTimeout
        self.meshTLS = meshTLS
    }

    /// The pool of `eventLoop`; the caller must be on that loop.
    func pool(on eventLoop: any EventLoop) throws -> UpstreamPool {
        guard let box = pools[ObjectIdentifier(eventLoop)] else {
            throw ProxySetupError(description: "no upstream pool on this event loop")
        }
        if let pool = box.value { return pool }
        let pool = UpstreamPool(eventLoop: eventLoop, connectTimeout: connectTimeout, meshTLS: meshTLS)
        box.value = pool
        return pool
    }

    /// Closes every idle connection, each on its own loop.
    func closeIdle() async {
        for box in pools.values {
            try? await box.eventLoop.submit { box.value?.closeIdle() }.get()
        }
    }
}

struct ProxySetupError: Error, CustomStringConvertible {
    let description: String
}
