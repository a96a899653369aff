import Foundation
import Testing
import TensorFiles
@testable import Imaging

@Suite("Evaluation preprocessing (METHOD §2.3)")
struct PreprocessTests {
    @Test("letterbox matches the reference resize() bit-exactly", arguments: Fixtures.manifest.letterbox)
    func letterboxParity(_ c: Manifest.Letterbox) throws {
        let source = try Fixtures.npy(c.source)
        let image = RGBImage(width: source.shape[1], height: source.shape[0], pixels: try source.bytes())
        for (order, name) in [(LanczosPassOrder.horizontalFirst, c.expected.pillow12), (.pillow13, c.expected.pillow13)] {
            let out = try letterbox(image, resolution: c.resolution, order: order)
            #expect(out.width == c.resolution && out.height == c.resolution)
            let diff = ByteDiff(out.pixels, try Fixtures.npy(name).bytes())
            #expect(diff.count == 0, "\(name) (\(order)): \(diff)")
        }
    }

    @Test("letterbox sizes round half to even (H3)")
    func roundHalfEven() {
        #expect(letterboxContentSize(width: 16, height: 3, resolution: 56) == (56, 10))   // 10.5 → 10
        #expect(letterboxContentSize(width: 16, height: 5, resolution: 56) == (56, 18))   // 17.5 → 18
        #expect(letterboxContentSize(width: 3, height: 16, resolution: 56) == (10, 56))
        #expect(letterboxContentSize(width: 640, height: 427, resolution: 840) == (840, 560))  // 560.4375
        #expect(letterboxContentSize(width: 1600, height: 1071, resolution: 840) == (840, 562))  // 562.275
        #expect(letterboxContentSize(width: 40, height: 40, resolution: 56) == (56, 56))
    }

    @Test("a letterbox whose short side rounds to zero is rejected")
    func degenerate() {
        #expect(throws: ImageError.tooSmall) { try letterbox(RGBImage(width: 200, height: 1), resolution: 56) }
    }

    @Test("normalised tensor matches ToTensor + Normalize", arguments: ["png_rgb8_37x23_R56", "jpeg_420_50x71_R84"])
    func tensor(_ stem: String) throws {
        let lb = try Fixtures.npy("letterbox_\(stem).npy")
        let image = RGBImage(width: lb.shape[1], height: lb.shape[0], pixels: try lb.bytes())
        let t = toNormalizedTensor(image)
        let expected = try Fixtures.npy("tensor_\(stem).npy")
        #expect(expected.shape == [3, image.height, image.width])
        let e = try expected.floats()
        let mismatches = zip(t, e).filter { $0.0.bitPattern != $0.1.bitPattern }.count
        #expect(mismatches == 0, "\(stem): \(mismatches) values differ from PyTorch's float32 ops")
        // padding = −mean/std
        #expect(abs(t[0] - (-0.485 / 0.229)) < 1e-5)
    }

    @Test("keypoint transform matches preprocess_kps_pad and the patch indices", arguments: Fixtures.manifest.keypoints)
    func keypoints(_ c: Manifest.Keypoints) throws {
        let kt = KeypointTransform(imageWidth: c.width, imageHeight: c.height, resolution: c.resolution)
        #expect(kt.offsetX == c.offset_x && kt.offsetY == c.offset_y)
        #expect(kt.scale == Float(c.scale))
        let input = try Fixtures.npy(c.stem + "_in.npy").floats()
        let output = try Fixtures.npy(c.stem + "_out.npy").floats()
        let patch = try Fixtures.npy(c.stem + "_patch.npy").floats()
        for k in 0..<(input.count / 3) {
            let (x, y) = kt.toLetterbox(x: input[3 * k], y: input[3 * k + 1], visible: input[3 * k + 2] > 0)
            #expect(x.bitPattern == output[3 * k].bitPattern && y.bitPattern == output[3 * k + 1].bitPattern,
                    "\(c.stem) kp \(k): (\(x), \(y)) vs (\(output[3 * k]), \(output[3 * k + 1]))")
            #expect(kt.patch(x: output[3 * k], y: output[3 * k + 1]).index == Int(patch[k]), "\(c.stem) kp \(k) patch")
            if input[3 * k + 2] > 0 {
                let back = kt.toOriginal(x: Double(x), y: Double(y))
                #expect(abs(back.x - Double(input[3 * k])) < 1e-3 && abs(back.y - Double(input[3 * k + 1])) < 1e-3)
            }
        }
    }

    @Test("patch index and back-projection at 840 (H26)")
    func patchGeometry() {
        let kt = KeypointTransform(imageWidth: 500, imageHeight: 375, resolution: 840)
        #expect(kt.gridSize == 60)
        #expect(kt.patch(x: 13.999, y: 14).index == 60)
        #expect(kt.patch(x: 839.9, y: 839.9).index == 3599)
        #expect(kt.patchCentre(index: 61) == (20.5, 20.5))
        #expect(kt.patchCentre(index: 3599) == (832.5, 832.5))
        // every index round-trips through its centre
        for idx in stride(from: 0, to: 3600, by: 7) {
            let c = kt.patchCentre(index: idx)
            #expect(kt.patch(x: c.x, y: c.y).index == idx)
        }
    }
}
