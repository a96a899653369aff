import Foundation
import Testing
import Kernels
import SphereMap
@testable import Training

// The loss functions' hand-written gradients with respect to sph against central differences of the same functions.
// The losses compute in float (as the reference does), so the differences use a larger step (1e-3) and the
// tolerance is 1e-3 of the largest gradient + 1 %: this checks the derivations; the PyTorch parity checks the bits.

@Suite struct LossGradientTests {
    let b = 3, gh = 6, gw = 7
    var n: Int { gh * gw }

    /// Unit sphere points with mask values as training sees them (mostly 1, a few ≈1 and one image edge at 0.5).
    func sphere(_ seed: UInt64) -> [Float] {
        var r = Rand(seed)
        var s = r.floats(b * n * 3)
        s.withUnsafeMutableBufferPointer { normalizeRows($0.baseAddress!, rows: b * n, cols: 3, eps: 1e-12) }
        for t in 0..<(b * n) where t % 11 == 3 { for c in 0..<3 { s[t * 3 + c] *= 1.02 } }
        return s
    }

    func check(_ name: String, _ s: [Float], _ f: ([Float], UnsafeMutablePointer<Float>) -> Float) {
        var g = [Float](repeating: 0, count: s.count)
        _ = f(s, &g)
        var scratch = [Float](repeating: 0, count: s.count)
        let h: Float = 1e-3
        let numeric: [Double] = (0..<s.count).map { i in
            var p = s, m = s
            p[i] += h; m[i] -= h
            return (Double(f(p, &scratch)) - Double(f(m, &scratch))) / Double(2 * h)
        }
        let scale = numeric.map(abs).max() ?? 0
        #expect(scale > 0, "\(name): the loss depends on sph")
        var worst = 0.0
        for i in 0..<s.count {
            let d = abs(Double(g[i]) - numeric[i])
            worst = max(worst, d / scale)
            #expect(d <= 1e-3 * scale + 1e-2 * abs(numeric[i]), "\(name) ∂/∂sph[\(i)]: analytic \(g[i]) vs finite difference \(numeric[i])")
        }
        print("FD \(name) loss: max|Δ|/max|g| = \(String(format: "%.1e", worst))")
    }

    @Test func viewpoint() {
        check("viewpoint", sphere(21)) { s, g in
            viewpointLoss(sphere: s, viewpoints: [0, 3, 6], bins: 8, batch: b, tokens: n, weight: 1, dSphere: g)
        }
    }

    /// Fixed random triplets over images 0 and 1 (degenerate ones allowed, as the reference's draws), plus a right angle.
    var triplets: Triplets {
        var t = Triplets()
        var r = Rand(5)
        for k in 0..<40 {
            let img = k % 2
            t.a.append(img * n + Int(r.g.next() % UInt64(n)))
            t.b.append(img * n + Int(r.g.next() % UInt64(n)))
            t.c.append(img * n + Int(r.g.next() % UInt64(n)))
        }
        t.a.append(8); t.b.append(9); t.c.append(15)  // one column right and one row down of token 8
        return t
    }

    @Test func distance() {
        let grid = GridCoordinates(height: gh, width: gw)
        check("distance", sphere(22)) { s, g in
            distanceLoss(sphere: s, triplets: triplets, grid: grid, margin: 0.5, weight: 1, dSphere: g)
        }
    }

    @Test func orientation() {
        let grid = GridCoordinates(height: gh, width: gw)
        var kept = 0
        check("orientation", sphere(23)) { s, g in
            let r = orientationLoss(sphere: s, triplets: triplets, grid: grid, threshold: 1, weight: 1, dSphere: g)
            kept = r.kept
            return r.loss
        }
        #expect(kept > 5 && kept < triplets.a.count, "the |det| > 0.7 filter keeps some triplets and drops others")
    }

    /// Ties make c the positive (strict <): moving b's sphere point changes the loss only through the negative term.
    @Test func distanceTieRule() {
        var t = Triplets()
        t.a = [8]; t.b = [9]; t.c = [15]   // 7×7 grid: 9 is one column right of 8, 15 one row down: equal image distances
        let grid = GridCoordinates(height: 7, width: 7)
        let s = sphere(24)
        var g = [Float](repeating: 0, count: s.count)
        let l = distanceLoss(sphere: s, triplets: t, grid: grid, margin: 0.5, weight: 1, dSphere: &g)
        func cosd(_ i: Int, _ j: Int) -> Float {
            let x = SIMD3(s[i * 3], s[i * 3 + 1], s[i * 3 + 2]), y = SIMD3(s[j * 3], s[j * 3 + 1], s[j * 3 + 2])
            return 1 - (x / (x * x).sum().squareRoot() * (y / (y * y).sum().squareRoot())).sum()
        }
        let expected = max(0.5 + cosd(8, 15) - cosd(8, 9), 0)
        #expect(abs(l - expected) <= 1e-6, "c (token 15) is the positive on a tie: \(l) vs \(expected)")
    }
}
