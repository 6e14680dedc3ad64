import Logging
import NeedleContract
import NeedleHTTPService

/// `GET /v1/destinations?address=IP:PORT` (DESIGN §8, wire format in `DestinationAPI`): a streamed answer
/// from the `DestinationCatalog`, open for as long as the proxy reads it. Served over mutual TLS: only
/// meshed proxies ask. No NIO here.
public struct DestinationService: RequestService {
    let catalog: DestinationCatalog
    let logger: Logger
    let route = RequestRoute(method: "GET", path: DestinationAPI.path, mediaTypes: [], bodyLimit: 0)

    public init(catalog: DestinationCatalog, logger: Logger) {
        self.catalog = catalog
        self.logger = logger
    }

    public var bodyLimit: Int { route.bodyLimit }

    public func check(_ head: RequestHead) -> HTTPReply? {
        if let problem = route.problem(with: head) { return refusal(status: problem.status, message: problem.message) }
        if case .failure(let problem) = Self.address(in: head.uri) { return refusal(status: 400, message: problem.description) }
        return nil
    }

    public func refusal(status: Int, message: String) -> HTTPReply {
        .text(status, message + "\n")
    }

    public func recordRejection(_ reply: HTTPReply) {
        logger.notice("destination request refused", metadata: ["status": "\(reply.status)",
                                                                "reason": "\(String(decoding: reply.body, as: UTF8.self).trimmingNewline)"])
    }

    public func respond(to head: RequestHead, body: [UInt8]) async -> HTTPReply {
        // Only reached through `reply`, which streams; kept for the protocol.
        refusal(status: 500, message: "the destination API streams its answers")
    }

    public func reply(to head: RequestHead, body: [UInt8]) async -> ServiceReply {
        guard case .success(let address) = Self.address(in: head.uri) else {
            return .whole(refusal(status: 400, message: "no address"))
        }
        logger.debug("destination lookup", metadata: ["address": "\(address)"])
        return .stream(HTTPStreamReply(contentType: DestinationAPI.contentType, body: catalog.lookup(address)))
    }

    static let acceptedQuery = "\(DestinationAPI.path)?\(DestinationAPI.addressParameter)=IP:PORT"

    /// The `address` query parameter, an `IP:PORT`.
    static func address(in uri: String) -> Result<ListenAddress, FormatError> {
        let parts = uri.split(separator: "?", maxSplits: 1)
        let values = parts.count == 2 ? parts[1].split(separator: "&").compactMap { pair -> Substring? in
            let keyValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return keyValue.count == 2 && keyValue[0] == DestinationAPI.addressParameter ? keyValue[1] : nil
        } : []
        guard values.count == 1, let value = values.first else {
            return .failure(FormatError(value: uri, expected: acceptedQuery, detail: "exactly one \(DestinationAPI.addressParameter) is needed"))
        }
        // An IPv6 address comes percent-encoded ([ and ]) or as it is.
        let text = String(value).replacingPercentEncodedBrackets()
        do {
            return .success(try ListenAddress(parsing: text))
        } catch {
            return .failure(error)
        }
    }
}

extension String {
    fileprivate func replacingPercentEncodedBrackets() -> String {
        var text = self
        for (encoded, plain) in [("%5B", "["), ("%5b", "["), ("%5D", "]"), ("%5d", "]"), ("%3A", ":"), ("%3a", ":")] {
            text = text.replacing(encoded, with: plain)
        }
        return text
    }
}
