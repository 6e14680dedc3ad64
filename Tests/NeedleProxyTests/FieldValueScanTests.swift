@testable import NeedleProxy
import Testing

/// The word-at-a-time field-value scan must find exactly what the byte loop finds.
@Suite("HTTP/1.1 field-value scan")
struct FieldValueScanTests {
    private func byteLoop(_ bytes: [UInt8], from start: Int, to end: Int) -> Int {
        var index = start
        while index < end, HTTP1Syntax.isFieldValueByte(bytes[index]) { index += 1 }
        return index
    }

    private func scanned(_ bytes: [UInt8], from start: Int, to end: Int) -> Int {
        bytes.withUnsafeBytes { HTTP1Syntax.endOfFieldValue($0, from: start, to: end) }
    }

    @Test("every byte value, at every position of values 0 to 24 bytes long, stops the scan where the byte loop stops")
    func everyByteEverywhere() {
        var mismatches: [String] = []
        for length in 0...24 {
            for position in 0..<max(length, 1) {
                for value in 0...255 {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length + 3)
                    if position < length { bytes[position] = UInt8(value) }
                    bytes[length] = HTTP1Syntax.cr  // a line's end, as in a head
                    for start in [0, 1, 3] where start <= length {
                        let expected = byteLoop(bytes, from: start, to: length + 2)
                        let got = scanned(bytes, from: start, to: length + 2)
                        if got != expected { mismatches.append("length \(length) byte \(value) at \(position) from \(start): \(got) not \(expected)") }
                    }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test("a word is flagged exactly when one of its bytes is below 0x20 or is 0x7F, and its lowest flag is the first such byte")
    func wordTest() {
        var generator = SystemRandomNumberGenerator()
        let edges: [UInt8] = [0x00, 0x09, 0x0D, 0x1F, 0x20, 0x21, 0x7E, 0x7F, 0x80, 0xA0, 0xFF]
        var words: [UInt64] = (0..<20_000).map { _ in generator.next() }
        for _ in 0..<20_000 {
            var word: UInt64 = 0
            for _ in 0..<8 { word = word << 8 | UInt64(edges[Int.random(in: 0..<edges.count, using: &generator)]) }
            words.append(word)
        }
        let wrong = words.filter { word in
            // Byte 0 is the least significant: the first in memory on a little-endian load.
            let firstHit = (0..<8).first { shift in
                let byte = UInt8(truncatingIfNeeded: word >> (8 * UInt64(shift)))
                return byte < 0x20 || byte == 0x7F
            }
            let flags = HTTP1Syntax.controlOrDeleteFlags(word)
            guard let firstHit else { return flags != 0 }
            return flags == 0 || flags.trailingZeroBitCount / 8 != firstHit
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(3).map { String($0, radix: 16) })")
    }
}
