import Foundation

/// NumPy `.npy` arrays (format versions 1–3), little-endian, C order.
/// Used for the command-line contracts (`--tensor X.npy`, `--out F.npy`) and parity fixtures.
package enum NPYDType: String, Sendable {
    case float32 = "<f4", float64 = "<f8", float16 = "<f2"
    case uint8 = "|u1", int32 = "<i4", int64 = "<i8", bool = "|b1"

    package var byteSize: Int {
        switch self {
        case .uint8, .bool: 1
        case .float16: 2
        case .float32, .int32: 4
        case .float64, .int64: 8
        }
    }
}

package struct NPYArray: Sendable {
    package var shape: [Int]
    package var dtype: NPYDType
    /// Raw little-endian element bytes, C order.
    package var data: [UInt8]

    package var count: Int { shape.reduce(1, *) }

    /// Elements converted to Float (any numeric dtype).
    package func floats() throws -> [Float] {
        let n = count
        return data.withUnsafeBytes { raw -> [Float] in
            switch dtype {
            case .float32: return (0..<n).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
            case .float64: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
            case .float16: return (0..<n).map { halfToFloat(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
            case .uint8, .bool: return raw.prefix(n).map { Float($0) }
            case .int32: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
            case .int64: return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            }
        }
    }

    /// Elements of a uint8 (or bool) array.
    package func bytes() throws -> [UInt8] {
        guard dtype == .uint8 || dtype == .bool else {
            throw TensorFileError.invalid(file: "npy", detail: "expected dtype uint8, found \(dtype.rawValue)")
        }
        return data
    }

    package init(shape: [Int], dtype: NPYDType, data: [UInt8]) {
        self.shape = shape; self.dtype = dtype; self.data = data
    }

    package init(shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) values")
        self.shape = shape; self.dtype = .float32
        self.data = floats.withUnsafeBytes { Array($0) }
    }
}

package enum NPY {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    package static func read(contentsOf url: URL) throws -> NPYArray {
        let bytes: [UInt8]
        do { bytes = try [UInt8](Data(contentsOf: url)) } catch {
            throw TensorFileError.io(file: url.path, detail: error.localizedDescription)
        }
        return try decode(bytes, file: url.path)
    }

    package static func decode(_ bytes: [UInt8], file: String = "npy") throws -> NPYArray {
        func bad(_ s: String) -> TensorFileError { .invalid(file: file, detail: s) }
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw bad("not a .npy file (bad magic)") }
        let major = bytes[6]
        let headerLen: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8; headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw bad("truncated header") }
            headerLen = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }; headerStart = 12
        default: throw bad("unsupported .npy version \(major)")
        }
        guard headerStart + headerLen <= bytes.count else { throw bad("header length \(headerLen) exceeds file size") }
        guard let header = String(bytes: bytes[headerStart..<headerStart + headerLen], encoding: major == 3 ? .utf8 : .isoLatin1)
        else { throw bad("header is not text") }
        let descr = try field(header, "descr", file: file)
        guard let dtype = NPYDType(rawValue: descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))) else {
            throw bad("unsupported dtype \(descr) (supported: float32, float64, float16, uint8, int32, int64, bool; little-endian)")
        }
        let fortran = try field(header, "fortran_order", file: file)
        guard fortran == "False" else { throw bad("fortran_order arrays are not supported") }
        let shapeText = try field(header, "shape", file: file)
        let inner = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0 else { throw bad("bad shape \(shapeText)") }
            shape.append(v)
        }
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let (m, o) = acc.0.multipliedReportingOverflow(by: d); return (m, acc.1 || o)
        }
        let dataStart = headerStart + headerLen
        guard !overflow, count.multipliedReportingOverflow(by: dtype.byteSize).overflow == false,
              dataStart + count * dtype.byteSize == bytes.count
        else { throw bad("data size \(bytes.count - dataStart) bytes does not match shape \(shape) of \(dtype.rawValue)") }
        return NPYArray(shape: shape, dtype: dtype, data: Array(bytes[dataStart...]))
    }

    /// Extracts the value text of `'key': value` from the header dict literal.
    private static func field(_ header: String, _ key: String, file: String) throws -> String {
        guard let r = header.range(of: "'\(key)':") else {
            throw TensorFileError.invalid(file: file, detail: "header has no '\(key)'")
        }
        var rest = header[r.upperBound...].drop(while: { $0 == " " })
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else {
                throw TensorFileError.invalid(file: file, detail: "unterminated '\(key)'")
            }
            return String(rest[...close])
        }
        rest = rest.prefix(while: { $0 != "," && $0 != "}" })
        return rest.trimmingCharacters(in: .whitespaces)
    }

    package static func encode(_ array: NPYArray) -> [UInt8] {
        let dims = array.shape.map(String.init)
        let shapeText = dims.count == 1 ? "(\(dims[0]),)" : "(\(dims.joined(separator: ", ")))"
        var header = "{'descr': '\(array.dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad so that the data starts on a 64-byte boundary; the header ends with '\n'.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = magic + [1, 0]
        let n = header.utf8.count
        out += [UInt8(n & 0xff), UInt8(n >> 8)]
        out += Array(header.utf8)
        out += array.data
        return out
    }

    package static func write(_ array: NPYArray, to url: URL) throws {
        try AtomicFile.write(encode(array), to: url)
    }
}
