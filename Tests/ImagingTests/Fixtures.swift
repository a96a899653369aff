import Foundation
import Testing
import TestSupport
import TensorFiles

/// Parity fixtures written by tools/parity/make_image_fixtures.py (Pillow and PyTorch).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/imaging")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    static func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: url(name))) }

    static func npy(_ name: String) throws -> NPYArray { try NPY.read(contentsOf: url(name)) }

    static let manifest: Manifest = {
        do {
            return try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: url("manifest.json")))
        } catch {
            fatalError("cannot read \(url("manifest.json").path): \(error)")
        }
    }()
}

struct Manifest: Decodable, Sendable {
    /// Expected output per Pillow generation (the same file when both agree).
    struct PerPillow: Decodable, Sendable {
        var pillow12: String, pillow13: String
    }
    struct Lanczos: Decodable, Sendable, CustomTestStringConvertible {
        var source: String, width: Int, height: Int, expected: PerPillow
        var testDescription: String { expected.pillow13 }
    }
    struct Letterbox: Decodable, Sendable, CustomTestStringConvertible {
        var source: String, resolution: Int, expected: PerPillow
        var testDescription: String { expected.pillow13 }
    }
    struct Keypoints: Decodable, Sendable, CustomTestStringConvertible {
        var width: Int, height: Int, resolution: Int, offset_x: Int, offset_y: Int, scale: Double, stem: String
        var testDescription: String { stem }
    }
    struct Resample: Decodable, Sendable, CustomTestStringConvertible {
        var stem: String, c: Int, h: Int, w: Int, oh: Int, ow: Int
        var input: String?
        var scale_h: Double?, scale_w: Double?
        var testDescription: String { stem }
    }
    struct Torch: Decodable, Sendable {
        var aa: [Resample], bicubic: [Resample], nearest: [Resample]
    }
    var decode: [String]
    var malformed: [String: String]
    var malformed_pillow: [String: String]
    var lanczos: [Lanczos]
    var letterbox: [Letterbox]
    var keypoints: [Keypoints]
    var torch: Torch
    var versions: [String: String]
}

/// Summary of the differences between two uint8 buffers.
struct ByteDiff: CustomStringConvertible {
    var count = 0, maxAbs = 0, firstIndex: Int?
    init(_ a: [UInt8], _ b: [UInt8]) {
        for i in 0..<min(a.count, b.count) where a[i] != b[i] {
            count += 1
            maxAbs = max(maxAbs, abs(Int(a[i]) - Int(b[i])))
            if firstIndex == nil { firstIndex = i }
        }
    }
    var description: String { "\(count) differing bytes, max |diff| \(maxAbs), first at \(firstIndex.map(String.init) ?? "-")" }
}

