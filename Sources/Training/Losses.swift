import Kernels
import SphereMap
#if canImport(Glibc)
import Glibc
#endif

// The viewpoint and triplet losses of METHOD §4.3–4.5 (dino_mapper.py: relative_viewpoint_loss,
// triplet_orientation_loss, triplet_distance_loss with correct_sine = False, H22). Each returns its value and
// accumulates weight·∂L/∂sph. All arithmetic in Float as the reference; loss sums in Double.
//
// Letters: B = batch, N = tokens per image, T = triplets per image, sph: [B, N, 3].

/// L_vp = mean over all B² pairs (diagonal included, H23) of (m_a·m_b − cos(θ_a − θ_b))², m_b = normalize(mean_t sph[b, t])
/// over all N tokens (background zeros included, H19), θ = bin·2π/bins.
func viewpointLoss(sphere: UnsafePointer<Float>, viewpoints: [Int], bins: Int, batch b: Int, tokens n: Int, weight: Float,
                   dSphere: UnsafeMutablePointer<Float>) -> Float {
    var mean = [Float](repeating: 0, count: b * 3), m = [Float](repeating: 0, count: b * 3)
    for i in 0..<b {
        var s = SIMD3<Float>(repeating: 0)
        for t in 0..<n { let p = sphere + (i * n + t) * 3; s += SIMD3(p[0], p[1], p[2]) }
        s /= Float(n)
        for c in 0..<3 { mean[i * 3 + c] = s[c] }
    }
    m = mean
    m.withUnsafeMutableBufferPointer { normalizeRows($0.baseAddress!, rows: b, cols: 3, eps: 1e-12) }
    let binSize = Float(2 * Double.pi / Double(bins))
    let ang = viewpoints.map { Float($0) * binSize }
    var loss = 0.0
    var dm = [Float](repeating: 0, count: b * 3)
    let inv = 1 / Float(b * b)
    for i in 0..<b {
        for j in 0..<b {
            let corr = m[i * 3] * m[j * 3] + m[i * 3 + 1] * m[j * 3 + 1] + m[i * 3 + 2] * m[j * 3 + 2]
            let agree = cosf(ang[i]) * cosf(ang[j]) + sinf(ang[i]) * sinf(ang[j])
            let diff = corr - agree
            loss += Double(diff * diff)
            // ∂/∂m_i and ∂/∂m_j of corr = m_i·m_j.
            let g = 2 * diff * inv * weight
            for c in 0..<3 { dm[i * 3 + c] += g * m[j * 3 + c]; dm[j * 3 + c] += g * m[i * 3 + c] }
        }
    }
    var dmean = [Float](repeating: 0, count: b * 3)
    normalizeRowsBackward(&dmean, dy: dm, x: mean, rows: b, cols: 3, eps: 1e-12)
    for i in 0..<b {
        let g = SIMD3(dmean[i * 3], dmean[i * 3 + 1], dmean[i * 3 + 2]) / Float(n)
        for t in 0..<n { let p = dSphere + (i * n + t) * 3; p[0] += g[0]; p[1] += g[1]; p[2] += g[2] }
    }
    return Float(loss / Double(b * b))
}

/// `torch.linspace(0, 1, steps)` bit for bit: step = 1/(steps − 1) in float; entry i is step·i for i < steps/2 and
/// 1 − step·(steps − 1 − i) after, each product and difference taken in double and rounded once to float. Verified
/// against PyTorch 2.15's CPU kernel for every size 2…199 (tools/parity/make_train_fixtures.py records 2…64 and
/// TrainingTests compare them bit for bit); computing the products in float differs by one ulp at some entries
/// (from 10 steps on), which would break exact image-distance ties of the distance loss differently (H20).
func linspace01(_ steps: Int) -> [Float] {
    if steps == 1 { return [0] }
    let step = Double(Float(1) / Float(steps - 1))
    let half = steps / 2
    return (0..<steps).map { i in i < half ? Float(step * Double(i)) : Float(1 - step * Double(steps - i - 1)) }
}

/// The triplets of one loss for one batch: token indices (row-major within the image, offset by image·N).
struct Triplets {
    var a: [Int] = [], b: [Int] = [], c: [Int] = []
}

