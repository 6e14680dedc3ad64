import NIOConcurrencyHelpers
import NeedleContract
import NeedleDiscovery

/// The destination service's state (DESIGN §8): the `DestinationIndex` the watches keep, and the open
/// lookups, each told what changed for its address. Answers wait until Services, EndpointSlices and pods
/// have each been listed once, so a lookup is never answered "not known" from a half-read cluster.
public final class DestinationCatalog: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case services, endpointSlices, pods
    }

    private struct Lookup {
        var address: ListenAddress
        /// What this lookup was last told; nil before its first answer.
        var told: DestinationAnswer?
        var continuation: AsyncStream<[UInt8]>.Continuation
    }

    private struct State {
        var index: DestinationIndex
        var listed: Set<Kind> = []
        var lookups: [UInt64: Lookup] = [:]
        var nextID: UInt64 = 0
    }

    /// Batches a lookup may fall behind by before it is ended (its client reconnects and starts afresh):
    /// memory per lookup stays bounded whatever its client does.
    public static let maximumQueuedBatches = 256

    private let state: NIOLockedValueBox<State>

    public init(trustDomain: DNSName) {
        state = NIOLockedValueBox(State(index: DestinationIndex(trustDomain: trustDomain)))
    }

    /// Every kind has been listed: answers are complete.
    public var isReady: Bool { state.withLockedValue { $0.listed.count == Kind.allCases.count } }

    public var openLookups: Int { state.withLockedValue { $0.lookups.count } }

    /// A complete list of one kind arrived (first list or relist).
    public func replace(_ kind: Kind, with change: DestinationIndex.Change) {
        let ended = state.withLockedValue { state in
            state.index.apply(change)
            state.listed.insert(kind)
            return Self.tell(&state)
        }
        for continuation in ended { continuation.finish() }
    }

    /// One watch event.
    public func apply(_ change: DestinationIndex.Change) {
        let ended = state.withLockedValue { state in
            state.index.apply(change)
            return Self.tell(&state)
        }
        for continuation in ended { continuation.finish() }
    }

    /// Ends every lookup (a draining controller): each stream writes its end and its connection closes, and
    /// the proxies ask another replica.
    public func finishAll() {
        let ended = state.withLockedValue { state -> [AsyncStream<[UInt8]>.Continuation] in
            defer { state.lookups = [:] }
            return state.lookups.values.map(\.continuation)
        }
        for continuation in ended { continuation.finish() }
    }

    /// The answer for `address` now (for tests and logs); nil while not every kind is listed.
    public func answer(for address: ListenAddress) -> DestinationAnswer? {
        state.withLockedValue { $0.listed.count == Kind.allCases.count ? $0.index.answer(for: address) : nil }
    }

    /// A lookup: its answer's event lines (`DestinationAPI`), one batch per element, for as long as the
    /// stream is read. Ending the stream (the client went away) ends the lookup.
    public func lookup(_ address: ListenAddress) -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .bufferingOldest(Self.maximumQueuedBatches))
        let (id, ended) = state.withLockedValue { state -> (UInt64, [AsyncStream<[UInt8]>.Continuation]) in
            let id = state.nextID
            state.nextID += 1
            state.lookups[id] = Lookup(address: address, told: nil, continuation: continuation)
            return (id, Self.tell(&state))
        }
        for ending in ended { ending.finish() }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLockedValue { $0.lookups.removeValue(forKey: id) }
        }
        return stream
    }

    /// Sends each lookup what changed for it. A lookup whose client has fallen too far behind is removed;
    /// its continuation is returned to be finished once the lock is released (finishing runs
    /// `onTermination`, which takes the lock).
    private static func tell(_ state: inout State) -> [AsyncStream<[UInt8]>.Continuation] {
        guard state.listed.count == Kind.allCases.count else { return [] }
        var ended: [AsyncStream<[UInt8]>.Continuation] = []
        for (id, lookup) in state.lookups {
            let answer = state.index.answer(for: lookup.address)
            let events = DestinationDiff.events(from: lookup.told, to: answer)
            guard !events.isEmpty else { continue }
            state.lookups[id]?.told = answer
            var batch: [UInt8] = []
            for event in events {
                batch += event.line.utf8
                batch.append(UInt8(ascii: "\n"))
            }
            if case .dropped = lookup.continuation.yield(batch) {
                state.lookups[id] = nil
                ended.append(lookup.continuation)
            }
        }
        return ended
    }
}
