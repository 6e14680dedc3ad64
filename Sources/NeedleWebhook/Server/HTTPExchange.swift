import NeedleContract

/// An HTTP reply the webhook sends, independent of NIO.
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

/// The checks a request head must pass before its body is read (DESIGN §4), in the order a client would
/// want to hear about them: wrong path, wrong method, wrong content type, too large.
public enum RequestHeadCheck {
    public static func check(method: String, uri: String, contentType: String?, contentLength: Int?,
                             bodyLimit: Int) -> HTTPReply? {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        guard path == "/inject" else {
            return .error(404, "no such path \(truncatedPath(path)); the webhook serves POST /inject")
        }
        guard method == "POST" else {
            return .error(405, "method \(method) is not allowed; use POST")
        }
        guard let contentType, isJSON(contentType) else {
            return .error(415, "content type \(contentType.map { "\"\($0)\"" } ?? "(none)") is not supported; send application/json")
        }
        if let contentLength, contentLength > bodyLimit {
            return .error(413, "body of \(contentLength) bytes is over the limit of \(bodyLimit) bytes")
        }
        return nil
    }

    /// `application/json`, optionally with parameters such as `; charset=utf-8`, in any letter case.
    static func isJSON(_ contentType: String) -> Bool {
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return mediaType.trimmingSpaces().lowercased() == "application/json"
    }

    static func truncatedPath(_ path: String) -> String {
        path.count <= 100 ? path : String(path.prefix(100)) + "…"
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var slice = self
        while slice.first == " " || slice.first == "\t" { slice.removeFirst() }
        while slice.last == " " || slice.last == "\t" { slice.removeLast() }
        return slice
    }
}
