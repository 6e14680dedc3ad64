#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleInjection
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
        return configuration
    }
}
