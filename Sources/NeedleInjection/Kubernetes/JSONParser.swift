/// Which parts of a JSON document a reader needs: `JSONParser` builds those and only checks the rest.
public indirect enum JSONShape: Sendable {
    case everything
    /// An object of which only these members are kept, each with its own shape.
    case members([Member])
    /// An array whose elements each have this shape.
    case elements(JSONShape)

    public struct Member: Sendable {
        public let key: String
        public let shape: JSONShape
        let utf8: [UInt8]

        public init(_ key: String, _ shape: JSONShape = .everything) {
            self.key = key
            self.shape = shape
            utf8 = Array(key.utf8)
        }
    }
}

/// RFC 8259 JSON straight from bytes into a `JSONValue`, in one pass and without Foundation. It reads as the
/// API server's decoder does where that matters for a webhook: a repeated object key keeps its last value
/// (Go's encoding/json), so the injector decides on the pod the API server will store. It is stricter
/// where being lenient would only hide a broken request: invalid UTF-8, lone surrogates, numbers out of
/// Double's range and nesting past `maximumDepth` are errors, each naming the byte offset.
/// Bytes are written as hex literals (with the character beside them): a debug build then compares
/// constants instead of calling `UInt8(ascii:)` per byte, which kept CI's debug binary slow.
public struct JSONParser {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let offset: Int
        public let problem: String
        public var description: String { "\(problem) at byte \(offset)" }
    }

    /// Far beyond any object the API server sends (it re-encodes the typed Pod, a dozen levels at most),
    /// and shallow enough for a small thread stack: the parser recurses once per level.
    public static let maximumDepth = 128

    private let bytes: UnsafeRawBufferPointer
    private var index = 0
    private var depth = 0

    private init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// The document in `bytes`: exactly one value, with only whitespace around it. `shape` says which parts
    /// to keep; the rest is checked as JSON and dropped without being built (or its strings validated).
    public static func parse(_ bytes: UnsafeRawBufferPointer, keeping shape: JSONShape = .everything) throws(Failure) -> JSONValue {
        var parser = JSONParser(bytes)
        parser.skipWhitespace()
        let value = try parser.value(shape)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.failure("unexpected data after the JSON value") }
        return value
    }

    public static func parse(_ bytes: [UInt8], keeping shape: JSONShape = .everything) throws(Failure) -> JSONValue {
        // withUnsafeBytes rethrows untyped; carry the typed failure out by hand.
        let result: Result<JSONValue, Failure> = bytes.withUnsafeBytes { buffer in
            do throws(Failure) { return .success(try parse(buffer, keeping: shape)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    private func failure(_ problem: String) -> Failure {
        Failure(offset: index, problem: problem)
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func value(_ shape: JSONShape) throws(Failure) -> JSONValue {
        switch shape {
        case .members(let members) where current == 0x7B /* { */: return try object(keeping: members)
        case .elements(let element) where current == 0x5B /* [ */: return try array(element)
        // Another type than the shape expects: kept whole, for the caller to refuse by its type.
        default: return try value()
        }
    }

    private mutating func value() throws(Failure) -> JSONValue {
        guard let byte = current else { throw failure("unexpected end of JSON") }
        switch byte {
        case 0x7B /* { */: return try object(keeping: nil)
        case 0x5B /* [ */: return try array(.everything)
        case 0x22 /* " */: return .string(try string())
        case 0x74 /* t */: try literal("true"); return .bool(true)
        case 0x66 /* f */: try literal("false"); return .bool(false)
        case 0x6E /* n */: try literal("null"); return .null
        case 0x2D /* - */, 0x30...0x39 /* 0-9 */: return try number()
        default: throw failure("unexpected character \(Self.show(byte))")
        }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw failure("unexpected end of JSON") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw failure("invalid literal, expected \(word)")
        }
        index += count
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        if depth > Self.maximumDepth { throw failure("JSON nested deeper than \(Self.maximumDepth) levels") }
    }

    /// `keeping`: the members to keep (nil: all of them).
    private mutating func object(keeping wanted: [JSONShape.Member]?) throws(Failure) -> JSONValue {
        try enter()
        index += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if current == 0x7D /* } */ {
            index += 1
            depth -= 1
            return .object(members)
        }
        while true {
            guard current == 0x22 /* " */ else { throw failure("expected a string key") }
            var kept: (key: String, shape: JSONShape)?
            if let wanted {
                kept = try wantedKey(wanted)
            } else {
                kept = (try string(), .everything)
            }
            skipWhitespace()
            guard current == 0x3A /* : */ else { throw failure("expected ':' after an object key") }
            index += 1
            skipWhitespace()
            if let kept {
                members[kept.key] = try value(kept.shape) // a repeated key keeps its last value, as Go's encoding/json does
            } else {
                try skipValue()
            }
            skipWhitespace()
            switch current {
            case 0x2C /* , */:
                index += 1
                skipWhitespace()
            case 0x7D /* } */:
                index += 1
                depth -= 1
                return .object(members)
            default:
                throw failure("expected ',' or '}' in an object")
            }
        }
    }

    /// Reads a key and says whether it is one of `wanted`; plain keys are compared as bytes, so a key that is
    /// dropped never becomes a String.
    private mutating func wantedKey(_ wanted: [JSONShape.Member]) throws(Failure) -> (key: String, shape: JSONShape)? {
        let start = index + 1
        var end = start
        while end < bytes.count, bytes[end] != 0x22 /* " */, bytes[end] != 0x5C /* \ */, bytes[end] >= 0x20 { end += 1 }
        if end < bytes.count, bytes[end] == 0x22 /* " */ {
            let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            index = end + 1
            for member in wanted where member.utf8.elementsEqual(raw) { return (member.key, member.shape) }
            return nil
        }
        let key = try string()
        return wanted.first { $0.key == key }.map { ($0.key, $0.shape) }
    }

    private mutating func array(_ element: JSONShape) throws(Failure) -> JSONValue {
        try enter()
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == 0x5D /* ] */ {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            elements.append(try value(element))
            skipWhitespace()
            switch current {
            case 0x2C /* , */:
                index += 1
                skipWhitespace()
            case 0x5D /* ] */:
                index += 1
                depth -= 1
                return .array(elements)
            default:
                throw failure("expected ',' or ']' in an array")
            }
        }
    }

    /// Checks one value's syntax and moves past it, building nothing. Strings are not checked as UTF-8 and
    /// numbers not converted: what is dropped cannot change the patch.
    private mutating func skipValue() throws(Failure) {
        guard let byte = current else { throw failure("unexpected end of JSON") }
        switch byte {
        case 0x7B /* { */, 0x5B /* [ */:
            let isObject = byte == 0x7B
            try enter()
            index += 1
            skipWhitespace()
            if current == (isObject ? 0x7D : 0x5D) {
                index += 1
                depth -= 1
                return
            }
            while true {
                if isObject {
                    guard current == 0x22 /* " */ else { throw failure("expected a string key") }
                    try skipString()
                    skipWhitespace()
                    guard current == 0x3A /* : */ else { throw failure("expected ':' after an object key") }
                    index += 1
                    skipWhitespace()
                }
                try skipValue()
                skipWhitespace()
                if current == 0x2C /* , */ {
                    index += 1
                    skipWhitespace()
                } else if current == (isObject ? 0x7D : 0x5D) {
                    index += 1
                    depth -= 1
                    return
                } else {
                    throw failure(isObject ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array")
                }
            }
        case 0x22 /* " */: try skipString()
        case 0x74 /* t */: try literal("true")
        case 0x66 /* f */: try literal("false")
        case 0x6E /* n */: try literal("null")
        case 0x2D /* - */, 0x30...0x39 /* 0-9 */:
            // A number with an exponent or more than 15 characters may be out of Double's range: it is
            // converted, so a body the API server could not decode (1e400, ten thousand digits) is refused
            // even where it would be dropped. Shorter plain numbers are always in range.
            let start = index
            try skipNumber()
            let text = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
            if text.count > 15 || text.contains(0x65 /* e */) || text.contains(0x45 /* E */) {
                _ = try Self.numberValue(bytes, start..<index)
            }
        default: throw failure("unexpected character \(Self.show(byte))")
        }
    }

    private mutating func skipString() throws(Failure) {
        index += 1
        while index < bytes.count {
            switch bytes[index] {
            case 0x22 /* " */:
                index += 1
                return
            case 0x5C /* \ */:
                index += 1
                guard let escaped = current else { throw failure("unterminated string") }
                if escaped == 0x75 /* u */ {
                    index += 1
                    _ = try hex4()
                } else {
                    var ignored: [UInt8] = []
                    try escape(into: &ignored)
                }
            case 0..<0x20:
                throw failure("control character \(Self.show(bytes[index])) in a string")
            default:
                index += 1
            }
        }
        throw failure("unterminated string")
    }

    private mutating func string() throws(Failure) -> String {
        index += 1
        let start = index
        // The common case: no escapes, so the bytes are the string (validated as UTF-8 once).
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x22 /* " */ {
                let text = try validated(start..<index)
                index += 1
                return text
            }
            if byte == 0x5C /* \ */ { break }
            if byte < 0x20 { throw failure("control character \(Self.show(byte)) in a string") }
            index += 1
        }
        var unescaped = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case 0x22 /* " */:
                index += 1
                guard let text = String(validating: unescaped, as: UTF8.self) else {
                    throw Failure(offset: start, problem: "invalid UTF-8 in a string")
                }
                return text
            case 0x5C /* \ */:
                index += 1
                try escape(into: &unescaped)
            case 0..<0x20:
                throw failure("control character \(Self.show(byte)) in a string")
            default:
                unescaped.append(byte)
                index += 1
            }
        }
        throw failure("unterminated string")
    }

    private func validated(_ range: Range<Int>) throws(Failure) -> String {
        let slice = UnsafeRawBufferPointer(rebasing: bytes[range])
        var ascii = true
        for byte in slice where byte >= 0x80 {
            ascii = false
            break
        }
        if ascii { return String(decoding: slice, as: UTF8.self) }
        guard let text = String(validating: slice, as: UTF8.self) else {
            throw Failure(offset: range.lowerBound, problem: "invalid UTF-8 in a string")
        }
        return text
    }

    private mutating func escape(into output: inout [UInt8]) throws(Failure) {
        guard let byte = current else { throw failure("unterminated string") }
        index += 1
        switch byte {
        case 0x22 /* " */, 0x5C /* \ */, 0x2F: output.append(byte)
        case 0x62 /* b */: output.append(0x08)
        case 0x66 /* f */: output.append(0x0C)
        case 0x6E /* n */: output.append(0x0A)
        case 0x72 /* r */: output.append(0x0D)
        case 0x74 /* t */: output.append(0x09)
        case 0x75 /* u */:
            var scalar = try hex4()
            if (0xD800..<0xDC00).contains(scalar) {
                guard current == 0x5C /* \ */, index + 1 < bytes.count, bytes[index + 1] == 0x75 /* u */ else {
                    throw failure("lone UTF-16 surrogate in a \\u escape")
                }
                index += 2
                let low = try hex4()
                guard (0xDC00..<0xE000).contains(low) else { throw failure("lone UTF-16 surrogate in a \\u escape") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw failure("lone UTF-16 surrogate in a \\u escape")
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw failure("invalid \\u escape") }
            output.append(contentsOf: String(Character(unicode)).utf8)
        default:
            throw failure("invalid escape \\\(Self.show(byte))")
        }
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard index + 4 <= bytes.count else { throw failure("unterminated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case 0x30...0x39 /* 0-9 */: digit = byte - 0x30 /* 0 */
            case 0x61...0x66 /* a-f */: digit = byte - 0x61 /* a */ + 10
            case 0x41...0x46 /* A-F */: digit = byte - 0x41 /* A */ + 10
            default: throw failure("invalid hex digit \(Self.show(byte)) in a \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func number() throws(Failure) -> JSONValue {
        let start = index
        try skipNumber()
        return try Self.numberValue(bytes, start..<index)
    }

    /// The value of a number already checked against the grammar: an Int64 when it is a whole number that
    /// fits, else a Double, which must be finite.
    private static func numberValue(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(Failure) -> JSONValue {
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        if let integer = Int64(text) { return .integer(integer) }
        guard let double = Double(text), double.isFinite else {
            throw Failure(offset: range.lowerBound, problem: "number \(text.prefix(40)) is out of range")
        }
        return .double(double)
    }

    /// Moves past a number's grammar.
    private mutating func skipNumber() throws(Failure) {
        if current == 0x2D /* - */ { index += 1 }
        guard let first = current, (0x30...0x39 /* 0-9 */).contains(first) else {
            throw failure("expected a digit")
        }
        if first == 0x30 /* 0 */ {
            index += 1
        } else {
            skipDigits()
        }
        if current == 0x2E /* . */ {
            index += 1
            guard requireDigits() else { throw failure("expected a digit after '.'") }
        }
        if current == 0x65 /* e */ || current == 0x45 /* E */ {
            index += 1
            if current == 0x2B /* + */ || current == 0x2D /* - */ { index += 1 }
            guard requireDigits() else { throw failure("expected a digit in the exponent") }
        }
    }

    private mutating func skipDigits() {
        while let byte = current, (0x30...0x39 /* 0-9 */).contains(byte) { index += 1 }
    }

    private mutating func requireDigits() -> Bool {
        let before = index
        skipDigits()
        return index > before
    }

    private static func show(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "0x" + String(byte, radix: 16)
    }
}
