import NeedleContract
import Testing

@Suite("Workload identity and control-plane addresses")
struct WorkloadIdentityTests {
    @Test("a workload's SPIFFE ID, TLS name and token user name follow DESIGN §7")
    func names() throws {
        let identity = try WorkloadIdentity(namespace: "emojivoto", serviceAccount: "web", trustDomain: DNSName(parsing: "cluster.local"))
        #expect(identity.spiffeID == "spiffe://cluster.local/ns/emojivoto/sa/web")
        #expect(identity.tlsName == "web.emojivoto.serviceaccount.identity.needle.cluster.local")
        #expect(identity.serviceAccountUsername == "system:serviceaccount:emojivoto:web")
        let controller = try WorkloadIdentity.controller(trustDomain: DNSName(parsing: "example.org"))
        #expect(controller.tlsName == "needle-controller.needle.serviceaccount.identity.needle.example.org")
        #expect(controller.spiffeID == "spiffe://example.org/ns/needle/sa/needle-controller")
    }

    @Test("a TLS name maps back to its identity only in its own trust domain")
    func tlsNames() throws {
        let domain = try DNSName(parsing: "cluster.local")
        for (namespace, account) in [("shop", "web"), ("shop", "web.v2"), ("a", "b")] {
            let identity = try WorkloadIdentity(namespace: namespace, serviceAccount: account, trustDomain: domain)
            #expect(WorkloadIdentity(tlsName: identity.tlsName, trustDomain: domain) == identity)
        }
        for name in ["web.shop.serviceaccount.identity.needle.example.org", "shop.serviceaccount.identity.needle.cluster.local",
                     ".shop.serviceaccount.identity.needle.cluster.local", "web.sh_op.serviceaccount.identity.needle.cluster.local",
                     "web.shop.svc.cluster.local", "xweb.shop.serviceaccount.identity.needle.cluster.localx"] {
            #expect(WorkloadIdentity(tlsName: name, trustDomain: domain) == nil, "\(name)")
        }
    }

    @Test("a TokenReview user name maps back to the identity only when it is a service account's")
    func usernames() throws {
        let domain = try DNSName(parsing: "cluster.local")
        #expect(WorkloadIdentity(serviceAccountUsername: "system:serviceaccount:shop:web", trustDomain: domain)?.tlsName
            == "web.shop.serviceaccount.identity.needle.cluster.local")
        for username in ["system:serviceaccount:shop", "system:serviceaccount:shop:web:x", "system:node:n1", "alice",
                         "system:serviceaccount:Shop:web", "system:serviceaccount::web", "system:serviceaccounts:shop:web"] {
            #expect(WorkloadIdentity(serviceAccountUsername: username, trustDomain: domain) == nil, "\(username)")
        }
    }

    @Test("names that Kubernetes would not accept are refused with the accepted format",
          arguments: [("Shop", "web"), ("shop", "Web"), ("-shop", "web"), ("shop.x", "web"), ("shop", ""),
                      (String(repeating: "a", count: 64), "web"), ("shop", "web..x")])
    func badNames(namespace: String, serviceAccount: String) throws {
        #expect(throws: FormatError.self) {
            try WorkloadIdentity(namespace: namespace, serviceAccount: serviceAccount, trustDomain: DNSName(parsing: "cluster.local"))
        }
    }

    @Test("DNS names: lowercase labels of 1 to 63 characters, 253 in all")
    func dnsNames() {
        for good in ["cluster.local", "a", "a-b.c1", String(repeating: "a", count: 63)] { #expect(DNSName.isValid(good), "\(good)") }
        for bad in ["", ".", "a.", ".a", "a..b", "A.b", "a_b", "-a", "a-", String(repeating: "a", count: 64),
                    Array(repeating: String(repeating: "a", count: 50), count: 6).joined(separator: ".")] {
            #expect(!DNSName.isValid(bad), "\(bad)")
        }
    }

    @Test("service addresses: DNS names (absolute or not) and IP addresses with a port")
    func serviceAddresses() throws {
        #expect(try ServiceAddress(parsing: "needle-identity.needle.svc.cluster.local.:8080").host == .name("needle-identity.needle.svc.cluster.local."))
        #expect(try ServiceAddress(parsing: "needle-identity:8080").description == "needle-identity:8080")
        #expect(try ServiceAddress(parsing: "10.96.0.20:8080").host == .ip(.v4(0x0A60_0014)))
        #expect(try ServiceAddress(parsing: "[fd00::20]:8086").description == "[fd00::20]:8086")
        for bad in ["needle-identity", "needle-identity:0", "needle-identity:65536", ":8080", "Needle:80", "a..b:80", "needle identity:80"] {
            #expect(throws: FormatError.self, "\(bad)") { try ServiceAddress(parsing: bad) }
        }
    }

    @Test("certify results: their labels, statuses and refusal lines")
    func certifyResults() {
        #expect(CertifyResult.allCases.map(\.rawValue) == ["ok", "token_refused", "bad_csr", "wrong_identity", "error"])
        #expect(CertifyResult.tokenRefused.status == 401)
        #expect(CertifyResult.wrongIdentity.refusal("the CSR names shop/db") == "wrong_identity: the CSR names shop/db\n")
        #expect(CertifyResult(refusalBody: "bad_csr: not PEM\n") == .badCSR)
        #expect(CertifyResult(refusalBody: "<html>") == nil)
    }
}
