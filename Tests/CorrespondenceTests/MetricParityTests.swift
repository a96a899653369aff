import Imaging
import Foundation
import Testing
import TestSupport
import TensorFiles
@testable import Correspondence

/// PCK and KAP against the reference formulation (tools/parity/make_metric_fixtures.py):
/// per-pair argmax, patch indices and KAP emissions bit-exact, per-category and aggregate scores
/// to 1e-6.
@Suite struct MetricParityTests {
    static let cases: [Expected.Case] = (try? MetricFixtures.expected().cases) ?? []

    @Test func fixturesPresent() throws {
        let e = try MetricFixtures.expected()
        #expect(e.cases.map(\.resolution) == [84, 140, 840])
        #expect(e.cases.allSatisfy { $0.grid * 14 == $0.resolution })
    }

    @Test(arguments: cases)
    func parity(_ c: Expected.Case) throws {
        let file = try MetricFixtures.tensors(c.file)
        let grid = try #require(PatchGrid(resolution: c.resolution))
        #expect(grid.side == c.grid)
        let alphas = c.alphas.map { Float($0) }
        #expect(alphas == defaultPCKAlphas)
        var pckScores: [CategoryScore] = [], kapScores: [CategoryScore] = []

        for cat in c.categories {
            var pck = PCKAccumulator(alphas: alphas)
            var kap = KAPAccumulator(grid: grid, alphas: alphas)
            for p in cat.pairs {
                let src = try file.floats(p.key + ".src_kps"), trg = try file.floats(p.key + ".trg_kps")
                let n = p.num_kps
                let sim = try SimilarityMatrix(rows: n, columns: grid.count, values: file.floats(p.key + ".sim"))

                // Source patch indices (H26) and argmax with first-index ties (H30).
                let patches = (0..<n).map { grid.rawIndex(x: src[3 * $0], y: src[3 * $0 + 1]) }
                #expect(patches == (try file.ints(p.key + ".src_patch")), "\(p.key) patch indices")
                #expect(grid.indices(ofKeypoints: src) == patches)
                #expect(sim.argmaxPerRow() == (try file.ints(p.key + ".argmax")), "\(p.key) argmax")

                // KAP emissions, bit for bit.
                let out = try KAP.pairOutput(sourceKeypoints: src, targetKeypoints: trg, similarity: sim,
                                             threshold: p.threshold, grid: grid, alphas: alphas)
                for a in 0..<alphas.count {
                    let scores = try file.floats("\(p.key).kap\(a).scores")
                    let labels = try file.floats("\(p.key).kap\(a).labels").map { $0 != 0 }
                    #expect(out.scores[a] == scores, "\(p.key) KAP scores α#\(a)")
                    #expect(out.labels[a] == labels, "\(p.key) KAP labels α#\(a)")
                }

                try pck.add(sourceKeypoints: src, targetKeypoints: trg, similarity: sim, threshold: p.threshold, grid: grid)
                try kap.add(sourceKeypoints: src, targetKeypoints: trg, similarity: sim, threshold: p.threshold)
            }
            #expect(pck.correct == cat.pck_correct, "\(cat.name) PCK correct counts")
            #expect(pck.evaluated == cat.pck_evaluated, "\(cat.name) PCK evaluated keypoints")
            #expect(pck.pairs == cat.pairs.count)
            let pckValues = try #require(pck.scores)
            let kapValues = try #require(kap.scores)
            expectClose(pckValues, cat.pck, atol: 1e-6, rtol: 0, "\(c.name) \(cat.name) PCK")
            expectClose(kapValues, cat.kap, atol: 1e-6, rtol: 0, "\(c.name) \(cat.name) KAP")
            #expect(kap.keypoints == cat.kap_keypoints)
            pckScores.append(CategoryScore(category: cat.name, pairs: pck.pairs, keypoints: pck.evaluated, scores: pckValues))
            kapScores.append(CategoryScore(category: cat.name, pairs: kap.pairs, keypoints: kap.keypoints, scores: kapValues))
        }

        let weighting = CategoryWeighting.automatic(for: c.categories.map(\.name),
                                                    fixed: .fixed(name: "reference", weights: ["aeroplane": 690]))
        #expect(weighting == .pairCounts)
        let pckAgg = try #require(Aggregation.aggregate(pckScores, weighting: weighting))
        let kapAgg = try #require(Aggregation.aggregate(kapScores, weighting: weighting))
        expectClose(pckAgg.macro, c.aggregate.pck_macro, atol: 1e-6, rtol: 0, "\(c.name) PCK macro")
        expectClose(pckAgg.weighted, c.aggregate.pck_weighted, atol: 1e-6, rtol: 0, "\(c.name) PCK weighted")
        expectClose(kapAgg.macro, c.aggregate.kap_macro, atol: 1e-6, rtol: 0, "\(c.name) KAP macro")
        expectClose(kapAgg.weighted, c.aggregate.kap_weighted, atol: 1e-6, rtol: 0, "\(c.name) KAP weighted")
    }
}

