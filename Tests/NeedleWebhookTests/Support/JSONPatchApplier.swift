import NeedleInjection

/// A minimal RFC 6902 `add` applier for the golden tests. CI cross-checks every golden with Python's
/// independent `jsonpatch`, so a bug here cannot hide a bug in the planner.
enum JSONPatchApplier {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func apply(_ operations: [[String: JSONValue]], to document: JSONValue) throws -> JSONValue {
        var document = document
        for operation in operations {
            guard operation["op"]?.stringValue == "add", let path = operation["path"]?.stringValue, let value = operation["value"] else {
                throw Failure(description: "unsupported operation \(operation)")
            }
            guard path.hasPrefix("/") else { throw Failure(description: "path \(path) does not start with /") }
            let tokens = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
                String($0).replacing("~1", with: "/").replacing("~0", with: "~")
            }
            document = try add(value, at: tokens[...], in: document, path: path)
        }
        return document
    }

    private static func add(_ value: JSONValue, at tokens: ArraySlice<String>, in node: JSONValue, path: String) throws -> JSONValue {
        guard let token = tokens.first else { return value }
        let rest = tokens.dropFirst()
        switch node {
        case .object(var members):
            if rest.isEmpty {
                members[token] = value
            } else {
                guard let child = members[token], child != .null else { throw Failure(description: "missing parent for \(path)") }
                members[token] = try add(value, at: rest, in: child, path: path)
            }
            return .object(members)
        case .array(var elements):
            if rest.isEmpty {
                if token == "-" {
                    elements.append(value)
                } else if let index = Int(token), index >= 0, index <= elements.count, token == String(index) {
                    elements.insert(value, at: index)
                } else {
                    throw Failure(description: "bad array index in \(path)")
                }
            } else {
                guard let index = Int(token), elements.indices.contains(index) else { throw Failure(description: "bad index in \(path)") }
                elements[index] = try add(value, at: rest, in: elements[index], path: path)
            }
            return .array(elements)
        default:
            throw Failure(description: "cannot add into a scalar at \(path)")
        }
    }
}
