import Foundation
import HTTP1
import HTTPServer
import Testing
@testable import Service

/// Issue #16 item 6: JSON parts are RFC 8259 UTF-8 and nothing else, and limits hold while reading.
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
        let t0 = Date()
        do {
            _ = try StrictJSON.parse(text, maxArrayElements: 10_000)
            Issue.record("accepted")
        } catch {
            #expect(error.kind == .tooManyElements(limit: 10_000))
            #expect(error.offset == 1 + 10_000 * one.utf8.count)
        }
        #expect(Date().timeIntervalSince(t0) < 2)
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

/// Issue #16 items 2, 4, 5: echoed input is cut short; duplicates and bad values are refused by name.
@Suite struct InputCheckTests {
    func problem(_ body: () throws -> Void) -> HTTPError? {
        do { try body(); return nil } catch let e as HTTPError { return e } catch { return nil }
    }

    @Test func echoIsTruncatedWithAnEllipsis() {
        let long = String(repeating: "k", count: 1_000_000)
        let t = Echo.truncate(long)
        #expect(t == String(repeating: "k", count: Echo.maxScalars) + "…")
        #expect(Echo.truncate("short") == "short")
        #expect(Echo.truncate(String(repeating: "é", count: 64)) == String(repeating: "é", count: 64))
        #expect(Echo.truncate(String(repeating: "é", count: 65)).unicodeScalars.count == 65)
    }

    @Test func repeatedAndUnknownQueryParametersAreRefusedByName() throws {
        let spec: Inputs.QuerySpec = ["resolution": { Int($0) == nil ? "not a number" : nil }, "encoding": Endpoints.encodingCheck]
        let dup = problem { try Inputs.checkQuery(QueryItem.parse("resolution=14&resolution=abc"), spec: spec) }
        #expect(dup?.status == .unprocessableContent && dup?.detail.contains("'resolution' is given more than once") == true)
        #expect(dup?.extensions["pointer"] == .string("/resolution"))
        // The same value twice is still twice.
        #expect(problem { try Inputs.checkQuery(QueryItem.parse("encoding=array&encoding=array"), spec: spec) } != nil)
        let name = String(repeating: "x", count: 100_000)
        let unknown = problem { try Inputs.checkQuery(QueryItem.parse("\(name)=1"), spec: spec) }
        #expect(unknown?.status == .unprocessableContent && (unknown?.detail.utf8.count ?? .max) < 300)
        let bogus = problem { try Inputs.checkQuery(QueryItem.parse("encoding=bogus"), spec: spec) }
        #expect(bogus?.detail.contains("'base64' or 'array'") == true)
        #expect(problem { try Inputs.checkQuery(QueryItem.parse("encoding=array&resolution=28"), spec: spec) } == nil)
    }

