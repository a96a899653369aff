import Foundation
import HTTP1
import HTTPServer
import Logging
import Synchronization
import Testing

/// Captures log records (a LogHandler for one Logger, no global bootstrap).
struct CapturingLogHandler: LogHandler {
    final class Store: Sendable {
        let records = Mutex<[(Logger.Level, String, Logger.Metadata?)]>([])
    }

    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        store.records.withLock { $0.append((event.level, event.message.description, event.metadata)) }
    }
}

@Suite("Access log", .timeLimit(.minutes(1)))
struct AccessLogTests {
    func serve(format: AccessLogFormat, _ body: (Int) throws -> Void) throws -> [(Logger.Level, String, Logger.Metadata?)] {
        let store = CapturingLogHandler.Store()
        var logger = Logger(label: "access") { _ in CapturingLogHandler(store: store) }
        logger.logLevel = .info
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.accessLogFormat = format
        configuration.eventLoopCount = 1
        var router = Router()
        router.post("/echo") { request in Response(status: .ok, body: request.body) }
        let server = Server(configuration: configuration, router: router, logger: logger)
        try server.start()
        try body(server.localAddress!.port)
        server.shutdown(grace: .seconds(2))
        return store.records.withLock { $0 }.filter { $0.1.contains("/echo") || $0.1.contains("/nope") }
    }

    @Test("text: one line per request, fields as metadata")
    func text() throws {
        let records = try serve(format: .text) { port in
            _ = try exchange(port, "POST /echo HTTP/1.1\r\nHost: x\r\nX-Request-Id: log-1\r\nContent-Length: 3\r\n\r\nabc")
            _ = try exchange(port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        }
        #expect(records.count == 2)
        let (level, message, metadata) = try #require(records.first)
        #expect(level == .info)
        #expect(message == "POST /echo 200")
        #expect(metadata?["request_id"] == "log-1")
        #expect(metadata?["route"] == "/echo")
        #expect(metadata?["status"]?.description == "200")
        #expect(metadata?["bytes_in"]?.description == "3")
        #expect(metadata?["bytes_out"]?.description == "3")
        #expect(metadata?["peer"]?.description.hasPrefix("127.0.0.1:") == true)
        #expect(metadata?["duration_ms"] != nil)
        #expect(records.last?.1 == "GET /nope 404")
        #expect(records.last?.2?["route"] == "-")
    }

    @Test("json: one JSON object per request")
    func json() throws {
        let records = try serve(format: .json) { port in
            _ = try exchange(port, "POST /echo HTTP/1.1\r\nHost: x\r\nX-Request-Id: log-2\r\nContent-Length: 2\r\n\r\nhi")
        }
        let line = try #require(records.first?.1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["request_id"] as? String == "log-2")
        #expect(object["method"] as? String == "POST")
        #expect(object["route"] as? String == "/echo")
        #expect(object["status"] as? Int == 200)
        #expect(object["bytes_out"] as? Int == 2)
        #expect(object["duration_ms"] is Double)
        #expect((object["peer"] as? String)?.hasPrefix("127.0.0.1:") == true)
    }

    @Test("off: no access lines")
    func off() throws {
        let records = try serve(format: .off) { port in
            _ = try exchange(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        }
        #expect(records.isEmpty)
    }
}
