#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleInjection
import NeedleWebhook
import Testing

/// Every fixture review runs through the reviewer; the patched pod must equal its golden file.
/// Set NEEDLE_REFRESH_GOLDEN=1 to rewrite the goldens after an intended change, then review the diff.
@Suite("Fixture reviews")
struct FixtureReviewTests {
    static let fixtures = URL(filePath: #filePath).deletingLastPathComponent().appending(path: "Fixtures")
    static let reviews = fixtures.appending(path: "reviews")
    static let goldens = fixtures.appending(path: "golden")
    static let refresh = ProcessInfo.processInfo.environment["NEEDLE_REFRESH_GOLDEN"] == "1"

    static func fixtureNames() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: reviews.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    struct Expectation: Decodable {
        var decision: String
        var reason: String
        var warnings: Int
        /// An injector configuration file, relative to the fixtures; the embedded defaults without one.
        var config: String?
    }

    struct ReviewResponse: Decodable {
        var apiVersion: String
        var kind: String
        var response: Response
        struct Response: Decodable {
            var uid: String
            var allowed: Bool
            var patchType: String?
            var patch: String?
            var warnings: [String]?
            var auditAnnotations: [String: String]?
        }
    }

    struct RequestEnvelope: Decodable {
        var apiVersion: String
        var request: Request
        struct Request: Decodable {
            var uid: String
            var object: JSONValue?
        }
    }

    struct Golden: Codable, Equatable {
        var decision: String
        var reason: String
        var warnings: [String]
        /// The patched pod, or null when the review answers without a patch.
        var pod: JSONValue
    }

    @Test("there are at least 30 fixtures and every one has an expectation")
    func fixturesArePresent() throws {
        let names = Self.fixtureNames()
        #expect(names.count >= 30)
        let expectations = try Self.loadExpectations()
        #expect(Set(expectations.keys) == Set(names))
    }

    @Test("no golden file is left without its review")
    func noStaleGoldens() throws {
        let goldens = (try? FileManager.default.contentsOfDirectory(atPath: Self.goldens.path)) ?? []
        let names = Set(Self.fixtureNames())
        let orphans = goldens.filter { $0.hasSuffix(".json") && !names.contains(String($0.dropLast(5))) }
        #expect(orphans.isEmpty, "golden files without a review: \(orphans)")
    }

    @Test("review matches expectation and golden", arguments: fixtureNames())
    func review(name: String) async throws {
        let body = try Data(contentsOf: Self.reviews.appending(path: "\(name).json"))
        let request = try JSONDecoder().decode(RequestEnvelope.self, from: body)
        let expectation = try #require(try Self.loadExpectations()[name], "no expectation for \(name)")
        let configuration = try InjectorConfiguration.load(path: expectation.config.map { Self.fixtures.appending(path: $0).path })
        let reviewer = AdmissionReviewer(
            injector: Injector(configuration: configuration),
            namespaces: try NamespaceFile(path: Self.fixtures.appending(path: "namespaces.yaml").path))
        let (responseBody, _) = try await reviewer.review(body)
        let response = try JSONDecoder().decode(ReviewResponse.self, from: responseBody)

        // The envelope the API server insists on.
        #expect(response.apiVersion == request.apiVersion)
        #expect(response.kind == "AdmissionReview")
        #expect(response.response.uid == request.request.uid)
        #expect(response.response.allowed)
        #expect((response.response.patch == nil) == (response.response.patchType == nil))

        let audit = response.response.auditAnnotations ?? [:]
        #expect(audit["decision"] == expectation.decision)
        #expect(audit["reason"] == expectation.reason)
        #expect((response.response.warnings ?? []).count == expectation.warnings)

        var patchedPod = JSONValue.null
        if let patch = response.response.patch {
            #expect(response.response.patchType == "JSONPatch")
            let patchBytes = try #require(Data(base64Encoded: patch))
            let operations = try JSONDecoder().decode([[String: JSONValue]].self, from: patchBytes)
            #expect(operations.allSatisfy { $0["op"] == "add" })
            patchedPod = try JSONPatchApplier.apply(operations, to: try #require(request.request.object))
        }
        let golden = Golden(decision: audit["decision"] ?? "", reason: audit["reason"] ?? "",
                            warnings: response.response.warnings ?? [], pod: patchedPod)
        try Self.compare(golden, name: name)
    }

    static func loadExpectations() throws -> [String: Expectation] {
        try JSONDecoder().decode([String: Expectation].self, from: Data(contentsOf: fixtures.appending(path: "expectations.json")))
    }

    static func compare(_ golden: Golden, name: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let rendered = try encoder.encode(golden) + Data("\n".utf8)
        let file = goldens.appending(path: "\(name).json")
        if refresh {
            try FileManager.default.createDirectory(at: goldens, withIntermediateDirectories: true)
            try rendered.write(to: file)
            return
        }
        guard let stored = try? Data(contentsOf: file) else {
            Issue.record("golden \(file.path) is missing; run with NEEDLE_REFRESH_GOLDEN=1 and review the result")
            return
        }
        #expect(stored == rendered, "golden \(name).json is stale; run with NEEDLE_REFRESH_GOLDEN=1 and review the diff")
    }
}
