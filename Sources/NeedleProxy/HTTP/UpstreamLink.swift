import NIOCore
import NIOHTTP1

/// An exchange's hold on its upstream, shared by the HTTP/1.1 and HTTP/2 exchange machines: while the
/// connection (or stream) is being made, the request parts after the head wait here; once it is there,
/// parts go straight to it. The head itself is kept by the exchange and sent first on attach, so a request
/// whose upstream is ready at once allocates nothing here.
enum UpstreamLink<Upstream> {
    case acquiring(pending: [HTTPClientRequestPart], pendingBytes: Int)
    case attached(Upstream, writable: Bool)

    /// Nothing held yet: the head is sent first on attach.
    static var connecting: UpstreamLink { .acquiring(pending: [], pendingBytes: 0) }

    /// Where a request part went.
    enum Forwarded {
        case send(to: Upstream, writable: Bool)
        /// Held until the upstream is there; the bytes held so far.
        case held(pendingBytes: Int)
    }

    mutating func forward(_ part: HTTPClientRequestPart) -> Forwarded {
        switch self {
        case .attached(let upstream, let writable):
            return .send(to: upstream, writable: writable)
        case .acquiring(var pending, var bytes):
            pending.append(part)
            if case .body(.byteBuffer(let buffer)) = part { bytes += buffer.readableBytes }
            self = .acquiring(pending: pending, pendingBytes: bytes)
            return .held(pendingBytes: bytes)
        }
    }

    /// The upstream, once attached.
    var upstream: Upstream? {
        if case .attached(let upstream, _) = self { return upstream }
        return nil
    }

    var isAcquiring: Bool { upstream == nil }
}
