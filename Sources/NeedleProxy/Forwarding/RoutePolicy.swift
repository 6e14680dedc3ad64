import NeedleContract

/// Which side of the pod a connection came in on.
public enum Direction: String, Sendable, CaseIterable {
    case inbound
    case outbound
}

/// Where an accepted connection may go. Pure: the listener supplies the addresses it read from the socket.
public struct RoutePolicy: Sendable {
    public let inboundIPs: [IPAddress]
    public let inboundListenPort: Int
    public let outboundListen: ListenAddress
    public let adminPort: Int
    public let opaquePorts: PortSet

    public init(environment: ProxyEnvironment) {
        inboundIPs = environment.inboundIPs
        inboundListenPort = environment.inboundListenAddress.port
        outboundListen = environment.outboundListenAddress
        adminPort = environment.adminListenAddress.port
        opaquePorts = environment.opaquePorts
    }

    public enum Decision: Equatable, Sendable {
        case forward(ListenAddress, skipDetection: Bool)
        case refuse(String)
    }

    /// - Parameter originalDestination: `SO_ORIGINAL_DST`, or nil when the connection was not redirected.
    public func route(_ direction: Direction, originalDestination: ListenAddress?) -> Decision {
        guard let destination = originalDestination else {
            return .refuse("no original destination: the connection was not redirected to the proxy")
        }
        switch direction {
        case .inbound:
            // A connection made straight to the proxy port would be forwarded to itself, forever.
            if destination.port == inboundListenPort || destination.port == outboundListen.port {
                return .refuse("loop: original destination \(destination) is a proxy port")
            }
            if !inboundIPs.isEmpty, !inboundIPs.contains(destination.ip) {
                return .refuse("original destination \(destination) is not one of the pod's IPs")
            }
        case .outbound:
            if destination.port == outboundListen.port && (destination.ip == outboundListen.ip || destination.ip.isLoopback) {
                return .refuse("loop: original destination \(destination) is the outbound listener")
            }
        }
        return .forward(destination, skipDetection: opaquePorts.contains(destination.port))
    }
}

extension IPAddress {
    var isLoopback: Bool {
        switch self {
        case .v4(let value): return value >> 24 == 127
        case .v6(let high, let low): return high == 0 && low == 1
        }
    }
}
