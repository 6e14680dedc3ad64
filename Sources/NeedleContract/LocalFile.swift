#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// read(2), named apart from `LocalFile.read`.
private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.read(descriptor, buffer, count)
    #else
    Musl.read(descriptor, buffer, count)
    #endif
}

/// Small local files (/proc, the projected token) read without Foundation, by the proxy and needle-init.
public enum LocalFile {
    /// The file's text, at most `limit` bytes of it; nil if it cannot be opened.
    public static func read(_ path: String, limit: Int = 1 << 20) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let count = buffer.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes.prefix(limit), as: UTF8.self)
    }

    /// The pod's IPv6 addresses as the kernel lists them; nil when the kernel has no IPv6.
    public static func ifInet6() -> String? {
        read("/proc/net/if_inet6", limit: 256 * 1024)
    }
}
