import NeedleContract
import NeedleDiscovery
import Testing

@Suite("Destination index and diff")
struct DestinationIndexTests {
    func ip(_ text: String) throws -> IPAddress { try IPAddress(parsing: text) }
    func address(_ text: String) throws -> ListenAddress { try ListenAddress(parsing: text) }
    func key(_ name: String, _ namespace: String = "shop") -> ObjectKey { ObjectKey(namespace: namespace, name: name) }

    /// Service web (10.96.0.10, port 80 named "http" to target port 8080), one slice with two meshed pods, one
    /// unmeshed pod and one not-ready pod.
    func cluster() throws -> DestinationIndex {
        var index = DestinationIndex(trustDomain: try DNSName(parsing: "cluster.local"))
        index.apply(.service(ServiceRecord(key: key("web"), clusterIPs: [try ip("10.96.0.10")], ports: [.init(name: "http", port: 80)])))
        index.apply(.endpointSlice(EndpointSliceRecord(
            key: key("web-abc"), service: "web", ports: [.init(name: "http", port: 8080)],
            endpoints: [
                .init(addresses: [try ip("10.0.0.1")], ready: true, pod: "web-1"),
                .init(addresses: [try ip("10.0.0.2")], ready: true, pod: "web-2"),
                .init(addresses: [try ip("10.0.0.3")], ready: true, pod: "legacy-1"),
                .init(addresses: [try ip("10.0.0.4")], ready: false, pod: "web-4"),
            ])))
        for (name, podIP, meshed) in [("web-1", "10.0.0.1", true), ("web-2", "10.0.0.2", true), ("legacy-1", "10.0.0.3", false),
                                      ("web-4", "10.0.0.4", true)] {
            index.apply(.pod(PodRecord(key: key(name), ips: [try ip(podIP)], serviceAccount: name.hasPrefix("web") ? "web" : "default",
                                       meshed: meshed, opaquePorts: try PortSet(parsing: "5432"))))
        }
        return index
    }

    @Test("a ClusterIP and port: the ready endpoints on their target port, meshed ones with their TLS name")
    func service() throws {
        let index = try cluster()
        guard case .endpoints(let endpoints) = index.answer(for: try address("10.96.0.10:80")) else {
            Issue.record("no endpoints")
            return
        }
        #expect(endpoints.map(\.address.description) == ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"])
        #expect(endpoints[0].identity == "web.shop.serviceaccount.identity.needle.cluster.local")
        #expect(endpoints[0].service == "web" && endpoints[0].pod == "web-1" && endpoints[0].namespace == "shop" && !endpoints[0].opaque)
        #expect(endpoints[2].identity == nil, "an unmeshed pod is reached in plaintext")
        #expect(index.answer(for: try address("10.96.0.10:81")) == .notKnown, "a port the Service does not have")
        #expect(index.answer(for: try address("10.1.2.3:80")) == .notKnown)
    }

