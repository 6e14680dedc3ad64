import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NeedleContract

/// Sets up an accepted connection: route it, count it, detect its protocol if the port is not opaque,
/// then hand it to the forwarder the `ForwardingPlan` names.
final class ConnectionSetup: Sendable {
    let environment: ProxyEnvironment
    let policy: RoutePolicy
    let metrics: ProxyMetrics
    let pools: UpstreamPools
    let logger: Logger
    /// nil: identity off, so no mesh TLS is terminated or originated.
    let identity: ProxyIdentity?
    /// nil: discovery off; outbound connections go to their original destination.
    let lookups: DestinationLookups?
    private let fallbackLog = NIOLockedValueBox(LogRateLimiter(interval: .seconds(10)))
    /// Originates mesh TLS to meshed endpoints (outbound only, with identity on); made once, not per connection.
    private let meshTLS: MeshTLSClient?

    init(environment: ProxyEnvironment, metrics: ProxyMetrics, pools: UpstreamPools, identity: ProxyIdentity?,
         lookups: DestinationLookups? = nil, logger: Logger) {
        self.environment = environment
        self.identity = identity
        self.meshTLS = identity.map { MeshTLSClient(identity: $0) }
        self.lookups = lookups
        self.policy = RoutePolicy(environment: environment)
        self.metrics = metrics
        self.pools = pools
        self.logger = logger
    }

    func connectTimeout(_ direction: Direction) -> TimeAmount {
        let duration = direction == .inbound ? environment.inboundConnectTimeout : environment.outboundConnectTimeout
        return .milliseconds(Int64(max(duration.milliseconds, 1)))
    }

