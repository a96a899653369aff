// Matching one image pair in original pixels (METHOD §5), the one owner of it for the service (/v1/match,
// /v1/transfer) and `spherecorr-train transfer`: blended cosine similarities, argmax with first-index ties; with
// `restrict`, target candidates (and dense sources) are the patches whose centre lies inside the image, not the
// letterbox padding, so every answer is a point of the image; without it, exactly the reference.

import Imaging
import Kernels

/// One image as matching sees it: its size, its letterbox, features [G·G, D] and, for the blend, unit sphere
/// vectors [G·G, 3].
package struct MatchImage: Sendable {
    package var width: Int
    package var height: Int
    package var transform: KeypointTransform
    package var features: FloatStorage
    package var sphere: FloatStorage?
    package var grid: Int { transform.gridSize }
    package var tokens: Int { grid * grid }

    package init(width: Int, height: Int, transform: KeypointTransform, features: FloatStorage, sphere: FloatStorage?) {
        self.width = width; self.height = height; self.transform = transform; self.features = features; self.sphere = sphere
    }
}

/// One match in original pixel coordinates.
package struct PointMatch: Sendable, Equatable {
    package var sx: Double, sy: Double, tx: Double, ty: Double
    package var score: Float
    package var sourcePatch: Int, targetPatch: Int
    /// Points mode: the forward–backward check (nil in dense mode, where every mutual match is consistent).
    package var visible: Bool? = nil
    package var cycleError: Double? = nil

    /// The answer's record (/v1/match, /v1/transfer, `spherecorr-train transfer`): `source`, `target`, `score`,
    /// `source_patch`, `target_patch`, and in points mode `visible` and `cycle_error_px`.
    package var record: [String: Any] {
        var o: [String: Any] = ["source": [sx, sy], "target": [tx, ty], "score": Double(score), "source_patch": sourcePatch, "target_patch": targetPatch]
        if let visible, let cycleError { o["visible"] = visible; o["cycle_error_px"] = cycleError }
        return o
    }
}

/// One image's side of a pair: its candidate patches and their descriptors. A transfer builds the source's once
/// for all its targets; the service keeps it in the feature cache, so a warm request normalises nothing.
package struct MatchSide: Sendable {
    package let image: MatchImage
    package let rows: [Int]
    package let descriptors: ImageDescriptors

    package init(_ image: MatchImage, restrict: Bool) throws(CorrespondenceError) {
        self.image = image
        rows = restrict ? MatchSide.contentPatches(image) : Array(0..<image.tokens)
        descriptors = try MatchSide.descriptors(image, rows)
    }

    /// Bytes it holds besides the image's own arrays (its normalised descriptors with the GEMM's reordered copy of
    /// the features, and its rows): what a cache keeping it pays.
    package var bytes: Int {
        2 * descriptors.features.bytes + (descriptors.sphere?.bytes ?? 0) + rows.count * MemoryLayout<Int>.stride
    }

    /// Descriptors of `rows` of one image (features and, when it has them, sphere vectors).
    static func descriptors(_ img: MatchImage, _ rows: [Int]) throws(CorrespondenceError) -> ImageDescriptors {
        let d = img.features.count / img.tokens
        var f = [Float](), s = [Float]()
        f.reserveCapacity(rows.count * d)
        for r in rows { f += UnsafeBufferPointer(start: img.features.pointer + r * d, count: d) }
        if let sphere = img.sphere { for r in rows { s += UnsafeBufferPointer(start: sphere.pointer + r * 3, count: 3) } }
        return try ImageDescriptors(features: f, sphere: img.sphere == nil ? nil : s, tokens: rows.count, featureDimension: d)
    }

    /// Patches whose centre falls inside the image (not in the letterbox padding). A very elongated image can be
    /// thinner than half a patch in the letterbox, so that no centre falls inside it: then the patches the image
    /// overlaps at all (never none; answers are clamped into the image by `original`).
    package static func contentPatches(_ img: MatchImage) -> [Int] {
        let centred = (0..<img.tokens).filter { i in
            let c = img.transform.patchCentre(index: i)
            let o = img.transform.toOriginal(x: Double(c.x), y: Double(c.y))
            return o.x >= 0 && o.y >= 0 && o.x < Double(img.width) && o.y < Double(img.height)
        }
        if !centred.isEmpty { return centred }
        let t = img.transform, g = img.grid, p = Double(t.resolution) / Double(g)
        let x0 = Double(t.offsetX), y0 = Double(t.offsetY)
        let x1 = x0 + max(Double(t.scale) * Double(img.width), 1), y1 = y0 + max(Double(t.scale) * Double(img.height), 1)
        let overlapping = (0..<img.tokens).filter { i in
            let (r, c) = (Double(i / g), Double(i % g))
            return c * p < x1 && (c + 1) * p > x0 && r * p < y1 && (r + 1) * p > y0
        }
        return overlapping.isEmpty ? Array(0..<img.tokens) : overlapping
    }
}

