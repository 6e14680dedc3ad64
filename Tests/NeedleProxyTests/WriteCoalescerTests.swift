import NIOCore
@testable import NeedleProxy
import Testing

@Suite("Write coalescer")
struct WriteCoalescerTests {
    private func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }
    private func bytes(repeating byte: UInt8, count: Int) -> ByteBuffer { ByteBuffer(repeating: byte, count: count) }

    @Test("a short head and body leave as one buffer, in order, only when taken")
    func joinsSmallWrites() {
        var coalescer = WriteCoalescer()
        var written: [ByteBuffer] = []
        coalescer.add(bytes("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")) { written.append($0) }
        coalescer.add(bytes("hello")) { written.append($0) }
        #expect(written.isEmpty)
        #expect(coalescer.take() == bytes("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"))
        #expect(coalescer.take() == nil)
        #expect(coalescer.isEmpty)
    }

    @Test("a large body is not copied: what is held goes first, then the body itself")
    func largeBodyPassesThrough() {
        var coalescer = WriteCoalescer()
        var written: [ByteBuffer] = []
        let body = bytes(repeating: UInt8(ascii: "x"), count: WriteCoalescer.maximumHeldBytes + 1)
        coalescer.add(bytes("head")) { written.append($0) }
        coalescer.add(body) { written.append($0) }
        #expect(written == [bytes("head"), body])
        #expect(coalescer.take() == nil)
    }

    @Test("joining stops at the limit: the held bytes go out and the new piece is held")
    func limitStartsANewBuffer() {
        var coalescer = WriteCoalescer()
        var written: [ByteBuffer] = []
        let half = WriteCoalescer.maximumHeldBytes / 2
        let first = bytes(repeating: UInt8(ascii: "a"), count: half)
        let second = bytes(repeating: UInt8(ascii: "b"), count: half)
        let third = bytes("c")
        coalescer.add(first) { written.append($0) }
        coalescer.add(second) { written.append($0) }
        coalescer.add(third) { written.append($0) }
        var joined = first
        joined.writeImmutableBuffer(second)
        #expect(written == [joined])
        #expect(coalescer.take() == third)
    }

    @Test("empty buffers are dropped, and the caller's buffers are not changed by joining")
    func emptyAndValueSemantics() {
        var coalescer = WriteCoalescer()
        var written: [ByteBuffer] = []
        let head = bytes("head")
        coalescer.add(ByteBuffer()) { written.append($0) }
        #expect(coalescer.isEmpty)
        coalescer.add(head) { written.append($0) }
        coalescer.add(bytes("body")) { written.append($0) }
        #expect(head == bytes("head"))
        #expect(coalescer.take() == bytes("headbody"))
        #expect(written.isEmpty)
    }
}
