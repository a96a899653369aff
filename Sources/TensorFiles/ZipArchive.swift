import Foundation
import Gzip
#if canImport(Glibc)
import Glibc
#endif

/// The entries of a ZIP archive (PKWARE APPNOTE 6.3), memory-mapped: what torch.save writes since torch 1.6.
/// Reads the central directory (ZIP64 end records and per-entry ZIP64 extra fields for archives over 4 GiB),
/// STORED entries as views of the mapping, DEFLATE entries inflated on demand. Every offset is checked against
/// the file, so a truncated or damaged archive is an error naming the file, never a crash.
package final class ZipArchive: @unchecked Sendable {
    package struct Entry: Sendable {
        package var name: String
        package var method: UInt16
        package var compressedSize: Int
        package var size: Int
        /// Offset of the entry's local header.
        package var headerOffset: Int
    }

    package let path: String
    package let entries: [String: Entry]
    let base: UnsafeRawPointer
    let length: Int

    package init(contentsOf url: URL) throws {
        let path = url.path
        let (p, size) = try mapReadOnly(path, minimumBytes: 22, what: "a ZIP archive")
        self.path = path
        self.base = p
        self.length = size
        do { self.entries = try Self.readDirectory(base: base, length: size, path: path) } catch {
            munmap(UnsafeMutableRawPointer(mutating: p), size); throw error
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }

    private static func readDirectory(base: UnsafeRawPointer, length: Int, path: String) throws -> [String: Entry] {
        func fail(_ d: String) -> TensorFileError { .invalid(file: path, detail: d) }
        func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
        func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        func u64(_ o: Int) throws -> Int {
            let v = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt64.self))
            guard v <= UInt64(Int.max) else { throw fail("ZIP64 field at byte \(o) out of range") }
            return Int(v)
        }
        // End of central directory: the last 22 bytes unless a comment (≤ 65535 bytes) follows it.
        var eocd = -1
        var o = length - 22
        while o >= max(0, length - 22 - 65535) {
            if u32(o) == 0x0605_4b50 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else {
            let head = length >= 4 ? u32(0) : 0
            if head == 0x0403_4b50 { throw fail("truncated or damaged ZIP archive: no end of central directory record") }
            if base.load(as: UInt8.self) == 0x80 {
                throw fail("a legacy (pre-1.6) torch.save file, not a ZIP archive: re-save it with torch ≥ 1.6 (torch.save(torch.load(f), f))")
            }
            throw fail("not a ZIP archive (torch.save files since torch 1.6 are ZIP archives)")
        }
        var count = u16(eocd + 10), dirSize = u32(eocd + 12), dirOffset = u32(eocd + 16)
        // ZIP64: a locator just before the end record points at the ZIP64 end record with 64-bit fields.
        if eocd >= 20, u32(eocd - 20) == 0x0706_4b50 {
            let z = try u64(eocd - 20 + 8)
            guard z <= length - 56, u32(z) == 0x0606_4b50 else { throw fail("damaged ZIP64 end of central directory record") }
            count = try u64(z + 32); dirSize = try u64(z + 40); dirOffset = try u64(z + 48)
        } else if count == 0xFFFF || dirSize == 0xFFFF_FFFF || dirOffset == 0xFFFF_FFFF {
            throw fail("ZIP64 archive without its ZIP64 end of central directory locator")
        }
        guard dirOffset <= length, dirSize <= length - dirOffset else {
            throw fail("central directory (\(dirSize) bytes at \(dirOffset)) lies outside the file (\(length) bytes): truncated?")
        }
        var entries: [String: Entry] = [:]
        var p = dirOffset
        let end = dirOffset + dirSize
        for _ in 0..<count {
            guard p + 46 <= end, u32(p) == 0x0201_4b50 else { throw fail("damaged central directory entry at byte \(p)") }
            let method = UInt16(u16(p + 10))
            var csize = u32(p + 20), usize = u32(p + 24)
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32)
            var offset = u32(p + 42)
            guard p + 46 + nameLen + extraLen + commentLen <= end else { throw fail("damaged central directory entry at byte \(p)") }
            let name = String(decoding: UnsafeRawBufferPointer(start: base + p + 46, count: nameLen), as: UTF8.self)
            // ZIP64 extra field (id 1): the 64-bit values of exactly the fields saturated at 0xFFFFFFFF, in this order.
            var x = p + 46 + nameLen
            let xEnd = x + extraLen
            while x + 4 <= xEnd {
                let id = u16(x), n = u16(x + 2)
                guard x + 4 + n <= xEnd else { throw fail("'\(name)': damaged extra field") }
                if id == 1 {
                    var f = x + 4
                    func next() throws -> Int {
                        guard f + 8 <= x + 4 + n else { throw fail("'\(name)': ZIP64 extra field too short") }
                        defer { f += 8 }
                        return try u64(f)
                    }
                    if usize == 0xFFFF_FFFF { usize = try next() }
                    if csize == 0xFFFF_FFFF { csize = try next() }
                    if offset == 0xFFFF_FFFF { offset = try next() }
                }
                x += 4 + n
            }
            entries[name] = Entry(name: name, method: method, compressedSize: csize, size: usize, headerOffset: offset)
            p += 46 + nameLen + extraLen + commentLen
        }
        return entries
    }

    /// The bytes of entry `name`: a view of the mapping (STORED) or inflated (DEFLATE); `body` must not keep the pointer
    /// unless the caller keeps this archive alive.
    package func withBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let e = entries[name] else { throw TensorFileError.invalid(file: path, detail: "no entry '\(name)' in the archive") }
        let data = try dataOffset(e)
        switch e.method {
        case 0:
            guard e.compressedSize == e.size else { throw TensorFileError.invalid(file: path, detail: "'\(name)': stored sizes disagree") }
            return try body(UnsafeRawBufferPointer(start: base + data, count: e.size))
        case 8:
            let bytes: [UInt8]
            do { bytes = try Gzip.inflateRaw(UnsafeRawBufferPointer(start: base + data, count: e.compressedSize), expectedBytes: e.size) } catch {
                throw TensorFileError.invalid(file: path, detail: "'\(name)': \(error)")
            }
            return try bytes.withUnsafeBytes(body)
        default:
            throw TensorFileError.invalid(file: path, detail: "'\(name)': compression method \(e.method) (only stored and deflate are read)")
        }
    }

    /// A pointer into the mapping for a STORED entry (nil for compressed ones): valid while this archive lives.
    package func storedBytes(_ name: String) throws -> UnsafeRawBufferPointer? {
        guard let e = entries[name] else { throw TensorFileError.invalid(file: path, detail: "no entry '\(name)' in the archive") }
        let data = try dataOffset(e)
        return e.method == 0 && e.compressedSize == e.size ? UnsafeRawBufferPointer(start: base + data, count: e.size) : nil
    }

    /// Start of an entry's data: after its local header, whose name and extra lengths may differ from the central ones.
    private func dataOffset(_ e: Entry) throws -> Int {
        func fail(_ d: String) -> TensorFileError { .invalid(file: path, detail: "'\(e.name)': \(d)") }
        guard e.headerOffset <= length - 30,
              UInt32(littleEndian: base.loadUnaligned(fromByteOffset: e.headerOffset, as: UInt32.self)) == 0x0403_4b50 else {
            throw fail("no local header at byte \(e.headerOffset): truncated or damaged archive")
        }
        let n = Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: e.headerOffset + 26, as: UInt16.self)))
        let x = Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: e.headerOffset + 28, as: UInt16.self)))
        let data = e.headerOffset + 30 + n + x
        guard data <= length, e.compressedSize <= length - data else {
            throw fail("\(e.compressedSize) bytes at \(data) run past the end of the file (\(length) bytes): truncated archive")
        }
        return data
    }
}