/// Valid tokens of each image: ‖sph‖ > 0.99 (H19), in increasing order.
func validTokens(sphere: UnsafePointer<Float>, batch b: Int, tokens n: Int) -> [[Int]] {
    (0..<b).map { i in
        (0..<n).filter { t in
            let p = sphere + (i * n + t) * 3
            return (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).squareRoot() > 0.99
        }
    }
}

/// `random.choices(range(n_valid), k = 3T)` per image with at least one valid token, reshaped [3, T] (H20).
func drawTriplets(valid: [[Int]], tokens n: Int, perImage t: Int, draw: (Int, Int) -> [Int]) -> Triplets {
    var out = Triplets()
    for (i, v) in valid.enumerated() where !v.isEmpty {
        let idx = draw(v.count, 3 * t)
        precondition(idx.count == 3 * t && idx.allSatisfy { $0 >= 0 && $0 < v.count }, "triplet draw out of range")
        out.a += idx[0..<t].map { i * n + v[$0] }
        out.b += idx[t..<(2 * t)].map { i * n + v[$0] }
        out.c += idx[(2 * t)..<(3 * t)].map { i * n + v[$0] }
    }
    return out
}

@inline(__always) private func load3(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD3<Float> { SIMD3(p[i * 3], p[i * 3 + 1], p[i * 3 + 2]) }
@inline(__always) private func add3(_ p: UnsafeMutablePointer<Float>, _ i: Int, _ v: SIMD3<Float>) {
    p[i * 3] += v[0]; p[i * 3 + 1] += v[1]; p[i * 3 + 2] += v[2]
}
@inline(__always) private func dot3(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> Float { a[0] * b[0] + a[1] * b[1] + a[2] * b[2] }
@inline(__always) private func cross3(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> SIMD3<Float> {
    SIMD3(a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
}
@inline(__always) private func norm3(_ a: SIMD3<Float>) -> Float { dot3(a, a).squareRoot() }

/// Token (row, col) coordinates normalised to [0, 1] by linspace (H20), row first.
struct GridCoordinates {
    let rows: [Float], cols: [Float], width: Int, tokens: Int
    init(height: Int, width: Int) { rows = linspace01(height); cols = linspace01(width); self.width = width; tokens = height * width }
    func at(_ token: Int) -> SIMD2<Float> { let t = token % tokens; return SIMD2(rows[t / width], cols[t % width]) }
}

/// L_rd = mean over triplets of max(d(a, pos) − d(a, neg) + margin, 0), d = 1 − cos (METHOD §4.4). pos is b when
/// ‖i_b − i_a‖² < ‖i_c − i_a‖² (strict: ties make c the positive). 0 without triplets (reference: 0).
func distanceLoss(sphere: UnsafePointer<Float>, triplets tr: Triplets, grid: GridCoordinates, margin: Float, weight: Float,
                  dSphere: UnsafeMutablePointer<Float>) -> Float {
    let count = tr.a.count
    if count == 0 { return 0 }
    var loss = 0.0
    let scale = weight / Float(count)
    for k in 0..<count {
        let ia = grid.at(tr.a[k]), ib = grid.at(tr.b[k]), ic = grid.at(tr.c[k])
        let dab = ib - ia, dac = ic - ia
        let bIsPositive = dab[0] * dab[0] + dab[1] * dab[1] < dac[0] * dac[0] + dac[1] * dac[1]
        let (pi, ni) = bIsPositive ? (tr.b[k], tr.c[k]) : (tr.c[k], tr.b[k])
        let a = load3(sphere, tr.a[k]), p = load3(sphere, pi), n = load3(sphere, ni)
        let (cp, gap, gpa) = cosineWithGradients(a, p)
        let (cn, gan, gna) = cosineWithGradients(a, n)
        let hinge = margin + (1 - cp) - (1 - cn)
        loss += Double(max(hinge, 0))
        // clamp_min passes the gradient where hinge ≥ 0 (ATen's clamp backward mask).
        if hinge >= 0 {
            add3(dSphere, tr.a[k], (gan - gap) * scale)
            add3(dSphere, pi, -gpa * scale)
            add3(dSphere, ni, gna * scale)
        }
    }
    return Float(loss / Double(count))
}

/// cos(x, y) = (x/max(‖x‖, 1e-8))·(y/max(‖y‖, 1e-8)) and its gradients with respect to x and y.
@inline(__always) private func cosineWithGradients(_ x: SIMD3<Float>, _ y: SIMD3<Float>) -> (Float, SIMD3<Float>, SIMD3<Float>) {
    let nx = max(norm3(x), 1e-8), ny = max(norm3(y), 1e-8)
    let xh = x / nx, yh = y / ny
    let c = dot3(xh, yh)
    return (c, (yh - c * xh) / nx, (xh - c * yh) / ny)
}

@inline(__always) private func normalize2(_ v: SIMD2<Float>) -> SIMD2<Float> {
    v / max((v[0] * v[0] + v[1] * v[1]).squareRoot(), 1e-12)
}

/// v/max(‖v‖, 1e-12) and its backward (`normalizeRowsBackward` for one row).
@inline(__always) private func normalize3(_ v: SIMD3<Float>) -> SIMD3<Float> { v / max(norm3(v), 1e-12) }
@inline(__always) private func normalize3Backward(_ v: SIMD3<Float>, _ dy: SIMD3<Float>) -> SIMD3<Float> {
    let n = norm3(v)
    if n <= 1e-12 { return dy / 1e-12 }
    let y = v / n
    return (dy - y * dot3(y, dy)) / n
}

/// L_o = mean over kept triplets of max(thresh − n·o, 0)², METHOD §4.5: triplets with |det(v_ab, v_ac)| > 0.7 in the
/// image (det with (row, col) components, H21), ordered by its sign, tangents at o = s_a (not renormalised),
/// n = normalize(t1) × normalize(t2). 0 without triplets or when none survives (guard: the reference gives NaN).
func orientationLoss(sphere: UnsafePointer<Float>, triplets tr: Triplets, grid: GridCoordinates, threshold: Float, weight: Float,
                     dSphere: UnsafeMutablePointer<Float>) -> (loss: Float, kept: Int) {
    var kept: [(Int, Int, Int)] = []  // (a, dir1, dir2) token indices
    for k in 0..<tr.a.count {
        let ia = grid.at(tr.a[k])
        let vab = normalize2(grid.at(tr.b[k]) - ia), vac = normalize2(grid.at(tr.c[k]) - ia)
        let det = vab[0] * vac[1] - vac[0] * vab[1]
        if abs(det) > 0.7 { kept.append(det > 0 ? (tr.a[k], tr.b[k], tr.c[k]) : (tr.a[k], tr.c[k], tr.b[k])) }
    }
    if kept.isEmpty { return (0, 0) }
    var loss = 0.0
    let scale = weight / Float(kept.count)
    for (ai, d1i, d2i) in kept {
        let o = load3(sphere, ai), d1 = load3(sphere, d1i), d2 = load3(sphere, d2i)
        let s1 = d1 - o, s2 = d2 - o
        let p1 = dot3(o, s1), p2 = dot3(o, s2)
        let t1 = s1 - o * p1, t2 = s2 - o * p2
        let n1 = normalize3(t1), n2 = normalize3(t2)
        let cr = cross3(n1, n2)
        let dot = dot3(cr, o)
        let hinge = max(threshold - dot, 0)
        loss += Double(hinge * hinge)
        if hinge == 0 { continue }  // d(max(x, 0)²)/dx = 2·max(x, 0): zero at and below the kink
        let g = -2 * hinge * scale  // ∂/∂dot
        var dO = g * cr
        let dcr = g * o
        // cr = n1 × n2: ∂/∂n1 = n2 × dcr, ∂/∂n2 = dcr × n1
        let dt1 = normalize3Backward(t1, cross3(n2, dcr)), dt2 = normalize3Backward(t2, cross3(dcr, n1))
        // t = s − o·(o·s): ∂/∂s = dt − o·(o·dt); ∂/∂o = −dt·(o·s) − s·(o·dt)
        let od1 = dot3(o, dt1), od2 = dot3(o, dt2)
        let ds1 = dt1 - o * od1, ds2 = dt2 - o * od2
        dO += -dt1 * p1 - s1 * od1 - dt2 * p2 - s2 * od2
        // s = dir − o
        add3(dSphere, d1i, ds1)
        add3(dSphere, d2i, ds2)
        add3(dSphere, ai, dO - ds1 - ds2)
    }
    return (Float(loss / Double(kept.count)), kept.count)
}
