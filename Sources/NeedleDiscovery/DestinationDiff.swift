import NeedleContract

/// The event lines that take a proxy from one answer to the next (DESIGN §8, `DestinationAPI`): the first
/// answer and any switch between "not known" and endpoints is a full `reset`; a change within the endpoints
/// is only what was added, changed or removed. Each batch ends with `sync`; no change is no lines.
public enum DestinationDiff {
    public static func events(from old: DestinationAnswer?, to new: DestinationAnswer) -> [DestinationEvent] {
        switch (old, new) {
        case (.endpoints(let before)?, .endpoints(let after)):
            let previous = Dictionary(before.map { ($0.address, $0) }, uniquingKeysWith: { first, _ in first })
            let next = Set(after.map(\.address))
            var events: [DestinationEvent] = []
            for endpoint in after where previous[endpoint.address] != endpoint { events.append(.add(endpoint)) }
            for endpoint in before where !next.contains(endpoint.address) { events.append(.remove(endpoint.address)) }
            return events.isEmpty ? [] : events + [.sync]
        case (.notKnown?, .notKnown):
            return []
        case (_, .notKnown):
            return [.reset, .notKnown, .sync]
        case (_, .endpoints(let after)):
            return [.reset] + after.map { .add($0) } + [.sync]
        }
    }
}
