import JSON
import Testing

/// Issue #16 item 6: JSON is RFC 8259 UTF-8 and nothing else, and limits hold while reading.
@Suite struct StrictJSONTests {
    func parse(_ text: String, maxArrayElements: Int = .max) throws(JSONParseError) -> JSONValue {
        try StrictJSON.parse(Array(text.utf8), maxArrayElements: maxArrayElements)
    }

    func reason(_ bytes: [UInt8]) -> String? {
        do { _ = try StrictJSON.parse(bytes); return nil } catch { return error.reason }
    }

    @Test func readsWhatRFC8259Allows() throws {
        #expect(try parse(#"[[1,1],[2.5,-3e2]]"#) == .array([.array([.number(1), .number(1)]), .array([.number(2.5), .number(-300)])]))
        #expect(try parse(" {\"a\" : true, \"b\":null,\"c\":\"x\\u00e9\\ud83d\\ude00\\n\"} \r\n")
            == .object([("a", .bool(true)), ("b", .null), ("c", .string("xé😀\n"))]))
        #expect(try parse("0") == .number(0))
        #expect(try parse("-0.5E+1") == .number(-5))
        #expect(try parse("\"caf\u{e9}\"") == .string("café"))
        #expect(try parse("[]") == .array([]) && (try parse("{}")) == .object([]))
    }

    @Test(arguments: [
        ("[[1,1],]", "trailing comma"), ("{\"a\":1,}", "trailing comma"), ("[1 2]", "expected ','"), ("[,1]", "expected a JSON value"),
        ("01", "leading zero"), (".5", "expected a JSON value"), ("1.", "decimal point"), ("1e", "exponent"), ("-", "without digits"),
        ("+1", "expected a JSON value"), ("NaN", "expected a JSON value"), ("[1] x", "after the JSON value"), ("", "unexpected end"),
        ("\"a\u{01}\"", "control character"), ("\"\\x\"", "invalid escape"), ("\"\\ud800\"", "unpaired surrogate"),
        ("\"\\udc00\"", "unpaired surrogate"), ("\"\\u12\"", "four hex digits"), ("{\"a\":1,\"a\":2}", "appears twice"),
        ("[1, /* c */ 2]", "expected a JSON value"), ("{a:1}", "quoted member name"), ("'a'", "expected a JSON value"),
        ("\"abc", "unterminated"), ("tru", "expected a JSON value"),
    ])
    func refusesWhatItDoesNotAllow(text: String, words: String) {
        let r = reason(Array(text.utf8))
        #expect(r?.contains(words) == true, "\(text): \(r ?? "accepted")")
    }

    @Test func onlyUTF8WithoutAByteOrderMark() {
        let json = "[[1,1]]"
        #expect(reason([0xEF, 0xBB, 0xBF] + Array(json.utf8))?.contains("byte order mark") == true)
        let utf16LE: [UInt8] = [0xFF, 0xFE] + json.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let utf16BE: [UInt8] = [0xFE, 0xFF] + json.utf16.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        let utf32LE: [UInt8] = [0xFF, 0xFE, 0, 0] + json.unicodeScalars.flatMap { [UInt8($0.value), 0, 0, 0] }
        let utf32BE: [UInt8] = [0, 0, 0xFE, 0xFF] + json.unicodeScalars.flatMap { [0, 0, 0, UInt8($0.value)] }
        #expect(reason(utf16LE)?.contains("UTF-16") == true)
        #expect(reason(utf16BE)?.contains("UTF-16") == true)
        #expect(reason(utf32LE)?.contains("UTF-32") == true)
        #expect(reason(utf32BE)?.contains("UTF-32") == true)
        #expect(reason(Array(json.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })?.contains("NUL") == true)
        // Malformed UTF-8 inside strings: overlong, surrogate, beyond U+10FFFF, truncated, stray continuation.
        for bad: [UInt8] in [[0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80], [0xFF]] {
            #expect(reason([0x22] + bad + [0x22]) == "invalid UTF-8", "\(bad)")
        }
        #expect(reason([0x22, 0xE2, 0x82, 0xAC, 0x22]) == nil)  // €
    }

    @Test func arrayLimitStopsReadingAtTheFirstElementOverIt() throws {
        // A million points: refused after reading 10,001 of them, not all of them.
        let one = "[1,1],"
        let text = Array(("[" + String(repeating: one, count: 1_000_000) + "[1,1]]").utf8)
        do {
            _ = try StrictJSON.parse(text, maxArrayElements: 10_000)
            Issue.record("accepted")
        } catch {
            #expect(error.kind == .tooManyElements(limit: 10_000))
            #expect(error.offset == 1 + 10_000 * one.utf8.count)  // where reading stopped: no further
        }
        // At the limit exactly: accepted.
        let ok = Array(("[" + String(repeating: one, count: 9_999) + "[1,1]]").utf8)
        guard case .array(let list) = try StrictJSON.parse(ok, maxArrayElements: 10_000) else { Issue.record("not an array"); return }
        #expect(list.count == 10_000)
    }

    @Test func nestingIsBounded() {
        #expect(reason(Array((String(repeating: "[", count: 65) + String(repeating: "]", count: 65)).utf8))?.contains("nesting") == true)
        #expect(reason(Array((String(repeating: "[", count: 64) + String(repeating: "]", count: 64)).utf8)) == nil)
    }
}

/// What the SPair annotation reader asks of a value (issue #10: one reader for the service and the dataset).
@Suite struct JSONValueAccessTests {
    @Test func integersAreIntegralNumbersThatFitInt() throws {
        let v = try StrictJSON.parse(Array(#"[7, -3, 2.0, 2.5, 1e300, true, "4"]"#.utf8))
        guard case let .array(items) = v else { Issue.record("not an array"); return }
        #expect(items.map(\.integer) == [7, -3, 2, nil, nil, nil, nil])
        #expect(items.map(\.typeName) == ["an integer", "an integer", "an integer", "a non-integer number", "a non-integer number",
                                           "a boolean", "a string"])
        #expect(items[3].finiteNumber == 2.5 && items[5].finiteNumber == nil)
    }

    @Test func membersByName() throws {
        let v = try StrictJSON.parse(Array(#"{"a": 1, "b": {"c": null}}"#.utf8))
        #expect(v["a"] == .number(1) && v["b"]?["c"] == .null && v["z"] == nil && JSONValue.null["a"] == nil)
    }

    @Test func positionsAreLinesAndColumns() {
        let text = Array("{\"a\": 1,\n \"b\": }".utf8)
        do { _ = try StrictJSON.parse(text); Issue.record("accepted") } catch {
            #expect(error.position(in: text) == (2, 7), "\(error)")
        }
    }
}
