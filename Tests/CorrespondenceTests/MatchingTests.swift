import Foundation
import Testing
import TensorFiles
@testable import Correspondence

@Suite struct MatchingTests {
    struct Inputs {
        var source: ImageDescriptors
        var target: ImageDescriptors
        var rows: [Int]
        var file: SafeTensorsFile
        var alpha: Double
    }

    func inputs() throws -> Inputs {
        let m = try MetricFixtures.expected().matching
        let f = try MetricFixtures.tensors(m.file)
        let source = try ImageDescriptors(features: f.floats("f1"), sphere: f.floats("s1"), tokens: m.tokens, featureDimension: m.dimension)
        let target = try ImageDescriptors(features: f.floats("f2"), sphere: f.floats("s2"), tokens: m.tokens, featureDimension: m.dimension)
        #expect(try f.ints("rows") == m.rows)
        return Inputs(source: source, target: target, rows: m.rows, file: f, alpha: m.alpha)
    }

    /// torch 2.x cosine semantics (x/max(‖x‖, eps)), including a zero vector and a vector whose
    /// norm is below eps, and the 0.8/0.2 blend of METHOD §5.
    @Test func cosineAndBlendMatchReference() throws {
        let t = try inputs()
        let features = try Matching.similarity(source: t.source, target: t.target, sourceRows: t.rows, alpha: 0)
        let spheres = try Matching.similarity(source: t.source, target: t.target, sourceRows: t.rows, alpha: 1)
        let blended = try Matching.similarity(source: t.source, target: t.target, sourceRows: t.rows, alpha: t.alpha)
        for (got, name) in [(features, "sim_features"), (spheres, "sim_sphere"), (blended, "sim_blended")] {
            let want = try t.file.floats(name)
            #expect(got.rows == t.rows.count && got.columns == 36)
            let worst = zip(got.values, want).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-6, "\(name): max |Δ| = \(worst)")
        }
        #expect(blended.argmaxPerRow() == (try t.file.ints("argmax_blended")))
        // Row 5 is a zero vector: every cosine is 0.
        #expect(features.row(2).allSatisfy { $0 == 0 })
        // Row 7 has norm 3e-9 < eps: divided by eps, so its cosines are 0.3 × the direction's.
        #expect(abs((features.row(3).map { abs($0) }.max() ?? 0) - 0.3 * 1) < 0.3)
    }

    @Test func blendWeightsAreFloat32OfTheReference() {
        let w = Matching.blendWeights(alpha: 0.2)
        #expect(w.features == Float(0.8) && w.sphere == Float(0.2))
        #expect(Float(1 - 0.8) == Float(0.2))  // the reference's (1 − mixing_ratio)
    }

    @Test func alphaNeedsSpheres() throws {
        let a = try ImageDescriptors(features: [1, 0, 0, 1], tokens: 2, featureDimension: 2)
        #expect(throws: CorrespondenceError.missingSphere) {
            try Matching.similarity(source: a, target: a, sourceRows: [0], alpha: 0.2)
        }
        #expect(throws: CorrespondenceError.self) { try Matching.similarity(source: a, target: a, sourceRows: [2]) }
        #expect(throws: CorrespondenceError.self) { try ImageDescriptors(features: [1, 2, 3], tokens: 2, featureDimension: 2) }
    }

    @Test func argmaxTakesTheFirstOfEqualMaxima() throws {
        let s = try SimilarityMatrix(rows: 3, columns: 4, values: [0.5, 0.9, 0.9, 0.1,
                                                                   .nan, 0.2, 0.2, 0.2,
                                                                   -1, -1, -1, -1])
        #expect(s.argmaxPerRow() == [1, 1, 0])
    }

    @Test func nearestAndMutualNeighboursAgreeWithBruteForce() throws {
        let t = try inputs()
        for alpha in [0.0, t.alpha] {
            let all = Array(0..<36)
            let sim = try Matching.similarity(source: t.source, target: t.target, sourceRows: all, alpha: alpha)
            let nn = try Matching.nearestNeighbours(source: t.source, target: t.target, sourceRows: all, alpha: alpha)
            #expect(nn.map(\.target) == sim.argmaxPerRow())
            #expect(nn.map(\.score) == (0..<36).map { sim.row($0).max()! })
            // brute force mutual NN
            var colBest = [Int](repeating: 0, count: 36)
            for j in 0..<36 {
                var best = 0
                for i in 1..<36 where sim[i, j] > sim[best, j] { best = i }
                colBest[j] = best
            }
            let rowBest = sim.argmaxPerRow()
            let expected = (0..<36).filter { colBest[rowBest[$0]] == $0 }
            for block in [1, 5, 256] {
                let mnn = try Matching.mutualNearestNeighbours(source: t.source, target: t.target, alpha: alpha, blockRows: block)
                #expect(mnn.map(\.source) == expected, "block \(block)")
                #expect(mnn.map(\.target) == expected.map { rowBest[$0] })
            }
            let strong = try Matching.mutualNearestNeighbours(source: t.source, target: t.target, alpha: alpha, minScore: 0.3)
            #expect(strong.allSatisfy { $0.score >= 0.3 })
            #expect(strong.map(\.source) == expected.filter { sim.row($0).max()! >= 0.3 })
        }
    }
}
