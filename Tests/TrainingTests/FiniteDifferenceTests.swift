import Foundation
import Testing
import Kernels
import SphereMap
@testable import Training

// Every backward kernel against central finite differences of a plain Double oracle of its forward
// (docs/ARCHITECTURE.md §5: a backward is checked against finite differences). L = Σ forward(x) ⊙ R for a fixed random R, so ∂L/∂y = R is what the backward receives.
// Shapes are odd on purpose (no multiple of 8 or 16 except where a kernel requires it).

struct Rand {
    var g: SplitMix64
    init(_ seed: UInt64) { g = SplitMix64(seed: seed) }
    mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in g.normal() * scale } }
}

/// Central difference (step h·max(1, |x|)) of `f` at `x` for the given indices, in Double.
func finiteDifferences(_ x: [Double], at indices: [Int], h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    indices.map { i in
        var p = x, m = x
        let step = h * max(1, abs(x[i]))
        p[i] += step; m[i] -= step
        return (f(p) - f(m)) / (2 * step)
    }
}

/// Compares analytic (Float) against finite differences (Double): |a − n| ≤ 1e-4·max|n| + 2e-3·|n| for each entry.
func expectGradient(_ name: String, analytic: [Float], at indices: [Int], numeric: [Double],
                    sourceLocation: SourceLocation = #_sourceLocation) {
    let scale = numeric.map(abs).max() ?? 0
    var worst = 0.0
    for (k, i) in indices.enumerated() {
        let d = abs(Double(analytic[i]) - numeric[k])
        worst = max(worst, d / max(scale, 1e-12))
        #expect(d <= 1e-4 * scale + 2e-3 * abs(numeric[k]), "\(name)[\(i)]: analytic \(analytic[i]) vs finite difference \(numeric[k])",
                sourceLocation: sourceLocation)
    }
    print("FD \(name): max|Δ|/max|g| = \(String(format: "%.1e", worst)) over \(indices.count) entries")
}

func sample(_ n: Int, _ k: Int, _ r: inout Rand) -> [Int] {
    if n <= k { return Array(0..<n) }
    return (0..<k).map { _ in Int(r.g.next() % UInt64(n)) }
}

@Suite(.serialized) struct FiniteDifferenceTests {
    init() { Threading.configure(workers: 2) }

