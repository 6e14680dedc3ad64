/// Judges the first bytes a client sends after detection timed out with nothing read (DESIGN §7). The
/// connection is already opaque TCP to the app, so a request arriving now would reach it unfiltered, with
/// any `needle-client-id` it carries. A server-speaks-first client answers the server's greeting in its
/// own protocol; one that speaks HTTP here is refused instead. Bytes are read leniently, as an app's
/// server might (`RequestLineReading.lenient`), and a line still unfinished at the deadline is refused:
/// passing it would let a request be sent in two halves around the deadline.
enum LateRequestCheck {
    enum Verdict: Equatable, Sendable {
        /// Not enough bytes to tell yet: hold them.
        case wait
        /// Not HTTP: the held bytes and all later ones go on as they are.
        case pass
        /// An HTTP/1 request line or the HTTP/2 preface: close the connection.
        case refuse
    }

    static func judge<Bytes: RandomAccessCollection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8, Bytes.Index == Int {
        switch ProtocolDetector.detect(bytes, reading: .lenient) {
        case .needMoreData: return .wait
        case .detected(let detected): return verdict(detected)
        }
    }

    /// The verdict on bytes still held when the deadline passes.
    static func judgeAtDeadline<Bytes: RandomAccessCollection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8, Bytes.Index == Int {
        verdict(ProtocolDetector.detectAtEnd(bytes, reading: .lenient))
    }

    private static func verdict(_ detected: DetectedProtocol) -> Verdict {
        switch detected {
        case .http1, .http2: return .refuse
        case .tls, .opaque: return .pass
        }
    }
}
