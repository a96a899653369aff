import CDNNL
import CKernels
import Synchronization

// Letters: R = rows (tokens), I = input features (K of the product), O = output features (N).
// oneDNN's matmul primitive computes dst[R, O] = src[R, I] · wei[I, O] + bias[O] with post-ops applied to each
// tile while it is in registers; it picks the best kernel of the CPU at run time (brgemm AVX2 / AVX-512 /
// AVX512_BF16 / AMX, `impl_info_str` says which) and honours ONEDNN_MAX_CPU_ISA. Our weights stay in PyTorch's
// (out, in) layout, which is oneDNN's `ba` view of wei[I, O]; `MatmulWeights` reorders them once into the
// blocked layout the primitive asks for (format_tag any) so no call packs them again.

/// Arithmetic of the backbone's linear layers (`--precision`, `SPHERECORR_PRECISION`).
package enum Precision: String, Sendable, CaseIterable {
    /// fp32 weights and activations: the reference numerics (parity fixtures).
    case fp32
    /// bf16 weights and activations, fp32 accumulation, fp32 residual stream and attention.
    case bf16

    /// The bf16 unit of this CPU ("AMX" or "AVX512_BF16"), nil when it has neither.
    package static let bf16Hardware: String? =
        ck_cpu_has_amx_bf16() != 0 ? "AMX" : ck_cpu_has_avx512_bf16() != 0 ? "AVX512_BF16" : nil

    /// Why bf16 cannot run here (nil when it can): the CPU lacks the ISA, or ONEDNN_MAX_CPU_ISA hides it.
    package static var bf16Unavailable: String? {
        guard bf16Hardware != nil else {
            return "bf16 needs a CPU with AVX512_BF16 or AMX (AMX-BF16); this CPU has neither"
        }
        let isa = dnnl_get_effective_cpu_isa().rawValue, want = dnnl_cpu_isa_avx512_core_bf16.rawValue
        guard isa & want == want else {
            return "bf16 needs oneDNN's avx512_core_bf16 or amx kernels; ONEDNN_MAX_CPU_ISA limits it to \(OneDNN.isaName(isa))"
        }
        return nil
    }

    nonisolated(unsafe) private static var _current: Precision = .fp32
    private static let lock = Mutex(())

    /// The process-wide choice (set once at start-up by the executables).
    package static var current: Precision {
        get { lock.withLock { _ in _current } }
        set { lock.withLock { _ in _current = newValue } }
    }

    /// Why this CPU (or ONEDNN_MAX_CPU_ISA) cannot run the precision asked for; nil when it can.
    package var unavailableReason: String? { self == .bf16 ? Self.bf16Unavailable : nil }

    var dataType: dnnl_data_type_t { self == .fp32 ? dnnl_f32 : dnnl_bf16 }
    var elementBytes: Int { self == .fp32 ? 4 : 2 }
}

