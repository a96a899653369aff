import Foundation
import HTTP1
import HTTPServer
import Testing

/// Routing decisions without sockets (Hummingbird's `.router` test mode): `Router.admit` decides from
/// the head alone, then the route's handler is called directly.
@Suite("Router (no sockets)")
struct RouterTests {
    static func makeRouter() -> Router {
        var router = Router()
        router.get("/livez", execution: .eventLoop) { _ in .text("ok") }
        router.post("/v1/match", maxBodyBytes: 1000) { request in .text("match \(request.body.count)") }
        router.add(.put, "/v1/match") { _ in .text("put") }
        router.get("/v1/info") { request in .text("info \(request.query("verbose") ?? "-")") }
        router.post("/guarded", headCheck: { head in
            head.headers["content-type"] == "application/json" ? nil
                : HTTPError(status: .unsupportedMediaType, code: "unsupported_media_type", detail: "send JSON")
        }) { _ in .text("guarded") }
        return router
    }

    func head(_ method: HTTPMethod, _ target: String, headers: HTTPHeaders = ["Host": "x"],
              framing: BodyFraming = .none, expectation: RequestExpectation = .none) -> RequestHead {
        let form: TargetForm = target == "*" ? .asterisk : (target.hasPrefix("/") ? .origin : .absolute)
        return RequestHead(method: method, target: target, targetForm: form, headers: headers, framing: framing,
                           expectation: expectation)
    }

    @Test("exact match calls the route's handler")
    func exactMatch() throws {
        let router = Self.makeRouter()
        guard case .accept(let route, let path, let limit, let sendContinue) = router.admit(head(.get, "/v1/info?verbose=1"), defaultBodyLimit: 50)
        else { Issue.record("not accepted"); return }
        #expect(path == "/v1/info")
        #expect(route.path == "/v1/info")
        #expect(limit == 50)
        #expect(!sendContinue)
        let request = Request(head: head(.get, "/v1/info?verbose=1"), path: path, route: route.path,
                              queryItems: QueryItem.parse("verbose=1"))
        #expect(String(decoding: try route.handler(request).body, as: UTF8.self) == "info 1")
    }

    @Test("unknown path → 404 not_found")
    func notFound() {
        guard case .reject(let problem) = Self.makeRouter().admit(head(.get, "/nope"), defaultBodyLimit: 10) else {
            Issue.record("not rejected"); return
        }
        #expect(problem.status.code == 404)
        #expect(problem.code == "not_found")
    }

    @Test("known path, wrong method → 405 with Allow")
    func methodNotAllowed() {
        let router = Self.makeRouter()
        guard case .reject(let problem) = router.admit(head(.get, "/v1/match"), defaultBodyLimit: 10) else {
            Issue.record("not rejected"); return
        }
        #expect(problem.status.code == 405)
        #expect(problem.code == "method_not_allowed")
        #expect(problem.headers["Allow"] == "POST, PUT, OPTIONS")
        guard case .reject(let patch) = router.admit(head(.patch, "/livez"), defaultBodyLimit: 10) else {
            Issue.record("not rejected"); return
        }
        #expect(patch.headers["Allow"] == "GET, HEAD, OPTIONS")
    }

    @Test("HEAD is served by the GET route")
    func headUsesGet() {
        guard case .accept(let route, _, _, _) = Self.makeRouter().admit(head(.head, "/livez"), defaultBodyLimit: 10) else {
            Issue.record("not accepted"); return
        }
        #expect(route.method == .get)
        #expect(route.execution == .eventLoop)
    }

    @Test("OPTIONS on a path and OPTIONS * → 204 with Allow")
    func options() {
        let router = Self.makeRouter()
        guard case .respond(let response) = router.admit(head(.options, "/v1/match"), defaultBodyLimit: 10) else {
            Issue.record("no response"); return
        }
        #expect(response.status.code == 204)
        #expect(response.headers["Allow"] == "POST, PUT, OPTIONS")
        guard case .respond(let star) = router.admit(head(.options, "*"), defaultBodyLimit: 10) else {
            Issue.record("no response"); return
        }
        #expect(star.headers["Allow"] == "GET, HEAD, POST, PUT, OPTIONS")
        guard case .reject(let bad) = router.admit(head(.get, "*"), defaultBodyLimit: 10) else {
            Issue.record("not rejected"); return
        }
        #expect(bad.status.code == 400)
    }

    @Test("paths are normalized before matching; malformed paths are 400", arguments: [
        ("/v1/../livez", 200), ("//livez", 200), ("/x/%2e%2e/livez", 200), ("/liv%65z", 200),
        ("/livez%00", 400), ("/a%2Fb", 400), ("/livez/", 404), ("http://example.com/livez", 200),
    ])
    func normalization(target: String, expected: Int) {
        switch Self.makeRouter().admit(head(.get, target), defaultBodyLimit: 10) {
        case .accept(let route, _, _, _): #expect(expected == 200 && route.path == "/livez", "\(target)")
        case .reject(let problem): #expect(problem.status.code == expected, "\(target)")
        case .respond: Issue.record("unexpected response for \(target)")
        }
    }

    @Test("the fast path of Router.normalize agrees with PathNormalizer", arguments: [
        "/", "/a", "/a/", "/.a", "/a.b", "/a/.", "/a/..", "/..", "/...", "/.../x", "/a//b", "/%41", "/a/.b/c", "/a./b",
        "/v1/match", "/v1/match/", "//", "/./", "/a/b/../../..", "/a%2Fb", "/a%00", "relative", "",
    ])
    func normalizeFastPath(_ path: String) {
        #expect(Router.normalize(path[...]) == PathNormalizer.normalize(path), "\(path)")
    }

