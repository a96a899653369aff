import Imaging
import Testing
@testable import Correspondence

@Suite struct AveragePrecisionTests {
    func ap(_ labels: [Int], _ scores: [Float]) -> Double? { averagePrecision(labels: labels.map { $0 == 1 }, scores: scores) }

    @Test func perfectRankingIsOne() {
        #expect(ap([1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6]) == 1)
    }

    @Test func positiveRankedLast() {
        // thresholds 0.9: P 0, R 0; 0.1: P 1/2, R 1 → AP = 1 · 1/2
        #expect(ap([0, 1], [0.9, 0.1]) == 0.5)
    }

    @Test func tiesEnterTogether() {
        // One group {0.5, 0.5, 0.5} with 2 positives and 1 negative: P = 2/3, R = 1.
        #expect(ap([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.1]) == 2.0 / 3.0)
        // Groups {0.8: 1 pos, 1 neg} → (R 1/2, P 1/2); {0.3: 1 pos, 1 neg} → (R 1, P 1/2): AP = 1/2.
        // Breaking the ties positive-first would give 1·1/2 + 1/2·2/3 = 5/6.
        #expect(ap([1, 0, 0, 1], [0.8, 0.8, 0.3, 0.3]) == 0.5)
        // Same scores in any input order give the same AP.
        #expect(ap([0, 1, 1, 0], [0.8, 0.3, 0.8, 0.3]) == 0.5)
    }

    @Test func mixedTiesHandComputed() {
        // scores 0.9 (+), 0.7 (+, −), 0.7 (−), 0.2 (+)
        // groups: 0.9 → tp 1, fp 0: R 1/3, P 1
        //         0.7 → tp 2, fp 2: R 2/3, P 1/2
        //         0.2 → tp 3, fp 2: R 1,   P 3/5
        // AP = 1/3·1 + 1/3·1/2 + 1/3·3/5 = 0.7
        let v = ap([1, 1, 0, 0, 1], [0.9, 0.7, 0.7, 0.7, 0.2])!
        #expect(abs(v - 0.7) < 1e-15)
    }

    @Test func degenerateInputs() {
        #expect(ap([0, 0, 0], [0.3, 0.2, 0.1]) == 0)  // scikit-learn: recall set to 1, AP 0 (with a warning)
        #expect(ap([], []) == nil)
        #expect(ap([1, 0], [.nan, 0.5]) == nil)
        #expect(ap([1], [0.4]) == 1)
    }
}

@Suite struct PCKTests {
    let grid = PatchGrid(resolution: 84)!

    @Test func errorExactlyAtThresholdIsNotCorrect() {
        // thr_p = 64: α·thr = float32(0.1)·64 = 13421773·2⁻²¹ exactly (6.4000000953674316).
        // Prediction = centre of patch 0 (6.5, 6.5); gt x = 6.5 − that, representable, so err is
        // exactly the threshold.
        let threshold = Double(Float(0.1)) * 64
        let gx = Float(209_715) * Float(sign: .plus, exponent: -21, significand: 1)
        #expect(Double(Float(6.5) - gx) == threshold)
        let err = PCK.error(predicted: grid.centre(of: 0), groundTruth: (gx, 6.5))
        #expect(Double(err) == threshold)
        #expect(!PCK.isCorrect(error: err, alpha: 0.1, threshold: 64))
        // One float32 step smaller is correct.
        #expect(PCK.isCorrect(error: err.nextDown, alpha: 0.1, threshold: 64))
    }

    @Test func alphaIsFloat32PromotedToFloat64() {
        // The reference's α tensor is float32: float32(0.1)·100 = 10.00000015 > 10, so an error of
        // exactly 10 px is correct (with α = 0.1 in float64 it would not be).
        #expect(PCK.isCorrect(error: 10, alpha: 0.1, threshold: 100))
        #expect(!(10.0 < 0.1 * 100.0))
        // float32(0.01)·100 = 0.99999997764825821 < 1: an error of 1 px is not correct.
        #expect(!PCK.isCorrect(error: 1, alpha: 0.01, threshold: 100))
    }

    @Test func normUsesTheFusedAccumulation() {
        // Values from torch 2.15 CPU: torch.tensor([[dy, dx]]).norm(dim=-1) (the reference's (y, x)
        // order) = 149.87776184082031, while fl(fl(dx²) + fl(dy²)) gives 149.87777709960938.
        let dx = Float(72.21428680419922), dy = Float(131.3333282470703)
        #expect(PCK.error(predicted: (dx, dy), groundTruth: (0, 0)) == Float(149.8777618408203))
        #expect((dx * dx + dy * dy).squareRoot() == Float(149.87777709960938))
        #expect(PCK.error(predicted: (3, 4), groundTruth: (0, 0)) == 5)
    }

