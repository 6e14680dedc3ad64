import NIOHTTP1
@testable import NeedleProxy

/// What `HTTP1ProxyHandler` relies on when it performs `HTTP1ServerExchange`'s actions, checked action by
/// action: no write to an upstream connection after it was handed back, every connection handed back
/// exactly once, responses well formed on the wire (no body without a head, no error page in the middle of
/// a response), nothing written to the client after it was closed, and one counted response per request.
struct ExchangeActionChecker {
    typealias Action = HTTP1ServerExchange<Int>.Action

    private(set) var violations: [String] = []
    /// Upstream connections the machine holds: given to it and not yet released or turned into a tunnel.
    private(set) var held: Set<Int> = []
    /// Acquisitions asked for and not answered yet.
    private(set) var outstanding: [ExchangeID] = []
    private var responseOpen = false
    private var requests = 0
    private var responses = 0
    /// The machine asked for the client connection to be closed (or handed to a tunnel).
    private(set) var clientClosing = false

    mutating func gave(_ upstream: Int, for id: ExchangeID) {
        outstanding.removeAll { $0 == id }
        held.insert(upstream)
    }

    mutating func answered(_ id: ExchangeID) {
        outstanding.removeAll { $0 == id }
    }

    mutating func observe(_ action: Action) {
        switch action {
        case .startExchange(let id):
            observe(.countRequest)
            observe(.acquireUpstream(id))
        case .completeExchange(let status, let started, let upstream, let reusable, let last):
            observe(.countResponse(status: status, started: started))
            observe(.releaseUpstream(upstream, reusable: reusable))
            observe(.respondEnd(last, close: false))
        case .acquireUpstream(let id):
            if outstanding.contains(id) { fail("asked twice for an upstream for exchange \(id)") }
            outstanding.append(id)
        case .sendRequestHead(let upstream, _, _), .sendUpstream(let upstream, _), .flushUpstream(let upstream),
             .setUpstreamReading(let upstream, _):
            if !held.contains(upstream) { fail("used upstream \(upstream) it does not hold (\(action))") }
        case .releaseUpstream(let upstream, _):
            if held.remove(upstream) == nil { fail("released upstream \(upstream), which it does not hold") }
        case .startTunnel(let upstream):
            if held.remove(upstream) == nil { fail("tunnelled to upstream \(upstream), which it does not hold") }
            clientClosing = true
        case .respondHead(_, let status, _):
            if clientClosing { fail("wrote a \(status) head to a client it had closed") }
            if responseOpen { fail("a second response head (\(status)) before the first response ended") }
            if !(100..<200).contains(status) || status == 101 { responseOpen = true }
        case .respondBody:
            if clientClosing { fail("wrote body bytes to a client it had closed") }
            if !responseOpen { fail("a response body without a response head") }
        case .respondEnd(_, let close):
            if clientClosing { fail("ended a response on a client it had closed") }
            if !responseOpen { fail("a response end without a response head") }
            responseOpen = false
            if close { clientClosing = true }
        case .flushClient:
            break
        case .respondWithError(let status, _, _, let close):
            if clientClosing { fail("wrote a \(status.code) error to a client it had closed") }
            if responseOpen { fail("wrote a \(status.code) error in the middle of a response") }
            if close { clientClosing = true }
        case .countRequest:
            requests += 1
        case .countResponse:
            responses += 1
            if responses > requests { fail("counted \(responses) responses for \(requests) requests") }
        case .close:
            clientClosing = true
        case .setClientReading, .awaitRequestHead:
            break
        }
    }

    /// After the client is gone and every acquisition was answered: nothing may be left held or uncounted.
    mutating func finish() {
        for upstream in held.sorted() { fail("upstream \(upstream) was never released (a leaked connection)") }
        if requests != responses { fail("\(requests) requests counted but \(responses) responses") }
    }

    private mutating func fail(_ message: String) {
        violations.append(message)
    }
}