    @Test("per-route body limit: 413 from Content-Length before the body, with limit_bytes")
    func bodyLimit() {
        let router = Self.makeRouter()
        guard case .reject(let problem) = router.admit(head(.post, "/v1/match", framing: .contentLength(1001)), defaultBodyLimit: 1 << 20)
        else { Issue.record("not rejected"); return }
        #expect(problem.status.code == 413)
        #expect(problem.code == "payload_too_large")
        #expect(problem.extensions["limit_bytes"] == .int(1000))
        #expect(problem.closeConnection)
        guard case .accept(_, _, let limit, _) = router.admit(head(.post, "/v1/match", framing: .contentLength(1000)), defaultBodyLimit: 1 << 20)
        else { Issue.record("not accepted"); return }
        #expect(limit == 1000)
        // Routes without their own limit use the server default.
        guard case .reject = router.admit(head(.put, "/v1/match", framing: .contentLength(11)), defaultBodyLimit: 10)
        else { Issue.record("default limit not applied"); return }
    }

    @Test("100-continue only once route, method, head check and size pass")
    func expectContinue() {
        let router = Self.makeRouter()
        let ok = router.admit(head(.post, "/v1/match", framing: .contentLength(10), expectation: .continue100), defaultBodyLimit: 100)
        guard case .accept(_, _, _, true) = ok else { Issue.record("no 100 for an acceptable request"); return }
        // No body → nothing to continue.
        guard case .accept(_, _, _, false) = router.admit(head(.post, "/v1/match", framing: .contentLength(0), expectation: .continue100), defaultBodyLimit: 100)
        else { Issue.record("100 for an empty body"); return }
        // Too large, wrong method, unknown path, failed head check → final status, no 100.
        for (h, status) in [
            (head(.post, "/v1/match", framing: .contentLength(5000), expectation: .continue100), 413),
            (head(.post, "/livez", framing: .contentLength(10), expectation: .continue100), 405),
            (head(.post, "/nope", framing: .contentLength(10), expectation: .continue100), 404),
            (head(.post, "/guarded", framing: .contentLength(10), expectation: .continue100), 415),
        ] {
            guard case .reject(let problem) = router.admit(h, defaultBodyLimit: 100) else {
                Issue.record("accepted \(h.method) \(h.target)"); continue
            }
            #expect(problem.status.code == status)
        }
    }

    @Test("Expect other than 100-continue → 417")
    func expectationFailed() {
        guard case .reject(let problem) = Self.makeRouter().admit(
            head(.post, "/v1/match", framing: .contentLength(1), expectation: .unsupported("teapot")), defaultBodyLimit: 10)
        else { Issue.record("not rejected"); return }
        #expect(problem.status.code == 417)
        #expect(problem.code == "expectation_failed")
    }

    @Test("CONNECT → 501")
    func connect() {
        let h = RequestHead(method: .connect, target: "example.com:443", targetForm: .authority, headers: ["Host": "example.com:443"])
        guard case .reject(let problem) = Self.makeRouter().admit(h, defaultBodyLimit: 10) else {
            Issue.record("not rejected"); return
        }
        #expect(problem.status.code == 501)
    }

    @Test("route registry lists methods")
    func registry() {
        let router = Self.makeRouter()
        #expect(router.allowedMethods("/v1/info") == ["GET", "HEAD", "OPTIONS"])
        #expect(router.allowedMethods("/missing") == nil)
        #expect(router.routes.count == 5)
        #expect(router.route(.head, "/v1/info")?.method == .get)
    }
}

@Suite("Request ids, query strings, problem bodies")
struct RequestPartsTests {
    @Test("valid X-Request-Id values are kept", arguments: [
        "abc", "7f3a9c12-0000-4000-8000-000000000000", "Root=1-5759e988-bd862e3fe1be46a994272793",
        "a.b_c:d+e/f=g@h~i", String(repeating: "x", count: 128),
    ])
    func validIDs(_ id: String) {
        #expect(RequestID.isValid(id))
        #expect(RequestID.incoming(HTTPHeaders([("X-Request-Id", id)])) == id)
    }

    @Test("invalid X-Request-Id values are replaced", arguments: [
        "", " ", "a b", "a\"b", "a;b", "a\u{7f}", "é", String(repeating: "x", count: 129), "<script>",
    ])
    func invalidIDs(_ id: String) {
        #expect(!RequestID.isValid(id))
    }

    @Test("query items are percent-decoded, + is a space")
    func query() {
        let items = QueryItem.parse("a=1&b=two%20words&c=x+y&flag&bad=%zz&&e=")
        #expect(items == [
            QueryItem(name: "a", value: "1"), QueryItem(name: "b", value: "two words"), QueryItem(name: "c", value: "x y"),
            QueryItem(name: "flag", value: ""), QueryItem(name: "bad", value: "%zz"), QueryItem(name: "e", value: ""),
        ])
    }

    @Test("HTTPError from a parse error keeps the parser's status and names the rule")
    func parseErrorProblem() {
        let error = HTTPError.from(ParseError(.duplicateContentLength, "more than one Content-Length"))
        #expect(error.status.code == 400)
        #expect(error.code == "bad_request")
        #expect(error.extensions["parse_error"] == .string("duplicate_content_length"))
        #expect(error.closeConnection)
        #expect(HTTPError.from(ParseError(.tooManyHeaders)).status.code == 431)
        #expect(HTTPError.from(ParseError(.tooManyHeaders)).code == "headers_too_large")
        #expect(HTTPError.from(ParseError(.bodyTooLarge)).code == "payload_too_large")
    }

    @Test("a client link starts connected")
    func clientLink() {
        let link = ClientLink()
        #expect(link.isConnected)
        #expect(!link.inputClosed)
        #expect(!link.wasReset)
    }
}
