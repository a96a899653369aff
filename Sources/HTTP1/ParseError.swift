/// A request the parser refuses. The connection must be closed after answering it: the parser is
/// dead from then on (every later call reports the same error).
package struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable machine-readable reasons. The raw values are part of the API (logs, metrics, tests).
    package enum Code: String, Hashable, Sendable, CaseIterable {
        // 400: request line
        case invalidRequestLine = "invalid_request_line"
        case invalidMethod = "invalid_method"
        case invalidTarget = "invalid_target"
        case invalidVersion = "invalid_version"
        // 400: line endings
        case bareCR = "bare_cr"
        case bareLF = "bare_lf"
        // 400: field lines
        case invalidHeaderName = "invalid_header_name"
        case spaceBeforeColon = "space_before_colon"
        case missingColon = "missing_colon"
        case obsFold = "obs_fold"
        case invalidHeaderValue = "invalid_header_value"
        // 400: framing (RFC 9112 §6)
        case badContentLength = "bad_content_length"
        case duplicateContentLength = "duplicate_content_length"
        case conflictingFraming = "conflicting_framing"
        case badTransferEncoding = "bad_transfer_encoding"
        case transferEncodingHTTP10 = "transfer_encoding_http10"
        // 400: Host (RFC 9112 §3.2)
        case missingHost = "missing_host"
        case duplicateHost = "duplicate_host"
        case invalidHost = "invalid_host"
        // 400: a field that allows one value given twice (RFC 9110 §5.3: Authorization, Content-Type,
        // Expect); a proxy in front may have acted on the other one.
        case duplicateField = "duplicate_field"
        // 400: chunked body (RFC 9112 §7.1)
        case badChunkSize = "bad_chunk_size"
        case badChunkExtension = "bad_chunk_extension"
        case chunkExtensionTooLarge = "chunk_extension_too_large"
        case badChunkTerminator = "bad_chunk_terminator"
        case badTrailer = "bad_trailer"
        case trailersTooLarge = "trailers_too_large"
        // 400: bytes after a message that closes the connection (Connection: close, HTTP/1.0
        // without keep-alive, CONNECT, Upgrade). The connection is closing anyway: do not answer.
        case dataAfterClose = "data_after_close"
        // 413
        case bodyTooLarge = "body_too_large"
        // 414
        case requestLineTooLong = "request_line_too_long"
        // 431
        case headerTooLarge = "header_too_large"
        case headerSectionTooLarge = "header_section_too_large"
        case tooManyHeaders = "too_many_headers"
        // 501
        case unknownMethod = "unknown_method"
        case unsupportedTransferCoding = "unsupported_transfer_coding"
        // 505
        case unsupportedVersion = "unsupported_version"

        /// The status to answer with.
        package var status: HTTPStatus {
            switch self {
            case .bodyTooLarge: .contentTooLarge
            case .requestLineTooLong: .uriTooLong
            case .headerTooLarge, .headerSectionTooLarge, .tooManyHeaders: .requestHeaderFieldsTooLarge
            case .unknownMethod, .unsupportedTransferCoding: .notImplemented
            case .unsupportedVersion: .httpVersionNotSupported
            default: .badRequest
            }
        }
    }

    package var code: Code
    /// A short human-readable explanation (safe to show to the client: it never echoes input bytes).
    package var detail: String

    package init(_ code: Code, _ detail: String = "") {
        self.code = code
        self.detail = detail.isEmpty ? code.rawValue.replacingUnderscores() : detail
    }

    package var status: HTTPStatus { code.status }

    /// The problem+json `code` of SERVICE-NOTES §4.3 for this error's status.
    package var problemCode: String {
        switch status.code {
        case 413: "payload_too_large"
        case 414: "uri_too_long"
        case 431: "headers_too_large"
        case 501: "not_implemented"
        case 505: "version_not_supported"
        default: "bad_request"
        }
    }

    package var description: String { "\(status.code) \(code.rawValue): \(detail)" }
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        String(map { $0 == "_" ? " " : $0 })
    }
}
