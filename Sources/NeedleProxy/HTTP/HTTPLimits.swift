import NIOHTTP2

/// The limits the proxy puts on what a client may send (documented in the README). A request over a
/// header limit is answered 431 (HTTP/1.1) or refused by the HTTP/2 layer; nothing of it reaches the app.
enum HTTPLimits {
    /// Bytes of one HTTP/1.1 message head, request line and blank line included (and of a trailer section).
    static let maximumHeaderBytes = 64 * 1024
    /// Header fields in one HTTP/1.1 message head.
    static let maximumHeaderFields = 512
    /// HTTP/2: concurrent streams a client may open on one connection.
    static let maximumConcurrentStreams = 256
    /// HTTP/2: the header list size advertised in SETTINGS and enforced on decode.
    static let maximumHeaderListSize = 64 * 1024

    /// Server side of client HTTP/2 connections. nio-http2 also bounds CONTINUATION floods (header blocks
    /// over the list size), rapid reset (reset streams per window) and control-frame floods by default.
    static var http2Server: NIOHTTP2Handler.ConnectionConfiguration {
        var configuration = NIOHTTP2Handler.ConnectionConfiguration()
        configuration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maximumConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: maximumHeaderListSize),
        ]
        return configuration
    }
}
