import NIOCore
import NIOPosix
import NeedleContract

/// Resolves the control plane's host names over UDP with the pod's `/etc/resolv.conf` (name servers,
/// search domains, `ndots`). The proxy ships as one static executable in an empty image, where the C
/// library's resolver cannot load its name-service modules; this resolver needs neither.
struct DNSResolver: Sendable {
    let configuration: ResolverConfiguration
    let group: any EventLoopGroup

    static let port = 53

    init(configuration: ResolverConfiguration, group: any EventLoopGroup) {
        self.configuration = configuration
        self.group = group
    }

    /// With the system's resolv.conf (an empty configuration if there is none: every lookup then fails).
    static func system(group: any EventLoopGroup, path: String = "/etc/resolv.conf") -> DNSResolver {
        DNSResolver(configuration: ResolverConfiguration(parsing: LocalFile.read(path, limit: 64 * 1024) ?? ""), group: group)
    }

    /// The addresses of `host` (IPv4 first), trying each candidate name, attempt and server in turn.
    func resolve(_ host: String, port: Int) async throws -> [SocketAddress] {
        guard !configuration.nameServers.isEmpty else { throw ResolveError("\(host): no nameserver in resolv.conf") }
        var problems: [String] = []
        for candidate in configuration.candidates(for: host) {
            candidateLoop: for _ in 0..<configuration.attempts {
                for server in configuration.nameServers {
                    async let v4 = ask(server, name: candidate, type: .a)
                    async let v6 = ask(server, name: candidate, type: .aaaa)
                    let answers = await [v4, v6]
                    var addresses: [SocketAddress] = []
                    var missing = 0
                    for answer in answers {
                        switch answer {
                        case .success(.addresses(let ips, _)):
                            addresses += ips.compactMap { try? SocketAddress(ipAddress: $0.description, port: port) }
                        case .success(.noSuchName):
                            missing += 1
                        case .success(.serverFailure(let code)):
                            problems.append("\(server) answered \(candidate) with error \(code)")
                        case .failure(let error):
                            problems.append("\(server) for \(candidate): \(error)")
                        }
                    }
                    if !addresses.isEmpty { return addresses }
                    // Both types are known not to exist: the next candidate name, not the next server.
                    if missing == answers.count { break candidateLoop }
                }
            }
        }
        throw ResolveError("\(host) did not resolve" + (problems.isEmpty ? " (no such name)" : ": " + problems.suffix(3).joined(separator: "; ")))
    }

    /// One question to one server, answered or timed out.
    func ask(_ server: IPAddress, name: String, type: DNSMessage.RecordType) async -> Result<DNSMessage.Answer, any Error> {
        let id = UInt16.random(in: 0...UInt16.max)
        guard let query = DNSMessage.query(id: id, name: name, type: type),
              let remote = try? SocketAddress(ipAddress: server.description, port: Self.port)
        else { return .failure(ResolveError("\(name) is not a name that can be asked for")) }
        let loop = group.next()
        let answer = FirstResult(loop.makePromise(of: DNSMessage.Answer.self))
        do {
            let channel = try await DatagramBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(DNSAnswerHandler(answer: answer, id: id, name: name, type: type, server: remote))
                    }
                }
                .bind(host: server.isIPv4 ? "0.0.0.0" : "::", port: 0).get()
            let timeout = loop.scheduleTask(in: .seconds(Int64(configuration.timeoutSeconds))) {
                answer.complete(.failure(ResolveError("\(server) did not answer within \(configuration.timeoutSeconds) s")))
            }
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: query)), promise: nil)
            let result: Result<DNSMessage.Answer, any Error>
            do {
                result = .success(try await answer.future.get())
            } catch {
                result = .failure(error)
            }
            timeout.cancel()
            try? await channel.close()
            return result
        } catch {
            answer.complete(.failure(error))
            return .failure(error)
        }
    }
}

/// Takes the datagram that answers the query (from the server asked, with its id); ignores anything else.
private final class DNSAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let answer: FirstResult<DNSMessage.Answer>
    private let id: UInt16
    private let name: String
    private let type: DNSMessage.RecordType
    private let server: SocketAddress

    init(answer: FirstResult<DNSMessage.Answer>, id: UInt16, name: String, type: DNSMessage.RecordType, server: SocketAddress) {
        self.answer = answer
        self.id = id
        self.name = name
        self.type = type
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == server else { return }
        if let parsed = try? DNSMessage.answer(Array(envelope.data.readableBytesView), id: id, name: name, type: type) {
            answer.complete(.success(parsed))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        answer.complete(.failure(error))
    }
}

@available(*, unavailable)
extension DNSAnswerHandler: Sendable {}

struct ResolveError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
