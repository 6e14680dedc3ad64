import NIOConcurrencyHelpers
import NIOCore

/// The client connections being forwarded, so shutdown can ask them to drain and then close what is left.
final class ConnectionRegistry: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        channels.withLockedValue { $0[ObjectIdentifier(channel)] = channel }
    }

    func remove(_ channel: any Channel) {
        _ = channels.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    var count: Int { channels.withLockedValue { $0.count } }
    var all: [any Channel] { channels.withLockedValue { Array($0.values) } }
}
