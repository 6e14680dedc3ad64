import NIOCore

/// Byte classes of HTTP/1.1 (RFC 9110 §5.6.2, RFC 9112 §5) and the hop-by-hop field names, on raw bytes:
/// the wire codec never makes a `String` of a field it only forwards.
enum HTTP1Syntax {
    /// Stands in for "no bytes held": one shared empty buffer rather than a new allocation each time.
    static let emptyBuffer = ByteBufferAllocator().buffer(capacity: 0)

    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let colon = UInt8(ascii: ":")

    /// `tchar`: the bytes of a method or a field name. A bit set per byte value (0–127), so the test is a
    /// shift and a mask rather than a chain of comparisons: it runs for every byte of every field name.
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        let below64: UInt64 = 0x03FF_6CFA_0000_0000  // ! # $ % & ' * + - . 0-9
        let from64: UInt64 = 0x57FF_FFFF_C7FF_FFFE  // A-Z ^ _ ` a-z | ~
        // One select and one shift instead of two branches: half the instructions per byte.
        let bits = byte < 64 ? below64 : from64
        return byte < 128 && (bits >> UInt64(byte & 63)) & 1 != 0
    }

    /// A byte a field value may hold: visible characters, obs-text, space and tab. CR, LF, NUL and the
    /// other controls are refused: they are how header injection and request smuggling get in.
    @inline(__always)
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == tab || (byte >= 0x20 && byte != 0x7F)
    }

    /// Where the field-value bytes that start at `start` end: the first byte before `end` that
    /// `isFieldValueByte` refuses (the CR of a well-formed line), or `end`. Eight bytes at a time (field values
    /// are most of a head's bytes): a word's first control byte or DEL is found from its flags at once; a tab
    /// there is allowed and the scan goes on after it. Bytes short of a word go one by one. The result is
    /// exactly the byte loop's.
    @inline(__always)
    static func endOfFieldValue(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Int {
        var index = start
        if let base = bytes.baseAddress {
            while index + 8 <= end {
                let flags = controlOrDeleteFlags(UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self)))
                if flags == 0 {
                    index += 8
                    continue
                }
                // Little-endian: the lowest flag is the word's first byte in memory, and it is exact.
                index += flags.trailingZeroBitCount / 8
                guard bytes[index] == tab else { return index }
                index += 1
            }
        }
        while index < end, isFieldValueByte(bytes[index]) { index += 1 }
        return index
    }

    /// The high bit of each byte of `word` that is below 0x20 or is 0x7F, by the classic borrow tests. A
    /// borrow runs only towards the more significant bytes, so a byte after a real hit may be flagged wrongly,
    /// but the least significant flag is always a real hit, and a word without one has no flag.
    @inline(__always)
    static func controlOrDeleteFlags(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let below0x20 = (word &- ones &* 0x20) & ~word & highBits
        let delete = word ^ (ones &* 0x7F)
        let equals0x7F = (delete &- ones) & ~delete & highBits
        return below0x20 | equals0x7F
    }

    /// A byte of a request target: visible ASCII or obs-text, never a space or a control.
    @inline(__always)
    static func isTargetByte(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte != 0x7F
    }

    @inline(__always)
    static func isSpaceOrTab(_ byte: UInt8) -> Bool { byte == space || byte == tab }

    /// Whether an `Upgrade` value asks for any version of HTTP (`h2c`, `HTTP/2.0`, ...).
    static func namesHTTP(upgrade: String) -> Bool {
        upgrade.split(separator: ",").contains { element in
            let name = element.drop { $0 == " " || $0 == "\t" }.lowercased()
            return name.hasPrefix("h2") || name.hasPrefix("http/")
        }
    }

    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) ? byte | 0x20 : byte
    }

    /// Whether `bytes` equals the lower-case ASCII `lowercase`, ignoring ASCII case.
    @inline(__always)
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for index in 0..<bytes.count where lowercased(bytes[index]) != expected[index] { return false }
        return true
    }

    /// Whether a field name `length` bytes long may name a field the proxy treats specially: a hop-by-hop one
    /// (2, 7, 10, 16, 18 or 19 bytes), `content-length` (14), `transfer-encoding` (17), `upgrade` (7) or the
    /// mesh's client identity (16). Most fields are none of those, and one test on the length says so. A test
    /// checks every one of those names against it.
    @inline(__always)
    static func maySpecialFieldBeNamed(length: Int) -> Bool {
        let lengths: UInt32 = 1 << 2 | 1 << 7 | 1 << 10 | 1 << 14 | 1 << 16 | 1 << 17 | 1 << 18 | 1 << 19
        return length < 32 && (lengths >> UInt32(truncatingIfNeeded: length)) & 1 != 0
    }

    /// The fields that describe one connection rather than the message (RFC 9110 §7.6.1); never forwarded.
    enum HopByHop: CaseIterable {
        case connection, keepAlive, proxyConnection, proxyAuthenticate, proxyAuthorization, te, trailer, upgrade

        var name: StaticString {
            switch self {
            case .connection: "connection"
            case .keepAlive: "keep-alive"
            case .proxyConnection: "proxy-connection"
            case .proxyAuthenticate: "proxy-authenticate"
            case .proxyAuthorization: "proxy-authorization"
            case .te: "te"
            case .trailer: "trailer"
            case .upgrade: "upgrade"
            }
        }
    }

    /// Which hop-by-hop field `name` is, if any. Most names are ruled out by their first byte.
    static func hopByHop(_ name: UnsafeRawBufferPointer) -> HopByHop? {
        guard let first = name.first else { return nil }
        switch lowercased(first) {
        case UInt8(ascii: "c"):
            return equalsIgnoringCase(name, "connection") ? .connection : nil
        case UInt8(ascii: "k"):
            return equalsIgnoringCase(name, "keep-alive") ? .keepAlive : nil
        case UInt8(ascii: "p"):
            if equalsIgnoringCase(name, "proxy-connection") { return .proxyConnection }
            if equalsIgnoringCase(name, "proxy-authenticate") { return .proxyAuthenticate }
            return equalsIgnoringCase(name, "proxy-authorization") ? .proxyAuthorization : nil
        case UInt8(ascii: "t"):
            if equalsIgnoringCase(name, "te") { return .te }
            return equalsIgnoringCase(name, "trailer") ? .trailer : nil
        case UInt8(ascii: "u"):
            return equalsIgnoringCase(name, "upgrade") ? .upgrade : nil
        default:
            return nil
        }
    }

    /// Calls `body` with each comma-separated element of a field value, without surrounding spaces or tabs.
    static func forEachListElement(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        while start < value.count {
            var comma = start
            while comma < value.count, value[comma] != UInt8(ascii: ",") { comma += 1 }
            var lower = start
            var upper = comma
            while lower < upper, isSpaceOrTab(value[lower]) { lower += 1 }
            while lower < upper, isSpaceOrTab(value[upper - 1]) { upper -= 1 }
            if lower < upper { body(UnsafeRawBufferPointer(rebasing: value[lower..<upper])) }
            start = comma + 1
        }
    }
}
