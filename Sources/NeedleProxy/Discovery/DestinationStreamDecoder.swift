import NIOCore
import NeedleContract

/// The destination answer's body, bytes to events (`DestinationAPI`): lines split as they arrive, each
/// parsed strictly. Bounded: a line longer than `DestinationAPI.maximumLineBytes` is an error, never an
/// ever-growing buffer. Pure.
struct DestinationStreamDecoder: Sendable {
    private var pending: [UInt8] = []

    enum Failure: Error, Equatable, CustomStringConvertible {
        case lineTooLong
        case malformed(FormatError)

        var description: String {
            switch self {
            case .lineTooLong: return "a destination answer line is over \(DestinationAPI.maximumLineBytes) bytes"
            case .malformed(let problem): return "a malformed destination answer line: \(problem)"
            }
        }
    }

    /// The events completed by `bytes`, in order; a failure ends the stream (the client reconnects).
    mutating func receive(_ bytes: ByteBuffer) -> Result<[DestinationEvent], Failure> {
        var events: [DestinationEvent] = []
        for byte in bytes.readableBytesView {
            guard byte != UInt8(ascii: "\n") else {
                let line = String(decoding: pending, as: UTF8.self)
                pending.removeAll(keepingCapacity: true)
                do {
                    events.append(try DestinationEvent(line: Substring(line)))
                } catch {
                    return .failure(.malformed(error))
                }
                continue
            }
            pending.append(byte)
            if pending.count > DestinationAPI.maximumLineBytes { return .failure(.lineTooLong) }
        }
        return .success(events)
    }
}
