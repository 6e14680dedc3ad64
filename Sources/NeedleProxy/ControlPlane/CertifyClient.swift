import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NeedleContract

/// One `POST /v1/certify` to the identity service over TLS 1.3, the service authenticated by its TLS name
/// against the trust anchors (the proxy has no certificate of its own yet). A connection per call: the
/// proxy calls about once a day.
struct CertifyClient: Sendable {
    struct Answer: Equatable, Sendable {
        var status: Int
        var body: [UInt8]
    }

    let connector: ControlPlaneConnector
    let context: NIOSSLContext

    /// A certificate chain is a few KiB; a refusal a line.
    static let maximumAnswerBytes = 64 * 1024
    static let timeout = TimeAmount.seconds(10)

    init(service: ControlPlaneService, trustAnchors: [NIOSSLCertificate], group: any EventLoopGroup, resolver: DNSResolver) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.curves = IssuedIdentity.curves
        configuration.trustRoots = .certificates(trustAnchors)
        configuration.certificateVerification = .fullVerification
        self.connector = ControlPlaneConnector(service: service, group: group, resolver: resolver)
        self.context = try NIOSSLContext(configuration: configuration)
    }

    func certify(token: String, requestPEM: String) -> EventLoopFuture<Answer> {
        let loop = connector.group.next()
        let answer = FirstResult(loop.makePromise(of: Answer.self))
        let serverName = connector.service.tlsName.description
        let connected = connector.connect(context: context) { sync in
            try sync.addHTTPClientHandlers()
            try sync.addHandler(AnswerCollector(answer: answer, limit: Self.maximumAnswerBytes))
        }
        connected.whenComplete { result in
            switch result {
            case .failure(let error):
                answer.complete(.failure(error))
            case .success(let channel):
                var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: IdentityAPI.certifyPath)
                head.headers.add(name: "Host", value: serverName)
                head.headers.add(name: "Authorization", value: "Bearer \(token)")
                head.headers.add(name: "Content-Type", value: IdentityAPI.requestContentType)
                head.headers.add(name: "Content-Length", value: String(requestPEM.utf8.count))
                head.headers.add(name: "Connection", value: "close")
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: requestPEM))), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                let timeout = channel.eventLoop.scheduleTask(in: Self.timeout) {
                    answer.complete(.failure(IdentityError("the identity service did not answer within \(Self.timeout.nanoseconds / 1_000_000_000) s")))
                }
                answer.future.whenComplete { _ in
                    timeout.cancel()
                    channel.close(promise: nil)
                }
            }
        }
        return answer.future
    }
}

/// Gathers one response, bounded; the promise fails if the connection ends first.
private final class AnswerCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let answer: FirstResult<CertifyClient.Answer>
    private let limit: Int
    private var status: Int?
    private var body: [UInt8] = []

    init(answer: FirstResult<CertifyClient.Answer>, limit: Int) {
        self.answer = answer
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(let bytes):
            guard body.count + bytes.readableBytes <= limit else {
                answer.complete(.failure(IdentityError("the identity service's answer is over \(limit) bytes")))
                context.close(promise: nil)
                return
            }
            body += bytes.readableBytesView
        case .end:
            if let status {
                answer.complete(.success(CertifyClient.Answer(status: status, body: body)))
            } else {
                answer.complete(.failure(IdentityError("the identity service answered without a status")))
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        answer.complete(.failure(IdentityError("the identity service closed the connection before answering")))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        answer.complete(.failure(error))
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension AnswerCollector: Sendable {}
