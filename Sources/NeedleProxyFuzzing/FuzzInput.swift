/// Reads choices out of a fuzzer's bytes. Past the end every read returns zero, so any input, even an
/// empty one, decodes to a finite event sequence.
public struct FuzzInput {
    private let bytes: [UInt8]
    private var position = 0

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var isExhausted: Bool { position >= bytes.count }

    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    /// One of `count` choices.
    public mutating func choice(_ count: Int) -> Int {
        Int(byte()) % max(count, 1)
    }

    public mutating func bool() -> Bool {
        byte() & 1 == 1
    }
}
