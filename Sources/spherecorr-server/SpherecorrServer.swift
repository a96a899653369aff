import ArgumentParser
import CommandLineOptions
import DINOv2
import Dispatch
import Foundation
import HTTPServer
import Imaging
import Kernels
import Logging
import Runtime
import Service
import Synchronization

@main
struct SpherecorrServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spherecorr-server",
        abstract: "Semantic correspondences over HTTP: DINOv2 features, sphere maps, matches.",
        discussion: """
            Every option can also be set with an environment variable: SPHERECORR_ and the option name in capitals with \
            underscores (--max-body-bytes → SPHERECORR_MAX_BODY_BYTES). A flag wins over the variable.
            Without --backbone the server runs a built-in demo model with random weights: results are meaningless, and the \
            log, /v1/info and every X-Model-Version header say so.
            """)

    /// The defaults the help texts quote: ServiceOptions owns them.
    private static let defaults = ServiceOptions()

    @OptionGroup var backbone: BackboneOptions
    @Option(help: "Directory of sphere bundles; the newest valid *.safetensors is live and hot-reloaded. Default: demo bundle.")
    var bundles: String?
    @Option(help: "Listen address. Default \(Self.defaults.host).")
    var host: String?
    @Option(help: "Listen port. Default \(Self.defaults.port).")
    var port: Int?
    @Option(help: "PEM certificate chain: TLS 1.2/1.3 on the main listener (with --tls-key); reloaded on SIGHUP and /admin/reload. Default: plain HTTP.")
    var tlsCert: String?
    @Option(help: "PEM private key of --tls-cert.")
    var tlsKey: String?
    @Option(help: "Default letterbox resolution (a multiple of the patch size: 14 for DINOv2, 8 or 16 for DINOv1). Default \(Self.defaults.resolution).")
    var resolution: Int?
    @Option(help: "Largest ?resolution a request may ask for. Default \(Self.defaults.maxResolution).")
    var maxResolution: Int?
    @Option(help: "Largest request body in bytes. Default \(Self.defaults.maxBodyBytes).")
    var maxBodyBytes: Int?
    @Option(help: "Largest image (width × height, checked from the header before decoding). Default \(Self.defaults.maxImagePixels).")
    var maxImagePixels: Int?
    @Option(help: "Largest image file in bytes (one upload). Default \(Self.defaults.maxImageBytes).")
    var maxImageBytes: Int?
    @Option(help: "Most points in one /v1/match or /v1/transfer request. Default \(Self.defaults.maxPoints).")
    var maxPoints: Int?
    @Option(help: "Most 'target' images in one /v1/transfer request; more is 422 too_many_targets. Default \(Self.defaults.maxTargets).")
    var maxTargets: Int?
    @Option(help: "Requests that may wait, for the decode budget or the inference executor together; beyond it 503 overloaded. Default \(Self.defaults.queueSize).")
    var queueSize: Int?
    @Option(help: "Memory budget of image decodes in flight, in bytes, priced from each image's header; over it requests wait in the queue (503 overloaded when it is full), an image larger than it is 413. Default: a quarter of the machine's (or cgroup's) memory.")
    var maxDecodeBytes: Int?
    @Option(help: "Longest side of a drawn PNG answer (Accept: image/png), aspect kept. Default \(Self.defaults.maxRenderSide).")
    var maxRenderSide: Int?
    @Option(help: "Feature cache size in bytes. Default \(Self.defaults.featureCacheBytes).")
    var featureCacheBytes: Int?
    @Option(help: "Seconds between polls of the bundles directory (0: only SIGHUP and /admin/reload). Default \(Self.defaults.reloadInterval).")
    var reloadInterval: Double?
    @Option(help: "Admin listener address (POST /admin/reload). Default \(Self.defaults.adminHost).")
    var adminHost: String?
    @Option(help: "Admin listener port. Default \(Self.defaults.adminPort).")
    var adminPort: Int?
    @Option(help: "Bearer token for the admin listener. Default: random, printed in the log.")
    var adminToken: String?
    @Option(help: "Seconds to keep serving after SIGTERM before closing the listener (Kubernetes: above the readiness period). Default \(Self.defaults.drainDelay).")
    var drainDelay: Double?
    @Option(help: "Seconds to wait for in-flight requests on shutdown. Default \(Self.defaults.shutdownTimeout).")
    var shutdownTimeout: Double?
    @Option(help: "Seconds to receive a request head. Default \(Self.defaults.headerReadTimeout).")
    var headerReadTimeout: Double?
    @Option(help: "Seconds a request body may stall. Default \(Self.defaults.bodyIdleTimeout).")
    var bodyIdleTimeout: Double?
    @Option(help: "Seconds an idle keep-alive connection stays open (above a proxy's 60 s). Default \(Self.defaults.keepAliveTimeout).")
    var keepAliveTimeout: Double?
    @Option(help: "Seconds a request may take in total, queueing included. Default \(Self.defaults.requestDeadline).")
    var requestDeadline: Double?
    @Option(help: "Most concurrent connections. Default \(Self.defaults.maxConnections).")
    var maxConnections: Int?
    @Option(help: "Access log format. Default \(Self.defaults.logFormat.rawValue).")
    var logFormat: AccessLogFormat?
    @OptionGroup var engine: EngineOptions
    @Flag(inversion: .prefixedNo, help: "Serve the demo page at / (SPHERECORR_UI=true|false). Default \(Self.defaults.ui ? "on" : "off"); turn it off in production.")
    var ui: Bool?

    static func main() { mainCheckingBLASCore() }

    func run() throws {
        var o = ServiceOptions()
        let env = Environment()
        o.backbone = env.string("BACKBONE", backbone.backbone) ?? o.backbone
        o.bundlesDirectory = env.string("BUNDLES", bundles) ?? o.bundlesDirectory
        o.variant = try env.choice("VARIANT", backbone.variant) ?? o.variant
        o.patchStride = try env.int("PATCH_STRIDE", backbone.patchStride, range: 1...16) ?? o.patchStride
        o.host = env.string("HOST", host) ?? o.host
        o.port = try env.int("PORT", port, range: 0...65535) ?? o.port
        o.tlsCert = env.string("TLS_CERT", tlsCert)
        o.tlsKey = env.string("TLS_KEY", tlsKey)
        guard (o.tlsCert == nil) == (o.tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together (or SPHERECORR_TLS_CERT and SPHERECORR_TLS_KEY); got only \(o.tlsCert == nil ? "the key" : "the certificate")")
        }
        o.resolution = try env.int("RESOLUTION", resolution, range: 14...4998) ?? o.resolution
        o.maxResolution = try env.int("MAX_RESOLUTION", maxResolution, range: 14...4998) ?? o.maxResolution
        // The backbone's patch size (14 for DINOv2 and the demo model; 8 or 16 for DINOv1), read without the weights; a
        // backbone that cannot be read is reported when it loads.
        let p = o.backbone.flatMap { try? DinoVisionTransformer.peekConfig(path: $0, variant: o.variant, stride: o.patchStride).patchSize }
            ?? PatchGrid.patchSize
        guard PatchGrid(resolution: o.resolution, patch: p) != nil, PatchGrid(resolution: o.maxResolution, patch: p) != nil,
              o.resolution <= o.maxResolution else {
            throw ValidationError("resolution (\(o.resolution)) and max-resolution (\(o.maxResolution)) must be multiples of \(p), resolution ≤ max-resolution")
        }
        o.maxBodyBytes = try env.int("MAX_BODY_BYTES", maxBodyBytes, range: 1024...(1 << 31)) ?? o.maxBodyBytes
        o.maxImagePixels = try env.int("MAX_IMAGE_PIXELS", maxImagePixels, range: 196...(1 << 30)) ?? o.maxImagePixels
        o.maxImageBytes = try env.int("MAX_IMAGE_BYTES", maxImageBytes, range: 64...(1 << 31)) ?? o.maxImageBytes
        o.maxPoints = try env.int("MAX_POINTS", maxPoints, range: 1...1_000_000) ?? o.maxPoints
        o.maxTargets = try env.int("MAX_TARGETS", maxTargets, range: 1...1024) ?? o.maxTargets
        o.queueSize = try env.int("QUEUE_SIZE", queueSize, range: 0...100_000) ?? o.queueSize
        o.maxDecodeBytes = try env.int("MAX_DECODE_BYTES", maxDecodeBytes, range: (1 << 20)...(1 << 46)) ?? o.maxDecodeBytes
        o.maxRenderSide = try env.int("MAX_RENDER_SIDE", maxRenderSide, range: 16...16384) ?? o.maxRenderSide
        o.featureCacheBytes = try env.int("FEATURE_CACHE_BYTES", featureCacheBytes, range: 0...(1 << 40)) ?? o.featureCacheBytes
        o.reloadInterval = try env.double("RELOAD_INTERVAL", reloadInterval, range: 0...86400) ?? o.reloadInterval
        o.adminHost = env.string("ADMIN_HOST", adminHost) ?? o.adminHost
        o.adminPort = try env.int("ADMIN_PORT", adminPort, range: 0...65535) ?? o.adminPort
        o.adminToken = env.string("ADMIN_TOKEN", adminToken)
        o.drainDelay = try env.double("DRAIN_DELAY", drainDelay, range: 0...3600) ?? o.drainDelay
        o.shutdownTimeout = try env.double("SHUTDOWN_TIMEOUT", shutdownTimeout, range: 0...3600) ?? o.shutdownTimeout
        o.headerReadTimeout = try env.double("HEADER_READ_TIMEOUT", headerReadTimeout, range: 0.1...3600) ?? o.headerReadTimeout
        o.bodyIdleTimeout = try env.double("BODY_IDLE_TIMEOUT", bodyIdleTimeout, range: 0.1...3600) ?? o.bodyIdleTimeout
        o.keepAliveTimeout = try env.double("KEEP_ALIVE_TIMEOUT", keepAliveTimeout, range: 0.1...86400) ?? o.keepAliveTimeout
        o.requestDeadline = try env.double("REQUEST_DEADLINE", requestDeadline, range: 0.1...86400) ?? o.requestDeadline
        o.maxConnections = try env.int("MAX_CONNECTIONS", maxConnections, range: 1...1_000_000) ?? o.maxConnections
        o.logFormat = try env.choice("LOG_FORMAT", logFormat) ?? o.logFormat
        o.threads = try env.int("THREADS", engine.threads, range: 1...1024)
        o.gemm = try env.choice("GEMM", engine.gemm) ?? o.gemm
        o.kernels = try env.choice("KERNELS", engine.kernels)
        if let why = o.kernels?.unavailableReason { throw ValidationError("kernels \(why)") }
        o.precision = try env.choice("PRECISION", engine.precision) ?? o.precision
        if let why = o.precision.unavailableReason { throw ValidationError("precision \(why)") }
        if let why = Threading.incompatibility(kernels: o.kernels, precision: o.precision) { throw ValidationError(why) }
        o.ui = try env.bool("UI", ui) ?? o.ui
        if let b = o.backbone, !FileManager.default.fileExists(atPath: b) { throw ValidationError("backbone '\(b)' does not exist") }
        if let d = o.bundlesDirectory {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: d, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("bundles directory '\(d)' does not exist or is not a directory")
            }
        }

        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "spherecorr-server")
        logger.logLevel = .info
        var lines = Threading.configure(workers: o.threads, backend: o.gemm, kernels: o.kernels, precision: o.precision)
        DinoVisionTransformer.keepsReferenceWeightsByDefault = KernelFamily.current != .auto  // as EngineOptions.configure
        lines += configureServerMalloc()
        let service = SphereCorrService(options: o, logger: logger, engineLines: lines)
        do { try service.start() } catch {
            throw ValidationError("cannot start: \(error)")
        }
        // SIGTERM/SIGINT: drain and exit 0; a second one exits at once (128 + signal). SIGHUP: reload the TLS
        // certificate (when serving TLS) and the bundles.
        // One trap (a self-pipe, reliable also as PID 1) for all three; it calls onSignal for the first signal
        // and onRepeat for every later one, so the kind is told apart here.
        let stopping = StopFlag()
        let onAny: @Sendable (Int32) -> Void = { sig in
            if sig == SIGHUP {
                DispatchQueue.global().async {
                    _ = service.reloadTLS()
                    _ = service.store.reload()
                }
            } else if stopping.value.exchange(true, ordering: .acquiringAndReleasing) {
                _exit(128 + sig)
            } else {
                DispatchQueue.global().async { service.shutdown() }
            }
        }
        let trap = SignalTrap.install(signals: [SIGTERM, SIGINT, SIGHUP], onRepeat: onAny, onSignal: onAny)
        service.waitUntilStopped()
        withExtendedLifetime(trap) {}
    }
}

