@testable import NeedleHTTPService
import Testing

/// A head as NIO would hand it over.
func head(_ method: String = "POST", _ uri: String = "/inject", contentType: String? = "application/json",
          contentLength: Int? = nil, keepAlive: Bool = true, fields: [(String, String)] = []) -> RequestHead {
    var all = fields.map { (name: $0.0, value: $0.1) }
    if let contentType { all.append((name: "Content-Type", value: contentType)) }
    if let contentLength { all.append((name: "Content-Length", value: String(contentLength))) }
    return RequestHead(method: method, uri: uri, fields: all, keepAlive: keepAlive)
}

@Suite("Connection state machine")
struct ConnectionStateMachineTests {
    func machine(limit: Int = 100) -> ConnectionStateMachine { ConnectionStateMachine(bodyLimit: limit) }

    @Test("a good request reads its body under the body deadline, then the service answers")
    func happyPath() {
        var state = machine()
        #expect(state.connectionOpened() == .startTimer(.header))
        #expect(state.receivedHead(rejection: nil, keepAlive: true) == [.cancelTimer, .startTimer(.body)])
        #expect(state.receivedBody(bytes: 10) == .bufferBody)
        #expect(state.receivedEnd() == [.cancelTimer, .respond(keepAlive: true)])
        #expect(state.replyWriting() == .startTimer(.header))
        #expect(state.phase == .awaitingHead)
        #expect(state.replySent() == .none)
    }

    @Test("a pipelined head that arrives while the reply is written is taken, not dropped")
    func pipelined() {
        var state = machine()
        _ = state.receivedHead(rejection: nil, keepAlive: true)
        _ = state.receivedEnd()
        #expect(state.replyWriting() == .startTimer(.header))
        #expect(state.receivedHead(rejection: nil, keepAlive: true) == [.cancelTimer, .startTimer(.body)])
        #expect(state.replySent() == .none, "the first reply's completion does not disturb the second request")
        #expect(state.receivedEnd() == [.cancelTimer, .respond(keepAlive: true)])
    }

    @Test("a closing reply pipelined behind a slow earlier one closes the connection only when it is out")
    func overlappingReplies() {
        var state = machine()
        _ = state.receivedHead(rejection: nil, keepAlive: true)
        _ = state.receivedEnd()
        #expect(state.replyWriting() == .startTimer(.header), "reply A: still being written to a slow reader")
        _ = state.receivedHead(rejection: nil, keepAlive: false)
        _ = state.receivedEnd()
        #expect(state.replyWriting() == .none, "reply B closes the connection once written")
        #expect(state.replySent() == .none, "A's write finishing must not cut B short")
        #expect(state.replySent() == .close)
    }

    @Test("a connection without keep-alive closes after the reply")
    func noKeepAlive() {
        var state = machine()
        _ = state.receivedHead(rejection: nil, keepAlive: false)
        _ = state.receivedEnd()
        #expect(state.replyWriting() == .none)
        #expect(state.receivedHead(rejection: nil, keepAlive: true) == [], "no request after a closing reply")
        #expect(state.replySent() == .close)
    }

    @Test("a head the service refuses is answered and the connection closed; the rest of the request is ignored")
    func rejectedHead() {
        var state = machine()
        let refusal = HTTPReply.text(405, "no")
        #expect(state.receivedHead(rejection: refusal, keepAlive: true) == [.cancelTimer, .replyAndClose(refusal)])
        #expect(state.phase == .rejected)
        #expect(state.receivedBody(bytes: 5) == .none)
        #expect(state.receivedEnd() == [])
    }

    @Test("a chunked body that grows over the limit is refused with 413")
    func streamedTooLarge() {
        var state = machine(limit: 100)
        _ = state.receivedHead(rejection: nil, keepAlive: true)
        #expect(state.receivedBody(bytes: 60) == .bufferBody)
        #expect(state.receivedBody(bytes: 41) == .refuseAndClose(status: 413, message: "body is over the limit of 100 bytes"))
        #expect(state.receivedEnd() == [])
    }

    @Test("the header deadline closes silently; the body deadline refuses with 408")
    func timeouts() {
        var idle = machine()
        #expect(idle.timerFired(.header) == .close)
        var slow = machine()
        _ = slow.receivedHead(rejection: nil, keepAlive: true)
        #expect(slow.timerFired(.body) == .refuseAndClose(status: 408, message: "request body not received in time"))
        // A timer that fires late, after its phase ended, does nothing.
        var responding = machine()
        _ = responding.receivedHead(rejection: nil, keepAlive: true)
        _ = responding.receivedEnd()
        #expect(responding.timerFired(.body) == .none)
    }

    @Test("shutdown closes an idle connection now and a busy one after its reply")
    func shutdown() {
        var idle = machine()
        #expect(idle.shutdownRequested() == .close)
        var busy = machine()
        _ = busy.receivedHead(rejection: nil, keepAlive: true)
        #expect(busy.shutdownRequested() == .none)
        #expect(busy.receivedBody(bytes: 2) == .bufferBody)
        #expect(busy.receivedEnd() == [.cancelTimer, .respond(keepAlive: false)])
        #expect(busy.replyWriting() == .none)
        #expect(busy.replySent() == .close)
    }
}

@Suite("Request routes")
struct RequestRouteTests {
    let route = RequestRoute(method: "POST", path: "/inject", mediaTypes: ["application/json"], bodyLimit: 100)

    @Test("content types", arguments: [
        ("application/json", true), ("application/json; charset=utf-8", true), ("Application/JSON", true),
        (" application/json ;x=y", true), ("text/plain", false), ("application/jsonx", false), ("", false),
    ])
    func contentTypes(value: String, accepted: Bool) {
        #expect(route.accepts(value) == accepted)
    }

    @Test("problems come in the order a client wants them: path, method, type, size", arguments: [
        (head("GET", "/mutate", contentType: "text/plain", contentLength: 500), 404),
        (head("GET", "/inject?x=1", contentType: "text/plain", contentLength: 500), 405),
        (head("POST", "/inject", contentType: "text/plain", contentLength: 500), 415),
        (head("POST", "/inject", contentType: nil, contentLength: 5), 415),
        (head("POST", "/inject", contentLength: 101), 413),
    ])
    func order(head: RequestHead, status: Int) {
        #expect(route.problem(with: head)?.status == status)
    }

    @Test("a good head has no problem, with or without a declared length, whatever the query")
    func goodHeads() {
        #expect(route.problem(with: head("POST", "/inject?timeout=10s", contentLength: 100)) == nil)
        #expect(route.problem(with: head("POST", "/inject")) == nil)
        #expect(route.problem(with: head("GET", "/other"))?.message == "no such path /other; this service serves POST /inject")
    }

    @Test("error replies are JSON that names the problem; fields are looked up by lowercase name")
    func replies() {
        let reply = HTTPReply.error(415, "content type \"text/plain\" is not supported")
        #expect(String(decoding: reply.body, as: UTF8.self) == "{\"code\":415,\"message\":\"content type \\\"text/plain\\\" is not supported\"}\n")
        #expect(reply.contentType == "application/json")
        let request = head(fields: [("Authorization", "Bearer abc")])
        #expect(request.field("authorization") == "Bearer abc")
        #expect(request.contentType == "application/json")
    }
}
