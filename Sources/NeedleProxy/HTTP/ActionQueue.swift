/// The actions a state machine has decided and its handler has not performed yet, in order. Taking one
/// moves it out of its slot (`Optional.take()`), where a ring buffer's `popFirst` copies it and then
/// destroys the original: for enums whose payloads hold buffers and connections, that is a retain and a
/// release per payload, through the enum's value witnesses, for every action of every request.
struct ActionQueue<Action> {
    private var slots: [Action?] = []
    /// The first slot not taken yet; the array is emptied (capacity kept) once every action is taken.
    private var head = 0

    init() {
        slots.reserveCapacity(8)
    }

    var isEmpty: Bool { head == slots.count }

    mutating func append(_ action: Action) {
        slots.append(action)
    }

    mutating func popFirst() -> Action? {
        guard head < slots.count else { return nil }
        let action = slots[head].take()
        head += 1
        if head == slots.count {
            slots.removeAll(keepingCapacity: true)
            head = 0
        }
        return action
    }
}