/// Set by the first SIGTERM/SIGINT.
final class StopFlag: Sendable { let value = Atomic<Bool>(false) }

extension AccessLogFormat: ExpressibleByArgument {}

/// Flag → SPHERECORR_* variable → nil (the caller's default). Bad variable values are errors that name them.
struct Environment {
    let values = ProcessInfo.processInfo.environment

    func string(_ name: String, _ flag: String?) -> String? { flag ?? values["SPHERECORR_\(name)"].flatMap { $0.isEmpty ? nil : $0 } }

    /// One of an enum's values, spelled as on the command line.
    func choice<T: ExpressibleByArgument & CaseIterable>(_ name: String, _ flag: T?) throws -> T? {
        if let flag { return flag }
        guard let s = string(name, nil) else { return nil }
        guard let v = T(argument: s) else {
            throw ValidationError("SPHERECORR_\(name)='\(s)' must be one of \(T.allValueStrings.joined(separator: ", "))")
        }
        return v
    }

    func bool(_ name: String, _ flag: Bool?) throws -> Bool? {
        if let flag { return flag }
        guard let s = string(name, nil) else { return nil }
        switch s.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ValidationError("SPHERECORR_\(name)='\(s)' is not a boolean (true/false, 1/0, yes/no, on/off)")
        }
    }

    func int(_ name: String, _ flag: Int?, range: ClosedRange<Int>) throws -> Int? { try number(name, flag, range: range, kind: "an integer") }

    func double(_ name: String, _ flag: Double?, range: ClosedRange<Double>) throws -> Double? { try number(name, flag, range: range, kind: "a number") }

    private func number<T: LosslessStringConvertible & Comparable>(_ name: String, _ flag: T?, range: ClosedRange<T>, kind: String) throws -> T? {
        let v: T
        if let flag { v = flag } else if let s = string(name, nil) {
            guard let x = T(s) else { throw ValidationError("SPHERECORR_\(name)='\(s)' is not \(kind)") }
            v = x
        } else { return nil }
        guard range.contains(v) else { throw ValidationError("\(name.lowercased().replacingOccurrences(of: "_", with: "-")) must be in \(range.lowerBound)...\(range.upperBound); got \(v)") }
        return v
    }
}
