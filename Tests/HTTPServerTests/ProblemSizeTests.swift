import HTTP1
@testable import HTTPServer
import Testing

/// Issue #16 item 2: a problem body stays small whatever the detail or members carry.
@Suite struct ProblemSizeTests {
    @Test func detailAndStringMembersAreCapped() {
        let huge = String(repeating: "x", count: 2_000_000)
        let problem = HTTPError(status: .unprocessableContent, code: "invalid_parameter", detail: huge,
                                extensions: ["pointer": .string("/" + huge), "list": .strings(Array(repeating: huge, count: 1000))])
        let r = ProblemRenderer.response(for: problem, instance: "/v1/match", requestID: "r1", typeBase: "https://x/")
        #expect(r.body.count < 16_384)
        let text = String(decoding: r.body, as: UTF8.self)
        #expect(text.contains("…"))
    }
}
