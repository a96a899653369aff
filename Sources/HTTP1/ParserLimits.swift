/// Size limits of `RequestParser`. Every limit is inclusive: a value of exactly the limit is
/// accepted and one byte (or field) more is rejected with the status noted on the property.
package struct ParserLimits: Hashable, Sendable {
    /// Bytes of the request line, excluding its CRLF. Empty lines (CRLF) received before a request
    /// line (RFC 9112 §2.2) count towards it too. Over the limit → 414 `request_line_too_long`.
    package var maxRequestLineSize: Int = 8 * 1024
    /// Bytes of one field line (name, colon, value, excluding CRLF). Over → 431 `header_too_large`.
    package var maxHeaderLineSize: Int = 8 * 1024
    /// Bytes of the whole field section: every field line including its CRLF, without the request
    /// line and without the final empty line. Over → 431 `header_section_too_large`.
    package var maxHeaderSectionSize: Int = 32 * 1024
    /// Number of field lines. Over → 431 `too_many_headers`.
    package var maxHeaderCount: Int = 100
    /// Default body limit for each request (the router may change it per request with
    /// `RequestParser.bodyLimit` after the head). A larger Content-Length → 413 before any body
    /// byte is read; a chunked body is counted as its chunk headers arrive → 413 `body_too_large`.
    package var maxBodySize: Int = 32 * 1024 * 1024
    /// Bytes of a chunk line after the chunk size (the extensions, excluding CRLF).
    /// Over → 400 `chunk_extension_too_large`.
    package var maxChunkExtensionSize: Int = 1024
    /// Bytes of the trailer section after the last chunk (each line including its CRLF, without the
    /// final empty line). Over → 400 `trailers_too_large`.
    package var maxTrailerSectionSize: Int = 8 * 1024

    package init() {}

    package init(
        maxRequestLineSize: Int = 8 * 1024,
        maxHeaderLineSize: Int = 8 * 1024,
        maxHeaderSectionSize: Int = 32 * 1024,
        maxHeaderCount: Int = 100,
        maxBodySize: Int = 32 * 1024 * 1024,
        maxChunkExtensionSize: Int = 1024,
        maxTrailerSectionSize: Int = 8 * 1024
    ) {
        self.maxRequestLineSize = maxRequestLineSize
        self.maxHeaderLineSize = maxHeaderLineSize
        self.maxHeaderSectionSize = maxHeaderSectionSize
        self.maxHeaderCount = maxHeaderCount
        self.maxBodySize = maxBodySize
        self.maxChunkExtensionSize = maxChunkExtensionSize
        self.maxTrailerSectionSize = maxTrailerSectionSize
    }
}

/// Policy switches of `RequestParser` that are not sizes.
package struct ParserOptions: Hashable, Sendable {
    /// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without exactly one Host.
    /// Only tests that replay Host-less vectors turn this off.
    package var requireHost: Bool = true

    /// Methods the parser accepts; any other well-formed token method → 501 `unknown_method`
    /// (SERVICE-NOTES S8). `nil` accepts every token. Methods are case-sensitive.
    package var knownMethods: Set<String>? = ParserOptions.registeredMethods

    package init() {}

    package init(requireHost: Bool = true, knownMethods: Set<String>? = ParserOptions.registeredMethods) {
        self.requireHost = requireHost
        self.knownMethods = knownMethods
    }

    /// The IANA HTTP Method Registry (RFC 9110, WebDAV, QUERY, ...) plus the methods llhttp knows for
    /// HTTP/1.x (M-SEARCH, NOTIFY, SUBSCRIBE, UNSUBSCRIBE, PURGE, SOURCE). `PRI` is left out: it is the
    /// HTTP/2 connection preface, not a request.
    package static let registeredMethods: Set<String> = [
        "ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "CONNECT", "COPY", "DELETE", "GET", "HEAD",
        "LABEL", "LINK", "LOCK", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL", "MKREDIRECTREF", "MKWORKSPACE",
        "MOVE", "OPTIONS", "ORDERPATCH", "PATCH", "POST", "PROPFIND", "PROPPATCH", "PUT", "QUERY", "REBIND",
        "REPORT", "SEARCH", "TRACE", "UNBIND", "UNCHECKOUT", "UNLINK", "UNLOCK", "UPDATE", "UPDATEREDIRECTREF",
        "VERSION-CONTROL",
        "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PURGE", "SOURCE",
    ]
}
