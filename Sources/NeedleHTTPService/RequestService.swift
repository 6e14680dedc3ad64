import NeedleContract

/// An HTTP reply, independent of NIO.
public struct HTTPReply: Equatable, Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "application/json", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    /// An error as a small JSON object, so clients that expect JSON can still read the reason.
    public static func error(_ status: Int, _ message: String) -> HTTPReply {
        HTTPReply(status: status, body: Array("{\"code\":\(status),\"message\":\(TextOutput.jsonQuoted(message))}\n".utf8))
    }

    public static func text(_ status: Int, _ text: String) -> HTTPReply {
        HTTPReply(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }
}

/// A reply whose body is streamed as the service produces it (the destination API's answers): sent with
/// chunked framing, flushed per element, and the connection closes when the stream ends. The stream ends
/// when the client goes away (its `onTermination` runs), so a producer can stop at once.
public struct HTTPStreamReply: Sendable {
    public var status: Int
    public var contentType: String
    public var body: AsyncStream<[UInt8]>

    public init(status: Int = 200, contentType: String, body: AsyncStream<[UInt8]>) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}

/// What a service answers: a whole reply, or a streamed one.
public enum ServiceReply: Sendable {
    case whole(HTTPReply)
    case stream(HTTPStreamReply)
}

/// What the server hands a service about a request before its body is read.
public struct RequestHead: Sendable, Equatable {
    public var method: String
    public var uri: String
    /// Header fields with lowercased names, in the order received.
    public var fields: [(name: String, value: String)]
    public var keepAlive: Bool

    public init(method: String, uri: String, fields: [(name: String, value: String)], keepAlive: Bool) {
        self.method = method
        self.uri = uri
        self.fields = fields.map { (name: $0.name.lowercased(), value: $0.value) }
        self.keepAlive = keepAlive
    }

    /// The first value of a field; `name` in lowercase.
    public func field(_ name: String) -> String? { fields.first { $0.name == name }?.value }

    public var contentType: String? { field("content-type") }
    public var contentLength: Int? { field("content-length").flatMap { Int($0) } }
    /// The path without the query.
    public var path: String {
        uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
    }

    public static func == (lhs: RequestHead, rhs: RequestHead) -> Bool {
        lhs.method == rhs.method && lhs.uri == rhs.uri && lhs.keepAlive == rhs.keepAlive
            && lhs.fields.map(\.name) == rhs.fields.map(\.name) && lhs.fields.map(\.value) == rhs.fields.map(\.value)
    }
}

/// A request/response service on `HTTPSServer`: one route, whole request bodies (the webhook's reviews, the
/// controller's certify calls), and whole or streamed replies (the destination API). No NIO here.
public protocol RequestService: Sendable {
    /// The largest body read; a larger one is answered by `tooLarge` without being read further.
    var bodyLimit: Int { get }
    /// A reply that refuses the request on its head alone (wrong path, method, type, declared size); nil reads the body.
    func check(_ head: RequestHead) -> HTTPReply?
    func respond(to head: RequestHead, body: [UInt8]) async -> HTTPReply
    /// The reply when it can be made at once, without waiting on anything: the server then answers on the
    /// event loop that read the request, sparing two thread hops. nil: `reply` is awaited instead.
    func replyAtHand(to head: RequestHead, body: [UInt8]) -> HTTPReply?
    /// The reply the server sends; a service that streams implements this, the others get `respond`'s.
    func reply(to head: RequestHead, body: [UInt8]) async -> ServiceReply
    /// The reply to a body that grew over `bodyLimit`, or did not arrive in time (408).
    func refusal(status: Int, message: String) -> HTTPReply
    /// Counts and logs a refusal sent by the server itself (`check`, too large, too slow).
    func recordRejection(_ reply: HTTPReply)
}

extension RequestService {
    public func replyAtHand(to head: RequestHead, body: [UInt8]) -> HTTPReply? { nil }

    public func reply(to head: RequestHead, body: [UInt8]) async -> ServiceReply {
        .whole(await respond(to: head, body: body))
    }
}

/// One route's rules for a request head, in the order a client would want to hear about them: wrong path,
/// wrong method, wrong content type, too large.
public struct RequestRoute: Sendable {
    public var method: String
    public var path: String
    /// Accepted media types, lowercase, without parameters.
    public var mediaTypes: [String]
    public var bodyLimit: Int

    public init(method: String, path: String, mediaTypes: [String], bodyLimit: Int) {
        self.method = method
        self.path = path
        self.mediaTypes = mediaTypes
        self.bodyLimit = bodyLimit
    }

    /// What is wrong with the head (status and a sentence), or nil.
    public func problem(with head: RequestHead) -> (status: Int, message: String)? {
        let path = head.path
        guard path == self.path else {
            return (404, "no such path \(Self.truncated(path)); this service serves \(method) \(self.path)")
        }
        guard head.method == method else {
            return (405, "method \(Self.truncated(head.method)) is not allowed; use \(method)")
        }
        // A route without media types takes no body (a GET): any content type is beside the point.
        if !mediaTypes.isEmpty, head.contentType.map(accepts) != true {
            let sent = head.contentType.map { "\"\(Self.truncated($0))\"" } ?? "(none)"
            return (415, "content type \(sent) is not supported; send \(mediaTypes.joined(separator: " or "))")
        }
        if let length = head.contentLength, length > bodyLimit {
            return (413, "body of \(length) bytes is over the limit of \(bodyLimit) bytes")
        }
        return nil
    }

    /// A media type, optionally with parameters such as `; charset=utf-8`, in any letter case.
    public func accepts(_ contentType: String) -> Bool {
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return mediaTypes.contains(mediaType.trimmingSpacesAndTabs().lowercased())
    }

    static func truncated(_ text: String) -> String {
        text.count <= 100 ? text : String(text.prefix(100)) + "…"
    }
}
