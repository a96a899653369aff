import Runtime

extension Measure {
    /// The GEMM rate (GFLOP/s) of the engine's linear path (the current kernel family and precision, all workers) on a
    /// ViT-shaped product [M, K] · [N, K]ᵀ: under `auto` oneDNN's matmul with reordered weights, as the backbone runs it.
    package static func sgemmGFLOPS(m: Int, n: Int, k: Int, repeats: Int = 5, precision: Precision = .current) -> Double {
        let a = FloatStorage(count: m * k), b = FloatStorage(count: n * k), c = FloatStorage(count: m * n)
        for i in 0..<(m * k) { a.pointer[i] = Float(i % 7) * 0.1 }
        for i in 0..<(n * k) { b.pointer[i] = Float(i % 5) * 0.1 }
        let weights = MatmulWeights(weight: b.pointer, inFeatures: k, outFeatures: n, owner: b)
        let auto = KernelFamily.current == .auto
        if auto { weights.prepare(precision) }
        var best = Double.infinity
        for _ in 0..<repeats {
            let t = now()
            if auto {
                Matmul.linear(UnsafeMutableRawPointer(c.pointer), UnsafeRawPointer(a.pointer), weights: weights, bias: nil, rows: m,
                              precision: precision)
            } else {
                linearForward(c.pointer, a.pointer, weight: b.pointer, bias: nil, rows: m, inFeatures: k, outFeatures: n)
            }
            best = min(best, now() - t)
        }
        return 2 * Double(m) * Double(n) * Double(k) / best / 1e9
    }
}
