import Runtime

extension Measure {
    /// The GEMM rate (GFLOP/s) of the engine's linear path (the current kernel family, all workers) on a
    /// ViT-shaped product: [M, K] · [N, K]ᵀ.
    package static func sgemmGFLOPS(m: Int, n: Int, k: Int, repeats: Int = 5) -> Double {
        let a = FloatStorage(count: m * k), b = FloatStorage(count: n * k), c = FloatStorage(count: m * n)
        for i in 0..<(m * k) { a.pointer[i] = Float(i % 7) * 0.1 }
        for i in 0..<(n * k) { b.pointer[i] = Float(i % 5) * 0.1 }
        var best = Double.infinity
        for _ in 0..<repeats {
            let t = now()
            linearForward(c.pointer, a.pointer, weight: b.pointer, bias: nil, rows: m, inFeatures: k, outFeatures: n)
            best = min(best, now() - t)
        }
        return 2 * Double(m) * Double(n) * Double(k) / best / 1e9
    }
}
