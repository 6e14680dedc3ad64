import NIOHTTP1
import Testing
@testable import NeedleServerKit

@Suite("Admin routes")
struct AdminRouteTests {
    func route(_ method: HTTPMethod, _ uri: String, loopback: Bool = true, ready: Bool = true, draining: Bool = false,
               shutdown: Bool = true) -> AdminRoute.Reply {
        AdminRoute.route(method: method, uri: uri, fromLoopback: loopback, ready: ready, draining: draining,
                         shutdownEnabled: shutdown, metrics: { Array("m 1\n".utf8) })
    }

    @Test("ready, live, metrics")
    func basics() {
        #expect(route(.GET, "/ready").status == .ok)
        #expect(route(.GET, "/ready", ready: false).status == .serviceUnavailable)
        #expect(route(.GET, "/ready", draining: true).status == .serviceUnavailable)
        #expect(route(.GET, "/live", draining: true).status == .ok)
        #expect(route(.GET, "/metrics?x=1").body == Array("m 1\n".utf8))
        #expect(route(.GET, "/nope").status == .notFound)
        #expect(route(.DELETE, "/ready").status == .methodNotAllowed)
    }

    @Test("shutdown only when enabled, only by POST, only from loopback")
    func shutdown() {
        #expect(route(.POST, "/shutdown").triggersShutdown)
        #expect(route(.POST, "/shutdown", shutdown: false).status == .notFound)
        #expect(route(.POST, "/shutdown", loopback: false).status == .forbidden)
        #expect(!route(.POST, "/shutdown", loopback: false).triggersShutdown)
        #expect(route(.GET, "/shutdown").status == .methodNotAllowed)
    }
}
