import HTTP1
import HTTPServer
import Hashing

/// The demo page (issue #15, README "The demo page"): web/index.html, ui.js and ui.css, embedded by
/// scripts/gen-web-swift (WebAssets.swift). The page speaks only the public API (/v1/match, /v1/sphere-map, /v1/info)
/// with relative URLs, so it works under any path prefix behind a proxy.
enum WebUI {
    /// One embedded file and its validator.
    struct Asset: Sendable {
        let path: String
        let contentType: String
        let body: [UInt8]
        /// Strong ETag: the first 128 bits of the SHA-256 of the bytes (they change only with the binary).
        let etag: String

        init(path: String, contentType: String, text: String) {
            self.path = path
            self.contentType = contentType
            body = Array(text.utf8)
            var h = SHA256()
            h.update(body)
            etag = "\"" + String(SHA256.hex(h.finalize()).prefix(32)) + "\""
        }
    }

    static let assets = [
        Asset(path: "/", contentType: "text/html; charset=utf-8", text: webIndexHTML),
        Asset(path: "/ui.js", contentType: "text/javascript; charset=utf-8", text: webScript),
        Asset(path: "/ui.css", contentType: "text/css; charset=utf-8", text: webStyleSheet),
    ]

    /// No inline script or style, nothing from another origin; images are the user's files (blob:) and the
    /// server's PNG answers (fetched, then blob:); `data:` only for the empty favicon. No framing, no form posts.
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        + "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    /// Revalidate every time (`no-cache`): a new binary may carry a new page, and a 304 costs one round trip.
    static let cacheControl = "no-cache"

    static func register(on router: inout Router) {
        for asset in assets {
            router.get(asset.path, execution: .eventLoop) { request in
                response(asset, ifNoneMatch: request.headers["If-None-Match"])
            }
        }
    }

    /// 200 with the bytes, or 304 when `If-None-Match` names the current ETag (RFC 9110 §13.1.2, §15.4.5: a 304
    /// carries the ETag and Cache-Control the 200 would have).
    static func response(_ asset: Asset, ifNoneMatch: String?) -> Response {
        var h: HTTPHeaders = ["ETag": asset.etag, "Cache-Control": cacheControl]
        if let inm = ifNoneMatch, EntityTag.ifNoneMatch(inm, matches: asset.etag) {
            return Response(status: .notModified, headers: h)
        }
        h.append(name: "Content-Type", value: asset.contentType)
        h.append(name: "Content-Security-Policy", value: contentSecurityPolicy)
        h.append(name: "X-Content-Type-Options", value: "nosniff")
        h.append(name: "Referrer-Policy", value: "no-referrer")
        return Response(status: .ok, headers: h, body: asset.body)
    }
}
