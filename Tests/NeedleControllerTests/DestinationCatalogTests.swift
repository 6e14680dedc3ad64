import Logging
import NeedleContract
@testable import NeedleController
import NeedleDiscovery
import NeedleHTTPService
import Testing

@Suite("Destination catalog and service")
struct DestinationCatalogTests {
    func ip(_ text: String) throws -> IPAddress { try IPAddress(parsing: text) }
    func address(_ text: String) throws -> ListenAddress { try ListenAddress(parsing: text) }
    let web = ObjectKey(namespace: "shop", name: "web")

    func slice(_ ips: [String]) throws -> EndpointSliceRecord {
        EndpointSliceRecord(key: ObjectKey(namespace: "shop", name: "web-abc"), service: "web", ports: [.init(name: "", port: 8080)],
                            endpoints: try ips.map { .init(addresses: [try ip($0)], ready: true, pod: nil) })
    }

    func catalog() throws -> DestinationCatalog {
        DestinationCatalog(trustDomain: try DNSName(parsing: "cluster.local"))
    }

    func listAll(_ catalog: DestinationCatalog, endpoints: [String]) throws {
        catalog.replace(.services, with: .allServices([ServiceRecord(key: web, clusterIPs: [try ip("10.96.0.10")], ports: [.init(name: "", port: 80)])]))
        catalog.replace(.endpointSlices, with: .allEndpointSlices([try slice(endpoints)]))
        catalog.replace(.pods, with: .allPods([]))
    }

    func text(_ batch: [UInt8]?) -> String { batch.map { String(decoding: $0, as: UTF8.self) } ?? "(ended)" }

    @Test("a lookup is answered once everything is listed, then told each change; ending it ends the lookup")
    func lookup() async throws {
        let catalog = try catalog()
        var answers = catalog.lookup(try address("10.96.0.10:80")).makeAsyncIterator()
        #expect(!catalog.isReady && catalog.openLookups == 1)
        try listAll(catalog, endpoints: ["10.0.0.1", "10.0.0.2"])
        #expect(catalog.isReady)
        #expect(text(await answers.next()) == "reset\nadd 10.0.0.1:8080 opaque=false namespace=shop service=web\nadd 10.0.0.2:8080 opaque=false namespace=shop service=web\nsync\n")
        catalog.apply(.endpointSlice(try slice(["10.0.0.2"])))
        #expect(text(await answers.next()) == "remove 10.0.0.1:8080\nsync\n")
        catalog.apply(.serviceDeleted(web))
        #expect(text(await answers.next()) == "reset\nnot-known\nsync\n")
        var unknown = catalog.lookup(try address("10.9.9.9:80")).makeAsyncIterator()
        #expect(text(await unknown.next()) == "reset\nnot-known\nsync\n")
    }

    @Test("lookups of one address share its answer; a lookup opened later starts from a reset; ended lookups are forgotten")
    func sharedAnswers() async throws {
        let catalog = try catalog()
        try listAll(catalog, endpoints: ["10.0.0.1"])
        var first = catalog.lookup(try address("10.96.0.10:80")).makeAsyncIterator()
        var second = catalog.lookup(try address("10.96.0.10:80")).makeAsyncIterator()
        let initial = "reset\nadd 10.0.0.1:8080 opaque=false namespace=shop service=web\nsync\n"
        let (firstInitial, secondInitial) = (text(await first.next()), text(await second.next()))
        #expect(firstInitial == initial && secondInitial == initial)
        catalog.apply(.endpointSlice(try slice(["10.0.0.1", "10.0.0.2"])))
        let delta = "add 10.0.0.2:8080 opaque=false namespace=shop service=web\nsync\n"
        let (firstDelta, secondDelta) = (text(await first.next()), text(await second.next()))
        #expect(firstDelta == delta && secondDelta == delta)
        var late = catalog.lookup(try address("10.96.0.10:80")).makeAsyncIterator()
        #expect(text(await late.next()) == "reset\nadd 10.0.0.1:8080 opaque=false namespace=shop service=web\nadd 10.0.0.2:8080 opaque=false namespace=shop service=web\nsync\n")
        catalog.apply(.pod(PodRecord(key: ObjectKey(namespace: "other", name: "x"), ips: [try ip("10.9.0.1")], serviceAccount: "x",
                                     meshed: false, opaquePorts: [])))
        catalog.apply(.endpointSlice(try slice(["10.0.0.2"])))
        #expect(text(await late.next()) == "remove 10.0.0.1:8080\nsync\n", "an unrelated change sends nothing")
        catalog.finishAll()
        // The first lookup still gets the batch it had not read (the remove), then its end.
        var unread = 0
        while await first.next() != nil { unread += 1 }
        #expect(unread == 1 && catalog.openLookups == 0)
    }

