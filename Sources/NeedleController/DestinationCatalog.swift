import NIOConcurrencyHelpers
import NeedleContract
import NeedleDiscovery

/// The destination service's state (DESIGN §8): the `DestinationIndex` the watches keep, and the open
/// lookups, each told what changed for its address. Answers wait until Services, EndpointSlices and pods
/// have each been listed once, so a lookup is never answered "not known" from a half-read cluster.
///
/// Cost per cluster change: nothing when the change leaves every record as it was (most watch events);
/// otherwise one answer for each looked-up address the change may have altered (`TouchedAnswers`),
/// compared with that address's last answer, and one encoded batch shared by the lookups of an address
/// that did change. Lookups of other addresses are not visited.
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
        var lookupsByAddress: [ListenAddress: Set<UInt64>] = [:]
        var answers: [ListenAddress: AddressAnswer] = [:]
        var nextID: UInt64 = 0
        var nextVersion: UInt64 = 1

        var isReady: Bool { listed.count == Kind.allCases.count }
    }

    /// Batches a lookup may fall behind by before it is ended (its client reconnects and starts afresh):
    /// memory per lookup stays bounded whatever its client does.
    public static let maximumQueuedBatches = 256

    private let state: NIOLockedValueBox<State>

    public init(trustDomain: DNSName) {
        state = NIOLockedValueBox(State(index: DestinationIndex(trustDomain: trustDomain)))
    }

    /// Every kind has been listed: answers are complete.
    public var isReady: Bool { state.withLockedValue { $0.isReady } }

    public var openLookups: Int { state.withLockedValue { $0.lookups.count } }

    /// A complete list of one kind arrived (first list or relist).
    public func replace(_ kind: Kind, with change: DestinationIndex.Change) {
        let ended = state.withLockedValue { state in
            let touched = state.index.apply(change)
            state.listed.insert(kind)
            return Self.tell(touched, &state)
        }
        for continuation in ended { continuation.finish() }
    }

    /// One watch event.
    public func apply(_ change: DestinationIndex.Change) {
        let ended = state.withLockedValue { state -> [AsyncStream<[UInt8]>.Continuation] in
            let touched = state.index.apply(change)
            return touched.isEmpty ? [] : Self.tell(touched, &state)
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
                state.lookupsByAddress = [:]
            }
            return state.lookups.values.map(\.continuation)
        }
        for continuation in ended { continuation.finish() }
    }

    /// The answer for `address` now (for tests and logs); nil while not every kind is listed.
    public func answer(for address: ListenAddress) -> DestinationAnswer? {
        state.withLockedValue { $0.isReady ? $0.index.answer(for: address) : nil }
    }

    /// A lookup: its answer's event lines (`DestinationAPI`), one batch per element, for as long as the
    /// stream is read. Ending the stream (the client went away) ends the lookup.
    public func lookup(_ address: ListenAddress) -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .bufferingOldest(Self.maximumQueuedBatches))
        let (id, ended) = state.withLockedValue { state -> (UInt64, [AsyncStream<[UInt8]>.Continuation]) in
            let id = state.nextID
            state.nextID += 1
            state.lookups[id] = Lookup(address: address, toldVersion: nil, continuation: continuation)
            state.lookupsByAddress[address, default: []].insert(id)
            guard state.isReady else { return (id, []) }
            if state.answers[address] == nil { Self.refreshAnswer(address, &state) }
            return (id, Self.tellLookups([id], of: address, &state))
        }
        for ending in ended { ending.finish() }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLockedValue { state in
                guard let lookup = state.lookups.removeValue(forKey: id) else { return }
                Self.forget(id, of: lookup.address, in: &state)
            }
        }
        return stream
    }

    /// Sends what changed to the lookups of every address the change may have altered. A lookup whose client
    /// has fallen too far behind is removed; its continuation is returned to be finished once the lock is
    /// released (finishing runs `onTermination`, which takes the lock).
    private static func tell(_ touched: TouchedAnswers, _ state: inout State) -> [AsyncStream<[UInt8]>.Continuation] {
        guard state.isReady else { return [] }
        var changed: [ListenAddress] = []
        for address in state.lookupsByAddress.keys
        where state.answers[address] == nil || state.index.mayHaveChanged(address, by: touched) {
            if refreshAnswer(address, &state) { changed.append(address) }
        }
        var ended: [AsyncStream<[UInt8]>.Continuation] = []
        for address in changed {
            ended += tellLookups(state.lookupsByAddress[address] ?? [], of: address, &state)
        }
        return ended
    }

    /// Asks the index again for `address`; true when the answer is new or differs (a new version).
    @discardableResult
    private static func refreshAnswer(_ address: ListenAddress, _ state: inout State) -> Bool {
        let answer = state.index.answer(for: address)
        let current = state.answers[address]
        if let current, current.answer == answer { return false }
        state.answers[address] = AddressAnswer(version: state.nextVersion, answer: answer,
                                               previous: current.map { ($0.version, $0.answer) })
        state.nextVersion += 1
        return true
    }

    /// Tells these lookups of `address` its current answer: the difference for those told the version
    /// before (one batch, shared), everything from a reset for a new lookup or one that missed a version.
    private static func tellLookups(_ ids: Set<UInt64>, of address: ListenAddress,
                                    _ state: inout State) -> [AsyncStream<[UInt8]>.Continuation] {
        guard let current = state.answers[address] else { return [] }
        var shared: [UInt8]?
        var ended: [AsyncStream<[UInt8]>.Continuation] = []
        for id in ids {
            guard let lookup = state.lookups[id], lookup.toldVersion != current.version else { continue }
            let batch: [UInt8]
            if let previous = current.previous, lookup.toldVersion == previous.version {
                let diff = shared ?? encode(DestinationDiff.events(from: previous.answer, to: current.answer))
                shared = diff
                batch = diff
            } else {
                batch = encode(DestinationDiff.events(from: nil, to: current.answer))
            }
            state.lookups[id]?.toldVersion = current.version
            guard !batch.isEmpty else { continue }
            if case .dropped = lookup.continuation.yield(batch) {
                state.lookups[id] = nil
                forget(id, of: address, in: &state)
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
    private static func forget(_ id: UInt64, of address: ListenAddress, in state: inout State) {
        state.lookupsByAddress[address]?.remove(id)
        if state.lookupsByAddress[address]?.isEmpty ?? true {
            state.lookupsByAddress[address] = nil
            state.answers[address] = nil
        }
    }
}