    /// Runs in the child-channel initializer, on the connection's event loop.
    func accept(_ channel: any Channel, direction: Direction) -> EventLoopFuture<Void> {
        return OriginalDestination.read(channel).assumeIsolated().flatMap { [self] destination -> EventLoopFuture<Void> in
            switch policy.route(direction, originalDestination: destination) {
            case .refuse(let reason):
                metrics.recordRefused(direction)
                logger.debug("connection refused", metadata: ["direction": "\(direction.rawValue)", "reason": "\(reason)",
                                                              "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
                return channel.close()
            case .forward(let target, let skipDetection):
                logger.trace("connection accepted", metadata: ["direction": "\(direction.rawValue)", "target": "\(target)",
                                                               "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
                guard direction == .outbound, let lookups else {
                    return channel.eventLoop.makeCompletedFuture {
                        try self.prepare(channel, direction: direction, target: target, skipDetection: skipDetection,
                                         destination: .original(nil))
                    }
                }
                // The lookup is in use while the connection is open (DESIGN §8): its answer stays current.
                let route = lookups.acquire(target, on: channel.eventLoop)
                channel.closeFuture.whenComplete { _ in lookups.release(target) }
                return route.flatMapThrowing { route in
                    try self.prepare(channel, direction: direction, target: target, skipDetection: skipDetection,
                                     destination: OutboundDestination(route))
                }
            }
        }.flatMapErrorThrowing { [logger] error in
            logger.warning("cannot set up an accepted connection", metadata: ["direction": "\(direction.rawValue)", "error": "\(error)"])
            throw error
        }.nonisolated()
    }

    private func prepare(_ channel: any Channel, direction: Direction, target: ListenAddress, skipDetection: Bool,
                         destination: OutboundDestination) throws {
        let sync = channel.pipeline.syncOperations
        // Counts from the first byte; the labels come with the decision (plaintext, passed-through or mesh TLS).
        let counter = ByteCounter()
        try sync.addHandler(counter)
        let identityOn = identity != nil
        if case .original(let fallback?) = destination, let reason = fallback.metricReason {
            metrics.recordDiscoveryFallback(reason: reason)
            // Every connection is counted; an outage would log each one, so one line per 10 s says it.
            if let skipped = fallbackLog.withLockedValue({ $0.shouldLog(now: .now()) }) {
                logger.info("outbound connection sent to its original destination in plaintext",
                            metadata: ["target": "\(target)", "reason": "\(fallback)", "not_logged_since_last": "\(skipped)"])
            }
        }
        if skipDetection || destination.isOpaque {
            metrics.recordDetection(.opaque, timedOut: false)
            if direction == .inbound, let meshServerName = identity?.workload.tlsName {
                try acceptMeshTLSOnOpaquePort(channel, target: target, meshServerName: meshServerName, counter: counter)
                return
            }
            carryBytes(channel, direction: direction, target: target, destination: destination, detected: nil, counter: counter,
                       initial: channel.allocator.buffer(capacity: 0))
            return
        }
        // Inbound requests never carry a needle-client-id the peer wrote itself (DESIGN §7).
        let clientIdentity: ClientIdentityField = direction == .inbound ? .removed : .untouched
        let meshServerName = direction == .inbound ? identity?.workload.tlsName : nil
        // Inbound, anything an app's server could read as a request must go through the parser.
        let reading: RequestLineReading = direction == .inbound ? .lenient : .strict
        try sync.addHandler(DetectionHandler(timeout: detectTimeout, reading: reading) { [self] context, detected, buffered, timedOut, inputClosed in
            metrics.recordDetection(detected, timedOut: timedOut)
            logger.trace("protocol detected", metadata: ["protocol": "\(detected.metricLabel)", "timed_out": "\(timedOut)",
                                                         "target": "\(target)"])
            let plan = ForwardingPlan.plan(for: detected, meshServerName: meshServerName)
            if plan == .meshTLS {
                terminateMeshTLS(context: context, target: target, buffered: buffered, counter: counter)
                return
            }
            guard plan != .tcp || direction == .inbound else {
                // Outbound bytes go to one endpoint for the whole connection.
                _ = context.pipeline.syncOperations.removeHandler(context: context)
                carryBytes(context.channel, direction: direction, target: target, destination: destination, detected: detected,
                           counter: counter, initial: buffered, clientInputClosed: inputClosed)
                return
            }
            let tls: TLSLabel
            if case .discovered = destination {
                tls = destination.tlsLabel(identityOn: identityOn)
            } else {
                tls = .unterminated(direction, detected: detected, identityOn: identityOn)
            }
            let targetMetrics = open(context.channel, counting: counter, as: metrics.target(
                direction, address: target, tls: tls, destination: destination.destinationLabels))
            forward(plan, context: context, direction: direction, target: target, destination: destination, metrics: targetMetrics,
                    clientIdentity: clientIdentity, buffered: buffered, inputClosed: inputClosed,
                    guardsLateRequest: direction == .inbound && timedOut && buffered.readableBytes == 0)
        })
    }

    /// An opaque port still takes mesh TLS from meshed peers (their proxies reach it over mutual TLS, DESIGN
    /// §7): a ClientHello for this proxy's name is terminated and the bytes inside go to the app as they are.
    /// Anything else goes as bytes at once, and a client that says nothing (a server-speaks-first protocol)
    /// after `opaqueTLSWait`: a meshed client's proxy sends its ClientHello as soon as it connects.
    private func acceptMeshTLSOnOpaquePort(_ channel: any Channel, target: ListenAddress, meshServerName: String,
                                           counter: ByteCounter) throws {
        try channel.pipeline.syncOperations.addHandler(
            opaquePortDetection(target: target, meshServerName: meshServerName, counter: counter, timeout: Self.opaqueTLSWait))
    }

    /// The detector of an inbound opaque port. A ClientHello still arriving when the short wait ends (a large
    /// post-quantum key share spans segments; one may be retransmitted) gets the full detect timeout.
    private func opaquePortDetection(target: ListenAddress, meshServerName: String, counter: ByteCounter,
                                     timeout: TimeAmount) -> DetectionHandler {
        DetectionHandler(timeout: timeout, reading: .strict) { [self] context, detected, buffered, timedOut, inputClosed in
            if case .tls(let serverName) = detected, serverName == meshServerName {
                terminateMeshTLS(context: context, target: target, buffered: buffered, counter: counter, innerOpaque: true)
                return
            }
            let handshakeStarted = buffered.readableBytesView.first == 0x16
            if timedOut, handshakeStarted, !inputClosed, timeout < detectTimeout {
                let patient = opaquePortDetection(target: target, meshServerName: meshServerName, counter: counter, timeout: detectTimeout)
                do {
                    try context.pipeline.syncOperations.addHandler(patient, position: .after(context.handler))
                } catch {
                    context.close(promise: nil)
                    return
                }
                context.fireChannelRead(NIOAny(buffered))
                _ = context.pipeline.syncOperations.removeHandler(context: context)
                return
            }
            _ = context.pipeline.syncOperations.removeHandler(context: context)
            carryBytes(context.channel, direction: .inbound, target: target, destination: .original(nil), detected: detected,
                       counter: counter, initial: buffered, clientInputClosed: inputClosed)
        }
    }

    /// One endpoint for a whole connection (a fresh random seed: connections are rare next to requests).
    private static func chooseOne(_ target: ListenAddress, _ lookups: DestinationLookups) -> DestinationEndpoint? {
        var random = SplitMix64()
        return lookups.choose(target, using: &random)
    }

    /// How long an inbound opaque port waits for a mesh ClientHello before the connection goes on as bytes.
    static let opaqueTLSWait = TimeAmount.milliseconds(300)

    /// Opaque outbound bytes (and any inbound ones on an opaque port): to the original destination, or to one
    /// endpoint discovery named, chosen for the whole connection (mesh TLS when it is meshed).
    private func carryBytes(_ channel: any Channel, direction: Direction, target: ListenAddress, destination: OutboundDestination,
                            detected: DetectedProtocol?, counter: ByteCounter, initial: ByteBuffer, clientInputClosed: Bool = false) {
        let identityOn = identity != nil
        guard case .discovered = destination, let lookups, let endpoint = Self.chooseOne(target, lookups) else {
            open(channel, counting: counter, as: metrics.target(direction, address: target,
                                                                 tls: .unterminated(direction, detected: detected, identityOn: identityOn)))
            tcpForwarder(direction).start(channel, target: UpstreamEndpoint(target), initial: initial, clientInputClosed: clientInputClosed)
            return
        }
        open(channel, counting: counter, as: metrics.target(direction, address: target,
                                                             tls: OutboundDestination.tlsLabel(for: endpoint, identityOn: identityOn),
                                                             destination: DestinationLabels(endpoint)))
        let started = NIODeadline.now().uptimeNanoseconds
        tcpForwarder(direction).start(channel, target: UpstreamEndpoint(endpoint), initial: initial,
                                      clientInputClosed: clientInputClosed) { connected in
            // A connection's whole life is no latency sample; its connect is.
            lookups.finished(target, endpoint: endpoint.address, rtt: NIODeadline.now().uptimeNanoseconds &- started,
                             succeeded: connected)
        }
    }

    /// Counts the connection as open under `targetMetrics` (and as closed when it closes), with its bytes
    /// from the first one.
    @discardableResult
    private func open(_ channel: any Channel, counting counter: ByteCounter, as targetMetrics: TargetMetrics) -> TargetMetrics {
        targetMetrics.connectionOpened()
        channel.closeFuture.whenComplete { _ in targetMetrics.connectionClosed() }
        counter.count(into: targetMetrics)
        return targetMetrics
    }

    private var detectTimeout: TimeAmount { .milliseconds(Int64(environment.detectTimeout.milliseconds)) }

    private func tcpForwarder(_ direction: Direction) -> TCPForwarder {
        TCPForwarder(connectTimeout: connectTimeout(direction), logger: logger, meshTLS: direction == .outbound ? meshTLS : nil)
    }



    /// Hands the connection, with the bytes detection read, to the forwarder of `plan`; the detector (the
    /// handler of `context`) steps out. `guardsLateRequest`: an inbound connection that said nothing before
    /// the detect timeout; if its first bytes are HTTP after all it is closed (`LateRequestCheck`).
    private func forward(_ plan: ForwardingPlan, context: ChannelHandlerContext, direction: Direction, target: ListenAddress,
                         destination: OutboundDestination = .original(nil),
                         metrics targetMetrics: TargetMetrics, clientIdentity: ClientIdentityField, buffered: ByteBuffer,
                         inputClosed: Bool, guardsLateRequest: Bool = false) {
        let detector = context.handler
        var balancing: OutboundBalancing?
        if case .discovered = destination, let lookups {
            let identityOn = identity != nil
            let original = metrics.target(.outbound, address: target, tls: TLSLabel.unterminated(.outbound, detected: nil, identityOn: identityOn),
                                          destination: destination.destinationLabels)
            balancing = OutboundBalancing(lookups: lookups, metrics: EndpointMetrics(original: original) { [metrics] endpoint in
                metrics.target(.outbound, address: target, tls: OutboundDestination.tlsLabel(for: endpoint, identityOn: identityOn),
                               destination: DestinationLabels(endpoint))
            })
        }
        do {
            switch plan {
            case .http1:
                try HTTP1Forwarder(pools: pools, headerReadTimeout: HeaderReadTimer.defaultTimeout)
                    .start(context: context, after: detector, target: target, balancing: balancing, metrics: targetMetrics,
                           clientIdentity: clientIdentity, buffered: buffered)
            case .http2:
                try HTTP2Forwarder(connectTimeout: connectTimeout(direction), meshTLS: direction == .outbound ? meshTLS : nil)
                    .start(context: context, after: detector, target: target, balancing: balancing, metrics: targetMetrics,
                           clientIdentity: clientIdentity, buffered: buffered)
            case .tcp, .meshTLS:
                // Mesh TLS inside mesh TLS is not terminated twice: it goes on as bytes.
                if guardsLateRequest, !inputClosed {
                    let lateGuard = LateRequestGuardHandler(allocator: context.channel.allocator, timeout: detectTimeout) { [self] in
                        metrics.recordLateRequestRefused()
                        logger.debug("closed an opaque inbound connection whose client spoke HTTP after the detect timeout",
                                     metadata: ["target": "\(target)"])
                    }
                    try context.pipeline.syncOperations.addHandler(lateGuard, position: .after(context.handler))
                }
                _ = context.pipeline.syncOperations.removeHandler(context: context)
                tcpForwarder(direction).start(context.channel, target: UpstreamEndpoint(target), initial: buffered,
                                              clientInputClosed: inputClosed)
            }
            if inputClosed, plan == .http1 || plan == .http2 {
                context.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            }
        } catch {
            logger.warning("cannot set up the connection", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    /// Mesh TLS for this proxy (DESIGN §7): the TLS handler takes the bytes detection read, a verified client
    /// certificate names the peer, then the inner stream is detected and forwarded with that name in
    /// `needle-client-id` and in the `client_id` label. Without a certificate in use nothing is accepted, so
    /// a missing server context here only means it expired in between: close.
    /// `innerOpaque`: the port is opaque; what the peer sends inside TLS goes to the app as bytes, undetected.
    private func terminateMeshTLS(context: ChannelHandlerContext, target: ListenAddress, buffered: ByteBuffer, counter: ByteCounter,
                                  innerOpaque: Bool = false) {
        let channel = context.channel
        guard let identity, let serverContext = identity.serverContext else {
            metrics.recordMeshTLSFailure()
            context.close(promise: nil)
            return
        }
        let sync = channel.pipeline.syncOperations
        let tls = NIOSSLServerHandler(context: serverContext)
        let acceptor = MeshTLSAcceptor(timeout: detectTimeout, trustDomain: identity.workload.trustDomain, onAuthenticated: { [self] context, peer in
            let meshMetrics = open(context.channel, counting: counter, as: metrics.target(.inbound, address: target, tls: .mesh(clientID: peer)))
            if innerOpaque {
                _ = context.pipeline.syncOperations.removeHandler(context: context)
                tcpForwarder(.inbound).start(context.channel, target: UpstreamEndpoint(target), initial: context.channel.allocator.buffer(capacity: 0))
                return
            }
            let inner = DetectionHandler(timeout: detectTimeout, reading: .lenient) { [self] context, detected, buffered, timedOut, inputClosed in
                metrics.recordDetection(detected, timedOut: timedOut)
                forward(ForwardingPlan.plan(for: detected), context: context, direction: .inbound, target: target,
                        metrics: meshMetrics, clientIdentity: .set(peer), buffered: buffered, inputClosed: inputClosed,
                        guardsLateRequest: timedOut && buffered.readableBytes == 0)
            }
            do {
                try context.pipeline.syncOperations.addHandler(inner, position: .after(context.handler))
                _ = context.pipeline.syncOperations.removeHandler(context: context)
            } catch {
                context.close(promise: nil)
            }
        }, onFailure: { [self] reason in
            metrics.recordMeshTLSFailure()
            logger.debug("mesh TLS refused", metadata: ["reason": "\(reason)", "target": "\(target)"])
        })
        do {
            try sync.addHandler(tls, position: .after(context.handler))
            try sync.addHandler(acceptor, position: .after(tls))
        } catch {
            context.close(promise: nil)
            return
        }
        // The detector's bytes are the start of the ClientHello: they go to the TLS handler first.
        context.fireChannelRead(NIOAny(buffered))
        context.fireChannelReadComplete()
        _ = sync.removeHandler(context: context)
    }
}
