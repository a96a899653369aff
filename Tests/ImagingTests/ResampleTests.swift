import Foundation
import Testing
import TestSupport
import TensorFiles
@testable import Imaging
@testable import Kernels

@Suite("Resampling kernels")
struct ResampleTests {
    @Test("LANCZOS matches Pillow 12 and Pillow 13 bit-exactly", arguments: Fixtures.manifest.lanczos)
    func lanczos(_ c: Manifest.Lanczos) throws {
        let source = try Fixtures.npy(c.source)
        let image = RGBImage(width: source.shape[1], height: source.shape[0], pixels: try source.bytes())
        for (order, name) in [(LanczosPassOrder.horizontalFirst, c.expected.pillow12), (.pillow13, c.expected.pillow13)] {
            let out = lanczosResize(image, width: c.width, height: c.height, order: order)
            let expected = try Fixtures.npy(name)
            #expect(expected.shape == [c.height, c.width, 3])
            let diff = ByteDiff(out.pixels, try expected.bytes())
            #expect(diff.count == 0, "\(name) (\(order)): \(diff)")
        }
    }

    @Test("torch antialiased bicubic (size=)", arguments: Fixtures.manifest.torch.aa)
    func bicubicAA(_ c: Manifest.Resample) throws {
        let x = try Fixtures.npy(c.stem + "_in.npy").floats()
        let y = bicubicAAResize(x, channels: c.c, inHeight: c.h, inWidth: c.w, outHeight: c.oh, outWidth: c.ow)
        expectClose(y, try Fixtures.npy(c.stem + "_out.npy").floats(), c.stem)
    }

    @Test("torch bicubic, antialias=False (scale_factor= and size=)", arguments: Fixtures.manifest.torch.bicubic)
    func bicubic(_ c: Manifest.Resample) throws {
        if let sh = c.scale_h, let sw = c.scale_w {
            // the DINOv2 rule, recomputed: (g + 0.1)/37 in Double
            #expect(sh == (Double(c.oh) + 0.1) / 37 && sw == (Double(c.ow) + 0.1) / 37)
        }
        let x = try Fixtures.npy(c.input!).floats()
        let y = bicubicResize(x, channels: c.c, inHeight: c.h, inWidth: c.w, outHeight: c.oh, outWidth: c.ow,
                              scaleH: c.scale_h, scaleW: c.scale_w)
        expectClose(y, try Fixtures.npy(c.stem + "_out.npy").floats(), c.stem)
    }

    @Test("torch nearest", arguments: Fixtures.manifest.torch.nearest)
    func nearest(_ c: Manifest.Resample) throws {
        let x = try Fixtures.npy(c.stem + "_in.npy").floats()
        let y = nearestResize(x, channels: c.c, inHeight: c.h, inWidth: c.w, outHeight: c.oh, outWidth: c.ow)
        #expect(y == (try Fixtures.npy(c.stem + "_out.npy").floats()), "\(c.stem)")
    }

    @Test("nearest 448 → 32 and 840 → 60 pick the patch's top-left pixel (H8)")
    func nearestPatchGrid() {
        #expect(torchNearestIndices(inSize: 448, outSize: 32) == (0..<32).map { 14 * $0 })
        #expect(torchNearestIndices(inSize: 840, outSize: 60) == (0..<60).map { 14 * $0 })
    }

    @Test("bicubic (non-AA) with the scale factor uses 1/s, not in/out (H9)")
    func scaleFactorMapping() {
        // 37 → 60 with s = 60.1/37: s_inv = float(37/60.1) ≠ 37/60.
        let withScale = torchBicubicTaps(inSize: 37, outSize: 60, scaleFactor: 60.1 / 37)
        let withSize = torchBicubicTaps(inSize: 37, outSize: 60, scaleFactor: nil)
        #expect(withScale.weight != withSize.weight)
        // first output: u = s_inv·0.5 − 0.5 < 0 → floor gives −1, taps clamp to the border
        #expect(Array(withScale.index[0..<4]) == [0, 0, 0, 1])
    }

    @Test("Pillow LANCZOS weights are 22-bit fixed point summing to about 2^22")
    func lanczosTaps() {
        for (i, o) in [(37, 56), (840, 37), (23, 13), (5, 200)] {
            let t = pillowLanczosTaps(inSize: i, outSize: o)
            for k in 0..<o {
                let sum = (0..<t.count[k]).reduce(0) { $0 + Int(t.weights[k * t.taps + $1]) }
                #expect(abs(sum - (1 << 22)) <= t.count[k], "\(i)→\(o) output \(k): \(sum)")
            }
        }
    }
}
