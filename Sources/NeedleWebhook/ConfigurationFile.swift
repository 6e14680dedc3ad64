#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleInjection
import SwiftASN1
import X509
import Yams

extension InjectorConfiguration {
    /// The embedded defaults overridden by a YAML or JSON file of `key: value` settings.
    public static func load(path: String?) throws -> InjectorConfiguration {
        var configuration = InjectorConfiguration()
        guard let path else { return configuration }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(problems: ["cannot read \(path): \(error)"])
        }
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw ConfigurationError(problems: ["\(path) is not YAML or JSON: \(error)"])
        }
        guard let document else { return configuration }
        guard let map = document as? [String: Any] else {
            throw ConfigurationError(problems: ["\(path): expected a map of settings"])
        }
        var settings: [String: String] = [:]
        for (key, value) in map {
            switch value {
            case let text as String: settings[key] = text
            case let flag as Bool: settings[key] = flag ? "true" : "false"
            case let number as Int: settings[key] = String(number)
            case let number as Double: settings[key] = String(number)
            case is [Any], is [String: Any]: throw ConfigurationError(problems: ["\(key): expected a single value"])
            default: settings[key] = ""  // YAML null: "unset", where a setting allows that
            }
        }
        try configuration.apply(settings)
        if let anchors = configuration.trustAnchorsFile {
            let resolved = anchors.hasPrefix("/") ? anchors : directory(of: path) + anchors
            configuration.trustAnchorsPEM = try readTrustAnchors(resolved)
        }
        return configuration
    }

    /// The bundle, checked to hold at least one parseable certificate and nothing that is not one: a proxy
    /// given a broken bundle could never trust anybody.
    static func readTrustAnchors(_ path: String) throws -> String {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(problems: ["trustAnchorsFile: cannot read \(path): \(error)"])
        }
        do {
            let documents = try PEMDocument.parseMultiple(pemString: text)
            guard !documents.isEmpty, documents.allSatisfy({ $0.discriminator == "CERTIFICATE" }) else {
                throw ConfigurationError(problems: ["trustAnchorsFile: \(path) must hold only PEM certificates, at least one"])
            }
            for document in documents { _ = try Certificate(pemDocument: document) }
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(problems: ["trustAnchorsFile: \(path) is not a PEM bundle of certificates: \(error)"])
        }
        return text
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[...slash])
    }
}
