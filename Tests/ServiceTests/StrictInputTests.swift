import Foundation
import HTTP1
import HTTPServer
import Testing
import Imaging
@testable import Service
import Visualization

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

/// Drawings are made from the decoded pixels at a bounded size (issue #16): the reduction averages blocks.
@Suite struct DrawingTests {
    @Test func downscaleAveragesTheBlockEachPixelCovers() {
        // 5×2 → 2×1: columns {0,1,2} and {3,4}, both rows.
        let px: [UInt8] = (0..<10).flatMap { i -> [UInt8] in [UInt8(i * 10), 7, 255] }
        let img = RGBImage(width: 5, height: 2, pixels: px)
        let d = Rendering.downscale(img, width: 2, height: 1)
        #expect(d.width == 2 && d.height == 1)
        // Left block: values 0,10,20 (row 0) and 50,60,70 (row 1) → 35; right: 30,40,80,90 → 60.
        #expect(d.pixels == [35, 7, 255, 60, 7, 255])
        #expect(Rendering.downscale(img, width: 5, height: 2) == img)
        let flat = RGBImage(width: 97, height: 61, pixels: [UInt8](repeating: 200, count: 97 * 61 * 3))
        #expect(Rendering.downscale(flat, width: 13, height: 7).pixels.allSatisfy { $0 == 200 })
    }

    @Test func sphereMapDrawnAtScaleKeepsTheAspect() {
        let t = KeypointTransform(imageWidth: 3000, imageHeight: 1000, resolution: 28)
        let sphere = [Float](repeating: 0.5, count: 2 * 2 * 3)
        let img = sphere.withUnsafeBufferPointer { Rendering.sphereMap(sphere: $0.baseAddress!, transform: t, box: nil, scale: 2048.0 / 3000) }
        #expect(img.width == 2048 && img.height == 683)
        #expect(img.pixels[0] == 191)  // (0.5 + 1) / 2 · 255
    }
}
