import NIOConcurrencyHelpers
import NIOCore

/// Counts a listener's open connections and refuses new ones past a cap (the injector's webhook listener;
/// the proxy does not cap, it counts per target in its metrics). A connection is counted from `admit`
/// until its channel closes.
public final class ConnectionLimit: Sendable {
    public let maximum: Int
    private let open = NIOLockedValueBox(0)

    public init(maximum: Int) {
        self.maximum = maximum
    }

    public var openConnections: Int { open.withLockedValue { $0 } }

    /// Counts `channel` in and returns true, or returns false at the cap (the caller closes the channel).
    /// `onClose` runs once the counted channel has closed.
    public func admit(_ channel: any Channel, onClose: @escaping @Sendable () -> Void = {}) -> Bool {
        let admitted = open.withLockedValue { count -> Bool in
            guard count < maximum else { return false }
            count += 1
            return true
        }
        guard admitted else { return false }
        channel.closeFuture.whenComplete { [open] _ in
            open.withLockedValue { $0 -= 1 }
            onClose()
        }
        return true
    }
}
