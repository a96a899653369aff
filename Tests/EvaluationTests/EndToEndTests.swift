import Foundation
import Testing
import DINOv2
import Kernels
import SphereMap
@testable import Evaluation

let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let synthDev = repo.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev")
let expectedReport = repo.appendingPathComponent("Tests/Fixtures/evaluation/synth-dev-r84.json")

/// Evaluation on the synthetic SPair-format dev set with the tiny parity backbone and bundle reproduces a
/// committed report exactly (scores are functions of the inputs only). Regenerate with
/// `SPHERECORR_WRITE_EXPECTED=1 swift test --filter EndToEndTests` after an intended change, and say why in the commit.
@Suite struct EndToEndTests {
    init() { Threading.configure(workers: 2) }

    @Test func synthDevReportIsReproduced() throws {
        try #require(FileManager.default.fileExists(atPath: synthDev.path), "the synthetic dataset is expected at \(synthDev.path)")
        let backbone = try DinoVisionTransformer.load(path: repo.appendingPathComponent("Tests/Fixtures/dinov2/plain.safetensors").path)
        let bundle = try SphereBundle.load(path: repo.appendingPathComponent("Tests/Fixtures/sphere/bundle.safetensors").path)
        var o = EvaluationOptions(data: synthDev.path)
        o.alphas = [0, 0.2, 1]
        o.resolution = 84
        o.progress = false
        let result = try Evaluator(options: o, backbone: backbone, backboneKey: "fixture", bundle: bundle).run()
        var report = Report.json(result, config: ["resolution": 84, "alphas": o.alphas])
        report["stats"] = nil
        let got = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .prettyPrinted])
        if ProcessInfo.processInfo.environment["SPHERECORR_WRITE_EXPECTED"] == "1" {
            try got.write(to: expectedReport)
        }
        let expected = try Data(contentsOf: expectedReport)
        #expect(String(decoding: got, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        #expect(result.pairsEvaluated == 90 && result.skipped.isEmpty)
        // The synthetic set has 3 categories: weighted = by pair count.
        #expect(result.weighting == .pairCounts)
    }

    @Test func alphaAboveZeroNeedsABundle() throws {
        let backbone = try DinoVisionTransformer.load(path: repo.appendingPathComponent("Tests/Fixtures/dinov2/plain.safetensors").path)
        var o = EvaluationOptions(data: synthDev.path)
        o.alphas = [0.2]
        #expect(throws: EvaluationError.self) { try Evaluator(options: o, backbone: backbone, backboneKey: "x", bundle: nil) }
    }

    @Test func unknownCategoryIsNamed() throws {
        let backbone = try DinoVisionTransformer.load(path: repo.appendingPathComponent("Tests/Fixtures/dinov2/plain.safetensors").path)
        var o = EvaluationOptions(data: synthDev.path)
        o.alphas = [0]
        o.categories = ["unicorn"]
        o.resolution = 28
        do {
            _ = try Evaluator(options: o, backbone: backbone, backboneKey: "x", bundle: nil).run()
            Issue.record("accepted an unknown category")
        } catch { #expect("\(error)".contains("unicorn")) }
    }
}
