// `HTTPServerBench <port> [event-loops] [cert.pem key.pem]`: our HTTPServer on 127.0.0.1 serving GET /livez → 200
// "ok" on the event loop, as the service registers it; with a certificate and key, over TLS (as --tls-cert/--tls-key).
// SIGTERM/SIGINT shut it down gracefully (SignalTrap), which also makes this binary the manual PID-1 check
// (`unshare --pid --fork`).
import Dispatch
import Foundation
import HTTP1
import HTTPServer
import Logging

let arguments = CommandLine.arguments
guard [2, 3, 5].contains(arguments.count), let port = Int(arguments[1]), (0...65535).contains(port),
    arguments.count == 2 || Int(arguments[2]).map({ $0 > 0 }) == true
else {
    FileHandle.standardError.write("usage: HTTPServerBench <port> [event-loops [cert.pem key.pem]]   (serves GET /livez on 127.0.0.1)\n".data(using: .utf8)!)
    exit(2)
}
var configuration = ServerConfiguration(host: "127.0.0.1", port: port)
if arguments.count > 2, let loops = Int(arguments[2]) { configuration.eventLoopCount = loops }
if arguments.count == 5 {
    do {
        configuration.tls = try TLSCertificates(TLSConfiguration(certificateFile: arguments[3], keyFile: arguments[4]))
    } catch {
        FileHandle.standardError.write("HTTPServerBench: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
}
configuration.accessLogFormat = .off

var router = Router()
router.get("/livez", execution: .eventLoop) { _ in .text("ok") }

var logger = Logger(label: "HTTPServerBench")
logger.logLevel = .warning
let server = Server(configuration: configuration, router: router, logger: logger)
try server.start()
let trap = SignalTrap.install { _ in
    server.shutdown(grace: .seconds(5))
}
withExtendedLifetime(trap) {
    server.waitUntilStopped()
}
FileHandle.standardError.write("HTTPServerBench: stopped after \(trap.signalsReceived) signal(s)\n".data(using: .utf8)!)
