import Foundation
import Glibc
import HTTP1
import HTTPServer
import Testing

/// A throwaway CA and a leaf for 127.0.0.1/localhost made with the openssl CLI, in a temporary directory.
struct TestPKI {
    let directory: String
    var caCertificate: String { directory + "/ca.pem" }

    init() throws {
        directory = NSTemporaryDirectory() + "spherecorr-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                     "-subj", "/CN=SphereCorr test CA", "-keyout", directory + "/ca.key", "-out", caCertificate])
        try leaf("leaf", commonName: "first")
    }

    /// A leaf signed by the CA: `<name>.pem` and `<name>.key`.
    @discardableResult
    func leaf(_ name: String, commonName: String) throws -> TLSConfiguration {
        let ext = directory + "/\(name).ext"
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: ext, atomically: true, encoding: .utf8)
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=\(commonName)",
                     "-keyout", directory + "/\(name).key", "-out", directory + "/\(name).csr"])
        try openssl(["x509", "-req", "-in", directory + "/\(name).csr", "-CA", caCertificate, "-CAkey", directory + "/ca.key",
                     "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", directory + "/\(name).pem"])
        return configuration(name)
    }

    func configuration(_ name: String) -> TLSConfiguration {
        TLSConfiguration(certificateFile: directory + "/\(name).pem", keyFile: directory + "/\(name).key")
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    private func openssl(_ arguments: [String]) throws {
        let tool = try #require(toolPath("openssl"), "the TLS tests need the openssl CLI (scripts/install-deps installs it)")
        let r = try runTool(tool, arguments)
        try #require(r.status == 0, "openssl \(arguments.joined(separator: " ")): \(r.stderr)")
    }
}

@Suite("TLS", .serialized, .timeLimit(.minutes(2)))
struct TLSTests {
    @Test("certificates that cannot be used are refused, naming the file and why")
    func loadErrors() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let good = pki.configuration("leaf")
        func failure(_ c: TLSConfiguration) -> TLSLoadError? {
            do { _ = try TLSCertificates(c); return nil } catch { return error }
        }
        let missing = try #require(failure(TLSConfiguration(certificateFile: pki.directory + "/nope.pem", keyFile: good.keyFile)))
        #expect(missing.file == pki.directory + "/nope.pem" && missing.reason.contains("No such file"))

        let garbage = pki.directory + "/garbage.pem"
        try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let notPEM = try #require(failure(TLSConfiguration(certificateFile: garbage, keyFile: good.keyFile)))
        #expect(notPEM.file == garbage && notPEM.description.contains("not a PEM certificate chain"))

        let badKey = try #require(failure(TLSConfiguration(certificateFile: good.certificateFile, keyFile: garbage)))
        #expect(badKey.file == garbage && badKey.reason.contains("not a PEM private key"))

        try pki.leaf("other", commonName: "other")
        let mismatch = try #require(failure(TLSConfiguration(certificateFile: good.certificateFile, keyFile: pki.directory + "/other.key")))
        #expect(mismatch.file == pki.directory + "/other.key" && mismatch.reason.contains("does not match"))
        #expect(failure(good) == nil)
    }

    @Test("reload: a good file swaps the certificate; a bad one keeps the old and records the error")
    func reload() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let certificates = try TLSCertificates(pki.configuration("leaf"))
        #expect(certificates.status.subject == "CN=first" && certificates.status.lastReloadError == nil)
        #expect(certificates.status.notAfter > Int64(Date().timeIntervalSince1970))

        try FileManager.default.removeItem(atPath: pki.directory + "/leaf.pem")
        guard case .failure(let error) = certificates.reload() else { Issue.record("reload of a missing file succeeded"); return }
        #expect(error.file == pki.directory + "/leaf.pem")
        #expect(certificates.status.subject == "CN=first")
        #expect(certificates.status.lastReloadError == error.description)

        try pki.leaf("leaf", commonName: "second")
        guard case .success(let status) = certificates.reload() else { Issue.record("reload failed"); return }
        #expect(status.subject == "CN=second" && certificates.status.lastReloadError == nil)
    }

    @Test("curl over TLS: keep-alive, a 1 MiB upload and a 3 MiB download cross many records; HTTP/1.1 by ALPN")
    func transfers() throws {
        let curl = try #require(toolPath("curl"))
        let pki = try TestPKI()
        defer { pki.remove() }
        let certificates = try TLSCertificates(pki.configuration("leaf"))
        let server = try TestServer(configure: { $0.tls = certificates })
        defer { server.stop() }
        let base = "https://127.0.0.1:\(server.port)"
        let upload = pki.directory + "/upload.bin"
        _ = FileManager.default.createFile(atPath: upload, contents: Data(repeating: 0x61, count: 1 << 20))
        // --next separates transfers (options are per transfer); curl reuses the connection across them.
        let common = ["-sS", "--cacert", pki.caCertificate, "-w", "|%{http_version}|%{num_connects}\\n"]
        let r = try runTool(curl, common + ["\(base)/livez", "\(base)/hello?name=tls", "--next"] + common
                            + ["--data-binary", "@\(upload)", "-H", "Content-Type: application/octet-stream", "\(base)/upload", "--next"]
                            + common + ["-o", pki.directory + "/big.out", "\(base)/big?kb=3072"], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ok|1.1|1"), "\(r.stdout)")
        #expect(r.stdout.contains("hello tls|1.1|0"), "the second request reused the connection: \(r.stdout)")
        #expect(r.stdout.contains("\(1 << 20) bytes|1.1|0"), "\(r.stdout)")
        let big = try Data(contentsOf: URL(fileURLWithPath: pki.directory + "/big.out"))
        #expect(big.count == 3072 * 1024 && big.allSatisfy { $0 == UInt8(ascii: "x") })
        #expect(server.observer.tlsFailures.isEmpty)
    }

    @Test("a plain-HTTP request on the TLS port gets a close, counted as http_request")
    func plainHTTP() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let certificates = try TLSCertificates(pki.configuration("leaf"))
        let server = try TestServer(configure: { $0.tls = certificates })
        defer { server.stop() }
        let connection = try RawConnection(port: server.port)
        connection.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        let (closed, extra) = connection.waitForClose()
        #expect(closed)
        #expect(!extra.starts(with: Array("HTTP/".utf8)), "no plaintext answer")
        #expect(eventually(within: 2) { server.observer.tlsFailures == [.httpRequest] }, "\(server.observer.tlsFailures)")
    }

    @Test("a handshake that stalls is closed after the header timeout, counted as timeout")
    func stalledHandshake() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let certificates = try TLSCertificates(pki.configuration("leaf"))
        let server = try TestServer(configure: {
            $0.tls = certificates
            $0.limits.headerReadTimeout = .milliseconds(500)
        })
        defer { server.stop() }
        let connection = try RawConnection(port: server.port, timeout: 5)
        // The first 5 bytes of a ClientHello record header, then nothing.
        connection.send([0x16, 0x03, 0x01, 0x02, 0x00])
        let start = now()
        let (closed, _) = connection.waitForClose()
        let waited = now() - start
        #expect(closed && waited < 3, "closed after \(waited) s")
        #expect(eventually(within: 2) { server.observer.tlsFailures == [.timeout] }, "\(server.observer.tlsFailures)")
        #expect(eventually(within: 2) { server.server.openConnections == 0 })
    }
}
