/// When a certificate is renewed (DESIGN §7), for the proxy's own certificate and the controller's serving
/// certificate alike: once 70 % of its validity (notBefore to notAfter) has passed, and after a failure
/// again after a jittered, doubling delay from 10 s to 5 min. Times are Unix seconds, so the proxy needs no
/// Foundation to use it.
public enum CertificateRenewal {
    public static let renewedFraction = 0.7
    public static let minimumRetrySeconds = 10.0
    public static let maximumRetrySeconds = 300.0

    /// The time to renew a certificate valid from `notBefore` to `notAfter`.
    public static func renewalTime(notBefore: Double, notAfter: Double) -> Double {
        notBefore + max(0, notAfter - notBefore) * renewedFraction
    }

    /// The delay before retry number `attempt` (1 for the first retry): doubling from the minimum, capped,
    /// then spread by `jitter` (0 ..< 1, from the caller's random source) over the upper half so that
    /// proxies that failed together do not retry together.
    public static func retryDelay(attempt: Int, jitter: Double) -> Double {
        let doublings = min(max(attempt - 1, 0), 16)
        let base = min(minimumRetrySeconds * Double(1 << doublings), maximumRetrySeconds)
        let spread = min(max(jitter, 0), 1)
        return max(minimumRetrySeconds, base * (0.5 + 0.5 * spread))
    }
}
