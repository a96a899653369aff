import CCrypto

/// SHA-256 from OpenSSL's libcrypto (EVP), for content-addressed feature caches, view-cache keys and bundle digests.
/// libcrypto picks the CPU's SHA extensions (or its AVX2 code) at run time: several times the speed of a portable
/// implementation on a 4 MB upload (scripts/bench-hash).
///
/// Non-copyable: it owns an `EVP_MD_CTX`, which a copy would share.
package struct SHA256: ~Copyable {
    private let context: OpaquePointer

    package init() {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("libcrypto: out of memory for an EVP_MD_CTX") }
        guard EVP_DigestInit_ex(ctx, EVP_sha256(), nil) == 1 else { fatalError("libcrypto: SHA-256 unavailable") }
        context = ctx
    }

    deinit { EVP_MD_CTX_free(context) }

    package mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        guard EVP_DigestUpdate(context, base, bytes.count) == 1 else { fatalError("libcrypto: EVP_DigestUpdate failed") }
    }

    package mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The 32-byte digest; the hasher is used up.
    package consuming func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &out, &length) == 1, length == 32 else { fatalError("libcrypto: EVP_DigestFinal_ex failed") }
        return out
    }

    /// Lower-case hex SHA-256 of `bytes`.
    package static func hex(_ bytes: [UInt8]) -> String {
        var h = SHA256()
        h.update(bytes)
        return hexString(h.finalize())
    }

    private static func hexString(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(2 * digest.count)
        for b in digest { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
