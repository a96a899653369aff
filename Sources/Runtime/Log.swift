#if canImport(Glibc)
import Glibc
#endif

/// Writes one line to standard error (fd 2) without touching the C `stderr` global.
package func logToStderr(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
