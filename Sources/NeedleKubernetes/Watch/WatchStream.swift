#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A page of a Kubernetes list: its items and where a watch resumes (or the next page's token).
public struct ResourceList<Object: Decodable & Sendable>: Decodable, Sendable {
    public struct Metadata: Decodable, Sendable {
        public var resourceVersion: String?
        public var `continue`: String?
    }
    public var metadata: Metadata?
    public var items: [Object]?
}

/// A decoded watch event.
public enum WatchEvent<Object: Decodable & Sendable>: Sendable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
}

/// Reads a watch stream's lines (`{"type": ..., "object": ...}`) and keeps the resource version a new watch
/// resumes from. Pure: the loop feeds it lines and acts on what it says.
public struct WatchCursor: Sendable {
    public private(set) var resourceVersion: String?

    public init(resourceVersion: String?) {
        self.resourceVersion = resourceVersion
    }

    public enum Outcome<Object: Decodable & Sendable>: Sendable {
        case event(WatchEvent<Object>)
        /// A bookmark or a blank keep-alive line: only the resume point may have moved.
        case nothing
        /// 410 Gone, an ERROR event, an unknown type or an undecodable line: list again.
        case relist(String)
    }

    /// The envelope every line has; `object` is decoded again as the resource when the type carries one.
    private struct Envelope: Decodable {
        struct Object: Decodable {
            struct Metadata: Decodable { var resourceVersion: String? }
            var metadata: Metadata?
            var code: Int?
            var reason: String?
            var message: String?
        }
        var type: String
        var object: Object
    }

    private struct Typed<Object: Decodable>: Decodable {
        var object: Object
    }

    public mutating func decode<Object: Decodable & Sendable>(line: some Collection<UInt8>, as type: Object.Type) -> Outcome<Object> {
        if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { return .nothing }
        let data = Data(line)
        let envelope: Envelope
        do {
            envelope = try JSONDecoder().decode(Envelope.self, from: data)
        } catch {
            return .relist("undecodable watch event")
        }
        let outcome: Outcome<Object>
        switch envelope.type {
        case "ADDED", "MODIFIED", "DELETED":
            guard let object = try? JSONDecoder().decode(Typed<Object>.self, from: data).object else {
                return .relist("undecodable \(envelope.type) object")
            }
            outcome = .event(envelope.type == "ADDED" ? .added(object) : envelope.type == "MODIFIED" ? .modified(object) : .deleted(object))
        case "BOOKMARK":
            outcome = .nothing
        case "ERROR":
            let code = envelope.object.code.map(String.init) ?? "?"
            return .relist("watch error \(code) \(envelope.object.reason ?? ""): \(envelope.object.message ?? "")")
        default:
            return .relist("unknown watch event type \(envelope.type)")
        }
        if let version = envelope.object.metadata?.resourceVersion, !version.isEmpty { resourceVersion = version }
        return outcome
    }
}

/// Splits a byte stream into newline-terminated lines, keeping a partial line for the next chunk.
public struct LineSplitter: Sendable {
    private var pending: [UInt8] = []
    /// One watch event larger than this is refused rather than buffered without bound.
    public let maximumLineLength: Int

    public init(maximumLineLength: Int = 4 * 1024 * 1024) {
        self.maximumLineLength = maximumLineLength
    }

    public struct LineTooLong: Error {}

    public mutating func append(_ bytes: some Sequence<UInt8>) throws -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                lines.append(pending)
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
                if pending.count > maximumLineLength { throw LineTooLong() }
            }
        }
        return lines
    }
}

/// Query values (resource versions, continue tokens) as the API server expects them in a URL.
public func percentEncoded(_ text: String) -> String {
    var result = ""
    for byte in text.utf8 {
        let scalar = Unicode.Scalar(byte)
        if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || "-._~".unicodeScalars.contains(scalar) {
            result.unicodeScalars.append(scalar)
        } else {
            let hex = String(byte, radix: 16, uppercase: true)
            result += "%" + (hex.count < 2 ? "0" + hex : hex)
        }
    }
    return result
}