    @Test("a pod IP: that pod, with its identity and opaque ports if meshed")
    func pod() throws {
        let index = try cluster()
        #expect(index.answer(for: try address("10.0.0.2:5432")) == .endpoints([
            DestinationEndpoint(address: try address("10.0.0.2:5432"), identity: "web.shop.serviceaccount.identity.needle.cluster.local",
                                opaque: true, namespace: "shop", pod: "web-2"),
        ]))
        #expect(index.answer(for: try address("10.0.0.3:9000")) == .endpoints([
            DestinationEndpoint(address: try address("10.0.0.3:9000"), namespace: "shop", pod: "legacy-1"),
        ]))
    }

    @Test("changes: an endpoint leaves, a pod is deleted, the Service goes, an IP moves to a new pod")
    func changes() throws {
        var index = try cluster()
        index.apply(.endpointSlice(EndpointSliceRecord(key: key("web-abc"), service: "web", ports: [.init(name: "http", port: 8080)],
                                                       endpoints: [.init(addresses: [try ip("10.0.0.2")], ready: true, pod: "web-2")])))
        guard case .endpoints(let endpoints) = index.answer(for: try address("10.96.0.10:80")) else { return }
        #expect(endpoints.map(\.address.description) == ["10.0.0.2:8080"])
        index.apply(.podDeleted(key("web-1")))
        #expect(index.answer(for: try address("10.0.0.1:8080")) == .notKnown)
        index.apply(.pod(PodRecord(key: key("web-9"), ips: [try ip("10.0.0.1")], serviceAccount: "web", meshed: false, opaquePorts: [])))
        index.apply(.podDeleted(key("web-1")))
        #expect(index.answer(for: try address("10.0.0.1:8080")) != .notKnown, "deleting an old pod does not forget the IP's new owner")
        index.apply(.serviceDeleted(key("web")))
        #expect(index.answer(for: try address("10.96.0.10:80")) == .notKnown)
        index.apply(.endpointSliceDeleted(key("web-abc")))
        #expect(index.counts.services == 0 && index.counts.endpointSlices == 0)
    }

    @Test("what a change touches: nothing for an equal record; the Service for its slices and for a pod one names; the IPs that moved")
    func touched() throws {
        var index = try cluster()
        let clusterIP = try address("10.96.0.10:80")
        let podAddress = try address("10.0.0.2:8080")
        let other = try address("10.96.0.99:80")
        // Watch events that change nothing we keep (status, resource version) touch nothing.
        let sameSlice = EndpointSliceRecord(key: key("web-abc"), service: "web", ports: [.init(name: "http", port: 8080)],
                                            endpoints: [.init(addresses: [try ip("10.0.0.1")], ready: true, pod: "web-1"),
                                                        .init(addresses: [try ip("10.0.0.2")], ready: true, pod: "web-2"),
                                                        .init(addresses: [try ip("10.0.0.3")], ready: true, pod: "legacy-1"),
                                                        .init(addresses: [try ip("10.0.0.4")], ready: false, pod: "web-4")])
        #expect(index.apply(.endpointSlice(sameSlice)).isEmpty)
        let web2 = PodRecord(key: key("web-2"), ips: [try ip("10.0.0.2")], serviceAccount: "web", meshed: true,
                             opaquePorts: try PortSet(parsing: "5432"))
        #expect(index.apply(.pod(web2)).isEmpty)
        #expect(index.apply(.podDeleted(key("nobody"))).isEmpty)

        // A slice change touches its Service's answers, not a pod IP's or another Service's.
        var fewer = sameSlice
        fewer.endpoints.removeLast()
        let sliceChange = index.apply(.endpointSlice(fewer))
        #expect(index.mayHaveChanged(clusterIP, by: sliceChange))
        #expect(!index.mayHaveChanged(podAddress, by: sliceChange) && !index.mayHaveChanged(other, by: sliceChange))

        // A pod's identity change touches its own IP and the Services whose slices name it.
        var renamed = web2
        renamed.serviceAccount = "web-v2"
        let podChange = index.apply(.pod(renamed))
        #expect(index.mayHaveChanged(podAddress, by: podChange) && index.mayHaveChanged(clusterIP, by: podChange))
        let otherPod = try address("10.0.0.1:8080")
        #expect(!index.mayHaveChanged(otherPod, by: podChange))
        // A pod no slice names touches only its IP.
        let loner = index.apply(.pod(PodRecord(key: key("job-1"), ips: [try ip("10.0.9.9")], serviceAccount: "default", meshed: false,
                                               opaquePorts: [])))
        let lonerAddress = try address("10.0.9.9:80")
        #expect(!index.mayHaveChanged(clusterIP, by: loner) && index.mayHaveChanged(lonerAddress, by: loner))

        // A Service moving to another cluster IP touches the old and the new one; a relist touches everything.
        let moved = index.apply(.service(ServiceRecord(key: key("web"), clusterIPs: [try ip("10.96.0.11")], ports: [.init(name: "http", port: 80)])))
        let newClusterIP = try address("10.96.0.11:80")
        #expect(index.mayHaveChanged(clusterIP, by: moved) && index.mayHaveChanged(newClusterIP, by: moved))
        let relist = index.apply(.allPods([]))
        #expect(index.mayHaveChanged(other, by: relist))
        // Once the slice is gone, a pod it named no longer touches the Service.
        index.apply(.endpointSliceDeleted(key("web-abc")))
        renamed.serviceAccount = "web-v3"
        #expect(index.apply(.pod(renamed)).services.isEmpty)
    }

    @Test("two pods claiming one IP (a terminating pod and its replacement): the newest claim answers, whatever the old one does")
    func sharedIP() throws {
        var index = try cluster()
        let old = PodRecord(key: key("web-1"), ips: [try ip("10.0.0.1")], serviceAccount: "web", meshed: true, opaquePorts: [])
        let new = PodRecord(key: key("db-1"), ips: [try ip("10.0.0.1")], serviceAccount: "db", meshed: true, opaquePorts: [])
        index.apply(.pod(new))
        index.apply(.pod(old))  // a late update of the terminating pod
        guard case .endpoints(let endpoints) = index.answer(for: try address("10.0.0.1:5432")) else { return }
        #expect(endpoints.first?.pod == "db-1", "an update does not make the old pod the newest claimant again")
        index.apply(.podDeleted(key("web-1")))
        guard case .endpoints(let after) = index.answer(for: try address("10.0.0.1:5432")) else {
            Issue.record("deleting the old pod forgot the new one")
            return
        }
        #expect(after.first?.pod == "db-1")
    }

    @Test("a relist replaces every record of its kind and nothing else")
    func relist() throws {
        var index = try cluster()
        index.apply(.allPods([PodRecord(key: key("web-2"), ips: [try ip("10.0.0.2")], serviceAccount: "web", meshed: false, opaquePorts: [])]))
        #expect(index.counts.pods == 1)
        #expect(index.answer(for: try address("10.0.0.1:8080")) == .notKnown, "a pod missing from the new list is gone")
        guard case .endpoints(let endpoints) = index.answer(for: try address("10.96.0.10:80")) else { return }
        #expect(endpoints.count == 3 && endpoints.allSatisfy { $0.identity == nil }, "slices stay; no pod is meshed any more")
        index.apply(.allServices([]))
        #expect(index.answer(for: try address("10.96.0.10:80")) == .notKnown)
        #expect(index.counts.endpointSlices == 1)
    }

    @Test("diff: a first answer or a switch is a reset; endpoint changes are adds and removes; no change is nothing")
    func diff() throws {
        let a = DestinationEndpoint(address: try address("10.0.0.1:80")), b = DestinationEndpoint(address: try address("10.0.0.2:80"))
        var bMeshed = b
        bMeshed.identity = "b.shop.serviceaccount.identity.needle.cluster.local"
        #expect(DestinationDiff.events(from: nil, to: .endpoints([a, b])) == [.reset, .add(a), .add(b), .sync])
        #expect(DestinationDiff.events(from: nil, to: .notKnown) == [.reset, .notKnown, .sync])
        #expect(DestinationDiff.events(from: .endpoints([a, b]), to: .endpoints([a, b])) == [])
        #expect(DestinationDiff.events(from: .endpoints([a, b]), to: .endpoints([bMeshed])) == [.add(bMeshed), .remove(a.address), .sync])
        #expect(DestinationDiff.events(from: .endpoints([a]), to: .notKnown) == [.reset, .notKnown, .sync])
        #expect(DestinationDiff.events(from: .notKnown, to: .notKnown) == [])
        #expect(DestinationDiff.events(from: .notKnown, to: .endpoints([])) == [.reset, .sync])
    }
}
