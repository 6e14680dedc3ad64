import NeedleContract

/// What `/etc/resolv.conf` says, as the kubelet writes it for a pod: name servers, search domains and
/// `ndots`. Pure; unknown lines are ignored, as the C library does.
struct ResolverConfiguration: Equatable {
    var nameServers: [IPAddress] = []
    var search: [String] = []
    var ndots = 1
    /// Seconds to wait for an answer from one server.
    var timeoutSeconds = 5
    var attempts = 2

    static let maximumNameServers = 3

    init() {}

    init(parsing text: String) {
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let keyword = words.first else { continue }
            switch keyword {
            case "nameserver":
                if words.count > 1, nameServers.count < Self.maximumNameServers, let address = try? IPAddress(parsing: String(words[1])) {
                    nameServers.append(address)
                }
            case "search", "domain":
                // The last search or domain line wins, as in the C library.
                search = words.dropFirst().map { String($0).trimmingTrailingDot }.filter { !$0.isEmpty }
            case "options":
                for option in words.dropFirst() {
                    let parts = option.split(separator: ":", maxSplits: 1)
                    guard parts.count == 2, let value = Int(parts[1]), value >= 0 else { continue }
                    switch parts[0] {
                    case "ndots": ndots = min(value, 15)
                    case "timeout": timeoutSeconds = min(max(value, 1), 30)
                    case "attempts": attempts = min(max(value, 1), 5)
                    default: break
                    }
                }
            default:
                continue
            }
        }
    }

    /// The names to ask for, in order (resolv.conf(5)): an absolute name (trailing dot) as it is; a name
    /// with at least `ndots` dots first as it is, then with each search domain; a shorter one with the search
    /// domains first.
    func candidates(for name: String) -> [String] {
        if name.hasSuffix(".") { return [name.trimmingTrailingDot] }
        let searched = search.map { "\(name).\($0)" }
        let dots = name.reduce(0) { $0 + ($1 == "." ? 1 : 0) }
        return dots >= ndots ? [name] + searched : searched + [name]
    }
}

extension String {
    var trimmingTrailingDot: String { hasSuffix(".") ? String(dropLast()) : self }
}