/// One engine, and the primitives built on it, cached by shape (thread-safe: the server runs forwards concurrently).
package enum OneDNN {
    private final class Engine: @unchecked Sendable {
        let engine: dnnl_engine_t
        init() {
            var e: dnnl_engine_t?
            check(dnnl_engine_create(&e, dnnl_cpu, 0), "engine")
            engine = e!
        }
    }
    private static let shared = Engine()
    static var engine: dnnl_engine_t { shared.engine }

    static func check(_ s: dnnl_status_t, _ what: @autoclosure () -> String) {
        precondition(s == dnnl_success, "oneDNN \(what()) failed with status \(s.rawValue)")
    }

    /// A 2-D memory descriptor; `dims` as oneDNN wants them (dnnl_dims_t is 12 wide).
    static func matrix(_ rows: Int, _ cols: Int, _ type: dnnl_data_type_t, _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        var dims: dnnl_dims_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        dims.0 = Int64(rows); dims.1 = Int64(cols)
        withUnsafePointer(to: &dims) { p in
            p.withMemoryRebound(to: Int64.self, capacity: 12) { check(dnnl_memory_desc_init_by_tag(&md, 2, $0, type, tag), "memory desc") }
        }
        return md
    }

    /// The name oneDNN gives the CPU ISA it runs on (avx2, avx512_core, avx512_core_bf16, avx512_core_amx, …).
    package static var effectiveISA: String { isaName(dnnl_get_effective_cpu_isa().rawValue) }

    static func isaName(_ raw: UInt32) -> String {
        let names: [(dnnl_cpu_isa_t, String)] = [
            (dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"), (dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"),
            (dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"), (dnnl_cpu_isa_avx512_core, "avx512_core"),
            (dnnl_cpu_isa_avx2_vnni, "avx2_vnni"), (dnnl_cpu_isa_avx2, "avx2"), (dnnl_cpu_isa_avx, "avx"), (dnnl_cpu_isa_sse41, "sse41"),
        ]
        for (isa, name) in names where raw & isa.rawValue == isa.rawValue { return name }
        return "isa 0x\(String(raw, radix: 16))"
    }

    /// oneDNN's CPU streams are not to be shared between threads: a small pool of them.
    private struct Stream: @unchecked Sendable { let stream: dnnl_stream_t }
    private static let streams = Mutex<[Stream]>([])

    static func withStream<R>(_ body: (dnnl_stream_t) -> R) -> R {
        let s: Stream = streams.withLock { $0.popLast() } ?? {
            var s: dnnl_stream_t?
            check(dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue), "stream")
            return Stream(stream: s!)
        }()
        defer { streams.withLock { $0.append(s) } }
        return body(s.stream)
    }
}

/// A primitive built for one shape, its scratchpad size and the name of the kernel oneDNN chose.
final class MatmulPrimitive: @unchecked Sendable {
    let primitive: dnnl_primitive_t
    let scratchpadBytes: Int
    let implementation: String
    init(pd: dnnl_primitive_desc_t) {
        var p: dnnl_primitive_t?
        OneDNN.check(dnnl_primitive_create(&p, pd), "primitive")
        primitive = p!
        scratchpadBytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0))
        var name: UnsafePointer<CChar>?
        OneDNN.check(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name), "impl query")
        implementation = String(cString: name!)
    }
}

/// Weights of one linear layer, [O, I] fp32 (PyTorch's layout, kept as given), plus their reorders into the
/// layout oneDNN's matmul wants, made once per precision and kept (thread-safe, shared by concurrent forwards).
package final class MatmulWeights: @unchecked Sendable {
    package let inFeatures: Int
    package let outFeatures: Int
    let plain: UnsafePointer<Float>  // [O, I]
    private let owner: AnyObject?
    private struct Packed: @unchecked Sendable { var md: dnnl_memory_desc_t; var data: UnsafeMutableRawPointer }
    private let packs = Mutex<[Precision: Packed]>([:])

    /// `weight` must stay valid as long as this object: pass its owner to keep it alive.
    package init(weight: UnsafePointer<Float>, inFeatures: Int, outFeatures: Int, owner: AnyObject?) {
        self.plain = weight; self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.owner = owner
    }

    deinit { packs.withLock { for p in $0.values { p.data.deallocate() } } }

    /// The weights for `precision` and their descriptor: reordered on first use (at load for the backbone).
    func packed(_ precision: Precision) -> (md: dnnl_memory_desc_t, data: UnsafeRawPointer) {
        packs.withLock { packs in
            if let p = packs[precision] { return (p.md, UnsafeRawPointer(p.data)) }
            let p = reorder(precision)
            packs[precision] = p
            return (p.md, UnsafeRawPointer(p.data))
        }
    }

    /// Reorders now (model load), so that no forward pays for it.
    package func prepare(_ precision: Precision) { _ = packed(precision) }

    private func reorder(_ precision: Precision) -> Packed {
        let i = inFeatures, o = outFeatures, dt = precision.dataType
        // The layout the primitive wants does not depend on the row count or the post-ops (checked on oneDNN
        // 2.6: AVX2, AVX-512 and bf16 kernels), so one query with a typical row count decides it.
        var src = OneDNN.matrix(256, i, dt, dnnl_ab), any = OneDNN.matrix(i, o, dt, dnnl_format_tag_any)
        var dst = OneDNN.matrix(256, o, dnnl_f32, dnnl_ab)
        var desc = dnnl_matmul_desc_t()
        OneDNN.check(dnnl_matmul_desc_init(&desc, &src, &any, nil, &dst), "matmul desc")
        omp_set_num_threads(1)
        var pd: dnnl_primitive_desc_t?
        OneDNN.check(dnnl_primitive_desc_create(&pd, &desc, nil, OneDNN.engine, nil), "matmul primitive desc")
        defer { dnnl_primitive_desc_destroy(pd) }
        var md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)!.pointee
        var from = OneDNN.matrix(i, o, dnnl_f32, dnnl_ba)
        let bytes = dnnl_memory_desc_get_size(&md)
        let data = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        var rpd: dnnl_primitive_desc_t?
        OneDNN.check(dnnl_reorder_primitive_desc_create(&rpd, &from, OneDNN.engine, &md, OneDNN.engine, nil), "reorder desc")
        defer { dnnl_primitive_desc_destroy(rpd) }
        var reorder: dnnl_primitive_t?
        OneDNN.check(dnnl_primitive_create(&reorder, rpd), "reorder")
        defer { dnnl_primitive_destroy(reorder) }
        var mFrom: dnnl_memory_t?, mTo: dnnl_memory_t?
        OneDNN.check(dnnl_memory_create(&mFrom, &from, OneDNN.engine, UnsafeMutableRawPointer(mutating: plain)), "memory")
        OneDNN.check(dnnl_memory_create(&mTo, &md, OneDNN.engine, data), "memory")
        defer { dnnl_memory_destroy(mFrom); dnnl_memory_destroy(mTo) }
        var args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: mFrom), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: mTo)]
        OneDNN.withStream { s in
            OneDNN.check(dnnl_primitive_execute(reorder, s, 2, &args), "reorder")
            OneDNN.check(dnnl_stream_wait(s), "stream wait")
        }
        return Packed(md: md, data: data)
    }
}

