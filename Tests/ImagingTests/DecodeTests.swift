import Foundation
import Synchronization
import Testing
import TensorFiles
@testable import Imaging

@Suite("Decoding (Pillow Image.open().convert('RGB') parity)")
struct DecodeTests {
    @Test("decodes bit-exactly like Pillow", arguments: Fixtures.manifest.decode)
    func pillowParity(_ name: String) throws {
        let image = try decodeImage(Fixtures.bytes(name))
        let expected = try Fixtures.npy(name.split(separator: ".").dropLast().joined(separator: ".") + ".rgb.npy")
        #expect(expected.shape == [image.height, image.width, 3])
        let diff = ByteDiff(image.pixels, try expected.bytes())
        #expect(diff.count == 0, "\(name): \(diff)")
    }

    @Test("probe reads the header without decoding", arguments: Fixtures.manifest.decode)
    func probe(_ name: String) throws {
        let header = try probeImage(Fixtures.bytes(name))
        let expected = try Fixtures.npy(name.split(separator: ".").dropLast().joined(separator: ".") + ".rgb.npy")
        #expect([header.height, header.width] == Array(expected.shape.prefix(2)))
        #expect(header.format == (name.hasPrefix("jpeg") ? .jpeg : .png))
    }

    static let malformedCases = Fixtures.manifest.malformed.keys.sorted()

    @Test("malformed input throws a typed error", arguments: malformedCases)
    func malformed(_ name: String) throws {
        let outcome = Fixtures.manifest.malformed[name]!
        // Damage only libjpeg/libpng can see traps without the C guards: skip it there.
        if outcome.hasSuffix(":guarded") && !guardedDecoding { return }
        let bytes = try Fixtures.bytes(name)
        let error = #expect(throws: ImageError.self) { try decodeImage(bytes) }
        let kind: String? = switch error {
        case .unsupportedFormat: "unsupportedFormat"
        case .unsupported: "unsupported"
        case .truncated: "truncated"
        case .corrupt: "corrupt"
        case .tooManyPixels: "tooManyPixels"
        case .tooSmall: "tooSmall"
        case nil: nil
        }
        #expect(kind == outcome.replacingOccurrences(of: ":guarded", with: ""), "\(name): \(String(describing: error))")
    }

    @Test("the pixel limit is checked from the header before decoding")
    func pixelLimit() throws {
        let bytes = try Fixtures.bytes("jpeg_420_50x71.jpg")
        #expect(throws: ImageError.tooManyPixels(width: 50, height: 71, limit: 3549)) {
            try decodeImage(bytes, limits: DecodeLimits(maxPixels: 3549))
        }
        #expect(try decodeImage(bytes, limits: DecodeLimits(maxPixels: 3550)).width == 50)
        let huge = try Fixtures.bytes("bad_png_huge_ihdr.png")
        #expect(try probeImage(huge) == ImageHeader(format: .png, width: 100_000, height: 100_000))
        #expect(throws: ImageError.tooManyPixels(width: 100_000, height: 100_000, limit: 89_478_485)) {
            try decodeImage(huge)
        }
    }

    @Test("every prefix of a JPEG and a PNG is rejected without trapping")
    func prefixes() throws {
        for name in ["jpeg_420_37x23.jpg", "jpeg_progressive_50x71.jpg", "png_rgb8_adam7_50x71.png", "png_palette4_37x23.png"] {
            let bytes = try Fixtures.bytes(name)
            // Holds without the C guards too: the marker/chunk walks see every cut segment, and a
            // cut inside entropy-coded data is a libjpeg warning, not an error.
            let step = max(1, bytes.count / 97)
            for length in stride(from: 0, to: bytes.count - 2, by: step) {
                #expect(throws: ImageError.self, "\(name) cut at \(length)") { try decodeImage(Array(bytes[..<length])) }
            }
        }
    }

    @Test("flipped bytes never trap", .enabled(if: guardedDecoding, "needs the CImageShims target"))
    func bitFlips() throws {
        var rng = SplitMix64(seed: 99)
        for name in ["jpeg_420_37x23.jpg", "jpeg_progressive_50x71.jpg", "jpeg_cmyk_37x23.jpg", "png_rgb8_adam7_50x71.png"] {
            let bytes = try Fixtures.bytes(name)
            for _ in 0..<150 {
                var damaged = bytes
                for _ in 0..<3 { damaged[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1) }
                _ = try? decodeImage(damaged)  // any outcome but a crash
            }
        }
    }

    @Test("progressive scan limit", .enabled(if: guardedDecoding, "enforced by the CImageShims progress monitor"))
    func scanLimit() throws {
        let bytes = try Fixtures.bytes("jpeg_progressive_50x71.jpg")
        #expect(throws: ImageError.self) { try decodeImage(bytes, limits: DecodeLimits(maxJPEGScans: 2)) }
        #expect(try decodeImage(bytes, limits: DecodeLimits(maxJPEGScans: 50)).width == 50)
    }

    @Test("concurrent decodes are independent")
    func concurrent() throws {
        let names = ["jpeg_420_50x71.jpg", "jpeg_cmyk_37x23.jpg", "png_rgba16_adam7_37x23.png", "png_palette4_37x23.png"]
        let inputs = try names.map { try Fixtures.bytes($0) }
        let expected = try inputs.map { try decodeImage($0) }
        let results = Mutex([RGBImage?](repeating: nil, count: 32))
        DispatchQueue.concurrentPerform(iterations: 32) { i in
            let image = try? decodeImage(inputs[i % inputs.count])
            results.withLock { $0[i] = image }
        }
        results.withLock { r in
            for i in 0..<32 { #expect(r[i] == expected[i % inputs.count]) }
        }
    }

    @Test("data after EOI is ignored, as in Pillow")
    func trailingData() throws {
        for name in ["jpeg_420_37x23.jpg", "png_rgb8_37x23.png"] {
            let bytes = try Fixtures.bytes(name)
            #expect(try decodeImage(bytes + Array(repeating: 0x5A, count: 100)) == decodeImage(bytes))
        }
    }

    @Test("decodes from a file URL")
    func fromURL() throws {
        let image = try decodeImage(contentsOf: Fixtures.url("png_rgb8_37x23.png"))
        #expect(image.width == 37 && image.height == 23)
        #expect(throws: (any Error).self) { try decodeImage(contentsOf: Fixtures.url("does-not-exist.png")) }
    }
}

