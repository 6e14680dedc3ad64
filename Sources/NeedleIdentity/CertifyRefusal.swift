import NeedleContract

/// Why a certify request was refused: the result it is counted under and a reason the proxy can log.
public struct CertifyRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    public let result: CertifyResult
    public let reason: String

    public init(_ result: CertifyResult, _ reason: String) {
        self.result = result
        self.reason = reason
    }

    public var description: String { "\(result.rawValue): \(reason)" }
}
