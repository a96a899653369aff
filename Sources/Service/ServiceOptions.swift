import DINOv2
import Foundation
import HTTP1
import HTTPServer
import Kernels

/// Everything the service can be told (flags and SPHERECORR_* variables; see spherecorr-server --help).
package struct ServiceOptions: Sendable {
    package var host = "0.0.0.0"
    package var port = 8080
    /// nil: the built-in demo model.
    package var backbone: String?
    package var variant: DinoConfig.Variant?
    /// nil: the demo bundle (or none with a real backbone: then it is an error).
    package var bundlesDirectory: String?
    package var resolution = 448
    package var maxResolution = 1036
    package var maxBodyBytes = 32 << 20
    package var maxImagePixels = 40_000_000
    package var maxImageBytes = 16 << 20
    package var maxPoints = 10_000
    package var maxParts = 8
    /// Most `target` parts of one /v1/transfer request (its multipart limit grows to fit them).
    package var maxTargets = 16
    package var queueSize = 16
    /// Bytes of image decodes in flight (issue #16); nil: `DecodeBudget.defaultCapacity()`.
    package var maxDecodeBytes: Int? = nil
    package var maxRenderSide = 2048
    package var featureCacheBytes = 512 << 20
    package var reloadInterval = 2.0
    package var adminHost = "127.0.0.1"
    package var adminPort = 8081
    package var adminToken: String?
    package var drainDelay = 0.0
    package var shutdownTimeout = 20.0
    package var headerReadTimeout = 15.0
    package var bodyIdleTimeout = 30.0
    package var keepAliveTimeout = 75.0
    package var requestDeadline = 120.0
    package var responseWriteTimeout = 30.0
    package var maxConnections = 1024
    package var logFormat: AccessLogFormat = .text
    package var threads: Int?
    package var gemm: GEMMBackend = .default
    /// nil: the best the CPU supports (avx2 when it has AVX2+FMA).
    package var kernels: KernelFamily? = nil
    package var demoSeed: UInt64 = 0
    /// The demo page at / (issue #15); off in production deployments that expose only the API.
    package var ui = true

    package init() {}

    package var serverConfiguration: ServerConfiguration {
        var c = ServerConfiguration(host: host, port: port)
        c.limits.headerReadTimeout = .milliseconds(Int(headerReadTimeout * 1000))
        c.limits.bodyIdleTimeout = .milliseconds(Int(bodyIdleTimeout * 1000))
        c.limits.keepAliveIdleTimeout = .milliseconds(Int(keepAliveTimeout * 1000))
        c.limits.requestDeadline = .milliseconds(Int(requestDeadline * 1000))
        c.limits.responseWriteTimeout = .milliseconds(Int(responseWriteTimeout * 1000))
        c.limits.maxConnections = maxConnections
        c.limits.parser.maxBodySize = maxBodyBytes
        c.accessLogFormat = logFormat
        return c
    }

    /// Limits and timeouts under self-describing keys, for /v1/info.
    package var limitsDescription: [String: Any] {
        ["max_body_bytes": maxBodyBytes, "max_image_bytes": maxImageBytes, "max_image_pixels": maxImagePixels, "min_image_side_px": 14, "max_points": maxPoints,
         "max_multipart_parts": maxParts, "max_targets": maxTargets, "default_resolution": resolution, "max_resolution": maxResolution,
         "inference_queue_size": queueSize, "max_decode_bytes": maxDecodeBytes ?? DecodeBudget.defaultCapacity(),
         "max_render_side_px": maxRenderSide, "feature_cache_bytes": featureCacheBytes, "max_connections": maxConnections,
         "header_read_timeout_s": headerReadTimeout, "body_idle_timeout_s": bodyIdleTimeout, "keep_alive_timeout_s": keepAliveTimeout,
         "request_deadline_s": requestDeadline, "response_write_timeout_s": responseWriteTimeout,
         "drain_delay_s": drainDelay, "shutdown_timeout_s": shutdownTimeout, "bundle_poll_interval_s": reloadInterval]
    }
}
