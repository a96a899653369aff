import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// safetensors: 8-byte little-endian header length N, N bytes of JSON
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the data;
/// offsets are relative to the end of the header. The header is validated as hostile input.
package enum SafeTensorsDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    package var byteSize: Int {
        switch self {
        case .u8, .i8, .bool: 1
        case .f16, .bf16, .i16: 2
        case .f32, .i32: 4
        case .f64, .i64: 8
        }
    }
}

package struct TensorInfo: Sendable, Equatable {
    package var dtype: SafeTensorsDType
    package var shape: [Int]
    /// Byte range inside the data section.
    package var begin: Int
    package var end: Int
    package var count: Int { shape.reduce(1, *) }
}

/// A safetensors file, memory-mapped. F32 tensors are viewed in place (no copy) when aligned.
/// Immutable after init; the mapping lives as long as this object.
package final class SafeTensorsFile: @unchecked Sendable {
    package let path: String
    package let metadata: [String: String]
    package let tensors: [String: TensorInfo]
    private let base: UnsafeRawPointer
    private let length: Int
    private let dataStart: Int
    private let unmapOnDeinit: Bool
    private let ownedBytes: UnsafeMutableRawPointer?

    package var names: [String] { tensors.keys.sorted() }

    /// Maps `url` read-only.
    package convenience init(contentsOf url: URL) throws {
        let path = url.path
        let (p, size) = try mapReadOnly(path, minimumBytes: 8, what: "a safetensors header")
        try self.init(path: path, base: p, length: size, mapped: true, owned: nil)
    }

    /// Parses an in-memory buffer (copied).
    package convenience init(bytes: [UInt8], name: String = "<memory>") throws {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        do {
            try self.init(path: name, base: UnsafeRawPointer(p), length: bytes.count, mapped: false, owned: p)
        } catch {
            p.deallocate(); throw error
        }
    }

    private init(path: String, base: UnsafeRawPointer, length: Int, mapped: Bool, owned: UnsafeMutableRawPointer?) throws {
        func fail(_ detail: String) -> TensorFileError {
            if mapped { munmap(UnsafeMutableRawPointer(mutating: base), length) }
            return .invalid(file: path, detail: detail)
        }
        guard length >= 8 else { throw fail("too short for a safetensors header") }
        let n = base.loadUnaligned(as: UInt64.self).littleEndian
        guard n <= UInt64(length - 8) else { throw fail("header length \(n) exceeds file size \(length)") }
        guard n <= 100_000_000 else { throw fail("header length \(n) is unreasonably large") }
        let headerLen = Int(n)
        let headerData = Data(bytes: base + 8, count: headerLen)
        guard let json = try? JSONSerialization.jsonObject(with: headerData), let dict = json as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var tensors: [String: TensorInfo] = [:]
        let dataLen = length - 8 - headerLen
        for (key, value) in dict {
            if key == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw fail("__metadata__ value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let t = value as? [String: Any] else { throw fail("entry '\(key)' is not an object") }
            guard let ds = t["dtype"] as? String, let dtype = SafeTensorsDType(rawValue: ds) else {
                throw fail("tensor '\(key)': unsupported or missing dtype \(t["dtype"].map { "\($0)" } ?? "nil")")
            }
            guard let shapeAny = t["shape"] as? [Any] else { throw fail("tensor '\(key)': missing shape") }
            var shape: [Int] = []
            for d in shapeAny {
                guard let num = d as? NSNumber, num.doubleValue == Double(num.int64Value), num.int64Value >= 0,
                      num.int64Value < Int64(Int32.max) else { throw fail("tensor '\(key)': bad dimension \(d)") }
                shape.append(num.intValue)
            }
            guard let offs = t["data_offsets"] as? [Any], offs.count == 2,
                  let b = (offs[0] as? NSNumber)?.int64Value, let e = (offs[1] as? NSNumber)?.int64Value,
                  b >= 0, e >= b, e <= Int64(dataLen)
            else { throw fail("tensor '\(key)': data_offsets outside the data section (\(dataLen) bytes)") }
            var count = 1
            for d in shape {
                let (m, o) = count.multipliedReportingOverflow(by: d)
                guard !o else { throw fail("tensor '\(key)': shape \(shape) overflows") }
                count = m
            }
            let (bytes, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !o, bytes == Int(e - b) else {
                throw fail("tensor '\(key)': \(dtype.rawValue) \(shape) needs \(o ? -1 : bytes) bytes, data_offsets give \(e - b)")
            }
            tensors[key] = TensorInfo(dtype: dtype, shape: shape, begin: Int(b), end: Int(e))
        }
        // No two tensors may share bytes.
        let sorted = tensors.sorted { $0.value.begin < $1.value.begin || ($0.value.begin == $1.value.begin && $0.value.end < $1.value.end) }
        for i in sorted.indices.dropFirst() where sorted[i].value.begin < sorted[i - 1].value.end {
            throw fail("tensors '\(sorted[i - 1].key)' and '\(sorted[i].key)' overlap")
        }
        self.path = path
        self.metadata = metadata
        self.tensors = tensors
        self.base = base
        self.length = length
        self.dataStart = 8 + headerLen
        self.unmapOnDeinit = mapped
        self.ownedBytes = owned
    }

    deinit {
        if unmapOnDeinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }
        ownedBytes?.deallocate()
    }

    package func info(_ name: String) throws -> TensorInfo {
        guard let t = tensors[name] else { throw TensorFileError.missingTensor(file: path, name: name) }
        return t
    }

    /// A zero-copy view of an F32 tensor when its bytes are 4-aligned, else nil.
    /// Valid while this object lives.
    package func float32View(_ name: String) throws -> UnsafeBufferPointer<Float>? {
        let t = try info(name)
        guard t.dtype == .f32 else { return nil }
        let p = base + dataStart + t.begin
        guard Int(bitPattern: p) % MemoryLayout<Float>.alignment == 0 else { return nil }
        return UnsafeBufferPointer(start: p.assumingMemoryBound(to: Float.self), count: t.count)
    }

    /// The tensor's elements as Float (F32, F16, BF16, F64 and integer types converted).
    package func floats(_ name: String) throws -> [Float] {
        let t = try info(name)
        let p = base + dataStart + t.begin
        let n = t.count
        switch t.dtype {
        case .f32: return (0..<n).map { p.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        case .f16: return (0..<n).map { halfToFloat(p.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
        case .bf16: return (0..<n).map { bfloat16ToFloat(p.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
        case .f64: return (0..<n).map { Float(p.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
        case .i64: return (0..<n).map { Float(p.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        case .i32: return (0..<n).map { Float(p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        case .i16: return (0..<n).map { Float(p.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
        case .i8: return (0..<n).map { Float(p.load(fromByteOffset: $0, as: Int8.self)) }
        case .u8, .bool: return (0..<n).map { Float(p.load(fromByteOffset: $0, as: UInt8.self)) }
        }
    }
}

/// Maps the regular file `path` read-only (MAP_PRIVATE): its bytes and length; the caller munmaps. Shorter than
/// `minimumBytes` is an error saying it is too short for `what`.
func mapReadOnly(_ path: String, minimumBytes: Int, what: String) throws -> (UnsafeRawPointer, Int) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw TensorFileError.io(file: path, detail: String(cString: strerror(errno))) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw TensorFileError.io(file: path, detail: String(cString: strerror(errno))) }
    guard (st.st_mode & S_IFMT) == S_IFREG else { throw TensorFileError.io(file: path, detail: "not a regular file") }
    let size = Int(st.st_size)
    guard size >= minimumBytes else { throw TensorFileError.invalid(file: path, detail: "file is \(size) bytes, too short for \(what)") }
    guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
        throw TensorFileError.io(file: path, detail: "mmap failed: \(String(cString: strerror(errno)))")
    }
    return (UnsafeRawPointer(p), size)
}

/// Builds safetensors bytes. Tensors are stored F32 in insertion order, 8-byte aligned header.
package struct SafeTensorsWriter {
    private var entries: [(name: String, shape: [Int], data: [UInt8], dtype: SafeTensorsDType)] = []
    package var metadata: [String: String]

    package init(metadata: [String: String] = [:]) { self.metadata = metadata }

    package mutating func add(_ name: String, shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "\(name): shape \(shape) does not hold \(floats.count) values")
        entries.append((name, shape, floats.withUnsafeBytes { Array($0) }, .f32))
    }

    package mutating func add(_ name: String, shape: [Int], floats: UnsafeBufferPointer<Float>) {
        precondition(shape.reduce(1, *) == floats.count, "\(name): shape \(shape) does not hold \(floats.count) values")
        entries.append((name, shape, Array(UnsafeRawBufferPointer(floats)), .f32))
    }

    /// Stores a tensor as F16 or BF16 (rounded to nearest even) to halve the bytes.
    package mutating func add(_ name: String, shape: [Int], floats: UnsafeBufferPointer<Float>, as dtype: SafeTensorsDType) {
        precondition(shape.reduce(1, *) == floats.count, "\(name): shape \(shape) does not hold \(floats.count) values")
        switch dtype {
        case .f32: add(name, shape: shape, floats: floats)
        case .f16, .bf16:
            var bits = [UInt16](repeating: 0, count: floats.count)
            if dtype == .f16 { for i in 0..<floats.count { bits[i] = floatToHalf(floats[i]).littleEndian } }
            else { for i in 0..<floats.count { bits[i] = floatToBFloat16(floats[i]).littleEndian } }
            entries.append((name, shape, bits.withUnsafeBytes { Array($0) }, dtype))
        default: preconditionFailure("\(dtype) is not a float format this writer stores")
        }
    }

    package func encoded() -> [UInt8] {
        var header = "{"
        var offset = 0
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        for e in entries {
            let end = offset + e.data.count
            parts.append("\(jsonString(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        header += parts.joined(separator: ",") + "}"
        var h = Array(header.utf8)
        while (8 + h.count) % 8 != 0 { h.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + h.count + offset)
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
        out += h
        for e in entries { out += e.data }
        return out
    }

    /// Publishes atomically: temp file in the same directory, fsync, rename.
    package func write(to url: URL) throws { try AtomicFile.write(encoded(), to: url) }
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
