import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a file so that readers see either nothing or the whole file: a temporary file in the same
/// directory, fsync, then rename (CONTRACTS: how bundles are published; also used for every output file).
package enum AtomicFile {
    package static func write(_ bytes: [UInt8], to url: URL) throws {
        let dir = url.deletingLastPathComponent().path
        let tmp = "\(dir.isEmpty ? "." : dir)/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TensorFileError.io(file: url.path, detail: "cannot create: \(String(cString: strerror(errno)))") }
        var ok = false
        defer { if !ok { unlink(tmp) } }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = String(cString: strerror(errno)); close(fd)
                throw TensorFileError.io(file: url.path, detail: "write failed: \(e)")
            }
            offset += n
        }
        guard fsync(fd) == 0 else {
            let e = String(cString: strerror(errno)); close(fd)
            throw TensorFileError.io(file: url.path, detail: "fsync failed: \(e)")
        }
        close(fd)
        guard rename(tmp, url.path) == 0 else {
            throw TensorFileError.io(file: url.path, detail: "rename failed: \(String(cString: strerror(errno)))")
        }
        ok = true
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