/// METHOD §5 matching of one pair in original pixels.
package struct PairMatcher: Sendable {
    package let source: MatchImage, target: MatchImage
    let srcDesc: ImageDescriptors, trgDesc: ImageDescriptors
    let srcRows: [Int], trgRows: [Int]
    package let alpha: Double

    package init(source: MatchSide, target: MatchSide, alpha: Double) {
        self.source = source.image; self.target = target.image; self.alpha = alpha
        srcRows = source.rows; trgRows = target.rows
        srcDesc = source.descriptors; trgDesc = target.descriptors
    }

    package init(source: MatchImage, target: MatchImage, alpha: Double, restrict: Bool) throws(CorrespondenceError) {
        self.init(source: try MatchSide(source, restrict: restrict), target: try MatchSide(target, restrict: restrict), alpha: alpha)
    }

    /// A patch centre in original pixels, clamped into the image.
    func original(_ img: MatchImage, patch: Int) -> (Double, Double) {
        let c = img.transform.patchCentre(index: patch)
        let o = img.transform.toOriginal(x: Double(c.x), y: Double(c.y))
        return (min(max(o.x, 0), Double(img.width) - 0.5), min(max(o.y, 0), Double(img.height) - 0.5))
    }

    /// For each source point (original pixels), its patch, then the best target patch; with `soft-argmax`, the
    /// expected target point over the window around it (docs/METHOD.md §5), patches outside the image (when
    /// `restrict`) taking no part, like those outside the window.
    ///
    /// Visibility (issue #14): the target patch's own best source patch (same blend, same candidates); `cycleError`
    /// is the distance between its centre and the centre of the query's patch, in source pixels (0 for a consistent
    /// cycle, whatever the patch size), and the point is `visible` when that is at most `visibilityThreshold`
    /// (default `CycleCheck.defaultFraction` × the source's longer side).
    package func points(_ pts: [(Double, Double)], refinement: Refinement = .none,
                        visibilityThreshold: Double? = nil) throws(CorrespondenceError) -> [PointMatch] {
        let t = source.transform
        let patchOf: [Int] = pts.map { p in
            let l = t.toLetterbox(x: Float(p.0), y: Float(p.1))
            return min(max(t.patch(x: l.x, y: l.y).index, 0), source.tokens - 1)
        }
        // Query rows: a point's patch is always a content patch unless restrict is off (then rows = all).
        let rowIndex = Dictionary(srcRows.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let queries = patchOf.map { rowIndex[$0] ?? nearestRow($0) }
        let nn = try Matching.nearestNeighbours(source: srcDesc, target: trgDesc, sourceRows: queries, alpha: alpha)
        var refined: [(Double, Double)]? = nil
        if case let .softArgmax(window, temperature) = refinement {
            refined = try refine(queries: queries, window: window, temperature: temperature)
        }
        let back = try Matching.nearestNeighbours(source: trgDesc, target: srcDesc, sourceRows: nn.map(\.target), alpha: alpha)
        let threshold = visibilityThreshold ?? CycleCheck.defaultFraction * Double(max(source.width, source.height))
        return zip(pts, zip(patchOf, nn)).enumerated().map { k, pm in
            let (p, m) = pm
            let tp = trgRows[m.1.target]
            let (tx, ty) = refined?[k] ?? original(target, patch: tp)
            let e = CycleCheck.error(from: original(source, patch: srcRows[queries[k]]), back: original(source, patch: srcRows[back[k].target]))
            return PointMatch(sx: p.0, sy: p.1, tx: tx, ty: ty, score: m.1.score, sourcePatch: m.0, targetPatch: tp,
                              visible: CycleCheck.visible(error: e, threshold: threshold), cycleError: e)
        }
    }

    /// Window soft-argmax of each query row over the full target grid (non-candidate patches −∞), in original
    /// target pixels, clamped into the image as `original` clamps a patch centre.
    func refine(queries: [Int], window: Int, temperature: Double) throws(CorrespondenceError) -> [(Double, Double)] {
        let sim = try Matching.similarity(source: srcDesc, target: trgDesc, sourceRows: queries, alpha: alpha)
        let g = target.grid, n = target.tokens
        var full = [Float](repeating: -.infinity, count: queries.count * n)
        for k in 0..<queries.count {
            for (j, t) in trgRows.enumerated() { full[k * n + t] = sim[k, j] }
        }
        return full.withUnsafeBufferPointer { p in
            (0..<queries.count).map { k in
                let c = SoftArgmax.refine(p.baseAddress! + k * n, rows: g, columns: g, window: window, temperature: temperature)
                let l = target.transform.grid.point(column: c.column, row: c.row)
                let o = target.transform.toOriginal(x: Double(l.x), y: Double(l.y))
                return (min(max(o.x, 0), Double(target.width) - 0.5), min(max(o.y, 0), Double(target.height) - 0.5))
            }
        }
    }

    /// The content patch nearest to `patch` (a point on the padding boundary of a rounding edge).
    func nearestRow(_ patch: Int) -> Int {
        let g = source.grid
        let (r0, c0) = (patch / g, patch % g)
        return srcRows.enumerated().min { a, b in
            let da = (a.element / g - r0) * (a.element / g - r0) + (a.element % g - c0) * (a.element % g - c0)
            let db = (b.element / g - r0) * (b.element / g - r0) + (b.element % g - c0) * (b.element % g - c0)
            return da < db
        }?.offset ?? 0
    }

    /// Dense mutual nearest neighbours above `minScore`, best first, at most `max`.
    package func dense(minScore: Float, max: Int) throws(CorrespondenceError) -> [PointMatch] {
        let m = try Matching.mutualNearestNeighbours(source: srcDesc, target: trgDesc, alpha: alpha, minScore: minScore)
        return m.sorted { $0.score > $1.score || ($0.score == $1.score && $0.source < $1.source) }.prefix(max).map { x in
            let sp = srcRows[x.source], tp = trgRows[x.target]
            let (sx, sy) = original(source, patch: sp), (tx, ty) = original(target, patch: tp)
            return PointMatch(sx: sx, sy: sy, tx: tx, ty: ty, score: x.score, sourcePatch: sp, targetPatch: tp)
        }
    }

    /// The dense correspondence field [G, G, 3] (issue #14): for every source patch (padding included), the row,
    /// column and blended score of its best target patch among the target candidates, first index on ties.
    package func field() throws(CorrespondenceError) -> [Float] {
        let all = Array(0..<source.tokens)
        var desc = srcDesc
        if srcRows.count != source.tokens { desc = try MatchSide.descriptors(source, all) }
        let nn = try Matching.nearestNeighbours(source: desc, target: trgDesc, sourceRows: all, alpha: alpha)
        let g = target.grid
        var out = [Float](repeating: 0, count: source.tokens * 3)
        for (i, m) in nn.enumerated() {
            let tp = trgRows[m.target]
            out[3 * i] = Float(tp / g); out[3 * i + 1] = Float(tp % g); out[3 * i + 2] = m.score
        }
        return out
    }
}