    @Test("a pod that becomes meshed changes the answer of the Service whose slice names it; an equal update sends nothing")
    func podChangeReachesService() async throws {
        let catalog = try catalog()
        let named = EndpointSliceRecord(key: ObjectKey(namespace: "shop", name: "web-abc"), service: "web", ports: [.init(name: "", port: 8080)],
                                        endpoints: [.init(addresses: [try ip("10.0.0.1")], ready: true, pod: "web-1")])
        catalog.replace(.services, with: .allServices([ServiceRecord(key: web, clusterIPs: [try ip("10.96.0.10")], ports: [.init(name: "", port: 80)])]))
        catalog.replace(.endpointSlices, with: .allEndpointSlices([named]))
        let plain = PodRecord(key: ObjectKey(namespace: "shop", name: "web-1"), ips: [try ip("10.0.0.1")], serviceAccount: "web",
                              meshed: false, opaquePorts: [])
        catalog.replace(.pods, with: .allPods([plain]))
        var answers = catalog.lookup(try address("10.96.0.10:80")).makeAsyncIterator()
        #expect(text(await answers.next()) == "reset\nadd 10.0.0.1:8080 opaque=false namespace=shop service=web pod=web-1\nsync\n")
        catalog.apply(.pod(plain))
        catalog.apply(.endpointSlice(named))
        var meshed = plain
        meshed.meshed = true
        catalog.apply(.pod(meshed))
        let next = text(await answers.next())
        #expect(next.contains("identity=web.shop.serviceaccount.identity.needle.cluster.local"), "\(next)")
        #expect(!next.hasPrefix("reset"), "equal updates before it sent nothing, so this is the next batch: \(next)")
    }

    @Test("a client that stops reading is ended once it is too far behind: memory per lookup stays bounded")
    func slowClient() async throws {
        let catalog = try catalog()
        try listAll(catalog, endpoints: ["10.0.0.1"])
        let stream = catalog.lookup(try address("10.96.0.10:80"))
        for round in 0...(DestinationCatalog.maximumQueuedBatches + 10) {
            catalog.apply(.endpointSlice(try slice(round % 2 == 0 ? ["10.0.0.1", "10.0.0.2"] : ["10.0.0.1"])))
        }
        var received = 0
        for await _ in stream { received += 1 }
        #expect(received == DestinationCatalog.maximumQueuedBatches)
        #expect(catalog.openLookups == 0)
    }

    @Test("the service takes GET with one IP:PORT address and refuses anything else with the reason")
    func service() throws {
        let service = DestinationService(catalog: try catalog(), logger: Logger(label: "test"))
        func head(_ uri: String, method: String = "GET") -> RequestHead {
            RequestHead(method: method, uri: uri, fields: [], keepAlive: true)
        }
        #expect(service.check(head("/v1/destinations?address=10.96.0.10:80")) == nil)
        #expect(service.check(head("/v1/destinations?address=%5Bfd00::10%5D:80")) == nil)
        #expect(DestinationService.address(in: "/v1/destinations?x=1&address=[fd00::10]:443") == .success(try address("[fd00::10]:443")))
        for (uri, status) in [("/v1/destinations", 400), ("/v1/destinations?address=web.shop:80", 400), ("/v1/destinations?address=10.0.0.1", 400),
                              ("/v1/destinations?address=10.0.0.1:80&address=10.0.0.2:80", 400), ("/v1/other?address=10.0.0.1:80", 404)] {
            #expect(service.check(head(uri))?.status == status, "\(uri)")
        }
        #expect(service.check(head("/v1/destinations?address=10.0.0.1:80", method: "POST"))?.status == 405)
    }
}
