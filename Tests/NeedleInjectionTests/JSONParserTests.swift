import NeedleInjection
import Testing

@Suite("JSON parser and writer")
struct JSONParserTests {
    func parse(_ text: String) throws(JSONParser.Failure) -> JSONValue {
        try JSONParser.parse(Array(text.utf8))
    }

    @Test("values of every kind, with escapes and surrogate pairs")
    func values() throws {
        let value = try parse(#" {"a": [1, -2, 3.5, 1e2, true, false, null], "s": "t\"\\\/\b\f\n\r\tA\u00e9\ud83d\ude00", "e": {}} "#)
        #expect(value == ["a": [1, -2, .double(3.5), .double(100), true, false, nil], "s": "t\"\\/\u{8}\u{c}\n\r\tA\u{e9}\u{1F600}", "e": [:]])
        #expect(try parse("9223372036854775807") == .integer(Int64.max))
        #expect(try parse("99999999999999999999999") == .double(1e23), "past Int64 a number is a Double, as in Go")
        #expect(try parse("\"héllo\"") == "héllo")
    }

    @Test("a repeated key keeps its last value, as the API server's decoder does")
    func duplicateKeys() throws {
        #expect(try parse(#"{"inject": "disabled", "inject": "enabled"}"#) == ["inject": "enabled"])
        #expect(try parse(#"{"a": null, "a": [1]}"#) == ["a": [1]])
    }

    @Test("broken documents are refused with the byte offset", arguments: [
        ("", "unexpected end"), ("{", "expected a string key"), ("[1,]", "unexpected character"), ("[1 2]", "expected ','"),
        ("{\"a\" 1}", "expected ':'"), ("tru", "unexpected end"), ("nul!", "invalid literal"), ("01", "unexpected data"),
        ("1.", "digit after '.'"), ("1e", "exponent"), ("-", "expected a digit"), ("1e400", "out of range"),
        ("-1e400", "out of range"), ("\"a\u{01}\"", "control character"), ("\"\\x\"", "invalid escape"),
        ("\"\\ud800\"", "lone UTF-16 surrogate"), ("\"\\udc00\"", "lone UTF-16 surrogate"), ("\"\\u12g4\"", "invalid hex digit"),
        ("\"abc", "unterminated"), ("{} {}", "unexpected data"),
    ])
    func broken(text: String, problem: String) {
        do {
            _ = try parse(text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.problem.contains(problem), "\(text): \(error)")
        }
    }

    @Test("invalid UTF-8 is refused, escaped or not")
    func invalidUTF8() {
        for bytes: [UInt8] in [[0x22, 0xC3, 0x28, 0x22], [0x22, 0xFF, 0x22], [0x22, 0x5C, 0x6E, 0xED, 0xA0, 0x80, 0x22],
                               [0x7B, 0x22, 0xC0, 0xAF, 0x22, 0x3A, 0x31, 0x7D]] {
            #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(bytes) }
        }
    }

    @Test("nesting past the limit is refused, not a stack overflow")
    func depth() throws {
        let limit = JSONParser.maximumDepth
        _ = try parse(String(repeating: "[", count: limit) + String(repeating: "]", count: limit))
        for open in ["[", "{\"a\":"] {
            let deep = String(repeating: open, count: 100_000)
            #expect(throws: JSONParser.Failure.self) { try parse(deep) }
        }
    }

    @Test("the writer's output parses back to the same value, keys sorted")
    func roundTrip() throws {
        let value: JSONValue = ["b": [1, .double(0.5), "x\u{1}y\n", nil], "a": ["é/€": true], "c": .double(1e300)]
        let text = String(decoding: JSONWriter.bytes(value), as: UTF8.self)
        #expect(text == #"{"a":{"é/€":true},"b":[1,0.5,"x\u0001y\n",null],"c":1e+300}"#)
        #expect(try parse(text) == value)
    }

    @Test("a shape keeps what it names and only checks the rest")
    func shapes() throws {
        let shape = JSONShape.members([.init("keep"), .init("list", .elements(.members([.init("name")]))), .init("esc\u{e9}")])
        let text = #"{"keep": {"a": 1}, "drop": {"x": [1, "\u00e9", 2e5, true, null, {}]}, "list": [{"name": "a", "env": "x"}, 7],"#
            + #" "esc\u00e9": 1}"#
        let value = try JSONParser.parse(Array(text.utf8), keeping: shape)
        #expect(value == ["keep": ["a": 1], "list": [["name": "a"], 7], "esc\u{e9}": 1])
        // A shaped member of another type is kept whole, for the reader to refuse by its type.
        #expect(try JSONParser.parse(Array(#"{"list": {"name": 1}}"#.utf8), keeping: shape) == ["list": ["name": 1]])
    }

    @Test("what a shape drops must still be JSON", arguments: [
        #"{"drop": [1,]}"#, #"{"drop": {"a" 1}}"#, #"{"drop": "x\q"}"#, #"{"drop": 1e}"#, #"{"drop": "\u12"}"#,
        #"{"drop": 1e400000000000000}"#, #"{"drop": 1e400}"#, #"{"drop": -1E999}"#, "{\"drop\": \"a\u{01}\"}", #"{"drop": tru}"#,
    ])
    func droppedStillChecked(text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Array(text.utf8), keeping: .members([])) }
    }

    @Test("dropped nesting counts against the depth limit")
    func droppedDepth() {
        let deep = "{\"drop\": " + String(repeating: "[", count: 100_000) + "}"
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Array(deep.utf8), keeping: .members([])) }
    }
}
