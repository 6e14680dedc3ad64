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

    /// What every line's `object` says about the stream itself: the resource version to resume from, or an
    /// ERROR's status.
    private struct ObjectView: Decodable {
        struct Metadata: Decodable { var resourceVersion: String? }
        var metadata: Metadata?
        var code: Int?
        var reason: String?
        var message: String?
    }

    /// One line, parsed once: `object` is read as the `ObjectView` and, for an event that carries a
    /// resource, as the resource too (both from the same parsed tree).
    private struct Line<Object: Decodable>: Decodable {
        var type: String
        var envelope: ObjectView
        var resource: Result<Object, any Error>?

        private enum Key: String, CodingKey { case type, object }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            type = try container.decode(String.self, forKey: .type)
            envelope = try container.decode(ObjectView.self, forKey: .object)
            if ["ADDED", "MODIFIED", "DELETED"].contains(type) {
                resource = Result { try container.decode(Object.self, forKey: .object) }
            }
        }
    }

    public mutating func decode<Object: Decodable & Sendable>(line: some Collection<UInt8>, as type: Object.Type) -> Outcome<Object> {
        if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { return .nothing }
        let parsed: Line<Object>
        do {
            parsed = try JSONDecoder().decode(Line<Object>.self, from: Data(line))
        } catch {
            return .relist("undecodable watch event")
        }
        let outcome: Outcome<Object>
        switch parsed.type {
        case "ADDED", "MODIFIED", "DELETED":
            guard case .success(let object)? = parsed.resource else {
                return .relist("undecodable \(parsed.type) object")
            }
            outcome = .event(parsed.type == "ADDED" ? .added(object) : parsed.type == "MODIFIED" ? .modified(object) : .deleted(object))
        case "BOOKMARK":
            outcome = .nothing
        case "ERROR":
            let code = parsed.envelope.code.map(String.init) ?? "?"
            return .relist("watch error \(code) \(parsed.envelope.reason ?? ""): \(parsed.envelope.message ?? "")")
        default:
            return .relist("unknown watch event type \(parsed.type)")
        }
        if let version = parsed.envelope.metadata?.resourceVersion, !version.isEmpty { resourceVersion = version }
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

    public mutating func append(_ bytes: some Collection<UInt8>) throws -> [[UInt8]] {
        var lines: [[UInt8]] = []
        var rest = bytes[...]
        // Whole runs between newlines are copied at once, not byte by byte.
        while let newline = rest.firstIndex(of: UInt8(ascii: "\n")) {
            pending.append(contentsOf: rest[..<newline])
            if pending.count > maximumLineLength { throw LineTooLong() }
            lines.append(pending)
            pending.removeAll(keepingCapacity: true)
            rest = rest[rest.index(after: newline)...]
        }
        pending.append(contentsOf: rest)
        if pending.count > maximumLineLength { throw LineTooLong() }
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
