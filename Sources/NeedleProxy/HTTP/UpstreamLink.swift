/// An exchange's hold on its upstream, shared by the HTTP/1.1 and HTTP/2 exchange machines: while the
/// connection (or stream) is being made, the request parts after the head wait here; once it is there,
/// parts go straight to it. The head itself is kept by the exchange and sent first on attach, so a request
/// whose upstream is ready at once allocates nothing here.
enum UpstreamLink<Upstream, Part> {
    case acquiring(pending: [Part], pendingBytes: Int)
    case attached(Upstream, writable: Bool)

    /// Nothing held yet: the head is sent first on attach.
    static var connecting: UpstreamLink { .acquiring(pending: [], pendingBytes: 0) }

    /// Where a request part went.
    enum Forwarded {
        case send(to: Upstream, writable: Bool)
        /// Held until the upstream is there; the bytes held so far.
        case held(pendingBytes: Int)
    }

    /// `bytes`: the part's body bytes, which count towards the limit of what may be held.
    mutating func forward(_ part: Part, bytes: Int) -> Forwarded {
        switch self {
        case .attached(let upstream, let writable):
            return .send(to: upstream, writable: writable)
        case .acquiring(var pending, var held):
            pending.append(part)
            held += bytes
            self = .acquiring(pending: pending, pendingBytes: held)
            return .held(pendingBytes: held)
        }
    }

    /// The upstream, once attached.
    var upstream: Upstream? {
        if case .attached(let upstream, _) = self { return upstream }
        return nil
    }

    var isAcquiring: Bool { upstream == nil }
}
