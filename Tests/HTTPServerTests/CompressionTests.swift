import Foundation
import Gzip
import HTTP1
import HTTPServer
import Testing

/// `Content-Encoding: gzip` of handler responses (issue #13): which responses, and that the bytes round-trip.
@Suite("gzip responses")
struct CompressionTests {
    static let json = Array(("{\"matches\":[" + (0..<400).map { "{\"source\":[\($0),\($0 % 7)],\"score\":0.5}" }.joined(separator: ",") + "]}").utf8)

    @Test("compressible media types: text, JSON, problem+json, YAML; never PNG, npy, safetensors, octet-stream")
    func mediaTypes() {
        let policy = CompressionPolicy()
        for type in ["application/json", "Application/JSON; charset=utf-8", "application/problem+json", "text/plain; version=0.0.4",
                     "application/yaml", "text/html"] {
            #expect(policy.isCompressible(contentType: type), "\(type)")
        }
        for type in ["image/png", "application/x-npy", "application/vnd.safetensors", "application/octet-stream", "image/jpeg", "multipart/form-data"] {
            #expect(!policy.isCompressible(contentType: type), "\(type)")
        }
        #expect(!policy.isCompressible(contentType: nil))
    }

    @Test("apply: gzip when accepted, Vary either way, the body decodes to the original")
    func apply() throws {
        let policy = CompressionPolicy()
        var gz = Response.json(Self.json)
        policy.apply(acceptEncoding: "gzip, deflate", to: &gz)
        #expect(gz.headers["Content-Encoding"] == "gzip")
        #expect(gz.headers["Vary"] == "Accept-Encoding")
        #expect(gz.body.count < Self.json.count / 3)
        #expect(try Gzip.decompress(gz.body) == Self.json)

        var plain = Response.json(Self.json)
        policy.apply(acceptEncoding: nil, to: &plain)
        #expect(plain.body == Self.json && plain.headers["Content-Encoding"] == nil)
        #expect(plain.headers["Vary"] == "Accept-Encoding")

        var tagged = Response.json(Self.json, headers: ["ETag": "\"abc\""])
        policy.apply(acceptEncoding: "gzip", to: &tagged)
        #expect(tagged.headers["ETag"] == "W/\"abc\"", "a strong ETag names the identity bytes only")
        var untouched = Response.json(Self.json, headers: ["ETag": "\"abc\""])
        policy.apply(acceptEncoding: nil, to: &untouched)
        #expect(untouched.headers["ETag"] == "\"abc\"")

        var refused = Response.json(Self.json, headers: ["Vary": "Accept"])
        policy.apply(acceptEncoding: "gzip;q=0, identity", to: &refused)
        #expect(refused.body == Self.json && refused.headers["Content-Encoding"] == nil)
        #expect(refused.headers["Vary"] == "Accept, Accept-Encoding")
    }

    @Test("not applied: PNG, below the threshold, bodiless statuses, already encoded, incompressible")
    func notApplied() throws {
        let policy = CompressionPolicy()
        let png = Response(status: .ok, headers: ["Content-Type": "image/png"], body: [UInt8](repeating: 0, count: 100_000))
        var r = png
        policy.apply(acceptEncoding: "gzip", to: &r)
        #expect(r == png, "PNG is never gzipped, and gets no Vary")

        var tiny = Response.json(Array(#"{"status":"ok"}"#.utf8))
        let tinyBefore = tiny
        policy.apply(acceptEncoding: "gzip", to: &tiny)
        #expect(tiny == tinyBefore, "below \(policy.minimumBytes) bytes nothing changes")

        var noContent = Response(status: HTTPStatus(code: 204), headers: ["Content-Type": "application/json"], body: [])
        policy.apply(acceptEncoding: "gzip", to: &noContent)
        #expect(noContent.headers["Content-Encoding"] == nil)

        var encoded = Response(status: .ok, headers: ["Content-Type": "application/json", "Content-Encoding": "br"], body: Self.json)
        policy.apply(acceptEncoding: "gzip", to: &encoded)
        #expect(encoded.headers.values(for: "Content-Encoding") == ["br"] && encoded.body == Self.json)

        // Random bytes labelled text: gzip would grow them, so they go out as they are (never past the original size).
        var rng = SystemRandomNumberGenerator()
        let noise = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var random = Response(status: .ok, headers: ["Content-Type": "text/plain"], body: noise)
        policy.apply(acceptEncoding: "gzip", to: &random)
        #expect(random.body == noise && random.headers["Content-Encoding"] == nil)
    }

    @Test("loopback: the same resource with and without Accept-Encoding decodes to identical bytes; HEAD matches GET")
    func loopback() throws {
        let server = try TestServer()
        defer { server.stop() }
        let plain = try #require(try exchange(server.port, "GET /big?kb=64 HTTP/1.1\r\nHost: x\r\n\r\n"))
        let gz = try #require(try exchange(server.port, "GET /big?kb=64 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"))
        #expect(plain.header("Content-Encoding") == nil && plain.body.count == 64 * 1024)
        #expect(gz.header("Content-Encoding") == "gzip")
        #expect(gz.header("Vary") == "Accept-Encoding" && plain.header("Vary") == "Accept-Encoding")
        #expect(gz.header("Content-Length") == "\(gz.body.count)" && gz.body.count < 1024)
        #expect(try Gzip.decompress(gz.body) == plain.body)
        let head = try #require(try exchange(server.port, "HEAD /big?kb=64 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"))
        #expect(head.header("Content-Length") == gz.header("Content-Length") && head.header("Content-Encoding") == "gzip")
        // Two Accept-Encoding lines are one list (RFC 9110 §5.3).
        let split = try #require(try exchange(server.port, "GET /big?kb=64 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\nAccept-Encoding: gzip\r\n\r\n"))
        #expect(split.header("Content-Encoding") == "gzip")
        // An octet-stream echo is never compressed.
        let body = String(repeating: "a", count: 8192)
        let echo = try #require(try exchange(server.port, "POST /echo HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nContent-Length: 8192\r\n\r\n\(body)"))
        #expect(echo.header("Content-Encoding") == nil && echo.body.count == 8192)
    }

    @Test("compression: nil turns it off")
    func off() throws {
        let server = try TestServer(configure: { $0.compression = nil })
        defer { server.stop() }
        let r = try #require(try exchange(server.port, "GET /big?kb=8 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"))
        #expect(r.header("Content-Encoding") == nil && r.header("Vary") == nil && r.body.count == 8192)
    }
}
