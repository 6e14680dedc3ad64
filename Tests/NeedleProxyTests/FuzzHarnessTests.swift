import NIOCore
import NIOHTTP1
import Testing
@testable import NeedleProxy
@testable import NeedleProxyFuzzing

/// The fuzzing harnesses run here too, on a fixed pseudo-random sweep and on every input a fuzzer once
/// found (Fuzz/Regressions), so `swift test` keeps the properties the fuzzers check.
@Suite("Fuzzing harnesses")
struct FuzzHarnessTests {
    /// xorshift64*: the same inputs on every run.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 2_685_821_657_736_338_717
        }
        mutating func bytes(maximumCount: Int) -> [UInt8] {
            (0..<Int(next() % UInt64(maximumCount + 1))).map { _ in UInt8(truncatingIfNeeded: next()) }
        }
    }

    static func regressions(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
        let root = String(#filePath).split(separator: "/").dropLast(3).joined(separator: "/")
        let directory = "/\(root)/Fuzz/Regressions/\(target)"
        return try #require(RegressionFiles.read(directory: directory), "cannot read \(directory)")
    }

    @Test("HTTP/1.1 exchange: 3,000 pseudo-random event sequences keep every property")
    func exchangeSweep() {
        var generator = Generator(state: 0x9E37_79B9_7F4A_7C15)
        for _ in 0..<3000 {
            let input = generator.bytes(maximumCount: 600)
            let violations = HTTP1ExchangeHarness.check(input)
            #expect(violations.isEmpty, "input \(input): \(violations)")
            if !violations.isEmpty { return }
        }
    }

    @Test("HTTP/1.1 exchange: inputs fuzzers found stay fixed")
    func exchangeRegressions() throws {
        for (name, bytes) in try Self.regressions("http1-exchange") {
            #expect(HTTP1ExchangeHarness.check(bytes).isEmpty, "\(name)")
        }
    }

    @Test("protocol detection: pseudo-random bytes and near-misses of every protocol keep every property")
    func detectionSweep() {
        var generator = Generator(state: 0xD1B5_4A32_D192_ED03)
        let seeds: [[UInt8]] = [Array("GET / HTTP/1.1\r\n".utf8), ProtocolDetector.http2Preface,
                                [0x16, 0x03, 0x01, 0x00, 0x30, 0x01], []]
        for round in 0..<4000 {
            var input = seeds[round % seeds.count]
            // Mutate: truncate, flip a byte, append noise.
            if !input.isEmpty, generator.next() % 2 == 0 { input = Array(input.prefix(Int(generator.next() % UInt64(input.count)))) }
            if !input.isEmpty, generator.next() % 2 == 0 { input[Int(generator.next() % UInt64(input.count))] ^= UInt8(truncatingIfNeeded: generator.next() | 1) }
            input += generator.bytes(maximumCount: 64)
            let violations = ProtocolDetectionHarness.check(input)
            #expect(violations.isEmpty, "input \(input): \(violations)")
            if !violations.isEmpty { return }
        }
        #expect(ProtocolDetectionHarness.check(Array(repeating: UInt8(ascii: "A"), count: ProtocolDetector.maximumBytes)).isEmpty)
    }

    @Test("DNS answers: 4,000 mutated and random datagrams keep every property")
    func dnsSweep() {
        var generator = Generator(state: 0xA076_1D64_78BD_642F)
        let seeds = (try? Self.regressions("dns-answer").map(\.bytes)) ?? []
        for round in 0..<4000 {
            var input = seeds.isEmpty || round % 2 == 1 ? generator.bytes(maximumCount: 96) : seeds[round % seeds.count]
            for _ in 0..<(input.isEmpty ? 0 : 1 + Int(generator.next() % 4)) {
                input[Int(generator.next() % UInt64(input.count))] = UInt8(truncatingIfNeeded: generator.next())
            }
            let violations = DNSAnswerHarness.check(input)
            #expect(violations.isEmpty, "input \(input): \(violations)")
            if !violations.isEmpty { return }
        }
    }

    @Test("JSON reviews: 4,000 mutated seeds keep every property, and the seeds themselves do")
    func jsonSweep() throws {
        var generator = Generator(state: 0x9E37_79B9_7F4A_7C15)
        let seeds = try Self.regressions("json-review").map(\.bytes)
        #expect(!seeds.isEmpty)
        for (name, bytes) in try Self.regressions("json-review") {
            #expect(JSONReviewHarness.check(bytes).isEmpty, "\(name)")
        }
        // Mutations of valid documents, with JSON's own punctuation among the bytes put in.
        let alphabet = Array(#"{}[]":,\ u0e-+.1tfn"#.utf8) + [0x80, 0xC3, 0xED, 0xFF]
        for round in 0..<4000 {
            var input = seeds[round % seeds.count]
            for _ in 0..<(1 + Int(generator.next() % 3)) where !input.isEmpty {
                let at = Int(generator.next() % UInt64(input.count))
                let byte = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                switch generator.next() % 3 {
                case 0: input[at] = byte
                case 1: input.insert(byte, at: at)
                default: input.remove(at: at)
                }
            }
            let violations = JSONReviewHarness.check(input)
            #expect(violations.isEmpty, "input \(String(decoding: input, as: UTF8.self)): \(violations)")
            if !violations.isEmpty { return }
        }
    }

    @Test("DNS answers: inputs fuzzers found stay fixed")
    func dnsRegressions() throws {
        for (name, bytes) in try Self.regressions("dns-answer") {
            #expect(DNSAnswerHarness.check(bytes).isEmpty, "\(name)")
        }
    }

    @Test("protocol detection: inputs fuzzers found stay fixed")
    func detectionRegressions() throws {
        for (name, bytes) in try Self.regressions("protocol-detection") {
            #expect(ProtocolDetectionHarness.check(bytes).isEmpty, "\(name)")
        }
    }

    @Test("HTTP/1.1 wire decoding: 3,000 pseudo-random message streams decode the same however they are split")
    func wireSweep() {
        var generator = Generator(state: 0x5851_F42D_4C95_7F2D)
        for _ in 0..<3000 {
            let input = generator.bytes(maximumCount: 48)
            let violations = HTTP1WireHarness.check(input)
            #expect(violations.isEmpty, "input \(input): \(violations)")
            if !violations.isEmpty { return }
        }
    }

    @Test("HTTP/1.1 wire decoding: the harness sees a valid exchange, and inputs fuzzers found stay fixed")
    func wireRegressions() throws {
        let (events, heads) = HTTP1WireHarness.requestEvents(Array("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".utf8), split: 3)
        #expect(heads.count == 1)
        #expect(events.dropFirst().elementsEqual(["body hello", "end -"]))
        for (name, bytes) in try Self.regressions("http1-wire") {
            #expect(HTTP1WireHarness.check(bytes).isEmpty, "\(name)")
        }
    }

    @Test("the action checker catches what the handler must never be asked to do")
    func checkerCatchesViolations() {
        var doubleRelease = ExchangeActionChecker()
        doubleRelease.observe(.acquireUpstream(1))
        doubleRelease.gave(7, for: 1)
        doubleRelease.observe(.releaseUpstream(7, reusable: true))
        doubleRelease.observe(.releaseUpstream(7, reusable: true))
        #expect(doubleRelease.violations == ["released upstream 7, which it does not hold"])

        var writeAfterRelease = ExchangeActionChecker()
        writeAfterRelease.gave(3, for: 1)
        writeAfterRelease.observe(.releaseUpstream(3, reusable: false))
        writeAfterRelease.observe(.flushUpstream(3))
        #expect(writeAfterRelease.violations.count == 1)

        var errorInsideResponse = ExchangeActionChecker()
        errorInsideResponse.observe(.respondHead(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n"), status: 200, flush: false))
        errorInsideResponse.observe(.respondWithError(.badGateway, reason: "x", version: .http1_1, close: true))
        errorInsideResponse.observe(.respondEnd(nil, close: false))
        #expect(errorInsideResponse.violations == ["wrote a 502 error in the middle of a response",
                                                   "ended a response on a client it had closed"])

        var leak = ExchangeActionChecker()
        leak.observe(.countRequest)
        leak.gave(9, for: 1)
        leak.finish()
        #expect(leak.violations == ["upstream 9 was never released (a leaked connection)", "1 requests counted but 0 responses"])
    }
}
