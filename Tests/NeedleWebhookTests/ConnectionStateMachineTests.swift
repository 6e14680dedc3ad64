@testable import NeedleWebhook
import Testing

@Suite("Connection state machine")
struct ConnectionStateMachineTests {
    func machine(limit: Int = 100) -> ConnectionStateMachine { ConnectionStateMachine(bodyLimit: limit) }

    @Test("a good request reads its body under the body deadline, then reviews")
    func happyPath() {
        var state = machine()
        #expect(state.connectionOpened() == .startTimer(.header))
        #expect(state.receivedHead(method: "POST", uri: "/inject?timeout=10s", contentType: "application/json",
                                   contentLength: 10, keepAlive: true) == [.cancelTimer, .startTimer(.body)])
        #expect(state.receivedBody(bytes: 10) == .bufferBody)
        #expect(state.receivedEnd() == [.cancelTimer, .review(keepAlive: true)])
        #expect(state.replySent() == .startTimer(.header))
        #expect(state.phase == .awaitingHead)
    }

    @Test("a connection without keep-alive closes after the reply")
    func noKeepAlive() {
        var state = machine()
        _ = state.receivedHead(method: "POST", uri: "/inject", contentType: "application/json", contentLength: nil, keepAlive: false)
        _ = state.receivedEnd()
        #expect(state.replySent() == .close)
    }

    @Test("a rejected head is answered and the connection closed", arguments: [
        ("GET", "/inject", "application/json", 405),
        ("POST", "/mutate", "application/json", 404),
        ("POST", "/inject", "text/plain", 415),
    ])
    func rejectedHead(method: String, uri: String, contentType: String, status: Int) throws {
        var state = machine()
        let actions = state.receivedHead(method: method, uri: uri, contentType: contentType, contentLength: 5, keepAlive: true)
        let reply = try #require(actions.compactMap { action -> HTTPReply? in
            if case .replyAndClose(let reply) = action { return reply } else { return nil }
        }.first)
        #expect(reply.status == status)
        #expect(state.phase == .rejected)
        // The rest of the request is ignored.
        #expect(state.receivedBody(bytes: 5) == .none)
        #expect(state.receivedEnd() == [])
    }

    @Test("a declared length over the limit is 413 before any body is read")
    func declaredTooLarge() {
        var state = machine(limit: 100)
        let actions = state.receivedHead(method: "POST", uri: "/inject", contentType: "application/json", contentLength: 101, keepAlive: true)
        #expect(actions.contains { if case .replyAndClose(let r) = $0 { return r.status == 413 } else { return false } })
    }

    @Test("a chunked body that grows over the limit is 413")
    func streamedTooLarge() {
        var state = machine(limit: 100)
        _ = state.receivedHead(method: "POST", uri: "/inject", contentType: "application/json", contentLength: nil, keepAlive: true)
        #expect(state.receivedBody(bytes: 60) == .bufferBody)
        guard case .replyAndClose(let reply) = state.receivedBody(bytes: 41) else {
            Issue.record("expected a 413")
            return
        }
        #expect(reply.status == 413)
    }

    @Test("the header deadline closes silently; the body deadline answers 408")
    func timeouts() {
        var idle = machine()
        #expect(idle.timerFired(.header) == .close)
        var slow = machine()
        _ = slow.receivedHead(method: "POST", uri: "/inject", contentType: "application/json", contentLength: 10, keepAlive: true)
        guard case .replyAndClose(let reply) = slow.timerFired(.body) else {
            Issue.record("expected a 408")
            return
        }
        #expect(reply.status == 408)
        // A timer that fires late, after its phase ended, does nothing.
        var reviewing = machine()
        _ = reviewing.receivedHead(method: "POST", uri: "/inject", contentType: "application/json", contentLength: 0, keepAlive: true)
        _ = reviewing.receivedEnd()
        #expect(reviewing.timerFired(.body) == .none)
    }

    @Test("shutdown closes an idle connection now and a busy one after its reply")
    func shutdown() {
        var idle = machine()
        #expect(idle.shutdownRequested() == .close)
        var busy = machine()
        _ = busy.receivedHead(method: "POST", uri: "/inject", contentType: "application/json", contentLength: 2, keepAlive: true)
        #expect(busy.shutdownRequested() == .none)
        #expect(busy.receivedBody(bytes: 2) == .bufferBody)
        #expect(busy.receivedEnd() == [.cancelTimer, .review(keepAlive: false)])
        #expect(busy.replySent() == .close)
    }
}

@Suite("Request head checks")
struct RequestHeadCheckTests {
    @Test("content types", arguments: [
        ("application/json", true), ("application/json; charset=utf-8", true), ("Application/JSON", true),
        ("text/plain", false), ("application/jsonx", false), ("", false),
    ])
    func contentTypes(value: String, accepted: Bool) {
        #expect(RequestHeadCheck.isJSON(value) == accepted)
    }

    @Test("error replies are JSON that names the problem")
    func errorBody() {
        let reply = HTTPReply.error(415, "content type \"text/plain\" is not supported")
        #expect(String(decoding: reply.body, as: UTF8.self) == "{\"code\":415,\"message\":\"content type \\\"text/plain\\\" is not supported\"}\n")
        #expect(reply.contentType == "application/json")
    }
}