    @Test func mutualVisibilityAndPooling() throws {
        var acc = PCKAccumulator()
        // 4 rows: both visible (correct), source only, target only, both visible (wrong).
        let src: [Float] = [10, 10, 1, 20, 20, 1, 0, 0, 0, 30, 30, 1]
        let trg: [Float] = [6.5, 6.5, 1, 0, 0, 0, 50, 50, 1, 80, 80, 1]
        try acc.add(sourceKeypoints: src, targetKeypoints: trg, predictions: [0, 0, 0, 0], threshold: 50, grid: grid)
        #expect(acc.evaluated == 2 && acc.correct == [1, 1, 1] && acc.pairs == 1)
        try acc.add(sourceKeypoints: [0, 0, 0], targetKeypoints: [0, 0, 0], predictions: [0], threshold: 50, grid: grid)
        #expect(acc.evaluated == 2 && acc.pairs == 2)
        #expect(acc.scores == [0.5, 0.5, 0.5])
        #expect(PCKAccumulator().scores == nil)
        #expect(throws: CorrespondenceError.self) {
            try acc.add(sourceKeypoints: src, targetKeypoints: trg, predictions: [0, 0, 0, 99], threshold: 50, grid: grid)
        }
    }
}

@Suite struct KAPTests {
    @Test func handComputedPair() throws {
        // R = 28, G = 2: patch top-left pixels (0,0) (14,0) (0,14) (14,14).
        let grid = PatchGrid(resolution: 28)!
        // rows: 0 visible both, target at (13, 1); 1 source-only (target invisible); 2 invisible source.
        let src: [Float] = [3, 3, 1, 20, 20, 1, 0, 0, 0]
        let trg: [Float] = [13, 1, 1, 0, 0, 0, 5, 5, 1]
        let sim = try SimilarityMatrix(rows: 3, columns: 4, values: [0.2, 0.6, 0.4, 0.0,
                                                                     1.0, 0.2, 0.2, 0.2,
                                                                     9.0, -9.0, 9.0, 9.0])  // row 2 ignored
        // thr_p = 20: α 0.1 → 2 px (² = 4); 0.05 → 1 px; 0.01 → 0.2 px.
        // D row 0 from top-lefts: (0,0): 169 + 1 = 170; (14,0): 1 + 1 = 2; (0,14): 169 + 169; (14,14): 1 + 169.
        // α 0.1: D < 4 → patch 1 only; fallback argmin = patch 1. α 0.05/0.01: only the fallback.
        // Min-max over rows {0, 1}: min 0.0, max 1.0 → scores unchanged.
        let out = try KAP.pairOutput(sourceKeypoints: src, targetKeypoints: trg, similarity: sim, threshold: 20, grid: grid)
        for a in 0..<3 {
            #expect(out.scores[a] == [0.6, 0.4, 1.0])
            #expect(out.labels[a] == [true, false, false])
        }
    }

    @Test func fallbackBeforeClearingAndTopLeftDistances() throws {
        let grid = PatchGrid(resolution: 28)!
        // Target exactly between top-left corners (0,0) and (14,0): x = 7 → tie → first index wins.
        let src: [Float] = [1, 1, 1]
        let trg: [Float] = [7, 0, 1]
        let sim = try SimilarityMatrix(rows: 1, columns: 4, values: [0.1, 0.9, 0.5, 0.3])
        let out = try KAP.pairOutput(sourceKeypoints: src, targetKeypoints: trg, similarity: sim, threshold: 1, grid: grid)
        // Normalised in float32: (s − 0.1)/(0.9 − 0.1); positive = patch 0 only (fallback, first of the tie).
        let range: Float = Float(0.9) - Float(0.1)
        #expect(out.scores[0] == [0, 1])
        #expect(out.labels[0] == [true, false])
        // Large threshold (thr 100, α 0.1 → 10 px → 100): patches 0 and 1 (D = 49) positive.
        let wide = try KAP.pairOutput(sourceKeypoints: src, targetKeypoints: trg, similarity: sim, threshold: 100, grid: grid)
        #expect(wide.scores[0] == [1, (Float(0.5) - Float(0.1)) / range])
        #expect(wide.labels[0] == [true, false])
    }

