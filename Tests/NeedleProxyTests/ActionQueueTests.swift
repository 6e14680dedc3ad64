@testable import NeedleProxy
import Testing

@Suite("ActionQueue")
struct ActionQueueTests {
    final class Payload {
        let name: String
        init(_ name: String) { self.name = name }
    }

    @Test("actions come out in order, interleaved with appends, and the queue is reused once emptied")
    func order() {
        var queue = ActionQueue<String>()
        var out: [String?] = []
        out.append(queue.popFirst())
        queue.append("a")
        queue.append("b")
        out.append(queue.popFirst())
        queue.append("c")
        let emptyBeforeDraining = queue.isEmpty
        out.append(queue.popFirst())
        out.append(queue.popFirst())
        out.append(queue.popFirst())
        #expect(out == [nil, "a", "b", "c", nil])
        #expect(!emptyBeforeDraining)
        #expect(queue.isEmpty)
        for round in 0..<3 {
            for index in 0..<20 { queue.append("\(round).\(index)") }
            var drained: [String] = []
            while let action = queue.popFirst() { drained.append(action) }
            #expect(drained == (0..<20).map { "\(round).\($0)" })
            #expect(queue.isEmpty)
        }
    }

    @Test("a taken action is the queue's no more: the queue keeps no reference to it")
    func movesOut() {
        var queue = ActionQueue<Payload>()
        queue.append(Payload("first"))
        queue.append(Payload("second"))
        weak var first: Payload?
        var takenName: String?
        do {
            let taken = queue.popFirst()
            first = taken
            takenName = taken?.name
        }
        #expect(takenName == "first")
        #expect(first == nil, "the queue still held the first action after it was taken")
        let second = queue.popFirst()
        #expect(second?.name == "second")
    }
}
