#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NeedleContract

/// The proxy's workload identity at run time (DESIGN §7): it gets a certificate from the identity service
/// at start, renews it at 70 % of its validity (retrying with jittered backoff, keeping the one it has
/// while that is valid), and hands the TLS contexts made from it to the listeners. `IdentityRefresh`
/// decides when; this class performs.
final class ProxyIdentity: Sendable {
    let workload: WorkloadIdentity
    private let settings: IdentitySettings
    private let client: CertifyClient
    private let trustAnchors: [NIOSSLCertificate]
    private let loop: any EventLoop
    private let metrics: ProxyMetrics
    private let logger: Logger

    private struct State {
        var refresh = IdentityRefresh()
        var issued: IssuedIdentity?
        var timer: Scheduled<Void>?
        var readyHandlers: [@Sendable () -> Void] = []
        var stopped = false
    }

    private let state = NIOLockedValueBox(State())

    init(settings: IdentitySettings, workload: WorkloadIdentity, group: any EventLoopGroup, metrics: ProxyMetrics,
         logger: Logger) throws(IdentityError) {
        do {
            trustAnchors = try NIOSSLCertificate.fromPEMBytes(Array(settings.trustAnchorsPEM.utf8))
        } catch {
            throw IdentityError("\(ProxyVariable.identityTrustAnchors.rawValue) holds no usable PEM certificates: \(error)")
        }
        guard !trustAnchors.isEmpty else { throw IdentityError("\(ProxyVariable.identityTrustAnchors.rawValue) holds no certificate") }
        do {
            client = try CertifyClient(service: settings.service, trustAnchors: trustAnchors, group: group,
                                       resolver: DNSResolver.system(group: group))
        } catch {
            throw IdentityError("cannot make the TLS client for the identity service: \(error)")
        }
        self.settings = settings
        self.workload = workload
        self.loop = group.next()
        self.metrics = metrics
        self.logger = logger
    }

    /// A valid certificate is in use.
    var isReady: Bool { state.withLockedValue { $0.refresh.isReady(now: Self.wallClock()) } }

    /// The context that terminates inbound mesh TLS, while a valid certificate is in use.
    var serverContext: NIOSSLContext? {
        state.withLockedValue { $0.refresh.isReady(now: Self.wallClock()) ? $0.issued?.serverContext : nil }
    }

    /// The context that originates mesh TLS, while a valid certificate is in use.
    /// For the destination service: the client context offering `h2` by ALPN.
    var controlPlaneContext: NIOSSLContext? {
        state.withLockedValue { $0.refresh.isReady(now: Self.wallClock()) ? $0.issued?.controlPlaneContext : nil }
    }

    var clientContext: NIOSSLContext? {
        state.withLockedValue { $0.refresh.isReady(now: Self.wallClock()) ? $0.issued?.clientContext : nil }
    }

    /// Runs `handler` once, as soon as the first certificate is in use (at once if it already is).
    func whenFirstCertified(_ handler: @escaping @Sendable () -> Void) {
        let now = state.withLockedValue { state -> Bool in
            if state.issued != nil { return true }
            state.readyHandlers.append(handler)
            return false
        }
        if now { handler() }
    }

    func start() {
        loop.execute { self.apply(self.state.withLockedValue { $0.refresh.start() }) }
    }

    func stop() {
        state.withLockedValue { state in
            state.stopped = true
            state.timer?.cancel()
            state.timer = nil
        }
    }

    private func apply(_ actions: [IdentityRefresh.Action]) {
        for action in actions {
            switch action {
            case .request:
                request()
            case .wake(let at):
                let delay = TimeAmount.nanoseconds(Int64(max(0, at - Self.wallClock()) * 1e9))
                let timer = loop.scheduleTask(in: delay) {
                    self.apply(self.state.withLockedValue { $0.refresh.timerFired(now: Self.wallClock()) })
                }
                state.withLockedValue { state in
                    state.timer?.cancel()
                    state.timer = state.stopped ? nil : timer
                    if state.stopped { timer.cancel() }
                }
            case .install(let validity):
                metrics.identity.certified(expiresAt: validity.notAfter, at: Self.wallClock())
                logger.info("certificate in use", metadata: ["identity": "\(workload.tlsName)",
                                                             "expires_in_s": "\(Int(validity.notAfter - Self.wallClock()))"])
                let handlers = state.withLockedValue { state in
                    defer { state.readyHandlers = [] }
                    return state.readyHandlers
                }
                for handler in handlers { handler() }
            case .expired:
                logger.error("the certificate expired and no new one came; mesh TLS is off until one does",
                             metadata: ["identity": "\(workload.tlsName)"])
            }
        }
    }

    /// Reads the token (the kubelet rotates it), makes a key and a CSR, and asks.
    private func request() {
        guard let token = LocalFile.read(settings.tokenFile, limit: 16 * 1024)?.filter({ !$0.isWhitespace }), !token.isEmpty else {
            fail("cannot read the service-account token \(settings.tokenFile)")
            return
        }
        let made: CertificateRequestMaker.Made
        do {
            made = try CertificateRequestMaker.make(for: workload)
        } catch {
            fail("cannot make a certificate request: \(error)")
            return
        }
        client.certify(token: token, requestPEM: made.requestPEM).hop(to: loop).whenComplete { result in
            switch result {
            case .failure(let error):
                self.fail("the identity service cannot be reached at \(self.settings.service.address): \(error)")
            case .success(let answer) where answer.status != 200:
                let said = String(decoding: answer.body.prefix(512), as: UTF8.self).trimmingNewlines
                let result = CertifyResult(refusalBody: said).map { "\($0.rawValue)" } ?? "HTTP \(answer.status)"
                self.fail("the identity service refused: \(said)", result: result)
            case .success(let answer):
                do {
                    let issued = try IssuedIdentity(chainPEM: answer.body, made: made, workload: self.workload,
                                                    trustAnchors: self.trustAnchors, now: Self.wallClock())
                    let actions = self.state.withLockedValue { state in
                        state.issued = issued
                        return state.refresh.certified(.init(notBefore: issued.notBefore, notAfter: issued.notAfter),
                                                       now: Self.wallClock())
                    }
                    self.metrics.identity.refreshed(ok: true)
                    self.apply(actions)
                } catch {
                    self.fail("the identity service's certificate is unusable: \(error)")
                }
            }
        }
    }

    private func fail(_ reason: String, result: String = "error") {
        metrics.identity.refreshed(ok: false)
        let failures = state.withLockedValue { $0.refresh.failures } + 1
        logger.warning("no certificate", metadata: ["reason": "\(reason)", "result": "\(result)", "failures": "\(failures)"])
        apply(state.withLockedValue { $0.refresh.failed(now: Self.wallClock(), jitter: Double.random(in: 0..<1)) })
    }

    static func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

private extension String {
    var trimmingNewlines: String {
        var text = Substring(self)
        while text.last == "\n" || text.last == "\r" { text.removeLast() }
        return String(text)
    }
}