/// Deterministic generator for the damage tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Issue #16: the cost of a decode, read from the header alone.
@Suite struct ImageLayoutTests {
    /// A PNG signature and IHDR only: enough for the probe, which reads nothing else.
    func pngHeader(width: UInt32, height: UInt32, depth: UInt8, colour: UInt8) -> [UInt8] {
        var ihdr: [UInt8] = [0x49, 0x48, 0x44, 0x52]
        for v in [width, height] { ihdr += [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
        ihdr += [depth, colour, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + ihdr + [0, 0, 0, 0]
    }

    @Test func pngChannelsAndDepthPriceTheDecode() throws {
        let l = try probeImageLayout(pngHeader(width: 6324, height: 6324, depth: 16, colour: 6))
        #expect(l.format == .png && l.width == 6324 && l.height == 6324 && l.channels == 4 && l.bitDepth == 16 && !l.progressive)
        // 16-bit RGBA samples (8 B/px) and the 8-bit RGB result (3 B/px): the ~430 MB of issue #16.
        let px = 6324 * 6324
        #expect(l.decodeBytes >= px * 11 && l.decodeBytes <= px * 11 + (2 << 20))
        for (colour, depth, channels) in [(0, 8, 1), (0, 1, 1), (2, 8, 3), (3, 4, 1), (4, 16, 2)] as [(UInt8, UInt8, Int)] {
            let m = try probeImageLayout(pngHeader(width: 100, height: 50, depth: depth, colour: colour))
            #expect(m.channels == channels && m.bitDepth == Int(depth))
            #expect(m.decodeBytes >= 5000 * (channels * (depth > 8 ? 2 : 1) + 3))
        }
    }

    @Test func jpegComponentsAndProgressive() throws {
        let baseline = try probeImageLayout(try Fixtures.bytes("jpeg_420_50x71.jpg"))
        #expect(baseline.format == .jpeg && baseline.bitDepth == 8 && !baseline.progressive && baseline.channels == 3)
        #expect(try probeImageLayout(try Fixtures.bytes("jpeg_grey_37x23.jpg")).channels == 1)
        #expect(try probeImageLayout(try Fixtures.bytes("jpeg_cmyk_37x23.jpg")).channels == 4)
        let header = try probeImage(try Fixtures.bytes("jpeg_420_50x71.jpg"))
        #expect(baseline.width == header.width && baseline.height == header.height && [1, 3, 4].contains(baseline.channels))
        let progressive = try probeImageLayout(try Fixtures.bytes("jpeg_progressive_50x71.jpg"))
        #expect(progressive.progressive)
        // The coefficient buffer of a progressive JPEG: 2 bytes per coefficient and component.
        #expect(progressive.decodeBytes > progressive.width * progressive.height * (progressive.channels * 3 + 3))
    }

    @Test func malformedHeadersThrowAsTheDecoderDoes() {
        #expect(throws: ImageError.unsupportedFormat) { try probeImageLayout(Array("hello".utf8)) }
        #expect(throws: ImageError.truncated) { try probeImageLayout(Array(pngHeader(width: 1, height: 1, depth: 8, colour: 2).prefix(20))) }
        #expect(throws: ImageError.self) { try probeImageLayout(pngHeader(width: 1, height: 1, depth: 16, colour: 3)) }
    }
}
