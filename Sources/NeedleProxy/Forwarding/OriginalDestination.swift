#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NeedleContract

/// `SO_ORIGINAL_DST`: where a connection redirected by iptables was going (IPv4 and IPv6).
enum OriginalDestination {
    static let socketOption: CInt = 80  // SO_ORIGINAL_DST, and IP6T_SO_ORIGINAL_DST for IPv6

    /// Reads it on the channel's event loop; nil when the socket was not redirected or cannot say.
    static func read(_ channel: any Channel) -> EventLoopFuture<ListenAddress?> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        let isIPv6: Bool
        if case .v6 = channel.localAddress { isIPv6 = true } else { isIPv6 = false }
        if isIPv6 {
            return provider.unsafeGetSocketOption(level: SocketOptionLevel(IPPROTO_IPV6), name: SocketOptionName(socketOption))
                .map { (address: sockaddr_in6) -> ListenAddress? in listenAddress(address) }
                .recover { _ in nil }
        }
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_IP), name: SocketOptionName(socketOption))
            .map { (address: sockaddr_in) -> ListenAddress? in listenAddress(address) }
            .recover { _ in nil }
    }

    static func listenAddress(_ address: sockaddr_in) -> ListenAddress? {
        guard address.sin_family == sa_family_t(AF_INET) else { return nil }
        let ip = UInt32(bigEndian: address.sin_addr.s_addr)
        return ListenAddress(ip: .v4(ip), port: Int(UInt16(bigEndian: address.sin_port)))
    }

    static func listenAddress(_ address: sockaddr_in6) -> ListenAddress? {
        guard address.sin6_family == sa_family_t(AF_INET6) else { return nil }
        var bytes = address.sin6_addr
        let (high, low) = withUnsafeBytes(of: &bytes) { raw -> (UInt64, UInt64) in
            var high: UInt64 = 0
            var low: UInt64 = 0
            for index in 0..<8 { high = high << 8 | UInt64(raw[index]) }
            for index in 8..<16 { low = low << 8 | UInt64(raw[index]) }
            return (high, low)
        }
        return ListenAddress(ip: .v6(high: high, low: low), port: Int(UInt16(bigEndian: address.sin6_port)))
    }

    /// The same address as NIO's `SocketAddress`, for connecting.
    static func socketAddress(_ address: ListenAddress) throws -> SocketAddress {
        try SocketAddress(ipAddress: address.ip.description, port: address.port)
    }
}
