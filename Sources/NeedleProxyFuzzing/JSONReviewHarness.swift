import NeedleInjection

/// Properties of the injector's JSON parser for any body a client can send the webhook: it never traps;
/// what it accepts, the writer writes back to the same value; and reading by a shape (dropping what the
/// injector does not need) accepts whatever a full read accepts, keeping the same values where it keeps them.
public enum JSONReviewHarness {
    public static func check(_ bytes: [UInt8]) -> [String] {
        var violations: [String] = []
        let full = try? JSONParser.parse(bytes)
        let shaped = try? JSONParser.parse(bytes, keeping: PodView.admissionReviewShape)
        if let full {
            let written = JSONWriter.bytes(full)
            switch Result(catching: { () throws(JSONParser.Failure) -> JSONValue in try JSONParser.parse(written) }) {
            case .success(let again) where again != full:
                violations.append("written and read back as another value")
            case .failure(let error):
                violations.append("its own output is refused: \(error)")
            default:
                break
            }
            if shaped == nil { violations.append("a full read accepts it but the shaped read refuses it") }
            if let shaped, let kept = shaped["apiVersion"], kept != full["apiVersion"] {
                violations.append("the shaped read kept apiVersion as another value")
            }
        }
        return violations
    }
}
