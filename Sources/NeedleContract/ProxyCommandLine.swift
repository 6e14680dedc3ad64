/// needle-proxy's command line (DESIGN §3): no arguments to serve, or `await [--timeout DURATION]`, the
/// classic-mode postStart hook that holds the app container until the proxy is ready. The injector renders
/// the hook's command with this type and the proxy parses it with the same one.
public enum ProxyCommandLine: Hashable, Sendable {
    case serve
    case await(timeout: ProxyDuration)

    public static let awaitSubcommand = "await"
    public static let timeoutFlag = "--timeout"
    public static let defaultAwaitTimeout = ProxyDuration.seconds(120)
    public static let usage = "usage: needle-proxy [await [--timeout DURATION]]; DURATION is \(ProxyDuration.acceptedFormat)"

    /// The arguments after the program name.
    public func rendered() -> [String] {
        switch self {
        case .serve: []
        case .await(let timeout): [Self.awaitSubcommand, Self.timeoutFlag, Self.spelled(timeout)]
        }
    }

    /// Whole seconds as seconds (`120s`, as pod specs have always read), anything else in milliseconds.
    static func spelled(_ timeout: ProxyDuration) -> String {
        timeout.milliseconds % 1000 == 0 ? "\(timeout.milliseconds / 1000)s" : "\(timeout.milliseconds)ms"
    }

    /// Parses the arguments after the program name.
    public init(parsing arguments: [String]) throws(FormatError) {
        var rest = arguments[...]
        guard let first = rest.popFirst() else {
            self = .serve
            return
        }
        guard first == Self.awaitSubcommand else {
            throw FormatError(value: first, expected: Self.usage, detail: "unknown argument")
        }
        var timeout = Self.defaultAwaitTimeout
        while let flag = rest.popFirst() {
            var value: String?
            if flag == Self.timeoutFlag {
                value = rest.popFirst()
            } else if flag.hasPrefix(Self.timeoutFlag + "=") {
                value = String(flag.dropFirst(Self.timeoutFlag.count + 1))
            } else {
                throw FormatError(value: flag, expected: Self.usage, detail: "unknown argument")
            }
            guard let value else { throw FormatError(value: flag, expected: Self.usage, detail: "no duration given") }
            timeout = try ProxyDuration(parsing: value)
        }
        self = .await(timeout: timeout)
    }
}