    @Test func linear() {
        var r = Rand(1)
        let rows = 37, i = 19, o = 23
        let x = r.floats(rows * i), w = r.floats(o * i, scale: 0.3), b = r.floats(o), up = r.floats(rows * o)
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            var s = 0.0
            for rr in 0..<rows { for oo in 0..<o {
                var y = b[oo]
                for ii in 0..<i { y += x[rr * i + ii] * w[oo * i + ii] }
                s += y * Double(up[rr * o + oo])
            } }
            return s
        }
        var dx = [Float](repeating: 0, count: rows * i), dw = [Float](repeating: 0, count: o * i), db = [Float](repeating: 0, count: o)
        linearBackward(dx: &dx, dWeight: &dw, dBias: &db, dy: up, x: x, weight: w, rows: rows, inFeatures: i, outFeatures: o)
        let xd = x.map(Double.init), wd = w.map(Double.init), bd = b.map(Double.init)
        let ix = sample(x.count, 40, &r), iw = sample(w.count, 40, &r), ib = Array(0..<o)
        expectGradient("linear dx", analytic: dx, at: ix, numeric: finiteDifferences(xd, at: ix) { loss($0, wd, bd) })
        expectGradient("linear dW", analytic: dw, at: iw, numeric: finiteDifferences(wd, at: iw) { loss(xd, $0, bd) })
        expectGradient("linear db", analytic: db, at: ib, numeric: finiteDifferences(bd, at: ib) { loss(xd, wd, $0) })
        // Accumulation: a second call adds the same amounts.
        var dx2 = dx, dw2 = dw
        linearBackward(dx: &dx2, accumulateInput: true, dWeight: &dw2, dBias: nil, dy: up, x: x, weight: w, rows: rows, inFeatures: i, outFeatures: o)
        #expect(zip(dx2, dx).allSatisfy { abs($0 - 2 * $1) <= 1e-5 * max(1, abs($1)) })
        #expect(zip(dw2, dw).allSatisfy { abs($0 - 2 * $1) <= 1e-5 * max(1, abs($1)) })
    }

    @Test func gelu() {
        var r = Rand(2)
        let n = 203
        let x = r.floats(n, scale: 2.5), up = r.floats(n)
        var d = up
        geluBackwardInPlace(&d, preActivation: x, count: n)
        let xd = x.map(Double.init)
        let numeric = finiteDifferences(xd, at: Array(0..<n)) { v in
            var s = 0.0
            for j in 0..<n { s += 0.5 * v[j] * (1 + erf(v[j] / 2.0.squareRoot())) * Double(up[j]) }
            return s
        }
        expectGradient("gelu", analytic: d, at: Array(0..<n), numeric: numeric)
        // The forward it differentiates is exact GELU (H13).
        var y = [Float](repeating: 0, count: n)
        geluForward(&y, x, count: n)
        #expect(zip(y, x).allSatisfy { abs($0 - geluReference($1)) <= 2e-6 * max(1, abs($1)) })
    }

    @Test func layerNorm() {
        var r = Rand(3)
        let rows = 13, c = 29
        let x = r.floats(rows * c, scale: 2).map { $0 + 0.7 }, w = r.floats(c).map { 1 + 0.3 * $0 }, b = r.floats(c), up = r.floats(rows * c)
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            var s = 0.0
            for rr in 0..<rows {
                let row = x[(rr * c)..<(rr * c + c)]
                let mean = row.reduce(0, +) / Double(c)
                let v = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
                let rstd = 1 / (v + 1e-5).squareRoot()
                for j in 0..<c { s += ((x[rr * c + j] - mean) * rstd * w[j] + b[j]) * Double(up[rr * c + j]) }
            }
            return s
        }
        var dx = [Float](repeating: 0, count: rows * c), dw = [Float](repeating: 0, count: c), db = [Float](repeating: 0, count: c)
        layerNormBackward(dx: &dx, dWeight: &dw, dBias: &db, dy: up, x: x, weight: w, rows: rows, cols: c, eps: 1e-5)
        let xd = x.map(Double.init), wd = w.map(Double.init), bd = b.map(Double.init)
        let ix = sample(x.count, 60, &r)
        expectGradient("layernorm dx", analytic: dx, at: ix, numeric: finiteDifferences(xd, at: ix) { loss($0, wd, bd) })
        expectGradient("layernorm dγ", analytic: dw, at: Array(0..<c), numeric: finiteDifferences(wd, at: Array(0..<c)) { loss(xd, $0, bd) })
        expectGradient("layernorm dβ", analytic: db, at: Array(0..<c), numeric: finiteDifferences(bd, at: Array(0..<c)) { loss(xd, wd, $0) })
    }

    /// Both attention paths (head dim 32: the fused AVX2 kernel where available; 12: the blocked kernel), 2–3 heads.
    @Test(arguments: [(2, 17, 3, 12), (2, 9, 2, 32)])
    func attention(_ shape: (Int, Int, Int, Int)) {
        let (batch, t, heads, dh) = shape
        var r = Rand(4)
        let c = heads * dh, scale = 1 / Float(dh).squareRoot()
        let qkv = r.floats(batch * t * 3 * c), up = r.floats(batch * t * c)
        func loss(_ q: [Double]) -> Double {
            var s = 0.0
            for b in 0..<batch { for h in 0..<heads { for i in 0..<t {
                var scores = [Double](repeating: 0, count: t)
                for j in 0..<t {
                    var dot = 0.0
                    for d in 0..<dh { dot += q[(b * t + i) * 3 * c + h * dh + d] * q[(b * t + j) * 3 * c + c + h * dh + d] }
                    scores[j] = dot * Double(scale)
                }
                let mx = scores.max()!
                let e = scores.map { Foundation.exp($0 - mx) }, z = e.reduce(0, +)
                for d in 0..<dh {
                    var o = 0.0
                    for j in 0..<t { o += e[j] / z * q[(b * t + j) * 3 * c + 2 * c + h * dh + d] }
                    s += o * Double(up[(b * t + i) * c + h * dh + d])
                }
            } } }
            return s
        }
        var out = [Float](repeating: 0, count: batch * t * c), dqkv = [Float](repeating: .nan, count: batch * t * 3 * c)
        attentionForward(&out, qkv: qkv, batch: batch, tokens: t, heads: heads, headDim: dh, scale: scale)
        attentionBackward(dqkv: &dqkv, dOut: up, qkv: qkv, out: out, batch: batch, tokens: t, heads: heads, headDim: dh, scale: scale)
        #expect(dqkv.allSatisfy { $0.isFinite }, "every element of dqkv is written")
        let idx = sample(qkv.count, 120, &r)
        expectGradient("attention dqkv (dh \(dh))", analytic: dqkv, at: idx, numeric: finiteDifferences(qkv.map(Double.init), at: idx, loss))
    }

    @Test func normalize() {
        var r = Rand(5)
        let rows = 21
        var x = r.floats(rows * 3)
        x[0] = 0; x[1] = 0; x[2] = 0  // a zero row: the forward divides by eps
        let up = r.floats(rows * 3)
        var dx = [Float](repeating: 0, count: rows * 3)
        normalizeRowsBackward(&dx, dy: up, x: x, rows: rows, cols: 3, eps: 1e-12)
        #expect(dx[0] == up[0] / 1e-12)
        let idx = Array(3..<(rows * 3))
        let numeric = finiteDifferences(x.map(Double.init), at: idx) { v in
            var s = 0.0
            for rr in 1..<rows {
                let n = max((v[rr * 3] * v[rr * 3] + v[rr * 3 + 1] * v[rr * 3 + 1] + v[rr * 3 + 2] * v[rr * 3 + 2]).squareRoot(), 1e-12)
                for j in 0..<3 { s += v[rr * 3 + j] / n * Double(up[rr * 3 + j]) }
            }
            return s
        }
        expectGradient("normalize", analytic: dx, at: idx, numeric: numeric)
    }
}
