import NeedleContract

/// The two DNS messages the proxy needs (RFC 1035): a recursive query for one name's A or AAAA records,
/// and the answer's addresses. Pure, and strict with what it reads: answers come over UDP from whoever
/// can reach the pod, so every length and pointer is checked and a malformed message is simply no answer.
enum DNSMessage {
    enum RecordType: UInt16 {
        case a = 1
        case aaaa = 28
        static let cname: UInt16 = 5
    }

    enum Answer: Equatable {
        /// The addresses for the name (through any CNAMEs in the answer), with the smallest TTL seen.
        case addresses([IPAddress], ttl: UInt32)
        /// The name does not exist (NXDOMAIN), or has no record of this type (empty answer).
        case noSuchName
        /// The server failed (SERVFAIL, REFUSED, ...) or cut the answer short (TC): ask elsewhere.
        case serverFailure(UInt8)
    }

    struct Malformed: Error, Equatable {}

    static let maximumNameLength = 253

    /// A query with recursion desired. nil if `name` cannot be a DNS name (empty label, label over 63 bytes).
    static func query(id: UInt16, name: String, type: RecordType) -> [UInt8]? {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        guard let encoded = encodeName(name) else { return nil }
        bytes += encoded
        bytes += [UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1]
        return bytes
    }

    static func encodeName(_ name: String) -> [UInt8]? {
        let labels = name.trimmingTrailingDot.split(separator: ".", omittingEmptySubsequences: false)
        guard !name.isEmpty, name.utf8.count <= maximumNameLength else { return nil }
        var bytes: [UInt8] = []
        for label in labels {
            let utf8 = Array(label.utf8)
            guard (1...63).contains(utf8.count) else { return nil }
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        bytes.append(0)
        return bytes
    }

    /// The answer to the query `id` for `name` and `type`; a message for another query is `Malformed`.
    static func answer(_ message: [UInt8], id: UInt16, name: String, type: RecordType) throws(Malformed) -> Answer {
        var reader = Reader(bytes: message)
        guard try reader.u16() == id else { throw Malformed() }
        let flags = try reader.u16()
        guard flags & 0x8000 != 0 else { throw Malformed() }  // QR: a response
        let questions = try reader.u16()
        let answers = try reader.u16()
        _ = try reader.u16()  // authority
        _ = try reader.u16()  // additional
        let rcode = UInt8(flags & 0x000F)
        if flags & 0x0200 != 0 { return .serverFailure(rcode) }  // TC: truncated
        if rcode == 3 { return .noSuchName }
        if rcode != 0 { return .serverFailure(rcode) }
        guard questions == 1 else { throw Malformed() }
        let asked = try reader.name()
        guard asked.lowercased() == name.trimmingTrailingDot.lowercased(), try reader.u16() == type.rawValue, try reader.u16() == 1 else {
            throw Malformed()
        }
        var wanted = asked.lowercased()
        var addresses: [IPAddress] = []
        var ttl = UInt32.max
        for _ in 0..<answers {
            let owner = try reader.name().lowercased()
            let recordType = try reader.u16()
            let recordClass = try reader.u16()
            let recordTTL = try reader.u32()
            let length = Int(try reader.u16())
            let data = Array(try reader.bytes(length))
            guard recordClass == 1, owner == wanted else { continue }
            switch recordType {
            case RecordType.cname:
                // The alias's target is what the following records are for.
                var inner = Reader(bytes: message, offset: reader.offset - length)
                wanted = try inner.name().lowercased()
                ttl = min(ttl, recordTTL)
            case type.rawValue where type == .a && data.count == 4:
                addresses.append(.v4(data.reduce(0) { $0 << 8 | UInt32($1) }))
                ttl = min(ttl, recordTTL)
            case type.rawValue where type == .aaaa && data.count == 16:
                let high = data[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                let low = data[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                addresses.append(.v6(high: high, low: low))
                ttl = min(ttl, recordTTL)
            default:
                continue
            }
        }
        return addresses.isEmpty ? .noSuchName : .addresses(addresses, ttl: ttl)
    }

    /// Reads a message with bounds checks; names may use compression pointers, followed at most 32 times.
    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        init(bytes: [UInt8], offset: Int = 0) {
            self.bytes = bytes
            self.offset = offset
        }

        mutating func u16() throws(Malformed) -> UInt16 {
            guard offset + 2 <= bytes.count else { throw Malformed() }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        mutating func u32() throws(Malformed) -> UInt32 {
            UInt32(try u16()) << 16 | UInt32(try u16())
        }

        mutating func bytes(_ count: Int) throws(Malformed) -> ArraySlice<UInt8> {
            guard count >= 0, offset + count <= bytes.count else { throw Malformed() }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }

        mutating func name() throws(Malformed) -> String {
            var labels: [String] = []
            var position = offset
            var jumped = false
            var jumps = 0
            var length = 0
            while true {
                guard position < bytes.count else { throw Malformed() }
                let byte = bytes[position]
                if byte & 0xC0 == 0xC0 {
                    guard position + 1 < bytes.count, jumps < 32 else { throw Malformed() }
                    let target = Int(byte & 0x3F) << 8 | Int(bytes[position + 1])
                    if !jumped { offset = position + 2 }
                    jumped = true
                    jumps += 1
                    position = target
                    continue
                }
                guard byte & 0xC0 == 0 else { throw Malformed() }
                if byte == 0 {
                    if !jumped { offset = position + 1 }
                    break
                }
                let count = Int(byte)
                guard position + 1 + count <= bytes.count else { throw Malformed() }
                length += count + 1
                guard length <= 255 else { throw Malformed() }
                labels.append(String(decoding: bytes[(position + 1)..<(position + 1 + count)], as: UTF8.self))
                position += 1 + count
            }
            return labels.joined(separator: ".")
        }
    }
}
