// Minimal Hummingbird 2 app for the HTTP benchmark: `HummingbirdLivez <port>` serves GET /livez → 200 "ok"
// on 127.0.0.1 with Hummingbird's defaults (requests are logged at debug level only, so not at all).
import Hummingbird

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 8081 : 8081
let router = Router()
router.get("/livez") { _, _ in "ok" }
let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: port))
)
try await app.runService()
