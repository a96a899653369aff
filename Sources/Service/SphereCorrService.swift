import DINOv2
import Dispatch
import Foundation
import HTTP1
import HTTPServer
import Kernels
import Logging
import Runtime
import SphereMap
import Synchronization
import SPair

package let serviceVersion = "0.1.0"

/// The composition root: listeners, routes, model store, inference queue, metrics, lifecycle.
package final class SphereCorrService: Sendable {
    package let options: ServiceOptions
    package let logger: Logger
    package let readiness = Readiness()
    package let metrics = ServiceMetrics(buildVersion: serviceVersion)
    package let store: ModelStore
    package let pipeline: Pipeline
    private let servers = Mutex<(main: Server?, admin: Server?)>((nil, nil))
    private let engineLines: [String]
    private let adminToken: String
    private let stopped = DispatchSemaphore(value: 0)

    package init(options: ServiceOptions, logger: Logger, engineLines: [String]) {
        self.options = options
        self.logger = logger
        self.engineLines = engineLines
        let metrics = self.metrics
        store = ModelStore(bundlesDirectory: options.bundlesDirectory, logger: logger) { event, snap in
            metrics.recordReload(event, snapshot: snap)
        }
        // One bound for every wait of a request: for the decode budget and for the inference executor.
        let room = WaitingRoom(capacity: options.queueSize)
        pipeline = Pipeline(store: store, cache: FeatureCache(capacityBytes: options.featureCacheBytes),
                            queue: InferenceQueue(maxQueue: options.queueSize, room: room),
                            budget: DecodeBudget(capacity: options.maxDecodeBytes ?? DecodeBudget.defaultCapacity(), room: room),
                            limits: PipelineLimits(maxImagePixels: options.maxImagePixels, maxImageBytes: options.maxImageBytes, minImageSide: 14,
                                                   defaultResolution: options.resolution, maxResolution: options.maxResolution,
                                                   maxRenderSide: options.maxRenderSide))
        adminToken = options.adminToken ?? (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined()
    }

    /// The main listener's address once started (port 0 → the real port).
    package var address: SocketAddress? { servers.withLock { $0.main?.localAddress } }
    package var adminAddress: SocketAddress? { servers.withLock { $0.admin?.localAddress } }

    /// Binds and serves /livez at once, then loads the model in the background and becomes ready.
    package func start() throws {
        // Every response carries X-Model-Version. An inference response sets it itself from the snapshot it
        // computed with, so a reload finishing mid-request never labels old results with the new version.
        let hook: ResponseHook = { [store] _, response in
            if !response.headers.contains("X-Model-Version") {
                response.headers.append(name: "X-Model-Version", value: store.snapshot?.version ?? "loading")
            }
        }
        let main = Server(configuration: options.serverConfiguration, router: router(), logger: logger, observer: metrics,
                          responseHook: hook)
        try main.start()
        var adminConfig = ServerConfiguration(host: options.adminHost, port: options.adminPort)
        adminConfig.accessLogFormat = options.logFormat
        let admin = Server(configuration: adminConfig, router: adminRouter(), logger: logger, responseHook: hook)
        do { try admin.start() } catch {
            main.shutdown(grace: .zero)
            throw error
        }
        servers.withLock { $0 = (main, admin) }
        logger.info("listening", metadata: ["address": "\(main.localAddress.map { "\($0)" } ?? "?")",
                                            "admin": "\(admin.localAddress.map { "\($0)" } ?? "?")"])
        if options.adminToken == nil {
            logger.notice("admin token generated for this run (set SPHERECORR_ADMIN_TOKEN to choose one)", metadata: ["token": "\(adminToken)"])
        }
        for line in engineLines { logger.info("\(line)") }
        DispatchQueue(label: "spherecorr.load").async { [self] in load() }
    }

    /// Loads the backbone and the bundles; readiness follows.
    private func load() {
        let t0 = Measure.now()
        do {
            let backbone: DinoVisionTransformer
            let name: String
            let demo = options.backbone == nil
            if let path = options.backbone {
                backbone = try DinoVisionTransformer.load(path: path, variant: options.variant)
                name = backbone.config.displayName
            } else {
                backbone = DinoVisionTransformer.random(config: SphereCorrService.demoConfig, seed: options.demoSeed, source: "built-in demo")
                name = "demo-random-vit(D=\(SphereCorrService.demoConfig.embedDim),L=\(SphereCorrService.demoConfig.depth))"
                logger.warning("NO BACKBONE GIVEN: serving the built-in demo model with random weights. Results are meaningless until --backbone (and --bundles) point at real weights.")
            }
            logger.info("backbone loaded", metadata: ["backbone": "\(name)", "seconds": "\(String(format: "%.2f", Measure.now() - t0))"])
            readiness.set(.warming)
            let demoBundle = options.bundlesDirectory == nil || demo
                ? SphereBundle.initialised(backboneDim: backbone.config.embedDim, categories: SPairCategories.all, seed: options.demoSeed)
                : nil
            try store.start(backbone: backbone, backboneName: name, demoBundle: demoBundle, demo: demo)
            // Warm-up at the default resolution: pages the weights in and sizes the allocator.
            let t1 = Measure.now()
            let r = options.resolution
            let img = [Float](repeating: 0, count: 3 * r * r)
            let f = img.withUnsafeBufferPointer { backbone.forward(images: $0.baseAddress!, batch: 1, height: r, width: r) }
            _ = store.snapshot!.bundle.mapper.sphere(features: f.features.pointer, batch: 1, tokens: f.patches)
            logger.info("warm-up done", metadata: ["resolution": "\(r)", "seconds": "\(String(format: "%.2f", Measure.now() - t1))"])
            metrics.setModel(store.snapshot!)
            store.watch(every: options.reloadInterval)
            if readiness.current.phase == .warming { readiness.set(.ready) }
            logger.info("ready", metadata: ["model_version": "\(store.snapshot!.version)"])
        } catch {
            readiness.set(.failed, detail: "\(error)")
            logger.critical("model load failed; /readyz stays 503", metadata: ["error": "\(error)"])
        }
    }

    /// SIGTERM (SERVICE-NOTES §4.4): /readyz 503 at once while requests are still served for drain_delay (the load
    /// balancer needs that long to stop sending); then the listener closes, in-flight and queued requests finish
    /// (a match's second queue pass included) up to shutdown_timeout, and what is left is answered 503 draining.
    package func shutdown() {
        readiness.set(.draining)
        logger.info("shutting down", metadata: ["drain_delay_s": "\(options.drainDelay)", "shutdown_timeout_s": "\(options.shutdownTimeout)"])
        if options.drainDelay > 0 { Thread.sleep(forTimeInterval: options.drainDelay) }
        store.stopWatching()
        let (main, admin) = servers.withLock { $0 }
        main?.shutdown(grace: .milliseconds(Int(options.shutdownTimeout * 1000)))
        // Only now: anything still trying to queue belongs to a connection the server has already closed.
        pipeline.queue.drain()
        admin?.shutdown(grace: .seconds(1))
        logger.info("stopped")
        stopped.signal()
    }

    package func waitUntilStopped() { stopped.wait() }

    // MARK: Routes

    private func router() -> Router {
        var r = Router()
        let endpoints = Endpoints(pipeline: pipeline, metrics: metrics,
                                  multipartLimits: MultipartLimits(maxParts: options.maxParts, maxPartSize: options.maxBodyBytes),
                                  maxPoints: options.maxPoints, maxTargets: options.maxTargets, readiness: readiness)
        r.get("/livez", execution: .eventLoop) { _ in .json(Array(#"{"status":"ok"}"#.utf8)) }
        r.get("/readyz", execution: .eventLoop) { [readiness] _ in
            let (phase, detail) = readiness.current
            if phase == .ready { return .json(Array(#"{"status":"ready"}"#.utf8)) }
            let code = phase == .draining ? "draining" : (phase == .failed ? "model_load_failed" : phase.rawValue)
            throw HTTPError.serviceUnavailable(code: code, detail: "not ready: \(phase.rawValue)" + (detail.map { " (\($0))" } ?? ""))
        }
        r.get("/metrics", execution: .eventLoop) { [metrics, pipeline] _ in
            Response(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"],
                     body: metrics.exposition(queue: pipeline.queue, budget: pipeline.budget))
        }
        r.get("/v1/info", execution: .eventLoop) { [self] _ in
            .json([UInt8]((try? JSONSerialization.data(withJSONObject: info(), options: [.sortedKeys, .prettyPrinted])) ?? Data()))
        }
        r.get("/openapi.yaml", execution: .eventLoop) { _ in
            Response(status: .ok, headers: ["Content-Type": "application/yaml"], body: Array(openAPIDocument.utf8))
        }
        if options.ui { WebUI.register(on: &r) }
        // The head checks (query, Accept, Content-Type) refuse a request before its body is read or 100 Continue sent.
        r.post("/v1/features", maxBodyBytes: options.maxBodyBytes, headCheck: Endpoints.headCheck(endpoints.featuresHead)) { try endpoints.features($0) }
        r.post("/v1/sphere-map", maxBodyBytes: options.maxBodyBytes, headCheck: Endpoints.headCheck(endpoints.sphereMapHead)) { try endpoints.sphereMap($0) }
        r.post("/v1/match", maxBodyBytes: options.maxBodyBytes, headCheck: Endpoints.headCheck(endpoints.matchHead)) { try endpoints.match($0) }
        r.post("/v1/transfer", maxBodyBytes: options.maxBodyBytes, headCheck: Endpoints.headCheck(endpoints.transferHead)) { try endpoints.transfer($0) }
        return r
    }

    private func adminRouter() -> Router {
        var r = Router()
        let token = adminToken
        r.post("/admin/reload", maxBodyBytes: 1024, headCheck: { head in
            head.headers["Authorization"] == "Bearer \(token)" ? nil
                : HTTPError(status: HTTPStatus(code: 401), code: "unauthorized", detail: "POST /admin/reload needs 'Authorization: Bearer <admin token>'",
                            headers: ["WWW-Authenticate": "Bearer"])
        }) { [store] _ in
            guard store.snapshot != nil else {
                throw HTTPError.serviceUnavailable(code: "model_not_ready", detail: "the first model is still loading; reload after /readyz is 200")
            }
            let e = store.reload()
            if e.result == .failure {
                // The old bundle keeps serving; say so, and why the new one was refused.
                throw HTTPError(status: .unprocessableContent, code: "reload_failed", title: "Bundle rejected",
                                detail: "\(e.file ?? "bundles directory"): \(e.error ?? "invalid"); the previous bundle keeps serving",
                                extensions: ["file": .string(e.file ?? ""), "model_version": .string(store.snapshot?.version ?? "")])
            }
            let body: [String: Any] = ["result": e.result.rawValue, "file": e.file ?? NSNull(), "error": e.error ?? NSNull(),
                                       "model_version": store.snapshot?.version ?? NSNull()]
            return .json([UInt8]((try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()))
        }
        return r
    }

    /// /v1/info: what is serving, every limit and timeout, the engine.
    package func info() -> [String: Any] {
        let s = store.snapshot
        var out: [String: Any] = [
            "service": "spherecorr", "version": serviceVersion, "ready": readiness.current.phase.rawValue,
            "limits": options.limitsDescription.merging(["max_decode_bytes": pipeline.budget.capacity]) { $1 },
            "engine": ["kernels": KernelFamily.current.rawValue, "gemm_backend": GEMM.backend.rawValue, "blas_core": BLASCore.name, "threads": Parallel.workers],
            "last_reload_error": store.lastReloadError ?? NSNull(),
            "bundles_directory": options.bundlesDirectory ?? NSNull(),
        ]
        if let s {
            let c = s.backbone.config
            out["model_version"] = s.version
            out["demo"] = s.demo
            if s.demo { out["warning"] = "built-in demo model with random weights: results are meaningless until real weights are given (--backbone, --bundles)" }
            out["backbone"] = ["name": s.backboneName, "variant": c.variant?.rawValue ?? NSNull(), "embed_dim": c.embedDim, "depth": c.depth,
                               "heads": c.heads, "registers": c.registers, "source": s.backbone.source, "patch_size": c.patchSize]
            out["bundle"] = ["file": s.bundleFile ?? NSNull(), "version": s.bundle.metadata["version"] ?? NSNull(), "sha256": s.bundleSHA256,
                             "metadata": s.bundle.metadata, "categories": s.bundle.categories,
                             "loaded_at": ISO8601DateFormatter().string(from: s.loadedAt)]
        }
        out["feature_cache"] = { let c = pipeline.cache.stats; return ["hits": c.hits, "misses": c.misses, "bytes": c.bytes, "entries": c.entries] }()
        return out
    }

    /// A tiny ViT for `make serve` without weights: deterministic, quick on two cores.
    package static let demoConfig = DinoConfig(embedDim: 192, depth: 4, heads: 3, ffn: .mlp, registers: 0)
}
