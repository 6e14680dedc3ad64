import NIOCore

/// Joins small consecutive writes to one channel into one buffer, so a short response (a head and a
/// body of a few hundred bytes) leaves in one write: each channel write costs a pipeline pass and an
/// entry in NIO's pending-writes queue, far more than copying a few hundred bytes. Large buffers are
/// never copied; they pass through after whatever is held.
struct WriteCoalescer {
    /// Held bytes never exceed this; a buffer that would take them past it is written separately.
    static let maximumHeldBytes = 4096

    private var held: ByteBuffer?

    var isEmpty: Bool { held == nil }

    /// Adds `bytes` behind what is held; `write` receives, in order, whatever must go out now.
    mutating func add(_ bytes: ByteBuffer, write: (ByteBuffer) -> Void) {
        guard bytes.readableBytes > 0 else { return }
        if var joined = held {
            if joined.readableBytes + bytes.readableBytes <= Self.maximumHeldBytes {
                held = nil  // so `joined` is the only reference and the append does not copy it
                joined.writeImmutableBuffer(bytes)
                held = joined
                return
            }
            held = nil
            write(joined)
        }
        if bytes.readableBytes <= Self.maximumHeldBytes {
            held = bytes
        } else {
            write(bytes)
        }
    }

    /// What is held, to be written before a flush or any write that bypasses the coalescer.
    mutating func take() -> ByteBuffer? {
        defer { held = nil }
        return held
    }
}
