#if canImport(Glibc)
import Glibc
#endif

/// Reads the inputs kept under `Fuzz/Regressions/<target>/` (one file per input a fuzzer once found),
/// without Foundation, like the proxy. Nil when the directory cannot be opened, so a wrong path fails the
/// replay instead of replaying nothing.
public enum RegressionFiles {
    public static func read(directory: String) -> [(name: String, bytes: [UInt8])]? {
        guard let handle = opendir(directory) else { return nil }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted().compactMap { name in
            contents(of: "\(directory)/\(name)").map { (name, $0) }
        }
    }

    static func contents(of path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return bytes
    }
}
