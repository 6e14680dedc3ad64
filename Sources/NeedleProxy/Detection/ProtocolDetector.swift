/// What a connection speaks, judged from its first bytes.
public enum DetectedProtocol: Equatable, Sendable {
    case http1
    /// HTTP/2 with prior knowledge (h2c): the connection preface.
    case http2
    /// A TLS ClientHello; forwarded as opaque TCP until mutual TLS exists. The SNI is kept for metrics.
    case tls(serverName: String?)
    /// Anything else: forwarded byte for byte.
    case opaque

    public var metricLabel: String {
        switch self {
        case .http1: return "http1"
        case .http2: return "h2"
        case .tls: return "tls"
        case .opaque: return "opaque"
        }
    }
}

/// Pure protocol detection over the bytes read so far. Bounded: past `maximumBytes` it decides with what
/// it has, so detection never buffers without limit. How HTTP/1 is recognised depends on the side
/// (`RequestLineReading`): outbound only well-formed request lines, inbound anything a lenient server
/// could read as a request, so that it goes through the proxy's parser and never reaches the app raw.
public enum ProtocolDetector {
    public enum Result: Equatable, Sendable {
        case needMoreData
        case detected(DetectedProtocol)
    }

    /// Room for a request line of a few KiB and a large ClientHello record.
    public static let maximumBytes = 16 * 1024 + 5

    static let http2Preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    public static func detect<Bytes: RandomAccessCollection>(_ bytes: Bytes, reading: RequestLineReading = .strict) -> Result
    where Bytes.Element == UInt8, Bytes.Index == Int {
        guard let first = bytes.first else { return .needMoreData }
        let atLimit = bytes.count >= maximumBytes
        if first == 0x16 {
            return detectTLS(bytes, atLimit: atLimit)
        }
        if first == UInt8(ascii: "P") {
            let count = min(bytes.count, http2Preface.count)
            if bytes.prefix(count).elementsEqual(http2Preface.prefix(count)) {
                return count == http2Preface.count ? .detected(.http2) : .needMoreData
            }
        }
        switch reading.judge(bytes) {
        case .request: return .detected(.http1)
        case .notRequest: return .detected(.opaque)
        case .undecided: return atLimit ? .detected(reading.undecidedProtocol) : .needMoreData
        }
    }

    /// The verdict when no more bytes will come for detection (the detect timeout passed or the client
    /// finished sending). No bytes at all is a server-speaks-first protocol (opaque); the start of a
    /// ClientHello passes through; any other unfinished start is judged as at the byte limit.
    public static func detectAtEnd<Bytes: RandomAccessCollection>(_ bytes: Bytes, reading: RequestLineReading = .strict) -> DetectedProtocol
    where Bytes.Element == UInt8, Bytes.Index == Int {
        guard let first = bytes.first else { return .opaque }
        if case .detected(let detected) = detect(bytes, reading: reading) { return detected }
        return first == 0x16 ? .opaque : reading.undecidedProtocol
    }

    static func detectTLS<Bytes: RandomAccessCollection>(_ bytes: Bytes, atLimit: Bool) -> Result where Bytes.Element == UInt8, Bytes.Index == Int {
        let start = bytes.startIndex
        guard bytes.count >= 6 else { return atLimit ? .detected(.opaque) : .needMoreData }
        // Record: type 22 (handshake), version 3.x, length; then handshake type 1 (ClientHello).
        guard bytes[start + 1] == 0x03, bytes[start + 5] == 0x01 else { return .detected(.opaque) }
        let recordLength = Int(bytes[start + 3]) << 8 | Int(bytes[start + 4])
        guard bytes.count >= 5 + recordLength else {
            return atLimit ? .detected(.tls(serverName: nil)) : .needMoreData
        }
        let record = Array(bytes[(start + 5)..<(start + 5 + recordLength)])
        return .detected(.tls(serverName: TLSClientHello.serverName(inHandshake: record)))
    }
}

/// Reads the SNI host name out of a ClientHello handshake message, defensively: any inconsistency is nil.
public enum TLSClientHello {
    public static func serverName(inHandshake message: [UInt8]) -> String? {
        var reader = ByteReader(message)
        guard reader.u8() == 0x01, let length = reader.u24(), length <= reader.remaining else { return nil }
        guard reader.skip(2 + 32),                       // client_version, random
              let sessionLength = reader.u8(), reader.skip(Int(sessionLength)),
              let suitesLength = reader.u16(), reader.skip(Int(suitesLength)),
              let compressionLength = reader.u8(), reader.skip(Int(compressionLength)),
              let extensionsLength = reader.u16()
        else { return nil }
        var extensions = reader.sub(Int(extensionsLength))
        while let type = extensions?.u16(), let size = extensions?.u16() {
            guard var body = extensions?.sub(Int(size)) else { return nil }
            guard type == 0 else { continue }
            guard let listLength = body.u16(), var list = body.sub(Int(listLength)) else { return nil }
            while let nameType = list.u8(), let nameLength = list.u16() {
                guard let name = list.bytes(Int(nameLength)) else { return nil }
                if nameType == 0 {
                    guard name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), !name.isEmpty else { return nil }
                    return String(decoding: name, as: UTF8.self)
                }
            }
            return nil
        }
        return nil
    }
}

struct ByteReader {
    private let storage: [UInt8]
    private var offset: Int
    private let end: Int

    init(_ storage: [UInt8], offset: Int = 0, end: Int? = nil) {
        self.storage = storage
        self.offset = offset
        self.end = end ?? storage.count
    }

    var remaining: Int { end - offset }

    mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return storage[offset]
    }

    mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return UInt16(storage[offset]) << 8 | UInt16(storage[offset + 1])
    }

    mutating func u24() -> Int? {
        guard remaining >= 3 else { return nil }
        defer { offset += 3 }
        return Int(storage[offset]) << 16 | Int(storage[offset + 1]) << 8 | Int(storage[offset + 2])
    }

    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, remaining >= count else { return false }
        offset += count
        return true
    }

    mutating func bytes(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return storage[offset..<(offset + count)]
    }

    mutating func sub(_ count: Int) -> ByteReader? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return ByteReader(storage, offset: offset, end: offset + count)
    }
}