    @Test func thresholdsAreFloat32() {
        // float32(168.0) · float32(0.1) = 16.800001 (float32), squared in float32
        let t = KAP.squaredThresholds(threshold: 168, alphas: [0.1])
        let ta = Float(168) * Float(0.1)
        #expect(ta == 16.800001 && t == [ta * ta])
    }

    @Test func degeneratePairs() throws {
        let grid = PatchGrid(resolution: 28)!
        let none = try KAP.pairOutput(sourceKeypoints: [0, 0, 0], targetKeypoints: [5, 5, 1],
                                      similarity: SimilarityMatrix(rows: 1, columns: 4, values: [1, 2, 3, 4]), threshold: 10, grid: grid)
        #expect(none.scores.allSatisfy { $0.isEmpty })
        let flat = try KAP.pairOutput(sourceKeypoints: [5, 5, 1], targetKeypoints: [5, 5, 1],
                                      similarity: SimilarityMatrix(rows: 1, columns: 4, values: [0.3, 0.3, 0.3, 0.3]), threshold: 10, grid: grid)
        #expect(flat.scores[0] == [0, 0])
        #expect(throws: CorrespondenceError.self) {
            try KAP.pairOutput(sourceKeypoints: [5, 5, 1], targetKeypoints: [5, 5, 1],
                               similarity: SimilarityMatrix(rows: 1, columns: 3, values: [1, 2, 3]), threshold: 10, grid: grid)
        }
    }
}

@Suite struct GridTests {
    @Test func grid840() throws {
        let g = try #require(PatchGrid(resolution: 840))
        #expect(g.side == 60 && g.count == 3600)
        #expect(g.coordinateFactor == Float(0.071428575))
        #expect(Double(g.coordinateFactor) > 1.0 / 14.0)
        #expect(g.rawIndex(x: 14, y: 0) == 1)          // on the border: next patch
        // trunc(float32(1/14)·v) is not floor(v/14) just below a border: 13.999999 lands in patch 1.
        #expect(g.rawIndex(x: 13.999999, y: 0) == 1)
        #expect(g.rawIndex(x: 13.99999, y: 0) == 0)
        #expect(g.rawIndex(x: 0, y: 14 * 59) == 59 * 60)
        #expect(g.rawIndex(x: 839.99, y: 839.99) == 3599)
        #expect(g.rawIndex(x: 840, y: 0) == 60)        // wraps to the next row, as the reference does
        #expect(g.index(x: 840, y: 839) == 3599)        // clamped where the reference would fail
        #expect(g.index(x: -.infinity, y: .nan) == 0)
        #expect(g.centre(of: 61) == (20.5, 20.5))
        #expect(g.topLeft(of: 61) == (14, 14))
        #expect(PatchGrid(resolution: 100) == nil && PatchGrid(resolution: 0) == nil)
        #expect(PatchGrid(resolution: 224)!.side == 16)
    }
}

@Suite struct AggregationTests {
    @Test func weightings() throws {
        let spairLike = CategoryWeighting.fixed(name: "fixed", weights: ["car": 564, "dog": 600, "chair": 646])
        #expect(CategoryWeighting.automatic(for: ["dog", "car", "chair"], fixed: spairLike) == spairLike)
        #expect(CategoryWeighting.automatic(for: ["car", "dog"], fixed: spairLike) == .pairCounts)
        #expect(spairLike.name == "fixed" && CategoryWeighting.pairCounts.name == "pairCounts")

        let scores = [CategoryScore(category: "car", pairs: 30, keypoints: 100, scores: [0.5]),
                      CategoryScore(category: "dog", pairs: 10, keypoints: 10, scores: [1.0]),
                      CategoryScore(category: "chair", pairs: 5, keypoints: 0, scores: nil)]
        let byPairs = try #require(Aggregation.aggregate(scores, weighting: .pairCounts))
        #expect(byPairs.macro == [0.75] && byPairs.weighted == [0.625] && byPairs.categories == ["car", "dog"])
        let fixed = try #require(Aggregation.aggregate(scores, weighting: spairLike))
        #expect(abs(fixed.weighted[0] - (564 * 0.5 + 600 * 1.0) / (564 + 600)) < 1e-15)
        #expect(Aggregation.aggregate(scores, weighting: .uniform)?.weighted == [0.75])
        #expect(Aggregation.aggregate([CategoryScore(category: "zebra", pairs: 1, keypoints: 1, scores: [1])],
                                      weighting: spairLike) == nil)
        #expect(Aggregation.aggregate([], weighting: .pairCounts) == nil)
    }
}
