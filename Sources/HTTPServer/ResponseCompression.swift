import Gzip
import HTTP1

/// Which responses the server sends with `Content-Encoding: gzip` (issue #13). Text formats only: JSON (matches,
/// tensors as JSON, problems), text (Prometheus `/metrics`) and YAML (`/openapi.yaml`) shrink several-fold; PNG,
/// .npy, safetensors and raw float32 are already compressed or near-random and are never touched.
package struct CompressionPolicy: Sendable, Hashable {
    /// Bodies below this many bytes go out as they are: under about a kilobyte the gzip wrapper, the Vary
    /// bookkeeping and the CPU cost more than the few bytes saved (nginx's advice for gzip_min_length is the same
    /// order). Also the bound above which `Vary: Accept-Encoding` is sent.
    package var minimumBytes = 1024
    package var level: Int32 = Gzip.defaultLevel

    package init() {}

    /// `text/*`, `application/json`, `application/*+json` (problem+json), `application/yaml`; parameters ignored.
    package func isCompressible(contentType: String?) -> Bool {
        guard let contentType else { return false }
        let mediaType = trimOWS(contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            .lowercased()
        return mediaType.hasPrefix("text/") || mediaType == "application/json" || mediaType == "application/yaml"
            || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json"))
    }

    /// gzips `response` in place when `acceptEncoding` allows it (`AcceptEncoding.negotiate`) and the response is
    /// compressible: a body-carrying status, a compressible type, at least `minimumBytes`, no coding yet. Every
    /// such response says `Vary: Accept-Encoding`, gzipped or not, so a cache keeps the two apart. The compressed
    /// body replaces the original only when it is smaller, so a response never grows past its uncompressed size
    /// (the size limits that hold for it hold for the gzip form too). A strong `ETag` becomes weak on the gzip form
    /// (RFC 9110 §8.8.1: a strong validator names one exact byte sequence), as nginx does; If-None-Match compares
    /// weakly (§13.1.2), so revalidation still answers 304.
    package func apply(acceptEncoding: String?, to response: inout Response) {
        guard response.status.mayHaveBody, response.body.count >= minimumBytes,
              !response.headers.contains("Content-Encoding"),
              isCompressible(contentType: response.headers["Content-Type"]) else { return }
        if !response.headers.containsToken("Accept-Encoding", in: "Vary") && !response.headers.containsToken("*", in: "Vary") {
            if let vary = response.headers["Vary"] {
                response.headers.replaceOrAdd(name: "Vary", value: vary + ", Accept-Encoding")
            } else {
                response.headers.append(name: "Vary", value: "Accept-Encoding")
            }
        }
        guard AcceptEncoding.negotiate(acceptEncoding) == .gzip,
              let compressed = try? Gzip.compress(response.body, level: level), compressed.count < response.body.count
        else { return }
        response.body = compressed
        response.headers.append(name: "Content-Encoding", value: ContentCoding.gzip.rawValue)
        if let etag = response.headers["ETag"], !etag.hasPrefix("W/") {
            response.headers.replaceOrAdd(name: "ETag", value: "W/" + etag)
        }
    }
}
