import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Timing and memory figures for benchmarks (never for tests).
package enum Measure {
    package static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Peak resident set size of this process in bytes (VmHWM).
    package static func peakResidentBytes() -> Int { statusField("VmHWM:") }
    package static func residentBytes() -> Int { statusField("VmRSS:") }

    private static func statusField(_ key: String) -> Int {
        guard let f = fopen("/proc/self/status", "r") else { return 0 }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var cap = 0
        defer { free(line) }
        while getline(&line, &cap, f) > 0 {
            let s = String(cString: line!)
            if s.hasPrefix(key) {
                let kb = s.dropFirst(key.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) } ?? 0
                return kb * 1024
            }
        }
        return 0
    }

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
