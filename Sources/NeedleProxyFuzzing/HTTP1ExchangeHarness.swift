import NIOCore
import NIOHTTP1
@testable import NeedleProxy

/// Drives `HTTP1ServerExchange` with an event sequence decoded from arbitrary bytes, the way its handler
/// would (client events until the client is gone; upstream events only while it holds an upstream; every
/// acquisition answered once), and checks every action with `ExchangeActionChecker`.
public enum HTTP1ExchangeHarness {
    /// Events per input: enough for pipelining, retries and drains, small enough for fast iterations.
    static let maximumEvents = 256

    /// The violated properties for one input (empty when all hold).
    public static func check(_ bytes: [UInt8]) -> [String] {
        var input = FuzzInput(bytes)
        var driver = Driver()
        var events = 0
        while !input.isExhausted, events < maximumEvents {
            events += 1
            driver.step(&input)
        }
        driver.finish()
        return driver.checker.violations
    }

    struct Driver {
        var machine = HTTP1ServerExchange<Int>()
        var checker = ExchangeActionChecker()
        var nextUpstream = 1
        var clientGone = false
        var clock: Int64 = 0

        var now: NIODeadline { .uptimeNanoseconds(UInt64(clock)) }

        mutating func step(_ input: inout FuzzInput) {
            clock += Int64(input.byte()) * 1_000_000
            let holding = !checker.held.isEmpty
            switch input.choice(16) {
            case 0 where !clientGone:
                switch requestHead(&input) {
                case .success(let head): machine.requestHead(head, now: now)
                case .failure(let error): machine.requestMalformed(status: error.status, reason: error.reason, now: now)
                }
            case 1 where !clientGone: machine.requestBody(ByteBuffer(repeating: 0x61, count: input.choice(64) * 512))
            case 2 where !clientGone: machine.requestEnd(trailers: input.bool() ? nil : ByteBuffer(string: "x-trailer: 1\r\n"))
            case 3 where !clientGone: machine.clientReadComplete()
            case 4 where !clientGone: machine.clientWritabilityChanged(input.bool())
            case 5: answerAcquisition(&input, succeed: true)
            case 6: answerAcquisition(&input, succeed: false)
            case 7 where holding: machine.upstreamWritabilityChanged(input.bool())
            case 8 where holding:
                switch responseHead(&input) {
                case .success(let head): machine.responseHead(head)
                case .failure(let error): machine.upstreamInvalid(error.reason)
                }
            case 9 where holding: machine.responseBody(ByteBuffer(repeating: 0x62, count: input.choice(8) + 1))
            case 10 where holding: machine.responseEnd(trailers: nil)
            case 11 where holding:
                switch input.choice(3) {
                case 0: machine.upstreamClosed()
                case 1: machine.upstreamInvalid("fuzzed")
                default: machine.upstreamReadComplete()
                }
            case 12 where !clientGone: machine.clientInputClosed()
            case 13 where !clientGone: machine.quiesce()
            case 14 where !clientGone:
                let status: HTTPResponseStatus = input.bool() ? .badRequest : .requestHeaderFieldsTooLarge
                machine.requestMalformed(status: status, reason: "fuzzed", now: now)
            case 15 where !clientGone: clientClosed()
            default: break
            }
            drain()
            // A respond-then-close finishes its write at some later point; a plain close is immediate.
            if checker.clientClosing, !clientGone, input.bool() { clientClosed() }
        }

        mutating func finish() {
            if !clientGone { clientClosed() }
            // Connections still being made arrive after the client left: they must be handed back.
            while let id = checker.outstanding.first {
                give(to: id, reused: false, writable: true)
            }
            checker.finish()
        }

        private mutating func clientClosed() {
            clientGone = true
            machine.clientClosed()
            drain()
        }

        private mutating func answerAcquisition(_ input: inout FuzzInput, succeed: Bool) {
            guard !checker.outstanding.isEmpty else { return }
            let id = checker.outstanding[input.choice(checker.outstanding.count)]
            if succeed {
                give(to: id, reused: input.bool(), writable: input.bool())
            } else {
                checker.answered(id)
                machine.upstreamUnavailable(id, input.bool() ? .connectFailed : .connectTimedOut)
                drain()
            }
        }

        private mutating func give(to id: ExchangeID, reused: Bool, writable: Bool) {
            let upstream = nextUpstream
            nextUpstream += 1
            checker.gave(upstream, for: id)
            machine.upstreamAcquired(id, upstream, reused: reused, writable: writable)
            drain()
        }

        private mutating func drain() {
            while let action = machine.nextAction() {
                checker.observe(action)
            }
        }

        /// A request head as bytes, parsed the way the proxy does (a smuggling shape is refused there).
        private func requestHead(_ input: inout FuzzInput) -> Result<HTTP1RequestHead, HTTP1WireError> {
            let methods = ["GET", "POST", "HEAD", "PUT", "OPTIONS", "DELETE", "CONNECT"]
            let method = methods[input.choice(methods.count)]
            let version = input.choice(4) == 0 ? "HTTP/1.0" : "HTTP/1.1"
            var head = "\(method) /\(input.byte()) \(version)\r\nhost: app\r\n"
            let shape = input.byte()
            if shape & 1 != 0 { head += "connection: close\r\n" }
            if shape & 2 != 0 { head += "connection: upgrade\r\nupgrade: websocket\r\n" }
            if shape & 4 != 0 { head += "content-length: 5\r\n" }
            if shape & 8 != 0 { head += "transfer-encoding: chunked\r\n" }
            if shape & 16 != 0 { head += "content-length: 6\r\n" }
            if shape & 32 != 0 { head += "transfer-encoding: gzip\r\n" }
            if shape & 64 != 0 { head += "connection: keep-alive\r\n" }
            head += "\r\n"
            return ByteBuffer(string: head).withUnsafeReadableBytes { bytes in
                Result { () throws(HTTP1WireError) in try HTTP1RequestDecoder.request(bytes) }
            }
        }

        private func responseHead(_ input: inout FuzzInput) -> Result<HTTP1ResponseHead, HTTP1WireError> {
            let codes = [100, 101, 103, 200, 204, 304, 404, 500, 502]
            let code = codes[input.choice(codes.count)]
            let shape = input.byte()
            var head = "\(shape & 4 != 0 ? "HTTP/1.0" : "HTTP/1.1") \(code) X\r\n"
            if shape & 1 != 0 { head += "connection: close\r\n" }
            if shape & 2 != 0 { head += "content-length: 1\r\n" }
            if shape & 8 != 0 { head += "transfer-encoding: chunked\r\n" }
            if code == 101 { head += "connection: upgrade\r\nupgrade: websocket\r\n" }
            head += "\r\n"
            let raw = ByteBuffer(string: head)
            let method: HTTPMethod = shape & 16 != 0 ? .HEAD : (shape & 32 != 0 ? .CONNECT : .GET)
            return raw.withUnsafeReadableBytes { bytes in
                Result { () throws(HTTP1WireError) in try HTTP1ResponseDecoder.response(bytes, raw: raw, answering: method) }
            }
        }
    }
}
