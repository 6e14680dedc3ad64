/// The actions a state machine has decided and its handler has not performed yet, in order. Taking one
/// moves it out of its slot (`Optional.take()`), where a ring buffer's `popFirst` copies it and then
/// destroys the original: for enums whose payloads hold buffers and connections, that is a retain and a
/// release per payload, through the enum's value witnesses, for every action of every request.
struct ActionQueue<Action> {
    /// Slots `head..<tail` hold the pending actions; every other slot is nil. The slots are kept when the
    /// queue empties (both indices go back to 0), so a burst's slots serve the next one.
    private var slots: [Action?] = []
    private var head = 0
    private var tail = 0

    init() {
        slots.reserveCapacity(8)
    }

    var isEmpty: Bool { head == tail }

    mutating func append(_ action: Action) {
        if tail < slots.count {
            slots[tail] = action
        } else {
            slots.append(action)
        }
        tail += 1
    }

    mutating func popFirst() -> Action? {
        guard head < tail else { return nil }
        let action = slots[head].take()
        head += 1
        if head == tail {
            head = 0
            tail = 0
        }
        return action
    }
}
