#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NeedleInjection
import NeedleKubernetes
@testable import NeedleWebhook
import Testing

@Suite("Namespace watch state and the watch stream")
struct NamespaceWatchStateTests {
    func list(_ names: [String], version: String) throws -> ResourceList<NamespaceObject> {
        let items = names.map { "{\"metadata\":{\"name\":\"\($0)\",\"annotations\":{\"needle.dev/inject\":\"enabled\"}}}" }
        let json = "{\"metadata\":{\"resourceVersion\":\"\(version)\"},\"items\":[\(items.joined(separator: ","))]}"
        return try JSONDecoder().decode(ResourceList<NamespaceObject>.self, from: Data(json.utf8))
    }

    func line(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Feeds one watch line through the cursor into the state, as `ResourceWatch` does; the relist reason if any.
    func feed(_ text: String, _ cursor: inout WatchCursor, _ state: inout NamespaceWatchState) -> String? {
        switch cursor.decode(line: line(text), as: NamespaceObject.self) {
        case .event(let event):
            state.apply(event)
            return nil
        case .nothing:
            return nil
        case .relist(let reason):
            return reason
        }
    }

    @Test("a list replaces the cache; its resource version is where the watch resumes")
    func listReplaces() throws {
        var state = NamespaceWatchState()
        state.remember(NamespaceMetadata(name: "stale"))
        let page = try list(["a", "b"], version: "7")
        state.replace(with: page.items ?? [])
        #expect(Set(state.namespaces.keys) == ["a", "b"])
        #expect(page.metadata?.resourceVersion == "7")
        #expect(state.synced)
    }

    @Test("ADDED, MODIFIED and DELETED events update the cache; every event and bookmark moves the resume point")
    func events() throws {
        var state = NamespaceWatchState()
        var cursor = WatchCursor(resourceVersion: "1")
        state.replace(with: try list(["a"], version: "1").items ?? [])
        #expect(feed(#"{"type":"ADDED","object":{"metadata":{"name":"b","resourceVersion":"2","annotations":{"x":"y"}}}}"#, &cursor, &state) == nil)
        #expect(state.namespaces["b"]?.annotations == ["x": "y"])
        #expect(feed(#"{"type":"MODIFIED","object":{"metadata":{"name":"b","resourceVersion":"3"}}}"#, &cursor, &state) == nil)
        #expect(state.namespaces["b"]?.annotations == [:])
        #expect(feed(#"{"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"4"}}}"#, &cursor, &state) == nil)
        #expect(state.namespaces["a"] == nil)
        #expect(cursor.resourceVersion == "4")
        #expect(feed(#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}"#, &cursor, &state) == nil)
        #expect(cursor.resourceVersion == "9")
        #expect(feed("   ", &cursor, &state) == nil)
    }

    @Test("410 Gone, unknown event types, undecodable objects and garbage ask for a relist")
    func relist() {
        var state = NamespaceWatchState()
        var cursor = WatchCursor(resourceVersion: "1")
        let gone = feed(#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}"#, &cursor, &state)
        #expect(gone?.contains("410") == true)
        #expect(feed(#"{"type":"SURPRISE","object":{}}"#, &cursor, &state) != nil)
        #expect(feed("{not json", &cursor, &state) != nil)
        #expect(feed(#"{"type":"ADDED","object":{"metadata":"not an object"}}"#, &cursor, &state) != nil)
        #expect(cursor.resourceVersion == "1", "a refused line does not move the resume point")
    }

    @Test("lines are reassembled across chunks and over-long lines are refused")
    func splitter() throws {
        var splitter = LineSplitter(maximumLineLength: 16)
        #expect(try splitter.append(Array("ab".utf8)) == [])
        #expect(try splitter.append(Array("c\nde\nf".utf8)) == [Array("abc".utf8), Array("de".utf8)])
        #expect(try splitter.append(Array("\n".utf8)) == [Array("f".utf8)])
        #expect(throws: LineSplitter.LineTooLong.self) { try splitter.append(Array(repeating: UInt8(ascii: "x"), count: 17)) }
    }

    @Test("resource versions and continue tokens are percent-encoded")
    func percentEncoding() {
        #expect(percentEncoded("abc-123_.~") == "abc-123_.~")
        #expect(percentEncoded("a b/c=&") == "a%20b%2Fc%3D%26")
        #expect(percentEncoded("\u{1}") == "%01")
    }
}

@Suite("Namespace files and configuration files")
struct NamespaceFileTests {
    func temporaryFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.path + "/needle-test-\(UInt64.random(in: 0...UInt64.max)).yaml"
        try Data(text.utf8).write(to: URL(filePath: path))
        return path
    }

    @Test("kubectl's YAML list, a JSON NamespaceList and multi-document YAML all load")
    func formats() async throws {
        let yaml = try temporaryFile("""
            apiVersion: v1
            kind: List
            items:
            - kind: Namespace
              metadata: {name: a, annotations: {needle.dev/inject: enabled}}
            """)
        let json = try temporaryFile(#"{"kind":"NamespaceList","items":[{"kind":"Namespace","metadata":{"name":"b"}}]}"#)
        let documents = try temporaryFile("kind: Namespace\nmetadata: {name: c}\n---\nkind: Namespace\nmetadata: {name: d}\n")
        defer { for path in [yaml, json, documents] { try? FileManager.default.removeItem(atPath: path) } }
        #expect(try await NamespaceFile(path: yaml).namespace(named: "a").annotations == ["needle.dev/inject": "enabled"])
        #expect(try await NamespaceFile(path: json).namespace(named: "b").name == "b")
        #expect(try NamespaceFile(path: documents).namespaces.keys.sorted() == ["c", "d"])
        await #expect(throws: NamespaceNotFound.self) { try await NamespaceFile(path: yaml).namespace(named: "zzz") }
    }

    @Test("a file of the wrong kind is refused with its path")
    func wrongKind() throws {
        let path = try temporaryFile("kind: Pod\nmetadata: {name: x}\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try NamespaceFile(path: path)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains(path))
            #expect("\(error)".contains("Pod"))
        }
    }

    @Test("a configuration file overrides defaults; bad keys are all reported")
    func configuration() throws {
        let good = try temporaryFile("proxyLogLevel: debug\nnativeSidecar: false\nproxyCPULimit: 500m\nproxyMemoryLimit: ~\n")
        let bad = try temporaryFile("proxyLogLevel: loud\nnoSuchKey: 1\n")
        defer { for path in [good, bad] { try? FileManager.default.removeItem(atPath: path) } }
        let configuration = try InjectorConfiguration.load(path: good)
        #expect(configuration.proxyLogLevel == .debug)
        #expect(configuration.nativeSidecar == false)
        #expect(configuration.proxyCPULimit?.text == "500m")
        #expect(configuration.proxyMemoryLimit == nil)
        do {
            _ = try InjectorConfiguration.load(path: bad)
            Issue.record("expected an error")
        } catch let error as ConfigurationError {
            #expect(error.problems.count == 2)
        }
    }

    @Test("trust anchors turn identity on: the bundle is read relative to the configuration and checked")
    func trustAnchors() throws {
        let anchors = FixtureReviewTests.fixtures.appending(path: "configs/trust-anchors.pem").path
        let absolute = try temporaryFile("trustAnchorsFile: \(anchors)\ncontrolPlaneNamespace: mesh\nclusterDomain: example.org\n")
        let notPEM = try temporaryFile("hello\n")
        let pointsAtGarbage = try temporaryFile("trustAnchorsFile: \(notPEM)\n")
        let missing = try temporaryFile("trustAnchorsFile: /nonexistent/anchors.pem\n")
        defer { for path in [absolute, notPEM, pointsAtGarbage, missing] { try? FileManager.default.removeItem(atPath: path) } }

        let identity = try #require(try InjectorConfiguration.load(path: absolute).identity)
        #expect(identity.service.address.description == "needle-identity.mesh.svc.example.org.:8080")
        #expect(identity.service.tlsName.description == "needle-controller.mesh.serviceaccount.identity.needle.example.org")
        #expect(identity.trustDomain.description == "example.org")
        #expect(identity.trustAnchorsPEM == (try String(contentsOfFile: anchors, encoding: .utf8)))
        let relative = try InjectorConfiguration.load(path: FixtureReviewTests.fixtures.appending(path: "configs/identity.yaml").path)
        #expect(relative.identity?.trustAnchorsPEM == identity.trustAnchorsPEM)
        #expect(try InjectorConfiguration.load(path: nil).identity == nil)
        for path in [pointsAtGarbage, missing] {
            #expect(throws: ConfigurationError.self) { try InjectorConfiguration.load(path: path) }
        }
        var configuration = InjectorConfiguration()
        #expect(throws: ConfigurationError.self) { try configuration.apply(["clusterDomain": "Cluster.Local"]) }
        #expect(throws: ConfigurationError.self) { try configuration.apply(["controlPlaneNamespace": "a.b"]) }
    }
}

@Suite("Admission reviewer errors")
struct AdmissionReviewerErrorTests {
    struct Unreachable: NamespaceDirectory {
        func namespace(named name: String) async throws -> NamespaceMetadata {
            throw KubernetesAPIError(description: "connection refused")
        }
    }

    let reviewer = AdmissionReviewer(injector: Injector(), namespaces: NoNamespaces())

    func review(_ json: String, with reviewer: AdmissionReviewer? = nil) async -> ReviewError? {
        do {
            _ = try await (reviewer ?? self.reviewer).review(Data(json.utf8))
            return nil
        } catch {
            return error
        }
    }

    @Test("bad bodies are 400 and say what is wrong", arguments: [
        ("", "not an AdmissionReview"),
        ("{", "not an AdmissionReview"),
        (#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"u"}}"#, "admission.k8s.io/v2"),
        (#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "no request"),
        (#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}"#, "no uid"),
    ])
    func badRequests(body: String, mention: String) async {
        let error = await review(body)
        #expect(error?.httpStatus == 400)
        #expect(error?.description.contains(mention) == true, "\(String(describing: error))")
    }

    @Test("an unreachable namespace source is 500 when the decision needs it, and not consulted otherwise")
    func namespaceUnavailable() async {
        let reviewer = AdmissionReviewer(injector: Injector(), namespaces: Unreachable())
        let pod = #"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"ns","object":{"metadata":{"name":"p"%@},"spec":{"containers":[{"name":"a","image":"x"}]}}}}"#
        let needsNamespace = pod.replacing("%@", with: "")
        let decidedByPod = pod.replacing("%@", with: #","annotations":{"needle.dev/inject":"disabled"}"#)
        let error = await review(needsNamespace, with: reviewer)
        #expect(error?.httpStatus == 500)
        #expect(error?.description.contains("ns") == true)
        #expect(await review(decidedByPod, with: reviewer) == nil)
    }
}

@Suite("Admission review response")
struct AdmissionReviewResponseTests {
    @Test("the written response is the JSON it means, with and without a patch, warnings and odd characters")
    func encoded() throws {
        var response = AdmissionReviewResponse(apiVersion: "admission.k8s.io/v1", uid: "a\"b\\c\u{1}")
        response.patch = Array(#"[{"op":"add","path":"/x","value":1}]"#.utf8)
        response.warnings = ["w1", "line\nbreak"]
        response.auditAnnotations = ["decision": "injected", "reason": "pod annotation enabled"]
        let parsed = try JSONParser.parse(response.encoded())
        let patch = Data(#"[{"op":"add","path":"/x","value":1}]"#.utf8).base64EncodedString()
        #expect(parsed == ["apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": [
            "uid": "a\"b\\c\u{1}", "allowed": true, "patch": .string(patch), "patchType": "JSONPatch",
            "warnings": ["w1", "line\nbreak"], "auditAnnotations": ["decision": "injected", "reason": "pod annotation enabled"],
        ]])
        let bare = try JSONParser.parse(AdmissionReviewResponse(apiVersion: "admission.k8s.io/v1beta1", uid: "u").encoded())
        #expect(bare == ["apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": ["uid": "u", "allowed": true]])
    }
}
