import Foundation
import HTTPServer
import Prometheus
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The service's Prometheus metrics (SERVICE-NOTES §4.6): names with base units, `_total` counters, seconds,
/// low-cardinality labels only (route templates, methods, status codes, stages, reasons).
package final class ServiceMetrics: ServerObserver, Sendable {
    package let registry = PrometheusCollectorRegistry()
    private let durationBuckets: [Duration] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60].map { .milliseconds(Int($0 * 1000)) }
    private let byteBuckets: [Double] = [256, 1024, 4096, 16384, 65536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864]

    private let connectionsOpen: Gauge
    private let connectionsTotal: Counter
    package let queueDepth: Gauge
    package let inflight: Gauge
    package let queueWait: DurationHistogram
    private let batchSize: ValueHistogram
    package let cancelled: Counter
    private let cacheHits: Counter
    private let cacheMisses: Counter
    private let cacheBytes: Gauge
    private let lastReloadSuccess: Gauge
    private let modelInfo = Mutex<Gauge?>(nil)

    package init(buildVersion: String) {
        connectionsOpen = registry.makeGauge(name: "spherecorr_http_connections_open", help: "Open client connections.")
        connectionsTotal = registry.makeCounter(name: "spherecorr_http_connections_total", help: "Client connections accepted.")
        queueDepth = registry.makeGauge(name: "spherecorr_inference_queue_depth", help: "Requests waiting for the inference executor.")
        inflight = registry.makeGauge(name: "spherecorr_inference_inflight", help: "Inference passes executing (0 or 1).")
        queueWait = registry.makeDurationHistogram(name: "spherecorr_inference_queue_wait_seconds", buckets: durationBuckets,
                                                   help: "Time requests waited for the inference executor.")
        batchSize = registry.makeValueHistogram(name: "spherecorr_inference_batch_size", buckets: [1, 2, 4, 8, 16],
                                                help: "Images per backbone pass.")
        cancelled = registry.makeCounter(name: "spherecorr_requests_cancelled_total", help: "Queued requests dropped because the client disconnected.")
        cacheHits = registry.makeCounter(name: "spherecorr_feature_cache_hits_total", help: "Images whose features came from the cache.")
        cacheMisses = registry.makeCounter(name: "spherecorr_feature_cache_misses_total", help: "Images embedded by the backbone.")
        cacheBytes = registry.makeGauge(name: "spherecorr_feature_cache_bytes", help: "Bytes of features held by the cache.")
        lastReloadSuccess = registry.makeGauge(name: "spherecorr_model_last_reload_success_timestamp_seconds",
                                               help: "Unix time of the last successful bundle load.")
        registry.makeGauge(name: "spherecorr_build_info", labels: [("version", buildVersion), ("swift", "6")],
                           help: "Build information (value 1).").set(Double(1))
        // Zeroed series so that /metrics is complete before the first request (SERVICE-NOTES O3).
        for r in ["success", "failure"] { _ = reloads(r) }
        for r in ["overloaded", "deadline", "too_large", "not_ready", "draining"] { _ = rejected(r) }
        for s in ["decode", "backbone", "mapper", "match"] { _ = stageDuration(s) }
    }

    // MARK: Series created on demand (bounded label sets).

    private func rejected(_ reason: String) -> Counter {
        registry.makeCounter(name: "spherecorr_requests_rejected_total", labels: [("reason", reason)],
                             help: "Requests refused: overloaded, deadline, too_large, not_ready, draining.")
    }

    private func reloads(_ result: String) -> Counter {
        registry.makeCounter(name: "spherecorr_model_reloads_total", labels: [("result", result)], help: "Bundle loads by result.")
    }

    private func stageDuration(_ stage: String) -> DurationHistogram {
        registry.makeDurationHistogram(name: "spherecorr_inference_duration_seconds", labels: [("stage", stage)], buckets: durationBuckets,
                                       help: "Time per inference stage: decode, backbone, mapper, match.")
    }

    package func recordRejected(_ reason: String) { rejected(reason).increment() }

    package func recordStages(_ t: StageTimes, images: Int) {
        for (s, v) in [("decode", t.decode), ("backbone", t.backbone), ("mapper", t.mapper), ("match", t.match)] where v > 0 {
            stageDuration(s).recordNanoseconds(Int64(v * 1e9))
        }
        if t.backbone > 0 { batchSize.record(Double(images)) }
        if t.queue > 0 || t.backbone > 0 { queueWait.recordNanoseconds(Int64(t.queue * 1e9)) }
    }

    package func recordCache(_ cache: FeatureCache, hits: Int, misses: Int) {
        if hits > 0 { cacheHits.increment(by: Int64(hits)) }
        if misses > 0 { cacheMisses.increment(by: Int64(misses)) }
        cacheBytes.set(Double(cache.stats.bytes))
    }

    package func recordReload(_ event: ReloadEvent, snapshot: ModelSnapshot?) {
        guard event.result != .unchanged else { return }
        reloads(event.result.rawValue).increment()
        if event.result == .success { lastReloadSuccess.set(Date().timeIntervalSince1970) }
        if let snapshot { setModel(snapshot) }
    }

    /// `spherecorr_model_info{backbone, mapper_version, bundle_sha} 1`, replacing the previous series.
    package func setModel(_ s: ModelSnapshot) {
        let g = registry.makeGauge(name: "spherecorr_model_info",
                                   labels: [("backbone", s.backboneName), ("mapper_version", s.bundleFile ?? "demo"),
                                            ("bundle_sha", String(s.bundleSHA256.prefix(16)))],
                                   help: "The live model (value 1).")
        let old = modelInfo.withLock { m -> Gauge? in let o = m; m = g; return o }
        if let old, old !== g { registry.unregisterGauge(old) }
        g.set(Double(1))
        if s.bundleFile != nil || s.demo { lastReloadSuccess.set(s.loadedAt.timeIntervalSince1970) }
    }

    // MARK: ServerObserver

    package func connectionOpened(peer: SocketAddress) { connectionsOpen.increment(); connectionsTotal.increment() }
    package func connectionClosed(peer: SocketAddress, requests: Int) { connectionsOpen.decrement() }

    package func requestCompleted(_ c: RequestCompletion) {
        let route = c.route ?? "unmatched"
        registry.makeCounter(name: "spherecorr_http_requests_total", labels: [("route", route), ("method", c.method), ("code", String(c.status))],
                             help: "HTTP requests answered.").increment()
        registry.makeDurationHistogram(name: "spherecorr_http_request_duration_seconds", labels: [("route", route)], buckets: durationBuckets,
                                       help: "Time from the first request byte to the response.").record(c.duration)
        registry.makeValueHistogram(name: "spherecorr_http_request_body_bytes", labels: [("route", route)], buckets: byteBuckets,
                                    help: "Request body sizes.").record(Double(c.requestBodyBytes))
        registry.makeValueHistogram(name: "spherecorr_http_response_body_bytes", labels: [("route", route)], buckets: byteBuckets,
                                    help: "Response body sizes.").record(Double(c.responseBodyBytes))
        if c.status == 413 { recordRejected("too_large") }
    }

    package func requestRejected(_ reason: RejectionReason, status: Int?, peer: SocketAddress) {
        registry.makeCounter(name: "spherecorr_http_parse_errors_total", labels: [("kind", reason.label)],
                             help: "Requests or connections refused by the HTTP layer, by kind.").increment()
    }

    /// The exposition, plus process_* figures read from /proc at scrape time.
    package func exposition(queue: InferenceQueue, budget: DecodeBudget? = nil) -> [UInt8] {
        queueDepth.set(Double(queue.depth))
        inflight.set(Double(queue.inflight))
        var out = registry.emitToBuffer()
        if let budget { out += Array(ServiceMetrics.decodeText(budget).utf8) }
        out += Array(ProcessMetrics.text().utf8)
        return out
    }

    /// The decode budget's figures (issue #16), read from the budget itself at scrape time.
    static func decodeText(_ b: DecodeBudget) -> String {
        let refused = b.refused
        var lines = [
            "# HELP spherecorr_decode_budget_bytes The image decode budget (--max-decode-bytes).",
            "# TYPE spherecorr_decode_budget_bytes gauge",
            "spherecorr_decode_budget_bytes \(b.capacity)",
            "# HELP spherecorr_decode_bytes_in_flight Bytes of image decodes admitted and not finished (drawing copies included).",
            "# TYPE spherecorr_decode_bytes_in_flight gauge",
            "spherecorr_decode_bytes_in_flight \(b.inFlight)",
            "# HELP spherecorr_decode_queue_depth Requests waiting for room in the decode budget.",
            "# TYPE spherecorr_decode_queue_depth gauge",
            "spherecorr_decode_queue_depth \(b.waiting)",
            "# HELP spherecorr_decode_admissions_refused_total Decodes refused by the budget: overloaded, deadline, too_large.",
            "# TYPE spherecorr_decode_admissions_refused_total counter",
        ]
        for reason in ["overloaded", "deadline", "too_large"] {
            lines.append("spherecorr_decode_admissions_refused_total{reason=\"\(reason)\"} \(refused[reason] ?? 0)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// process_* metrics (Prometheus client conventions), read from /proc.
enum ProcessMetrics {
    /// Clock ticks per second of /proc times (USER_HZ).
    static let ticksPerSecond: Double = { let t = sysconf(Int32(_SC_CLK_TCK)); return t > 0 ? Double(t) : 100 }()

    /// The real start of the process: /proc/self/stat field 22 (starttime, ticks after boot) plus the boot time
    /// (`btime` of /proc/stat), as the Prometheus client libraries compute it. Not the time of the first scrape.
    static let startTime: Double = {
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")"),
           let procStat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
           let btimeLine = procStat.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
           let btime = Double(btimeLine.dropFirst(6).trimmingCharacters(in: .whitespaces)) {
            // Fields after "pid (comm) ": state is field 3, so field n is at index n - 3.
            let f = stat[stat.index(after: close)...].split(separator: " ")
            if f.count > 19, let ticks = Double(f[19]) { return btime + ticks / ticksPerSecond }
        }
        return Date().timeIntervalSince1970
    }()

    static func text() -> String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ value: Double) {
            lines += ["# HELP \(name) \(help)", "# TYPE \(name) \(type)", "\(name) \(value)"]
        }
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
           let kb = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({ Double($0) }) {
            metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", kb * 1024)
        }
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            let f = stat[stat.index(after: close)...].split(separator: " ")
            if f.count > 13, let u = Double(f[11]), let s = Double(f[12]) {
                metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", (u + s) / ticksPerSecond)
            }
        }
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            metric("process_open_fds", "gauge", "Number of open file descriptors.", Double(fds.count))
        }
        var rl = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 {
            metric("process_max_fds", "gauge", "Maximum number of open file descriptors.", Double(rl.rlim_cur))
        }
        metric("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", startTime)
        return lines.joined(separator: "\n") + "\n"
    }
}
