import Foundation

/// What a model loader needs of a weights file, whatever its format (safetensors, torch checkpoint).
package protocol TensorArchive: AnyObject, Sendable {
    var path: String { get }
    var names: [String] { get }
    func shape(of name: String) -> [Int]?
    /// A zero-copy view when the tensor is stored as contiguous, aligned F32, else nil. Valid while the archive lives.
    func float32View(_ name: String) throws -> UnsafeBufferPointer<Float>?
    /// The elements as Float, row-major (converted and materialised as needed).
    func floats(_ name: String) throws -> [Float]
}

extension SafeTensorsFile: TensorArchive {
    package func shape(of name: String) -> [Int]? { tensors[name]?.shape }
}

/// A PyTorch checkpoint written by torch.save (torch ≥ 1.6): a ZIP archive holding `<prefix>/data.pkl` (a pickle)
/// and one `<prefix>/data/<key>` entry per storage (raw little-endian elements). The pickle is run by a restricted
/// machine in the spirit of `torch.load(weights_only=True)`: it builds dicts, lists, tuples and scalars, and calls
/// only the whitelisted globals below; any other global is refused before anything is built from it.
///
/// Tensors are found in nested dicts and named by their dotted key path (`teacher.module.backbone.cls_token`).
/// A tensor of a float32 storage with row-major strides is viewed in place in the mapped file; strided views and
/// float16/bfloat16 storages are materialised as float32.
package final class TorchCheckpoint: TensorArchive, @unchecked Sendable {
    package enum DType: String, Sendable {
        case f32 = "FloatStorage", f16 = "HalfStorage", bf16 = "BFloat16Storage"
        var byteSize: Int { self == .f32 ? 4 : 2 }
    }

    /// A tensor as `_rebuild_tensor_v2` describes it: a strided view of one storage.
    package struct Tensor: Sendable, Equatable {
        package var storage: String     // the storage's key: entry `<prefix>/data/<key>`
        package var dtype: DType
        package var shape: [Int]
        package var stride: [Int]
        package var offset: Int         // in elements
        package var count: Int { shape.reduce(1, *) }
        package var isContiguous: Bool {
            var expected = 1
            for (n, s) in Swift.zip(shape, stride).reversed() where n != 1 {
                if s != expected { return false }
                expected *= n
            }
            return true
        }
    }

    package let path: String
    package let tensors: [String: Tensor]
    private let archive: ZipArchive
    private let prefix: String

    package var names: [String] { tensors.keys.sorted() }

    package init(contentsOf url: URL) throws {
        let zip = try ZipArchive(contentsOf: url)
        let path = zip.path
        func fail(_ d: String) -> TensorFileError { .invalid(file: path, detail: d) }
        // The archive's top directory is named by the writer (`archive`, or the file's stem in older torch).
        let pickles = zip.entries.keys.filter { $0.hasSuffix("/data.pkl") && $0.split(separator: "/").count == 2 }
        guard pickles.count == 1, let pkl = pickles.first else {
            throw fail(pickles.isEmpty ? "no '<name>/data.pkl' entry: not a torch.save checkpoint" : "several data.pkl entries: \(pickles.sorted())")
        }
        let prefix = String(pkl.dropLast("data.pkl".count))
        if zip.entries[prefix + "byteorder"] != nil {
            let order = try zip.withBytes(prefix + "byteorder") { String(decoding: $0, as: UTF8.self) }
            guard order == "little" else { throw fail("byteorder '\(order)': only little-endian checkpoints are read") }
        }
        let root = try zip.withBytes(pkl) { bytes in
            var machine = Unpickler(bytes, file: path)
            return try machine.run()
        }
        guard case .dict = root else { throw fail("data.pkl holds \(root.kind), not a dict of tensors (a state_dict)") }
        var tensors: [String: Tensor] = [:]
        func collect(_ v: PickleValue, _ name: String) {
            switch v {
            case let .tensor(t): tensors[name] = t
            case let .dict(d):
                for (k, value) in d.items { if case let .string(s) = k { collect(value, name.isEmpty ? s : name + "." + s) } }
            default: break  // epochs, arguments, optimizer scalars: not weights
            }
        }
        collect(root, "")
        // Every tensor must lie inside its storage entry.
        for (name, t) in tensors {
            let entry = prefix + "data/" + t.storage
            guard let e = zip.entries[entry] else { throw fail("tensor '\(name)': storage entry '\(entry)' is missing from the archive") }
            let elements = e.size / t.dtype.byteSize
            guard t.shape.allSatisfy({ $0 >= 0 }), t.stride.allSatisfy({ $0 >= 0 }), t.offset >= 0 else {
                throw fail("tensor '\(name)': negative size, stride or offset")
            }
            var last = t.offset, count = 1
            for (n, s) in Swift.zip(t.shape, t.stride) {
                let (m, o1) = (max(n, 1) - 1).multipliedReportingOverflow(by: s)
                let (l, o2) = last.addingReportingOverflow(m)
                let (c, o3) = count.multipliedReportingOverflow(by: n)
                guard !o1, !o2, !o3 else { throw fail("tensor '\(name)': shape \(t.shape) with stride \(t.stride) overflows") }
                last = l; count = c
            }
            // More elements than the storage only by broadcasting (stride 0), and then within reason.
            guard count <= max(elements, 1 << 31) else {
                throw fail("tensor '\(name)' \(t.shape) has \(count) elements, storage '\(t.storage)' holds \(elements)")
            }
            guard count == 0 || last < elements else {
                throw fail("tensor '\(name)' \(t.shape) (stride \(t.stride), offset \(t.offset)) reaches element \(last) of storage '\(t.storage)', which holds \(elements)")
            }
        }
        self.path = path
        self.tensors = tensors
        self.archive = zip
        self.prefix = prefix
    }

    package func shape(of name: String) -> [Int]? { tensors[name]?.shape }

    private func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw TensorFileError.missingTensor(file: path, name: name) }
        return t
    }

    package func float32View(_ name: String) throws -> UnsafeBufferPointer<Float>? {
        let t = try tensor(name)
        guard t.dtype == .f32, t.isContiguous, let bytes = try archive.storedBytes(prefix + "data/" + t.storage) else { return nil }
        let p = bytes.baseAddress! + 4 * t.offset
        guard Int(bitPattern: p) % MemoryLayout<Float>.alignment == 0 else { return nil }
        return UnsafeBufferPointer(start: p.assumingMemoryBound(to: Float.self), count: t.count)
    }

    package func floats(_ name: String) throws -> [Float] {
        let t = try tensor(name)
        return try archive.withBytes(prefix + "data/" + t.storage) { bytes in
            let p = bytes.baseAddress!
            func element(_ i: Int) -> Float {
                switch t.dtype {
                case .f32: Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                case .f16: halfToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                case .bf16: bfloat16ToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            }
            var out = [Float](repeating: 0, count: t.count)
            guard t.count > 0 else { return out }
            if t.isContiguous {
                for i in 0..<t.count { out[i] = element(t.offset + i) }
                return out
            }
            // Row-major walk over the index space, the storage position advanced by the strides.
            var index = [Int](repeating: 0, count: t.shape.count)
            var position = t.offset
            for i in 0..<t.count {
                out[i] = element(position)
                var axis = t.shape.count - 1
                while axis >= 0 {
                    index[axis] += 1
                    position += t.stride[axis]
                    if index[axis] < t.shape[axis] { break }
                    position -= t.stride[axis] * t.shape[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
            return out
        }
    }
}

// MARK: - The restricted unpickler

final class PickleDict { var items: [(PickleValue, PickleValue)] = [] }
final class PickleList { var items: [PickleValue] = [] }

indirect enum PickleValue {
    case none, bool(Bool), int(Int), float(Double), string(String), bytes([UInt8])
    case tuple([PickleValue]), list(PickleList), dict(PickleDict)
    /// A whitelisted global, not yet called.
    case global(String)
    /// BINPERSID's ('storage', storage class, key, location, numel).
    case storage(key: String, dtype: TorchCheckpoint.DType)
    case tensor(TorchCheckpoint.Tensor)
    case mark

    var kind: String {
        switch self {
        case .none: "None"
        case .bool: "a bool"
        case .int: "an int"
        case .float: "a float"
        case .string: "a string"
        case .bytes: "bytes"
        case .tuple: "a tuple"
        case .list: "a list"
        case .dict: "a dict"
        case let .global(g): g
        case .storage: "a storage"
        case .tensor: "a tensor"
        case .mark: "a mark"
        }
    }
}

/// The pickle opcodes torch.save emits (protocol 2, plus the protocol-4 framing and memo opcodes), over values only.
/// Globals are resolved against a whitelist as they are read; REDUCE calls only those.
struct Unpickler {
    static let allowedGlobals: Set<String> = [
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch.FloatStorage", "torch.HalfStorage", "torch.BFloat16Storage",
    ]
    private let bytes: UnsafeRawBufferPointer
    private let file: String
    private var pos = 0
    private var stack: [PickleValue] = []
    private var memo: [Int: PickleValue] = [:]

    init(_ bytes: UnsafeRawBufferPointer, file: String) { self.bytes = bytes; self.file = file }

    private func fail(_ d: String) -> TensorFileError { .invalid(file: file, detail: "data.pkl: \(d)") }

    private mutating func read(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - pos else { throw fail("truncated at byte \(pos)") }
        defer { pos += n }
        return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])
    }
    private mutating func byte() throws -> UInt8 { try read(1)[0] }
    private mutating func uint(_ n: Int) throws -> Int {
        let b = try read(n)
        var v: UInt64 = 0
        for i in (0..<n).reversed() { v = v << 8 | UInt64(b[i]) }
        guard v <= UInt64(Int.max) else { throw fail("length \(v) out of range") }
        return Int(v)
    }
    private mutating func line() throws -> String {
        guard let nl = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("truncated at byte \(pos)") }
        defer { pos = nl + 1 }
        return String(decoding: bytes[pos..<nl], as: UTF8.self)
    }
    private mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("stack underflow at byte \(pos)") }
        return v
    }
    /// The values pushed since the last MARK.
    private mutating func popMark() throws -> [PickleValue] {
        guard let m = stack.lastIndex(where: { if case .mark = $0 { true } else { false } }) else { throw fail("no MARK at byte \(pos)") }
        let items = Array(stack[(m + 1)...])
        stack.removeSubrange(m...)
        return items
    }
    private func string(_ b: UnsafeRawBufferPointer) -> String { String(decoding: b, as: UTF8.self) }

    private func global(_ module: String, _ name: String) throws -> PickleValue {
        let g = module + "." + name
        guard Self.allowedGlobals.contains(g) else {
            throw fail("refusing global '\(g)': only \(Self.allowedGlobals.sorted().joined(separator: ", ")) may appear in a weights file")
        }
        return .global(g)
    }

    mutating func run() throws -> PickleValue {
        while true {
            let at = pos
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                  // PROTO
            case 0x95: _ = try read(8)                                 // FRAME
            case 0x2E: return try pop()                                // STOP
            case 0x28: stack.append(.mark)                             // MARK
            case 0x7D: stack.append(.dict(PickleDict()))               // EMPTY_DICT
            case 0x5D: stack.append(.list(PickleList()))               // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                        // EMPTY_TUPLE
            case 0x85: stack.append(.tuple([try pop()]))               // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))           // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))  // TUPLE3
            case 0x74: stack.append(.tuple(try popMark()))             // TUPLE
            case 0x4E: stack.append(.none)                             // NONE
            case 0x88: stack.append(.bool(true))                       // NEWTRUE
            case 0x89: stack.append(.bool(false))                      // NEWFALSE
            case 0x4B: stack.append(.int(Int(try byte())))            // BININT1
            case 0x4D: stack.append(.int(try uint(2)))                 // BININT2
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x8A:                                                 // LONG1
                let n = Int(try byte())
                guard n <= 8 else { throw fail("integer of \(n) bytes at byte \(at)") }
                let b = try read(n)
                var v: UInt64 = 0
                for i in (0..<n).reversed() { v = v << 8 | UInt64(b[i]) }
                if n > 0, n < 8, b[n - 1] & 0x80 != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }  // sign-extend
                stack.append(.int(Int(truncatingIfNeeded: v)))
            case 0x47:                                                 // BINFLOAT (big-endian)
                let b = try read(8)
                var v: UInt64 = 0
                for i in 0..<8 { v = v << 8 | UInt64(b[i]) }
                stack.append(.float(Double(bitPattern: v)))
            case 0x58: stack.append(.string(string(try read(try uint(4)))))   // BINUNICODE
            case 0x8C: stack.append(.string(string(try read(Int(try byte())))))  // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(string(try read(try uint(8)))))   // BINUNICODE8
            case 0x54: stack.append(.string(string(try read(try uint(4)))))   // BINSTRING
            case 0x55: stack.append(.string(string(try read(Int(try byte())))))  // SHORT_BINSTRING
            case 0x42: stack.append(.bytes(Array(try read(try uint(4)))))     // BINBYTES
            case 0x43: stack.append(.bytes(Array(try read(Int(try byte())))))  // SHORT_BINBYTES
            case 0x71: memo[Int(try byte())] = stack.last              // BINPUT
            case 0x72: memo[try uint(4)] = stack.last                  // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last                   // MEMOIZE
            case 0x68, 0x6A:                                           // BINGET, LONG_BINGET
                let i = op == 0x68 ? Int(try byte()) : try uint(4)
                guard let v = memo[i] else { throw fail("memo \(i) read before it was written (byte \(at))") }
                stack.append(v)
            case 0x73:                                                 // SETITEM
                let v = try pop(), k = try pop()
                guard case let .dict(d) = stack.last else { throw fail("SETITEM on \(stack.last?.kind ?? "nothing") at byte \(at)") }
                d.items.append((k, v))
            case 0x75:                                                 // SETITEMS
                let kv = try popMark()
                guard case let .dict(d) = stack.last, kv.count % 2 == 0 else { throw fail("SETITEMS on \(stack.last?.kind ?? "nothing") at byte \(at)") }
                for i in stride(from: 0, to: kv.count, by: 2) { d.items.append((kv[i], kv[i + 1])) }
            case 0x61:                                                 // APPEND
                let v = try pop()
                guard case let .list(l) = stack.last else { throw fail("APPEND on \(stack.last?.kind ?? "nothing") at byte \(at)") }
                l.items.append(v)
            case 0x65:                                                 // APPENDS
                let vs = try popMark()
                guard case let .list(l) = stack.last else { throw fail("APPENDS on \(stack.last?.kind ?? "nothing") at byte \(at)") }
                l.items += vs
            case 0x63:                                                 // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93:                                                 // STACK_GLOBAL
                guard case let .string(name) = try pop(), case let .string(module) = try pop() else { throw fail("STACK_GLOBAL without strings at byte \(at)") }
                stack.append(try global(module, name))
            case 0x51:                                                 // BINPERSID
                stack.append(try persistent(try pop(), at: at))
            case 0x52:                                                 // REDUCE
                let args = try pop(), callable = try pop()
                guard case let .global(g) = callable, case let .tuple(a) = args else {
                    throw fail("REDUCE of \(callable.kind) at byte \(at): only whitelisted globals are called")
                }
                stack.append(try call(g, a, at: at))
            case 0x62:                                                 // BUILD: OrderedDict's state (`_metadata`) is dropped
                _ = try pop()
                guard case .dict = stack.last else { throw fail("BUILD on \(stack.last?.kind ?? "nothing") at byte \(at)") }
            default:
                throw fail(String(format: "opcode 0x%02x at byte %d is not one a weights file uses", op, at))
            }
        }
    }

    private func persistent(_ pid: PickleValue, at: Int) throws -> PickleValue {
        guard case let .tuple(t) = pid, t.count == 5, case .string("storage") = t[0], case let .global(cls) = t[1],
              case let .string(key) = t[2], let dtype = TorchCheckpoint.DType(rawValue: String(cls.dropFirst("torch.".count))) else {
            throw fail("persistent id at byte \(at) is not ('storage', torch.<Float|Half|BFloat16>Storage, key, location, numel)")
        }
        return .storage(key: key, dtype: dtype)
    }

    private func call(_ g: String, _ a: [PickleValue], at: Int) throws -> PickleValue {
        func ints(_ v: PickleValue) -> [Int]? {
            guard case let .tuple(t) = v else { return nil }
            return t.compactMap { if case let .int(i) = $0 { i } else { nil } }.count == t.count
                ? t.map { if case let .int(i) = $0 { i } else { 0 } } : nil
        }
        switch g {
        case "collections.OrderedDict":
            guard a.isEmpty else { throw fail("OrderedDict called with arguments at byte \(at)") }
            return .dict(PickleDict())
        case "torch._utils._rebuild_tensor_v2":
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard a.count >= 4, case let .storage(key, dtype) = a[0], case let .int(offset) = a[1],
                  let size = ints(a[2]), let stride = ints(a[3]), size.count == stride.count else {
                throw fail("_rebuild_tensor_v2 at byte \(at): arguments are not (storage, offset, size, stride, …)")
            }
            return .tensor(TorchCheckpoint.Tensor(storage: key, dtype: dtype, shape: size, stride: stride, offset: offset))
        case "torch._utils._rebuild_parameter":
            guard let first = a.first, case .tensor = first else { throw fail("_rebuild_parameter at byte \(at) without a tensor") }
            return first
        default:
            throw fail("\(g) cannot be called (byte \(at))")
        }
    }
}
