import Imaging
import Kernels
import Testing
@testable import Correspondence

/// The pair matching the service and `spherecorr-train transfer` share (issue #14): the dense field, points mode and
/// dense mutual matches are three readings of the same argmax.
@Suite struct PairMatcherTests {
    /// A seeded image of `width × height` at resolution 84 (a 6×6 grid), features of width 8, sphere vectors.
    func image(_ width: Int, _ height: Int, seed: UInt64) -> MatchImage {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        let t = KeypointTransform(imageWidth: width, imageHeight: height, resolution: 84)
        let n = t.gridSize * t.gridSize
        return MatchImage(width: width, height: height, transform: t, features: FloatStorage((0..<(n * 8)).map { _ in next() }),
                          sphere: FloatStorage((0..<(n * 3)).map { _ in next() }))
    }

    @Test(arguments: [true, false])
    func fieldPointsAndDenseAgree(restrict: Bool) throws {
        let s = image(120, 80, seed: 1), t = image(70, 100, seed: 2)
        let m = try PairMatcher(source: s, target: t, alpha: 0.2, restrict: restrict)
        let field = try m.field()
        let g = 6
        #expect(field.count == g * g * 3)
        // Every entry is the blended argmax over the target candidates.
        let src = try MatchSide(s, restrict: false), trg = try MatchSide(t, restrict: restrict)
        let nn = try Matching.nearestNeighbours(source: src.descriptors, target: trg.descriptors, sourceRows: Array(0..<(g * g)), alpha: 0.2)
        for (i, x) in nn.enumerated() {
            let tp = trg.rows[x.target]
            #expect(field[3 * i] == Float(tp / g) && field[3 * i + 1] == Float(tp % g) && field[3 * i + 2] == x.score)
        }
        if !restrict {
            // Candidates are the whole letterbox: padding columns of the 70×100 target can win.
            #expect(trg.rows.count == g * g)
        } else {
            #expect(trg.rows.count < g * g && trg.rows.allSatisfy { MatchSide.contentPatches(t).contains($0) })
        }
        // Points on content patches: their target patch is the field's entry.
        let pts = [(60.0, 40.0), (5.0, 30.0), (119.0, 79.0), (90.5, 20.25)]
        for p in try m.points(pts) {
            #expect(Float(p.targetPatch / g) == field[3 * p.sourcePatch] && Float(p.targetPatch % g) == field[3 * p.sourcePatch + 1])
            #expect(p.visible != nil && p.cycleError! >= 0)
        }
        // Mutual matches read the same entries.
        for d in try m.dense(minScore: -1, max: 1000) {
            #expect(Float(d.targetPatch / g) == field[3 * d.sourcePatch] && Float(d.targetPatch % g) == field[3 * d.sourcePatch + 1])
        }
    }

    @Test func anImageAgainstItselfIsTheIdentity() throws {
        let s = image(84, 84, seed: 3)
        let m = try PairMatcher(source: s, target: s, alpha: 0.5, restrict: true)
        let field = try m.field()
        for i in 0..<36 { #expect(field[3 * i] == Float(i / 6) && field[3 * i + 1] == Float(i % 6) && abs(field[3 * i + 2] - 1) < 1e-5) }
        for p in try m.points([(3, 3), (50, 70)]) { #expect(p.visible == true && p.cycleError == 0 && p.targetPatch == p.sourcePatch) }
    }

    @Test func aSideIsSharedAcrossTargets() throws {
        let s = image(120, 80, seed: 1)
        let side = try MatchSide(s, restrict: true)
        for seed in 4...6 {
            let t = image(100, 60, seed: UInt64(seed))
            let shared = try PairMatcher(source: side, target: try MatchSide(t, restrict: true), alpha: 0.2).points([(10, 10), (100, 70)])
            let fresh = try PairMatcher(source: s, target: t, alpha: 0.2, restrict: true).points([(10, 10), (100, 70)])
            #expect(shared == fresh)
        }
    }
}
