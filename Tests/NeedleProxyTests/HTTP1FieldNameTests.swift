@testable import NeedleProxy
import Testing

/// The byte classes and the quick tests on field names that the head parser leans on.
@Suite("HTTP/1.1 field names")
struct HTTP1FieldNameTests {
    @Test("a token byte is exactly one of RFC 9110's tchar, for every byte value")
    func tokenBytes() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        let wrong = (0...255).map(UInt8.init).filter { HTTP1Syntax.isTokenByte($0) != tchar.contains($0) }
        #expect(wrong.isEmpty, "\(wrong)")
    }

    @Test("every hop-by-hop name is recognised, in any case, and passes the length test")
    func hopByHopNames() {
        for field in HTTP1Syntax.HopByHop.allCases {
            let name = field.name.description
            for spelling in [name, name.uppercased()] {
                let found = Array(spelling.utf8).withUnsafeBytes { HTTP1Syntax.hopByHop($0) }
                #expect(found == field, "\(spelling)")
            }
            #expect(HTTP1Syntax.maySpecialFieldBeNamed(length: name.utf8.count), "\(name)")
        }
    }

    @Test("the framing fields, Upgrade and the client identity pass the length test")
    func notedNames() {
        for name in ["content-length", "transfer-encoding", "upgrade", ClientIdentityField.name] {
            #expect(HTTP1Syntax.maySpecialFieldBeNamed(length: name.utf8.count), "\(name)")
        }
    }

    @Test("names of other lengths are skipped, and so are names too long for the mask")
    func skippedLengths() {
        for length in [0, 1, 3, 4, 5, 6, 12, 13, 15, 20, 31, 32, 33, 64, 1000] {
            #expect(!HTTP1Syntax.maySpecialFieldBeNamed(length: length), "\(length)")
        }
    }
}
