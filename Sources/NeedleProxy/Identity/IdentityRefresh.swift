import NeedleContract

/// When the proxy asks the identity service for a certificate, and whether it has one to serve with
/// (DESIGN §7). Pure: the caller reports what happened and the time (Unix seconds), and performs the
/// actions. At start it asks at once; once certified it asks again at 70 % of the certificate's validity;
/// after a failure it retries after a jittered, doubling delay, and meanwhile keeps the certificate it has
/// for as long as that is valid.
struct IdentityRefresh {
    struct Validity: Equatable {
        var notBefore: Double
        var notAfter: Double
    }

    enum Phase: Equatable {
        /// Not asked yet.
        case idle
        /// A request is out; `attempt` counts consecutive failures before it.
        case requesting(attempt: Int)
        /// The last request failed; the next goes out at `at`.
        case waiting(attempt: Int, at: Double)
        /// Certified; the next request goes out at `at`.
        case scheduled(at: Double)
    }

    enum Action: Equatable {
        /// Make a key and a CSR, and send them with the token.
        case request
        /// Come back (`timerFired`) at this time.
        case wake(at: Double)
        /// The certificate changed: serve with it from now on.
        case install(Validity)
        /// The certificate in use has expired and no new one came: stop serving until one does.
        case expired
    }

    private(set) var phase = Phase.idle
    private(set) var current: Validity?
    /// Consecutive failures (0 once a request succeeds).
    private(set) var failures = 0

    /// Ready to serve: a certificate that is valid now.
    func isReady(now: Double) -> Bool {
        guard let current else { return false }
        return now < current.notAfter
    }

    mutating func start() -> [Action] {
        guard phase == .idle else { return [] }
        phase = .requesting(attempt: 0)
        return [.request]
    }

    /// The identity service answered with a certificate valid from `notBefore` to `notAfter`.
    mutating func certified(_ validity: Validity, now: Double) -> [Action] {
        guard case .requesting = phase else { return [] }
        failures = 0
        current = validity
        let renewal = max(CertificateRenewal.renewalTime(notBefore: validity.notBefore, notAfter: validity.notAfter),
                          now + CertificateRenewal.minimumRetrySeconds)
        phase = .scheduled(at: renewal)
        return [.install(validity), .wake(at: renewal)]
    }

    /// The request failed (unreachable, refused, an unusable answer). `jitter` is in 0 ..< 1.
    mutating func failed(now: Double, jitter: Double) -> [Action] {
        guard case .requesting(let attempt) = phase else { return [] }
        failures = attempt + 1
        var retry = now + CertificateRenewal.retryDelay(attempt: failures, jitter: jitter)
        var actions = expireIfDue(now: now)
        // Wake at expiry at the latest, to stop serving with a dead certificate.
        if let current { retry = min(retry, current.notAfter) }
        phase = .waiting(attempt: failures, at: retry)
        actions.append(.wake(at: retry))
        return actions
    }

    mutating func timerFired(now: Double) -> [Action] {
        let attempt: Int
        let due: Double
        switch phase {
        case .waiting(let failed, let at):
            attempt = failed
            due = at
        case .scheduled(let at):
            attempt = 0
            due = at
        case .idle, .requesting:
            return []
        }
        let actions = expireIfDue(now: now)
        guard now >= due else { return actions + [.wake(at: due)] }
        phase = .requesting(attempt: attempt)
        return actions + [.request]
    }

    /// A certificate past its notAfter is dropped: nothing is served with it.
    private mutating func expireIfDue(now: Double) -> [Action] {
        guard let current, now >= current.notAfter else { return [] }
        self.current = nil
        return [.expired]
    }
}
