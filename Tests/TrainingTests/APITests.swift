import Foundation
import Testing
import Kernels
import SphereMap
import TensorFiles
@testable import Training

@Suite struct TrainingAPITests {
    init() { Threading.configure(workers: 2) }

    @Test func lossWeightsParse() throws {
        #expect(try LossWeights(parsing: "rec=1,rd=0.3,o=0.3,vp=0.1") == LossWeights())
        #expect(try LossWeights(parsing: "vp=0") == LossWeights(rec: 1, rd: 0.3, o: 0.3, vp: 0))
        #expect(try LossWeights(parsing: "") == LossWeights())
        #expect(throws: LossWeights.ParseError.unknownKey("xy")) { try LossWeights(parsing: "rec=1,xy=2") }
        #expect(throws: LossWeights.ParseError.badValue(key: "rd", value: "abc")) { try LossWeights(parsing: "rd=abc") }
        #expect(throws: LossWeights.ParseError.badValue(key: "o", value: "-1")) { try LossWeights(parsing: "o=-1") }
        #expect(throws: LossWeights.ParseError.malformed("rec")) { try LossWeights(parsing: "rec") }
        #expect(throws: LossWeights.ParseError.duplicate("vp")) { try LossWeights(parsing: "vp=1,vp=2") }
        #expect(try LossWeights(parsing: LossWeights(rec: 0.5, rd: 0, o: 2, vp: 0.25).description) == LossWeights(rec: 0.5, rd: 0, o: 2, vp: 0.25))
    }

    @Test func freshTrainerBundleLoads() throws {
        let t = SphereTrainer(width: 128, categories: ["car", "dog"], seed: 3)
        let b = t.bundle(metadata: ["note": "x"])
        #expect(b.backboneDim == 128)
        #expect(b.categories == ["car", "dog"])
        #expect(b.metadata["note"] == "x")
        // Same tensors as the initialised bundle of the same seed.
        let ref = SphereBundle.initialised(backboneDim: 128, categories: ["car", "dog"], seed: 3)
        for ((n1, p1), (n2, p2)) in zip(b.namedTensors(), ref.namedTensors()) {
            #expect(n1 == n2)
            #expect(p1.values == p2.values, "\(n1)")
        }
    }
}
