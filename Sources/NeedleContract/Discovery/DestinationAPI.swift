/// The destination service's wire format (DESIGN §8), shared by the controller that serves it and the proxy
/// that asks. Like the identity API it is plain HTTP over TLS (mutual TLS here: only meshed proxies ask),
/// with a body a person can read in `curl`:
///
///     GET /v1/destinations?address=10.96.12.7:80 HTTP/1.1
///
/// answered `200`, `Content-Type: text/plain; charset=utf-8`, with a body that stays open and streams one
/// `DestinationEvent` per line. Every answer starts with `reset`, its `add` lines (or `not-known`) and
/// `sync`; later changes come as `add`/`remove` lines, each batch ended by `sync`. A proxy applies a
/// batch at its `sync`, so it never balances over half an update. A malformed address is `400` with a
/// `text/plain` reason.
public enum DestinationAPI {
    public static let path = "/v1/destinations"
    public static let addressParameter = "address"
    public static let contentType = "text/plain; charset=utf-8"
    /// An event line is under 300 bytes (two DNS labels, a pod name, a TLS name); longer is not one.
    public static let maximumLineBytes = 1024

    /// The request target for a lookup of `address`.
    public static func target(for address: ListenAddress) -> String {
        "\(path)?\(addressParameter)=\(address)"
    }
}

/// One endpoint of an answer: where to connect, and what is known about who is there.
public struct DestinationEndpoint: Hashable, Sendable {
    public var address: ListenAddress
    /// The pod's TLS name when it is meshed: the proxy connects with mutual TLS and expects exactly this
    /// name in the server's certificate (DESIGN §7). nil: not meshed, plaintext.
    public var identity: String?
    /// The port is opaque for that pod: no protocol detection on its side, so send bytes as they are.
    public var opaque: Bool
    /// Metric labels (`dst_namespace`, `dst_service`, `dst_pod`), where known.
    public var namespace: String?
    public var service: String?
    public var pod: String?

    public init(address: ListenAddress, identity: String? = nil, opaque: Bool = false, namespace: String? = nil,
                service: String? = nil, pod: String? = nil) {
        self.address = address
        self.identity = identity
        self.opaque = opaque
        self.namespace = namespace
        self.service = service
        self.pod = pod
    }
}

/// A line of a destination answer.
public enum DestinationEvent: Hashable, Sendable {
    /// What follows replaces everything said before.
    case reset
    /// An endpoint is there (or its details changed).
    case add(DestinationEndpoint)
    /// The endpoint at this address is gone.
    case remove(ListenAddress)
    /// The address is no Service and no pod the controller knows: the proxy sends traffic to it as it is.
    case notKnown
    /// The end of a batch: apply what came since the last `sync`.
    case sync

    public static let acceptedFormat = "reset | add IP:PORT [identity=NAME] [opaque=true|false] [namespace=LABEL] [service=LABEL] [pod=NAME] | remove IP:PORT | not-known | sync"

    /// The line, without its newline.
    public var line: String {
        switch self {
        case .reset: return "reset"
        case .notKnown: return "not-known"
        case .sync: return "sync"
        case .remove(let address): return "remove \(address)"
        case .add(let endpoint):
            var line = "add \(endpoint.address)"
            if let identity = endpoint.identity { line += " identity=\(identity)" }
            line += " opaque=\(endpoint.opaque)"
            if let namespace = endpoint.namespace { line += " namespace=\(namespace)" }
            if let service = endpoint.service { line += " service=\(service)" }
            if let pod = endpoint.pod { line += " pod=\(pod)" }
            return line
        }
    }

    /// Parses one line (without its newline). Unknown keys are refused, so a typo is an error rather than
    /// a silently missing identity.
    public init(line: Substring) throws(FormatError) {
        guard line.utf8.count <= DestinationAPI.maximumLineBytes else {
            throw FormatError(value: String(line.prefix(64)) + "…", expected: Self.acceptedFormat,
                              detail: "a line over \(DestinationAPI.maximumLineBytes) bytes")
        }
        let words = line.split(separator: " ", omittingEmptySubsequences: false)
        let fail = { (detail: String) -> FormatError in FormatError(value: String(line), expected: Self.acceptedFormat, detail: detail) }
        switch words.first {
        case "reset" where words.count == 1: self = .reset
        case "not-known" where words.count == 1: self = .notKnown
        case "sync" where words.count == 1: self = .sync
        case "remove" where words.count == 2: self = .remove(try Self.address(words[1], line: line))
        case "add" where words.count >= 2:
            var endpoint = DestinationEndpoint(address: try Self.address(words[1], line: line))
            var seen: Set<Substring> = []
            for field in words.dropFirst(2) {
                guard let equals = field.firstIndex(of: "=") else { throw fail("\"\(field)\" is not key=value") }
                let key = field[..<equals]
                let value = String(field[field.index(after: equals)...])
                guard seen.insert(key).inserted else { throw fail("\(key) given twice") }
                switch key {
                case "identity":
                    guard DNSName.isValid(value) else { throw fail("identity is not a DNS name") }
                    endpoint.identity = value
                case "opaque":
                    guard value == "true" || value == "false" else { throw fail("opaque is true or false") }
                    endpoint.opaque = value == "true"
                case "namespace":
                    guard DNSName.isLabel(value) else { throw fail("namespace is not a DNS label") }
                    endpoint.namespace = value
                case "service":
                    guard DNSName.isLabel(value) else { throw fail("service is not a DNS label") }
                    endpoint.service = value
                case "pod":
                    guard DNSName.isValid(value) else { throw fail("pod is not a DNS name") }
                    endpoint.pod = value
                default:
                    throw fail("unknown key \(key)")
                }
            }
            self = .add(endpoint)
        default:
            throw fail("unknown event or wrong number of words")
        }
    }

    private static func address(_ word: Substring, line: Substring) throws(FormatError) -> ListenAddress {
        do {
            return try ListenAddress(parsing: String(word))
        } catch {
            throw FormatError(value: String(line), expected: acceptedFormat, detail: "\(word) is not IP:PORT")
        }
    }
}
