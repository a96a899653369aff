import Foundation
import Testing
import TensorFiles
@testable import Imaging

@Suite("PNG encoding")
struct EncodeTests {
    @Test("encode → decode is lossless", arguments: [(1, 1), (37, 23), (50, 71), (300, 2)])
    func roundTrip(_ size: (Int, Int)) throws {
        var rng = SplitMix64(seed: UInt64(size.0 * 1000 + size.1))
        let pixels = (0..<(size.0 * size.1 * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let image = RGBImage(width: size.0, height: size.1, pixels: pixels)
        for level in [0, 6, 9] {
            let png = encodePNG(image, compressionLevel: level)
            #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
            #expect(try decodeImage(png) == image)
        }
    }

    @Test("a smooth image compresses")
    func compresses() throws {
        let source = try Fixtures.npy("letterbox_jpeg_420_50x71_R84.npy")
        let image = RGBImage(width: 84, height: 84, pixels: try source.bytes())
        let png = encodePNG(image)
        #expect(png.count < 84 * 84 * 3)
        #expect(try decodeImage(png) == image)
    }
}
