import Foundation
import NeedleContract
import NeedleDiscovery
import Testing

@Suite("Kubernetes objects to discovery records")
struct KubernetesObjectsTests {
    func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(json.utf8))
    }

    @Test("a Service: cluster IPs (dual-stack), TCP ports only, headless keeps none")
    func service() throws {
        let record = try decode(ServiceObject.self, """
            {"metadata":{"name":"web","namespace":"shop","resourceVersion":"7"},
             "spec":{"clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10","fd00::10"],
                     "ports":[{"name":"http","port":80,"targetPort":"http","protocol":"TCP"},{"name":"dns","port":53,"protocol":"UDP"},{"port":8443}]}}
            """).record
        #expect(record?.key == ObjectKey(namespace: "shop", name: "web"))
        #expect(record?.clusterIPs.map(\.description) == ["10.96.0.10", "fd00::10"])
        #expect(record?.ports == [.init(name: "http", port: 80), .init(name: "", port: 8443)])
        let headless = try decode(ServiceObject.self, #"{"metadata":{"name":"db","namespace":"shop"},"spec":{"clusterIP":"None","ports":[{"port":5432}]}}"#)
        #expect(headless.record?.clusterIPs == [])
        #expect(try decode(ServiceObject.self, #"{"metadata":{"name":"x"}}"#).record == nil, "no namespace")
    }

    @Test("an EndpointSlice: its Service, ports, endpoints with readiness (unknown is ready) and pod")
    func endpointSlice() throws {
        let record = try decode(EndpointSliceObject.self, """
            {"metadata":{"name":"web-abc","namespace":"shop","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4",
             "ports":[{"name":"http","port":8080,"protocol":"TCP"}],
             "endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true},"targetRef":{"kind":"Pod","name":"web-1"}},
                          {"addresses":["10.0.0.2"],"conditions":{"ready":false},"targetRef":{"kind":"Pod","name":"web-2"}},
                          {"addresses":["10.0.0.3"],"conditions":{}},
                          {"addresses":["not-an-ip"]}]}
            """).record
        #expect(record?.service == "web" && record?.ports == [.init(name: "http", port: 8080)])
        #expect(record?.endpoints.map(\.ready) == [true, false, true])
        #expect(record?.endpoints.map(\.pod) == ["web-1", "web-2", nil])
        let orphan = try decode(EndpointSliceObject.self, #"{"metadata":{"name":"x","namespace":"shop"},"endpoints":[]}"#)
        #expect(orphan.record == nil, "a slice without its Service label")
    }

    @Test("a pod: meshed when it has the needle-proxy container (or native sidecar), its opaque ports, finished pods keep no IP")
    func pod() throws {
        let meshed = try decode(PodObject.self, """
            {"metadata":{"name":"web-1","namespace":"shop"},
             "spec":{"serviceAccountName":"web","containers":[{"name":"app"},{"name":"needle-proxy","env":[{"name":"NEEDLE_PROXY_OPAQUE_PORTS","value":"5432,6379"}]}]},
             "status":{"phase":"Running","podIP":"10.0.0.1","podIPs":[{"ip":"10.0.0.1"},{"ip":"fd00::1"}]}}
            """).record
        #expect(meshed?.meshed == true && meshed?.serviceAccount == "web")
        #expect(meshed?.ips.map(\.description) == ["10.0.0.1", "fd00::1"])
        #expect(meshed?.opaquePorts.contains(6379) == true && meshed?.opaquePorts.contains(80) == false)
        let sidecar = try decode(PodObject.self, """
            {"metadata":{"name":"web-2","namespace":"shop"},"spec":{"initContainers":[{"name":"needle-proxy"}],"containers":[{"name":"app"}]},
             "status":{"podIP":"10.0.0.2"}}
            """).record
        #expect(sidecar?.meshed == true && sidecar?.serviceAccount == "default")
        #expect(sidecar?.opaquePorts == ProxyEnvironment().opaquePorts, "the proxy's default when the injector wrote none")
        let plain = try decode(PodObject.self, #"{"metadata":{"name":"p","namespace":"shop"},"spec":{"containers":[{"name":"app"}]},"status":{"podIP":"10.0.0.9"}}"#)
        #expect(plain.record?.meshed == false)
        let done = try decode(PodObject.self, #"{"metadata":{"name":"job","namespace":"shop"},"status":{"phase":"Succeeded","podIP":"10.0.0.5"}}"#)
        #expect(done.record?.ips == [])
        let host = try decode(PodObject.self, #"{"metadata":{"name":"node-agent","namespace":"kube-system"},"spec":{"hostNetwork":true},"status":{"podIP":"192.168.1.10"}}"#)
        #expect(host.record?.ips == [], "a host-network pod's IP is the node's")
    }
}