/// oneDNN matmul with the linear layers' epilogues as post-ops.
package enum Matmul {
    /// The element type of an activation buffer handed to `linear`.
    package enum Activation { case f32, bf16 }

    private struct Key: Hashable {
        var rows: Int, i: Int, o: Int
        var precision: Precision, output: Activation
        var packed: Bool, bias: Bool, epilogue: Int
    }
    private static let cache = Mutex<[Key: MatmulPrimitive]>([:])
    private static let implementations = Mutex<[String: String]>([:])

    private static func epilogueCode(_ e: LinearEpilogue) -> Int {
        switch e {
        case .bias: 0
        case .biasGELU: 1
        case .biasScaleAddInto: 2
        case .biasAddInto: 3
        }
    }

    /// The primitive for one shape, built on first use. Threads: each of our workers runs its own rows on one thread.
    private static func primitive(_ key: Key, weightsMD: dnnl_memory_desc_t) -> MatmulPrimitive {
        if let p = cache.withLock({ $0[key] }) { return p }
        let dt = key.precision.dataType
        var src = OneDNN.matrix(key.rows, key.i, dt, dnnl_ab)
        var wei = weightsMD
        var bias = OneDNN.matrix(1, key.o, dnnl_f32, dnnl_ab)
        var dst = OneDNN.matrix(key.rows, key.o, key.output == .f32 ? dnnl_f32 : dnnl_bf16, dnnl_ab)
        var desc = dnnl_matmul_desc_t()
        if key.bias {
            OneDNN.check(dnnl_matmul_desc_init(&desc, &src, &wei, &bias, &dst), "matmul desc")
        } else {
            OneDNN.check(dnnl_matmul_desc_init(&desc, &src, &wei, nil, &dst), "matmul desc")
        }
        var attr: dnnl_primitive_attr_t?, ops: dnnl_post_ops_t?
        OneDNN.check(dnnl_primitive_attr_create(&attr), "attr")
        OneDNN.check(dnnl_post_ops_create(&ops), "post-ops")
        defer { dnnl_primitive_attr_destroy(attr); dnnl_post_ops_destroy(ops) }
        switch key.epilogue {
        case 1: OneDNN.check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_gelu_erf, 0, 0), "gelu post-op")
        case 2:
            var gamma = OneDNN.matrix(1, key.o, dnnl_f32, dnnl_ab)
            OneDNN.check(dnnl_post_ops_append_binary(ops, dnnl_binary_mul, &gamma), "LayerScale post-op")
            OneDNN.check(dnnl_post_ops_append_sum(ops, 1), "residual post-op")
        case 3: OneDNN.check(dnnl_post_ops_append_sum(ops, 1), "residual post-op")
        default: break
        }
        OneDNN.check(dnnl_primitive_attr_set_post_ops(attr, ops), "set post-ops")
        // Our scratchpad per call: with the library's own, concurrent executions of one primitive would share it.
        OneDNN.check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode")
        omp_set_num_threads(1)  // a primitive's threading is fixed when it is created
        var pd: dnnl_primitive_desc_t?
        OneDNN.check(dnnl_primitive_desc_create(&pd, &desc, attr, OneDNN.engine, nil), "matmul primitive desc")
        defer { dnnl_primitive_desc_destroy(pd) }
        let p = MatmulPrimitive(pd: pd!)
        return cache.withLock { c in
            if let existing = c[key] { return existing }
            c[key] = p
            return p
        }
    }

    /// Which kernel oneDNN runs for a layer of this shape (e.g. "brg:avx512_core"), for /v1/info and benchmarks.
    /// `packed: false`: on weights as given (the sphere mapper, similarities), fp32.
    package static func implementation(inFeatures i: Int, outFeatures o: Int, rows: Int = 512, precision: Precision = .fp32,
                                       packed: Bool = true) -> String {
        let name = "\(i) \(o) \(rows) \(precision) \(packed)"
        if let known = implementations.withLock({ $0[name] }) { return known }
        let w = FloatStorage(count: i * o)
        let weights = MatmulWeights(weight: w.pointer, inFeatures: i, outFeatures: o, owner: w)
        let key = Key(rows: rows, i: i, o: o, precision: packed ? precision : .fp32, output: .f32, packed: packed, bias: true, epilogue: 0)
        let md = packed ? weights.packed(precision).md : OneDNN.matrix(i, o, dnnl_f32, dnnl_ba)
        let impl = primitive(key, weightsMD: md).implementation
        implementations.withLock { $0[name] = impl }
        return impl
    }

    /// out[R, O] = epilogue(x[R, I] · W[O, I]ᵀ + b[O]) on the calling thread (rows: a worker's slice).
    /// x and out are `input` / `output` typed (bf16 only with `precision` bf16); an fp32 x under bf16 is
    /// rounded to bf16 first. `gamma` comes with `.biasScaleAddInto`.
    static func run(
        _ out: UnsafeMutableRawPointer, output: Activation, _ x: UnsafeRawPointer, input: Activation,
        weights: MatmulWeights, packed: Bool, bias: UnsafePointer<Float>?, rows: Int, epilogue: LinearEpilogue, precision: Precision
    ) {
        let i = weights.inFeatures, o = weights.outFeatures
        let wmd: dnnl_memory_desc_t, wdata: UnsafeRawPointer
        if packed {
            (wmd, wdata) = weights.packed(precision)
        } else {
            precondition(precision == .fp32, "unpacked weights are fp32")
            wmd = OneDNN.matrix(i, o, dnnl_f32, dnnl_ba)
            wdata = UnsafeRawPointer(weights.plain)
        }
        let key = Key(rows: rows, i: i, o: o, precision: precision, output: output, packed: packed, bias: bias != nil,
                      epilogue: epilogueCode(epilogue))
        let prim = primitive(key, weightsMD: wmd)
        var src = x
        var converted: UnsafeMutableRawPointer? = nil
        if precision == .bf16 && input == .f32 {
            let c = UnsafeMutableRawPointer.allocate(byteCount: rows * i * 2, alignment: 64)
            ck_f32_to_bf16(c.assumingMemoryBound(to: UInt16.self), x.assumingMemoryBound(to: Float.self), rows * i)
            converted = c; src = UnsafeRawPointer(c)
        }
        precondition(precision == .bf16 || (input == .f32 && output == .f32), "bf16 activations need bf16 precision")
        let scratch = prim.scratchpadBytes > 0 ? UnsafeMutableRawPointer.allocate(byteCount: prim.scratchpadBytes, alignment: 64) : nil
        defer { converted?.deallocate(); scratch?.deallocate() }

        let dt = precision.dataType
        var mds = [OneDNN.matrix(rows, i, dt, dnnl_ab), wmd, OneDNN.matrix(1, o, dnnl_f32, dnnl_ab),
                   OneDNN.matrix(rows, o, output == .f32 ? dnnl_f32 : dnnl_bf16, dnnl_ab), OneDNN.matrix(1, o, dnnl_f32, dnnl_ab)]
        var pointers: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(mutating: src), UnsafeMutableRawPointer(mutating: wdata),
                                                    bias.map { UnsafeMutableRawPointer(mutating: $0) }, out, nil]
        let argIDs = [DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST, 16384 * 1 | DNNL_ARG_SRC_1]
        if case let .biasScaleAddInto(gamma) = epilogue { pointers[4] = UnsafeMutableRawPointer(mutating: gamma) }
        var args: [dnnl_exec_arg_t] = []
        var memories: [dnnl_memory_t?] = []
        for j in 0..<5 where pointers[j] != nil {
            var m: dnnl_memory_t?
            OneDNN.check(dnnl_memory_create(&m, &mds[j], OneDNN.engine, pointers[j]), "memory")
            memories.append(m)
            args.append(dnnl_exec_arg_t(arg: argIDs[j], memory: m))
        }
        if let scratch {
            var smd = OneDNN.matrix(1, prim.scratchpadBytes, dnnl_u8, dnnl_ab)
            var m: dnnl_memory_t?
            OneDNN.check(dnnl_memory_create(&m, &smd, OneDNN.engine, scratch), "memory")
            memories.append(m)
            args.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: m))
        }
        defer { for m in memories { dnnl_memory_destroy(m) } }
        omp_set_num_threads(1)
        OneDNN.withStream { s in
            OneDNN.check(dnnl_primitive_execute(prim.primitive, s, Int32(args.count), &args), "matmul")
        }
    }

    /// The linear layer over all workers: rows split into one slice per worker, each slice one primitive call.
    package static func linear(
        _ out: UnsafeMutableRawPointer, output: Activation = .f32, _ x: UnsafeRawPointer, input: Activation = .f32,
        weights: MatmulWeights, packed: Bool = true, bias: UnsafePointer<Float>?, rows: Int,
        epilogue: LinearEpilogue = .bias, precision: Precision = .fp32, parallel: Bool = true
    ) {
        if rows == 0 { return }
        let i = weights.inFeatures, o = weights.outFeatures
        let inBytes = input == .f32 ? 4 : 2, outBytes = output == .f32 ? 4 : 2
        let xs = Shared(x.assumingMemoryBound(to: UInt8.self)), os = Shared(out.assumingMemoryBound(to: UInt8.self))
        let bs = bias.map { Shared($0) }
        let shared = SharedEpilogue(epilogue)
        let body: @Sendable (Range<Int>) -> Void = { r in
            run(os.base + r.lowerBound * o * outBytes, output: output, xs.base + r.lowerBound * i * inBytes, input: input,
                weights: weights, packed: packed, bias: bs.map { UnsafePointer($0.base) }, rows: r.count, epilogue: shared.epilogue,
                precision: precision)
        }
        if parallel { Parallel.forRanges(rows, minChunk: 32, body) } else { body(0..<rows) }
    }
}

/// An epilogue handed to the workers (its LayerScale pointer, like every kernel buffer, outlives the call).
struct SharedEpilogue: @unchecked Sendable {
    let epilogue: LinearEpilogue
    init(_ e: LinearEpilogue) { epilogue = e }
}

/// x rounded to bf16 and back (nearest even): what the bf16 path does to each operand (tests' oracle).
package func bf16Rounded(_ x: Float) -> Float {
    var v = x, h: UInt16 = 0, back: Float = 0
    ck_f32_to_bf16(&h, &v, 1)
    ck_bf16_to_f32(&back, &h, 1)
    return back
}
