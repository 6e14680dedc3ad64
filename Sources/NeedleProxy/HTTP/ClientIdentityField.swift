import NeedleContract

/// What the proxy does with `needle-client-id` on the requests it forwards (DESIGN §7): an app may trust
/// the field only because the inbound proxy is the one that writes it.
enum ClientIdentityField: Equatable, Sendable {
    /// Outbound: the app's requests go on as they are.
    case untouched
    /// Inbound from a peer that did not authenticate: whatever it sent under that name is removed.
    case removed
    /// Inbound from an authenticated mesh peer: exactly one field, its TLS name.
    case set(String)

    static let name = Mesh.clientIDHeader
}

extension ClientIdentityField {
    /// Whether a field name read off the wire is this one, ignoring ASCII case.
    static func isNamed(_ fieldName: UnsafeRawBufferPointer) -> Bool {
        guard fieldName.count == nameBytes.count else { return false }
        for index in 0..<fieldName.count where HTTP1Syntax.lowercased(fieldName[index]) != nameBytes[index] { return false }
        return true
    }

    private static let nameBytes = Array(name.lowercased().utf8)
}
