import Foundation
import HTTP1
import HTTPServer
import Testing

/// Real clients over loopback: curl and Python's http.client (installed by scripts/install-deps).
@Suite("Loopback: curl and Python clients", .timeLimit(.minutes(2)))
struct ClientToolTests {
    @Test("curl reuses one keep-alive connection across two URLs", .enabled(if: toolPath("curl") != nil))
    func curlKeepAlive() throws {
        let server = try TestServer()
        defer { server.stop() }
        let result = try runTool(toolPath("curl")!, [
            "-sS", "--max-time", "10", "-w", "|%{http_code} %{num_connects}\n",
            "\(server.baseURL)/a", "\(server.baseURL)/b",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        // Body "a", then the second transfer opened no new connection.
        #expect(result.stdout == "a|200 1\nb|200 0\n", "\(result.stdout)")
        #expect(server.observer.opened.count == 1)
    }

    // curl 7.88 adds `Expect: 100-continue` to uploads above 1 MiB (its EXPECT_100_THRESHOLD; older
    // versions did so above 1 KiB), hence 1.2 MiB files.
    @Test("curl -F upload over 1 MiB: Expect: 100-continue is answered with 100, then 200", .enabled(if: toolPath("curl") != nil))
    func curlMultipartContinue() throws {
        let server = try TestServer()
        defer { server.stop() }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("upload-\(UUID().uuidString).bin")
        try Data(repeating: 0x41, count: 1_200_000).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try runTool(toolPath("curl")!, [
            "-sS", "-v", "--max-time", "10", "-w", "|%{time_total}", "-F", "image=@\(file.path)", "\(server.baseURL)/upload",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("> Expect: 100-continue"), "\(result.stderr)")
        #expect(result.stderr.contains("< HTTP/1.1 100 Continue"), "\(result.stderr)")
        #expect(result.stderr.contains("< HTTP/1.1 200 OK"))
        let parts = result.stdout.split(separator: "|")
        #expect(parts.count == 2 && parts[0].hasSuffix(" bytes") && (Int(parts[0].split(separator: " ")[0]) ?? 0) > 1_200_000,
                "\(result.stdout)")
        // A silent server would cost curl its 1 s expect100 timeout.
        let total = Double(parts.last ?? "") ?? 99
        #expect(total < 0.9, "curl took \(total) s")
    }

    @Test("curl -F upload to a route that refuses it: final 413 problem, never 100", .enabled(if: toolPath("curl") != nil))
    func curlMultipartRefused() throws {
        let server = try TestServer()
        defer { server.stop() }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("upload-\(UUID().uuidString).bin")
        try Data(repeating: 0x42, count: 1_200_000).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try runTool(toolPath("curl")!, [
            "-sS", "-v", "--max-time", "10", "-F", "image=@\(file.path)", "\(server.baseURL)/small",
        ])
        #expect(result.stderr.contains("> Expect: 100-continue"), "\(result.stderr)")
        #expect(!result.stderr.contains("100 Continue"), "\(result.stderr)")
        #expect(result.stderr.contains("< HTTP/1.1 413 Content Too Large"), "\(result.stderr)")
        #expect(result.stderr.contains("< Content-Type: application/problem+json"))
        #expect(result.stdout.contains("\"code\":\"payload_too_large\""), "\(result.stdout)")
        #expect(server.calls.count == 0)

        // Unknown route and wrong method: 404 / 405, never 100.
        for (path, status) in [("/missing", "404 Not Found"), ("/livez", "405 Method Not Allowed")] {
            let other = try runTool(toolPath("curl")!, ["-sS", "-v", "--max-time", "10", "-F", "image=@\(file.path)", "\(server.baseURL)\(path)"])
            #expect(!other.stderr.contains("100 Continue"), "\(path): \(other.stderr)")
            #expect(other.stderr.contains("< HTTP/1.1 \(status)"), "\(path): \(other.stderr)")
        }
    }

    @Test("curl: HEAD, chunked upload, HTTP/1.0", .enabled(if: toolPath("curl") != nil))
    func curlMisc() throws {
        let server = try TestServer()
        defer { server.stop() }
        let head = try runTool(toolPath("curl")!, ["-sS", "-I", "--max-time", "10", "\(server.baseURL)/big?kb=2"])
        #expect(head.stdout.contains("Content-Length: 2048"), "\(head.stdout)")
        #expect(head.status == 0)
        let chunked = try runTool(toolPath("curl")!, [
            "-sS", "--max-time", "10", "-H", "Transfer-Encoding: chunked", "--data-binary", "hello chunks", "\(server.baseURL)/echo",
        ])
        #expect(chunked.stdout == "hello chunks", "\(chunked.stdout) \(chunked.stderr)")
        let old = try runTool(toolPath("curl")!, ["-sS", "-0", "-i", "--max-time", "10", "\(server.baseURL)/livez"])
        #expect(old.stdout.contains("Connection: close"), "\(old.stdout)")
        #expect(old.stdout.hasSuffix("ok"))
    }

    @Test("Python http.client: keep-alive, HEAD, POST, problem bodies", .enabled(if: toolPath("python3") != nil))
    func pythonClient() throws {
        let server = try TestServer()
        defer { server.stop() }
        let script = """
            import http.client, json, sys
            c = http.client.HTTPConnection("127.0.0.1", \(server.port), timeout=10)
            out = []
            c.request("GET", "/hello?name=py"); r = c.getresponse(); out.append((r.status, r.read().decode()))
            c.request("HEAD", "/livez"); r = c.getresponse(); out.append((r.status, r.getheader("Content-Length"), r.read().decode()))
            c.request("POST", "/echo", body=b"x" * 3000, headers={"Content-Type": "application/octet-stream"}); r = c.getresponse(); out.append((r.status, len(r.read())))
            c.request("GET", "/missing"); r = c.getresponse(); body = json.loads(r.read()); out.append((r.status, r.getheader("Content-Type"), body["code"], body["request_id"] == r.getheader("X-Request-Id")))
            c.request("PUT", "/echo", body=b"x"); r = c.getresponse(); r.read(); out.append((r.status, r.getheader("Allow")))
            print(json.dumps(out))
            """
        let result = try runTool(toolPath("python3")!, ["-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            == #"[[200, "hello py"], [200, "2", ""], [200, 3000], [404, "application/problem+json", "not_found", true], [405, "POST, OPTIONS"]]"#,
            "\(result.stdout)")
        // One connection for all five requests.
        #expect(server.observer.opened.count == 1)
    }
}
