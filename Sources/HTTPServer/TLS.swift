import CTLS
import Foundation
import Glibc
import Synchronization

/// Where the main listener's certificate chain and private key live (PEM files).
package struct TLSConfiguration: Sendable, Hashable {
    package var certificateFile: String
    package var keyFile: String

    package init(certificateFile: String, keyFile: String) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

/// A certificate or key that could not be loaded: the file, and why (OpenSSL's reason when it has one).
package struct TLSLoadError: Error, Hashable, Sendable, CustomStringConvertible {
    package var file: String
    package var reason: String

    package var description: String { "\(file): \(reason)" }
}

/// Why a TLS handshake did not complete (the `reason` label of `spherecorr_tls_handshake_failures_total`).
package enum TLSHandshakeFailure: String, Sendable, CaseIterable {
    /// Plain HTTP sent to the TLS port.
    case httpRequest = "http_request"
    /// TLS 1.0/1.1 or SSLv3 offered (refused: TLS 1.2 is the minimum).
    case unsupportedProtocol = "unsupported_protocol"
    /// No cipher suite in common (the client offered only weak ones).
    case noSharedCipher = "no_shared_cipher"
    /// ALPN offered without http/1.1.
    case noApplicationProtocol = "no_application_protocol"
    /// The client sent an alert, e.g. it does not trust the certificate.
    case clientAlert = "client_alert"
    /// Bytes that are not TLS records.
    case malformed
    /// The client closed the connection before the handshake finished.
    case eof
    /// The handshake did not finish within the header timeout.
    case timeout
    case other
}

/// An `SSL_CTX` built from the configured files: TLS 1.2/1.3, the cipher and ALPN policy of `spc_tls_server_ctx_new`.
/// Connections hold their own reference (`SSL_new` counts it), so freeing this after a reload never affects them.
final class TLSContext: @unchecked Sendable {
    let pointer: OpaquePointer
    let subject: String
    /// The leaf certificate's notAfter, Unix seconds (0 when unknown).
    let notAfter: Int64

    private init(pointer: OpaquePointer) {
        self.pointer = pointer
        var buffer = [CChar](repeating: 0, count: 512)
        let n = spc_tls_ctx_subject(pointer, &buffer, Int32(buffer.count))
        subject = n > 0 ? String(decoding: buffer.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        notAfter = Int64(spc_tls_ctx_not_after(pointer))
    }

    deinit { SSL_CTX_free(pointer) }

    /// Loads the chain and the key and checks that they belong together. Errors name the file at fault.
    static func load(_ configuration: TLSConfiguration) throws(TLSLoadError) -> TLSContext {
        for file in [configuration.certificateFile, configuration.keyFile] {
            guard access(file, R_OK) == 0 else {
                throw TLSLoadError(file: file, reason: String(cString: strerror(errno)))
            }
        }
        ERR_clear_error()
        guard let ctx = spc_tls_server_ctx_new() else {
            throw TLSLoadError(file: configuration.certificateFile, reason: "cannot create a TLS context: \(openSSLError())")
        }
        var owned = true
        defer { if owned { SSL_CTX_free(ctx) } }
        guard SSL_CTX_use_certificate_chain_file(ctx, configuration.certificateFile) == 1 else {
            throw TLSLoadError(file: configuration.certificateFile, reason: "not a PEM certificate chain: \(openSSLError())")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, configuration.keyFile, SSL_FILETYPE_PEM) == 1 else {
            // OpenSSL already compares a key with the loaded certificate here ("key values mismatch").
            let detail = openSSLError()
            throw TLSLoadError(file: configuration.keyFile, reason: detail.contains("values mismatch")
                ? "the key does not match the certificate in \(configuration.certificateFile): \(detail)"
                : "not a PEM private key: \(detail)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSLoadError(file: configuration.keyFile,
                               reason: "the key does not match the certificate in \(configuration.certificateFile): \(openSSLError())")
        }
        owned = false
        return TLSContext(pointer: ctx)
    }
}

/// The oldest OpenSSL error queued on this thread as text (the root cause; later entries are the callers'
/// wrappers, e.g. "PEM lib"); clears the queue.
func openSSLError() -> String {
    let first = ERR_get_error()
    ERR_clear_error()
    guard first != 0 else { return "unknown error" }
    var buffer = [CChar](repeating: 0, count: 256)
    ERR_error_string_n(first, &buffer, buffer.count)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// What `/v1/info` shows of the certificate in use.
package struct TLSStatus: Sendable, Hashable {
    package var configuration: TLSConfiguration
    package var subject: String
    package var notAfter: Int64
    package var loadedAt: Date
    /// The last reload that failed (the previous certificate kept serving); nil once one succeeds.
    package var lastReloadError: String?
}

/// The main listener's certificate, reloadable while serving (SIGHUP, /admin/reload). A reload builds a whole
/// new context and swaps it in under the lock: new connections take the new one, existing connections keep the
/// context they were created with until they close. A reload that fails keeps the old context and records why.
package final class TLSCertificates: Sendable {
    private struct State {
        var context: TLSContext
        var status: TLSStatus
    }

    private let state: Mutex<State>

    /// Loads the certificate and key now; throws naming the file when either cannot be used.
    package init(_ configuration: TLSConfiguration) throws(TLSLoadError) {
        let context = try TLSContext.load(configuration)
        state = Mutex(State(context: context, status: TLSStatus(configuration: configuration, subject: context.subject,
                                                                notAfter: context.notAfter, loadedAt: Date(),
                                                                lastReloadError: nil)))
    }

    package var status: TLSStatus { state.withLock { $0.status } }

    /// Reads the files again. On failure the current certificate stays and the error is kept for `status`.
    @discardableResult
    package func reload() -> Result<TLSStatus, TLSLoadError> {
        let configuration = state.withLock { $0.status.configuration }
        do {
            let context = try TLSContext.load(configuration)
            return .success(state.withLock { state in
                state.context = context
                state.status = TLSStatus(configuration: configuration, subject: context.subject, notAfter: context.notAfter,
                                         loadedAt: Date(), lastReloadError: nil)
                return state.status
            })
        } catch {
            state.withLock { $0.status.lastReloadError = error.description }
            return .failure(error)
        }
    }

    /// A server-side session on `fd` with the current context, or nil when OpenSSL cannot allocate one.
    func session(fd: Int32) -> TLSSession? {
        state.withLock { TLSSession(context: $0.context.pointer, fd: fd) }
    }
}

/// One connection's TLS state (`SSL *`), confined to its event loop like the `Connection` that owns it.
/// Non-blocking: every call returns at once, saying whether it waits for the socket to become readable or
/// writable. Reads and writes are the plaintext; the socket carries the records.
final class TLSSession {
    enum HandshakeStep: Equatable {
        case done
        case wantRead
        case wantWrite
        case failed(TLSHandshakeFailure, String)
    }

    private let ssl: OpaquePointer
    private(set) var established = false
    /// The last read stopped because the socket must become writable (or the last write because it must become
    /// readable): the event loop then also listens for that direction and retries the blocked call.
    private(set) var readWantsWrite = false
    private(set) var writeWantsRead = false
    private var shutdownSent = false

    init?(context: OpaquePointer, fd: Int32) {
        guard let ssl = SSL_new(context) else { return nil }
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            return nil
        }
        SSL_set_accept_state(ssl)
        self.ssl = ssl
    }

    deinit { SSL_free(ssl) }

    /// Plaintext already decrypted inside OpenSSL: epoll cannot see it, so the reader drains it before waiting.
    var pending: Int { Int(SSL_pending(ssl)) }

    /// The negotiated protocol version, e.g. "TLSv1.3".
    var version: String { String(cString: SSL_get_version(ssl)) }

    func handshake() -> HandshakeStep {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            established = true
            return .done
        }
        let error = SSL_get_error(ssl, result)
        switch error {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_SYSCALL, SSL_ERROR_ZERO_RETURN:
            let code = ERR_peek_error()
            if code == 0 {
                ERR_clear_error()
                return .failed(.eof, "connection closed during the handshake")
            }
            return .failed(Self.classify(code), openSSLError())
        default:
            let code = ERR_peek_error()
            return .failed(Self.classify(code), openSSLError())
        }
    }

    /// One `SSL_read` into `buffer`. `.endOfFile` for close_notify or a bare TCP FIN (SSL_OP_IGNORE_UNEXPECTED_EOF);
    /// a protocol error throws (the caller closes, as for a reset).
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SocketError) -> IOOutcome {
        ERR_clear_error()
        let n = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        readWantsWrite = false
        if n > 0 { return .transferred(Int(n)) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ: return .wouldBlock
        case SSL_ERROR_WANT_WRITE:
            readWantsWrite = true
            return .wouldBlock
        case SSL_ERROR_ZERO_RETURN: return .endOfFile
        case SSL_ERROR_SYSCALL where ERR_peek_error() == 0:
            let code = errno
            if n == 0 || code == 0 { return .endOfFile }
            throw SocketError(operation: "SSL_read", errno: code)
        default:
            ERR_clear_error()
            throw SocketError(operation: "SSL_read", errno: EPROTO)
        }
    }

    /// One `SSL_write` (partial writes allowed; a retry after `.wouldBlock` may pass a moved buffer).
    func write(_ bytes: UnsafeRawBufferPointer) throws(SocketError) -> IOOutcome {
        if bytes.isEmpty { return .transferred(0) }
        ERR_clear_error()
        let n = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
        writeWantsRead = false
        if n > 0 { return .transferred(Int(n)) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_WRITE: return .wouldBlock
        case SSL_ERROR_WANT_READ:
            writeWantsRead = true
            return .wouldBlock
        case SSL_ERROR_SYSCALL where ERR_peek_error() == 0:
            throw SocketError(operation: "SSL_write", errno: errno == 0 ? EPIPE : errno)
        default:
            ERR_clear_error()
            throw SocketError(operation: "SSL_write", errno: EPROTO)
        }
    }

    /// Sends close_notify once, without waiting for the peer's (RFC 8446 §6.1 allows a half-close).
    func shutdown() {
        guard established, !shutdownSent else { return }
        shutdownSent = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// The failure label of an OpenSSL error code from a handshake.
    static func classify(_ code: UInt) -> TLSHandshakeFailure {
        let reason = spc_err_reason(code)
        switch reason {
        case SSL_R_HTTP_REQUEST, SSL_R_HTTPS_PROXY_REQUEST: return .httpRequest
        case SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_WRONG_SSL_VERSION, SSL_R_VERSION_TOO_LOW, SSL_R_NO_PROTOCOLS_AVAILABLE:
            return .unsupportedProtocol
        case SSL_R_NO_SHARED_CIPHER: return .noSharedCipher
        case SSL_R_NO_APPLICATION_PROTOCOL: return .noApplicationProtocol
        case SSL_R_UNEXPECTED_EOF_WHILE_READING: return .eof
        case SSL_R_WRONG_VERSION_NUMBER, SSL_R_PACKET_LENGTH_TOO_LONG, SSL_R_RECORD_LENGTH_MISMATCH, SSL_R_LENGTH_MISMATCH,
             SSL_R_BAD_PACKET_LENGTH, SSL_R_UNEXPECTED_MESSAGE, SSL_R_UNEXPECTED_RECORD, SSL_R_BAD_RECORD_TYPE,
             SSL_R_ENCRYPTED_LENGTH_TOO_LONG, SSL_R_DATA_LENGTH_TOO_LONG:
            return .malformed
        default:
            // Alerts from the peer are SSL_AD_REASON_OFFSET (1000) + the alert number.
            return reason >= SSL_AD_REASON_OFFSET ? .clientAlert : .other
        }
    }
}
