#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NeedleContract

/// `needle-proxy await`: polls the local admin `/ready` until it answers 200 (classic mode's postStart hook,
/// which holds the app container until the proxy is ready).
public enum AwaitReady {
    public static func run(adminAddress: ListenAddress, timeout: ProxyDuration) -> Int32 {
        let host: IPAddress
        switch adminAddress.ip {
        case .v4(0): host = .v4(0x7F00_0001)
        case .v6(0, 0): host = .v6(high: 0, low: 1)
        default: host = adminAddress.ip
        }
        var elapsed = 0
        while elapsed <= timeout.milliseconds {
            if probe(ListenAddress(ip: host, port: adminAddress.port)) { return 0 }
            usleep(200_000)
            elapsed += 200
        }
        TextOutput.errorLine("needle-proxy await: the proxy was not ready at \(host):\(adminAddress.port)/ready within \(timeout)")
        return 1
    }

    /// One `GET /ready`; true on a 200 status line.
    static func probe(_ address: ListenAddress) -> Bool {
        let family = address.ip.isIPv4 ? AF_INET : AF_INET6
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected: Int32
        switch address.ip {
        case .v4(let value):
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = in_port_t(UInt16(address.port).bigEndian)
            socketAddress.sin_addr.s_addr = value.bigEndian
            connected = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let high, let low):
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = in_port_t(UInt16(address.port).bigEndian)
            withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { raw in
                for index in 0..<8 { raw[index] = UInt8(truncatingIfNeeded: high >> UInt64(56 - 8 * index)) }
                for index in 0..<8 { raw[8 + index] = UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * index)) }
            }
            connected = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        guard connected == 0 else { return false }
        var request = Array("GET /ready HTTP/1.0\r\nHost: localhost\r\n\r\n".utf8)
        guard request.withUnsafeMutableBytes({ send(descriptor, $0.baseAddress, $0.count, 0) }) == request.count else { return false }
        var response = [UInt8](repeating: 0, count: 64)
        let count = response.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard count >= 12 else { return false }
        return String(decoding: response[0..<12], as: UTF8.self).hasSuffix(" 200")
    }
}

/// The process environment as a dictionary, read without Foundation.
public func processEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return result
}
