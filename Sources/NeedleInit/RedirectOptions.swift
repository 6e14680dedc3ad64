import NeedleContract

/// What one family's plan redirects (DESIGN §3.5): the validated command line's rules, for IPv4 or IPv6.
/// Its fields are the command line's (`options.proxyUID`), so there is one list of them.
@dynamicMemberLookup
public struct RedirectOptions: Equatable, Sendable {
    public var rules: InitCommandLine
    /// The family of this plan: ip6tables when true.
    public var ipv6: Bool

    public init(_ rules: InitCommandLine = InitCommandLine(), ipv6: Bool = false) {
        self.rules = rules
        self.ipv6 = ipv6
    }

    public subscript<Value>(dynamicMember keyPath: WritableKeyPath<InitCommandLine, Value>) -> Value {
        get { rules[keyPath: keyPath] }
        set { rules[keyPath: keyPath] = newValue }
    }

    /// The subnets of the address family this run handles.
    public var subnetsOfFamily: [CIDR] { rules.subnetsToIgnore.filter { $0.address.isIPv4 != ipv6 } }
}
