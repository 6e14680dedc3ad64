import NIOConcurrencyHelpers
import NeedleContract
import NeedleDiscovery

/// The destination service's state (DESIGN §8): the `DestinationIndex` the watches keep, and the open
/// lookups, each told what changed for its address. Answers wait until Services, EndpointSlices and pods
/// have each been listed once, so a lookup is never answered "not known" from a half-read cluster.
///
/// Cost per cluster change: one answer per distinct address being looked up (many proxies ask for the same
/// few Services), compared with that address's last answer; lookups whose address did not change cost a
/// version check, and those that did share one encoded batch.
public final class DestinationCatalog: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case services, endpointSlices, pods
    }

    private struct Lookup {
        var address: ListenAddress
        /// The version of its address's answer this lookup was last told; nil before its first answer.
        var toldVersion: UInt64?
        var continuation: AsyncStream<[UInt8]>.Continuation
    }

    /// The current answer for an address some lookup asks about, and the one before it.
    private struct AddressAnswer {
        var version: UInt64
        var answer: DestinationAnswer
        var previous: (version: UInt64, answer: DestinationAnswer)?
    }

    private struct State {
        var index: DestinationIndex
        var listed: Set<Kind> = []
        var lookups: [UInt64: Lookup] = [:]
        var answers: [ListenAddress: AddressAnswer] = [:]
        var lookupsPerAddress: [ListenAddress: Int] = [:]
        var nextID: UInt64 = 0
        var nextVersion: UInt64 = 1
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
            defer {
                state.lookups = [:]
                state.answers = [:]
                state.lookupsPerAddress = [:]
            }
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
            state.lookups[id] = Lookup(address: address, toldVersion: nil, continuation: continuation)
            state.lookupsPerAddress[address, default: 0] += 1
            return (id, Self.tell(&state))
        }
        for ending in ended { ending.finish() }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLockedValue { state in
                guard let lookup = state.lookups.removeValue(forKey: id) else { return }
                Self.forgetIfUnused(lookup.address, in: &state)
            }
        }
        return stream
    }

    /// Sends each lookup what changed for it. A lookup whose client has fallen too far behind is removed;
    /// its continuation is returned to be finished once the lock is released (finishing runs
    /// `onTermination`, which takes the lock).
    private static func tell(_ state: inout State) -> [AsyncStream<[UInt8]>.Continuation] {
        guard state.listed.count == Kind.allCases.count else { return [] }
        // One answer per distinct address; a new version only when it changed.
        for address in state.lookupsPerAddress.keys {
            let answer = state.index.answer(for: address)
            if let current = state.answers[address] {
                guard current.answer != answer else { continue }
                state.answers[address] = AddressAnswer(version: state.nextVersion, answer: answer,
                                                       previous: (current.version, current.answer))
            } else {
                state.answers[address] = AddressAnswer(version: state.nextVersion, answer: answer, previous: nil)
            }
            state.nextVersion += 1
        }
        var ended: [AsyncStream<[UInt8]>.Continuation] = []
        // Lookups that were told the previous version share one batch per address.
        var shared: [ListenAddress: [UInt8]] = [:]
        for (id, lookup) in state.lookups {
            guard let current = state.answers[lookup.address], lookup.toldVersion != current.version else { continue }
            let batch: [UInt8]
            if let previous = current.previous, lookup.toldVersion == previous.version {
                if let encoded = shared[lookup.address] {
                    batch = encoded
                } else {
                    batch = encode(DestinationDiff.events(from: previous.answer, to: current.answer))
                    shared[lookup.address] = batch
                }
            } else {
                // A new lookup, or one that missed a version: everything, from a reset.
                batch = encode(DestinationDiff.events(from: nil, to: current.answer))
            }
            state.lookups[id]?.toldVersion = current.version
            guard !batch.isEmpty else { continue }
            if case .dropped = lookup.continuation.yield(batch) {
                state.lookups[id] = nil
                forgetIfUnused(lookup.address, in: &state)
                ended.append(lookup.continuation)
            }
        }
        return ended
    }

    private static func encode(_ events: [DestinationEvent]) -> [UInt8] {
        var batch: [UInt8] = []
        for event in events {
            batch += event.line.utf8
            batch.append(UInt8(ascii: "\n"))
        }
        return batch
    }

    /// Counts a lookup of `address` out; its kept answer goes with the last one.
    private static func forgetIfUnused(_ address: ListenAddress, in state: inout State) {
        let remaining = (state.lookupsPerAddress[address] ?? 1) - 1
        if remaining > 0 {
            state.lookupsPerAddress[address] = remaining
        } else {
            state.lookupsPerAddress[address] = nil
            state.answers[address] = nil
        }
    }
}