    @Test(arguments: ["0,0,1,1", "10,20,300,400", "000,1,2,3"])
    func wellFormedBoxes(box: String) { #expect(Endpoints.boxCheck(box) == nil) }

    @Test(arguments: ["0,0,1,1,", ",0,0,1,1", "0,0,1", "0,0,1,1,1", "0, 0,1,1", "0,0,1,+1", "0,0,1,-1", "0,0,1,1.5", "", "a,b,c,d",
                      "0,0,1,1234567890"])
    func malformedBoxes(box: String) { #expect(Endpoints.boxCheck(box) != nil) }

    func part(_ name: String, _ body: String) -> MultipartPart {
        MultipartPart(headers: HTTPHeaders(), name: name, filename: nil, contentType: "application/json", body: Array(body.utf8))
    }

    @Test func duplicatePartsAreRefusedByName() {
        let parts = [part("source", "x"), part("params", "{}"), part("params", #"{"alpha": 5}"#)]
        let e = problem { _ = try Inputs.optionalPart(parts, "params") }
        #expect(e?.status == .unprocessableContent && e?.detail.contains("part 'params' appears 2 times") == true)
        #expect(problem { _ = try Inputs.optionalPart(parts, "points") } == nil)
        #expect(problem { _ = try Inputs.requiredPart(parts + [part("source", "y")], "source") }?.detail.contains("'source' appears 2 times") == true)
    }

    @Test func paramsAndPointsAreReadStrictly() {
        let huge = String(repeating: "k", count: 1 << 20)
        let e = problem { _ = try Inputs.params(part("params", "{\"\(huge)\": 1}"), allowed: ["alpha"]) }
        #expect(e?.status == .unprocessableContent)
        #expect((e?.detail.utf8.count ?? .max) < 300)
        if case .string(let p)? = e?.extensions["pointer"] { #expect(p.utf8.count < 100) } else { Issue.record("no pointer") }
        #expect(problem { _ = try Inputs.points(part("points", "[[1,1],]"), maxPoints: 10) }?.code == "malformed_json")
        #expect(problem { _ = try Inputs.params(part("params", #"{"alpha": 0.5, "alpha": 5}"#), allowed: ["alpha"]) }?.code == "malformed_json")
        let many = "[" + String(repeating: "[1,1],", count: 11) + "[1,1]]"
        #expect(problem { _ = try Inputs.points(part("points", many), maxPoints: 10) }?.detail.contains("at most 10") == true)
        #expect((try? Inputs.points(part("points", "[[1,2],[3.5,4]]"), maxPoints: 10))?.count == 2)
    }

    func head(_ contentType: String?) -> RequestHead {
        var h = HTTPHeaders()
        h.append(name: "Host", value: "a")
        if let contentType { h.append(name: "Content-Type", value: contentType) }
        return RequestHead(method: .post, target: "/v1/match", targetForm: .origin, version: .http1_1, headers: h, keepAlive: true,
                           framing: .contentLength(1), expectation: .none, isUpgradeRequest: false)
    }

    @Test func aMalformedContentTypeSaysWhatIsWrong() {
        func detail(_ ct: String?) -> String { problem { _ = try Inputs.contentType(head(ct), rawAllowed: false) }?.detail ?? "accepted" }
        #expect(detail(nil).contains("has no Content-Type"))
        #expect(detail(";;;").contains("malformed") && !detail(";;;").contains("has no Content-Type"))
        #expect(detail("multipart/form-data; boundary=a; boundary=b").contains("'boundary' is given twice"))
        #expect(detail("multipart/form-data").contains("boundary"))
        #expect(detail("multipart/form-data; boundary=\"unterminated").contains("quoted value"))
        #expect(detail("text/").contains("subtype"))
        #expect(detail("image/png").contains("not accepted here"))
        #expect(detail("multipart/form-data; boundary=abc") == "accepted")
    }
}

/// Issue #16 item 1: decodes admitted by memory, first come first served, bounded waiting.
@Suite struct DecodeBudgetTests {
    let far = ContinuousClock.now + .seconds(60)

    @Test func admitsWithinCapacityAndRefusesWhatCanNeverFit() throws {
        let b = DecodeBudget(capacity: 100, room: WaitingRoom(capacity: 4))
        try b.acquire(60, deadline: far, isCancelled: { false })
        try b.acquire(40, deadline: far, isCancelled: { false })
        #expect(b.inFlight == 100)
        #expect(throws: DecodeBudget.Rejection.tooLarge(bytes: 101, capacity: 100)) { try b.acquire(101, deadline: far, isCancelled: { false }) }
        b.release(100)
        #expect(b.inFlight == 0 && b.refused["too_large"] == 1)
    }

    @Test func waitsUntilReleasedOrTheDeadline() throws {
        let b = DecodeBudget(capacity: 100, room: WaitingRoom(capacity: 4))
        try b.acquire(80, deadline: far, isCancelled: { false })
        #expect(throws: DecodeBudget.Rejection.deadlineExceeded) {
            try b.acquire(30, deadline: .now + .milliseconds(100), isCancelled: { false })
        }
        #expect(b.refused["deadline"] == 1 && b.waiting == 0)
        #expect(throws: DecodeBudget.Rejection.cancelled) { try b.acquire(30, deadline: far, isCancelled: { true }) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.1) { b.release(80) }
        let waited = try b.acquire(30, deadline: far, isCancelled: { false })
        #expect(waited > 0.05 && b.inFlight == 30)
        b.release(30)
    }

    @Test func refusesAtOnceWhenTheQueueIsFull() throws {
        let b = DecodeBudget(capacity: 100, room: WaitingRoom(capacity: 0))
        try b.acquire(100, deadline: far, isCancelled: { false })
        #expect(throws: DecodeBudget.Rejection.overloaded(waiting: 0)) { try b.acquire(1, deadline: far, isCancelled: { false }) }
        #expect(b.refused["overloaded"] == 1)
        b.release(100)
        try b.acquire(1, deadline: far, isCancelled: { false })
    }

    @Test func firstComeFirstServed() throws {
        // A large request at the head is not overtaken by small ones that would fit.
        let b = DecodeBudget(capacity: 100, room: WaitingRoom(capacity: 4))
        try b.acquire(50, deadline: far, isCancelled: { false })
        let order = OrderLog()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { _ = try? b.acquire(90, deadline: far, isCancelled: { false }); order.add("large"); b.release(90) }
        #expect(waitUntil { b.waiting == 1 })  // the large one is queued before the small one arrives
        DispatchQueue.global().async(group: group) { _ = try? b.acquire(10, deadline: far, isCancelled: { false }); order.add("small"); b.release(10) }
        #expect(waitUntil { b.waiting == 2 })
        #expect(order.entries.isEmpty)  // the small one fits now but waits its turn
        b.release(50)
        #expect(group.wait(timeout: .now() + 5) == .success)
        #expect(order.entries == ["large", "small"])
        #expect(b.inFlight == 0)
    }

    @Test func oneWaitingRoomBoundsBothQueues() throws {
        // --queue-size places, shared: a request waiting for the budget takes the place an inference would wait in.
        let room = WaitingRoom(capacity: 1)
        let b = DecodeBudget(capacity: 100, room: room)
        let q = InferenceQueue(maxQueue: 1, room: room)
        try b.acquire(100, deadline: far, isCancelled: { false })
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { _ = try? b.acquire(50, deadline: .now + .seconds(5), isCancelled: { false }); b.release(50) }
        #expect(waitUntil { room.occupied == 1 && b.waiting == 1 })
        // The executor is busy and the only place is taken: the inference queue refuses at once.
        let started = DispatchSemaphore(value: 0), finish = DispatchSemaphore(value: 0)
        DispatchQueue.global().async(group: group) { _ = try? q.run(deadline: .now + .seconds(5), isCancelled: { false }) { started.signal(); finish.wait() } }
        started.wait()
        #expect(throws: InferenceQueue.Rejection.overloaded(queued: 0)) { _ = try q.run(deadline: .now + .seconds(5), isCancelled: { false }) {} }
        finish.signal()
        b.release(100)
        #expect(group.wait(timeout: .now() + 5) == .success)
        #expect(room.occupied == 0 && b.inFlight == 0)
    }

    @Test func defaultCapacityIsAQuarterOfMemory() {
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        #expect(DecodeBudget.defaultCapacity() >= 256 << 20 && DecodeBudget.defaultCapacity() <= max(256 << 20, physical / 4))
    }
}

private final class OrderLog: @unchecked Sendable {
    private var list: [String] = []
    private let lock = NSLock()
    func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
    var entries: [String] { lock.lock(); defer { lock.unlock() }; return list }
}

/// Polls `condition` until it holds or `timeout` passes: the state a test waits for is decided by the code under
/// test, not by a fixed sleep that a loaded machine can outlast.
private func waitUntil(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while !condition() {
        if Date() > end { return false }
        Thread.sleep(forTimeInterval: 0.005)
    }
    return true
}
