import Foundation
import Imaging
import SPair
import TensorFiles
import Testing
@testable import TrainingData

let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let augmentFixtures = repo.appendingPathComponent("Tests/Fixtures/augment")
let synthDev = repo.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev")

/// torchvision parity of the training augmentation (tools/parity/make_augment_fixtures.py).
@Suite struct AugmentationTests {
    struct BoxCase: Decodable { var height: Int; var width: Int; var draws: [Double]; var box: [Int]; var consumed: Int }
    struct Boxes: Decodable { var scale: [Double]; var ratio: [Double]; var log_ratio_float32_bits: [UInt32]; var cases: [BoxCase] }

    @Test func boxesEqualTorchvisionGetParams() throws {
        let b = try JSONDecoder().decode(Boxes.self, from: Data(contentsOf: augmentFixtures.appendingPathComponent("boxes.json")))
        let crop = RandomResizedCrop()
        // torch.log(torch.tensor(ratio)) in float32.
        #expect([crop.logRatio.0.bitPattern, crop.logRatio.1.bitPattern] == b.log_ratio_float32_bits)
        var mismatches: [String] = []
        var fallbacks = 0
        for c in b.cases {
            var draws = ReplayedUniforms(c.draws)
            let got = crop.box(height: c.height, width: c.width, draws: &draws)
            let want = CropBox(top: c.box[0], left: c.box[1], height: c.box[2], width: c.box[3])
            if got != want || draws.consumed != c.consumed {
                mismatches.append("\(c.height)×\(c.width): \(got) from \(draws.consumed) draws, torchvision \(want) from \(c.consumed)")
            }
            if c.consumed == 20 { fallbacks += 1 }
        }
        #expect(b.cases.count == 615 && fallbacks > 100)
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(b.cases.count) boxes differ:\n\(mismatches.prefix(10).joined(separator: "\n"))")
    }

    @Test(arguments: ["drawn", "fallback"])
    func resizedTensorEqualsTorchvision(_ name: String) throws {
        let fx = try SafeTensorsFile(contentsOf: augmentFixtures.appendingPathComponent("tensor.safetensors"))
        let image = try decodeImage(contentsOf: synthDev.appendingPathComponent(fx.metadata["image"]!))
        let ds = try SPairDataset(root: synthDev)
        let mask = try ds.mask(at: fx.metadata["mask"]!)
        let pixels = ImageWithMask(image: image, mask: mask.values)
        let size = Int(fx.metadata["\(name).size"]!)!
        let crop = RandomResizedCrop(size: size)
        var draws = ReplayedUniforms(try fx.floats("\(name).draws").map(Double.init))
        let box = crop.box(height: pixels.height, width: pixels.width, draws: &draws)
        #expect("\(box.top),\(box.left),\(box.height),\(box.width)" == fx.metadata["\(name).box"])
        #expect(String(draws.consumed) == fx.metadata["\(name).consumed"])

        // The 4-channel resized crop: within the tolerance the resamplers meet (atol 1e-5 + rtol 1e-5).
        let resized = crop.resizedCrop(pixels.tensor, channels: 4, height: pixels.height, width: pixels.width, box: box)
        let want = try fx.floats("\(name).resized")
        #expect(resized.count == want.count)
        var worst: Float = 0, bad = 0
        for (g, w) in zip(resized, want) {
            let d = abs(g - w)
            worst = max(worst, d)
            if d > 1e-5 + 1e-5 * abs(w) { bad += 1 }
        }
        #expect(bad == 0, "\(bad) values beyond tolerance; max |diff| \(worst)")
        print("augment parity \(name) \(size)²: max |diff| \(worst) over \(want.count) values")

        // Normalised image (first rows) and the grid mask at each patch's top-left pixel.
        let v = pixels.view(crop, box: box)
        let norm = try fx.floats("\(name).normalized"), rows = try fx.info("\(name).normalized").shape[1]
        for c in 0..<3 {
            for i in 0..<(rows * size) {
                let g = v.image[c * size * size + i], w = norm[c * rows * size + i]
                if abs(g - w) > 1e-4 + 1e-5 * abs(w) { Issue.record("normalized[\(c), \(i)] \(g) vs \(w)"); return }
            }
        }
        let grid = try fx.floats("\(name).grid")
        #expect(grid.count == v.maskGrid.count)
        #expect(zip(v.maskGrid, grid).allSatisfy { abs($0 - $1) <= 1e-5 + 1e-5 * abs($1) })
        // Non-binary mask after the bicubic (H6): ringing below 0 and above 1 somewhere in the crop.
        let maskPlane = resized[(3 * size * size)...]
        #expect(maskPlane.min()! < 0 && maskPlane.max()! > 1)
    }

    @Test func halfAndBFloat16RoundToNearestEven() {
        for f: Float in [0, -0, 1, -2.5, 65504, 65520, 1e-8, 5.96e-8, 2.98e-8, 6.1e-5, 0.1, 1.0009765625, 1.00048828125, 3.14159, .infinity, -.infinity] {
            let h = floatToHalf(f), b = floatToBFloat16(f)
            // Round trip is the nearest representable value: no representable value is closer.
            let back = halfToFloat(h)
            if f.isFinite && abs(f) < 65520 {
                let up = halfToFloat(h &+ 1), down = h & 0x7fff == 0 ? back : halfToFloat(h &- 1)
                #expect(abs(back - f) <= abs(up - f) && abs(back - f) <= abs(down - f), "\(f) → \(back)")
            }
            #expect(f.isInfinite ? bfloat16ToFloat(b) == f : abs(bfloat16ToFloat(b) - f) <= abs(f) / 256, "\(f)")
        }
        #expect(halfToFloat(floatToHalf(65520)) == .infinity)
        #expect(floatToHalf(1.00048828125) == 0x3c00)  // tie → even
        #expect(floatToHalf(1.00146484375) == 0x3c02)  // tie → even (up)
        #expect(floatToHalf(Float.nan) & 0x7c00 == 0x7c00 && halfToFloat(floatToHalf(.nan)).isNaN)
    }
}
