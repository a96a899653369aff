import Foundation
import Imaging
import SPair
import TensorFiles
import Testing
@testable import TrainingData

/// A writable copy of the synthetic dataset restricted to one category (shared/ is read-only).
final class TempSPair {
    let root: URL
    init(category: String = "car") throws {
        let fm = FileManager.default
        root = fm.temporaryDirectory.appendingPathComponent("train-data-\(UUID().uuidString)")
        for dir in ["ImageAnnotation/\(category)", "JPEGImages/\(category)", "Segmentation/\(category)", "PairAnnotation/trn"] {
            try fm.createDirectory(at: root.appendingPathComponent(dir), withIntermediateDirectories: true)
            for name in try fm.contentsOfDirectory(atPath: synthDev.appendingPathComponent(dir).path)
            where !dir.hasPrefix("PairAnnotation") || name.hasSuffix(":\(category).json") {
                try Data(contentsOf: synthDev.appendingPathComponent("\(dir)/\(name)")).write(to: root.appendingPathComponent("\(dir)/\(name)"))
            }
        }
    }
    deinit { try? FileManager.default.removeItem(at: root) }
    func url(_ rel: String) -> URL { root.appendingPathComponent(rel) }
    func text(_ rel: String) throws -> String { try String(contentsOf: url(rel), encoding: .utf8) }
    func write(_ rel: String, _ text: String) throws { try Data(text.utf8).write(to: url(rel)) }
    func remove(_ rel: String) throws { try FileManager.default.removeItem(at: url(rel)) }
    func edit(_ rel: String, _ pattern: String, _ replacement: String) throws {
        let old = try text(rel)
        let r = try #require(old.range(of: pattern, options: .regularExpression), "\(pattern) not in \(rel)")
        try write(rel, old.replacingCharacters(in: r, with: replacement))
    }
}

@Suite struct TrainingSetTests {
    @Test func spairListFollowsTheReference() throws {
        var set = try TrainingSet.spair(root: synthDev)
        // First pair per distinct source stem of sorted(listdir(PairAnnotation/trn)) (H25).
        let files = try FileManager.default.contentsOfDirectory(atPath: synthDev.appendingPathComponent("PairAnnotation/trn").path)
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var seen = Set<String>(), firsts: [String] = []
        for f in files where seen.insert(String(f.split(separator: "-")[1])).inserted { firsts.append(f) }
        #expect(set.images.count == firsts.count && set.skipped.isEmpty && set.replications == 10 && set.count == 10 * firsts.count)
        for (img, f) in zip(set.images, firsts) {
            let src = String(f.split(separator: "-")[1]), cat = String(f.split(separator: ":")[1].dropLast(5))
            #expect(img.imagePath == "JPEGImages/\(cat)/\(src).jpg" && img.maskPath == "Segmentation/\(cat)/\(src).png")
            #expect(img.category == SPairCategories.index(of: cat))
            let ann = try JSONSerialization.jsonObject(with: Data(contentsOf: synthDev.appendingPathComponent("ImageAnnotation/\(cat)/\(src).json"))) as! [String: Any]
            #expect(img.viewpoint == ann["azimuth_id"] as! Int)
        }
        #expect(set.image(at: firsts.count + 3) == 3)  // pairs * replications
        let prints = set.validatePixels()
        #expect(set.skipped.isEmpty && prints.count == firsts.count && Set(prints).count == prints.count)
        #expect(set.fingerprint(contents: prints) == set.fingerprint(contents: prints))
        // Rebinning: 4 bins map the 45° ids 0..7 to 0,0,1,1,2,2,3,3; 360 bins keep the angle.
        #expect((0..<8).map { TrainingSet.viewpointBin(degrees: 45 * $0, bins: 4) } == [0, 0, 1, 1, 2, 2, 3, 3])
        #expect(TrainingSet.viewpointBin(degrees: 45 * 7, bins: 360) == 315 && TrainingSet.viewpointBin(degrees: -90, bins: 8) == 6)
    }

    /// Each kind of bad data stops with an error naming the file and field, or with --skip-invalid is skipped and counted.
    @Test(arguments: BadCase.allCases)
    func badDataIsNamedOrSkipped(_ c: BadCase) throws {
        let t = try TempSPair()
        let good = try TrainingSet.spair(root: t.root)
        var goodCopy = good
        _ = goodCopy.validatePixels()
        #expect(goodCopy.skipped.isEmpty)
        let victim = good.images[1]
        let stem = URL(fileURLWithPath: victim.imagePath).deletingPathExtension().lastPathComponent
        let (file, field) = try c.apply(t, victim: victim, stem: stem)

        var set: TrainingSet
        do { set = try TrainingSet.spair(root: t.root) } catch {
            Issue.record("listing failed: \(error)"); return
        }
        _ = set.validatePixels()
        #expect(set.skipped.count == 1, "\(set.skipped)")
        guard let e = set.skipped.first else { return }
        #expect(e.file == file, "\(e)")
        #expect(e.field == field, "\(e)")
        #expect(throws: SPairError.self) { try set.requireValid(skipInvalid: false) }
        let kept = try set.requireValid(skipInvalid: true)
        // Skipped: every other image is kept. (A broken pair file hides its source; the next pair of the same
        // source, if any, takes its place, so the count may not drop.)
        #expect(kept.images.count >= good.images.count - 1 && !kept.images.contains(victim))
        print("bad data \(c): \(e)")
    }

    enum BadCase: String, CaseIterable, CustomTestStringConvertible {
        case missingImage, missingMask, malformedJSON, keypointOutOfRange, boxOutOfRange, emptyMask, undecodableImage, sizeMismatch
        var testDescription: String { rawValue }

        /// Breaks the data; returns the file and field the error must name.
        func apply(_ t: TempSPair, victim: TrainingImage, stem: String) throws -> (String, String?) {
            let pair = victim.annotationFile
            switch self {
            case .missingImage:
                try t.remove(victim.imagePath); return (victim.imagePath, nil)
            case .missingMask:
                try t.remove(victim.maskPath); return (victim.maskPath, nil)
            case .malformedJSON:
                try t.write(pair, "{\"pair_id\": 1,"); return (pair, nil)
            case .keypointOutOfRange:
                try t.edit(pair, #""src_kps": \[\[[0-9]+"#, #""src_kps": [[100000"#); return (pair, "src_kps")
            case .boxOutOfRange:
                try t.edit(pair, #""src_bndbox": \[[0-9]+"#, #""src_bndbox": [-3"#); return (pair, "src_bndbox")
            case .emptyMask:
                let m = try decodeImage(contentsOf: t.url(victim.maskPath))
                try Data(encodePNG(RGBImage(width: m.width, height: m.height))).write(to: t.url(victim.maskPath))
                return (victim.maskPath, nil)
            case .undecodableImage:
                try t.write(victim.imagePath, "not a jpeg"); return (victim.imagePath, nil)
            case .sizeMismatch:
                try t.edit(pair, #""src_imsize": \[[0-9]+"#, #""src_imsize": [401"#); return (pair, "src_imsize")
            }
        }
    }

    @Test func freiburgCars() throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("fcars-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: root) }
        // Two cars, images borrowed from the synthetic set; masks as the reference stores them (soft → 0/255 greys).
        let jpegs = try fm.contentsOfDirectory(atPath: synthDev.appendingPathComponent("JPEGImages/car").path).sorted()
        var annot: [Int: String] = [:]
        for (k, obj) in ["car_001", "car_012"].enumerated() {
            for d in ["images", "instance_masks"] { try fm.createDirectory(at: root.appendingPathComponent("\(d)/\(obj)"), withIntermediateDirectories: true) }
            for i in 0..<3 {
                let src = jpegs[3 * k + i], name = String(format: "img_%03d.jpg", 10 - i)
                try Data(contentsOf: synthDev.appendingPathComponent("JPEGImages/car/\(src)")).write(to: root.appendingPathComponent("images/\(obj)/\(name)"))
                let m = try SPairDataset(root: synthDev).mask(at: "Segmentation/car/\(src.dropLast(4)).png")
                var rgb = RGBImage(width: m.width, height: m.height)
                for p in 0..<m.values.count where m.values[p] != 0 { rgb.pixels[3 * p] = 200; rgb.pixels[3 * p + 1] = 200; rgb.pixels[3 * p + 2] = 200 }
                try Data(encodePNG(rgb)).write(to: root.appendingPathComponent("instance_masks/\(obj)/\(name)"))
                annot[Int(obj.suffix(2))!, default: ""] += "\(obj)/\(name) 10 12 \(100 + i) 90 \(i * 100 - 50)\n"
            }
        }
        try fm.createDirectory(at: root.appendingPathComponent("annotations"), withIntermediateDirectories: true)
        for (n, text) in annot { try Data(text.utf8).write(to: root.appendingPathComponent("annotations/\(n)_annot.txt")) }

        var set = try TrainingSet.freiburgCars(root: root, vpBins: 8)
        #expect(set.images.map(\.imagePath) == ["images/car_001/img_008.jpg", "images/car_001/img_009.jpg", "images/car_001/img_010.jpg",
                                               "images/car_012/img_008.jpg", "images/car_012/img_009.jpg", "images/car_012/img_010.jpg"])
        // az = 150, 50, −50 → ⌊(az mod 360)/360·8⌋ = 3, 1, 6.
        #expect(set.images.map(\.viewpoint) == [3, 1, 6, 3, 1, 6] && set.categories == ["car"] && set.replications == 1)
        _ = set.validatePixels()
        #expect(set.skipped.isEmpty, "\(set.skipped)")
        #expect(try TrainingSet.freiburgCars(root: root, vpBins: 4).images.map(\.viewpoint) == [1, 0, 3, 1, 0, 3])

        // No annotation line for an image: reported, not silently the last line.
        try Data("car_012/img_009.jpg 1 2 3 4 5\ncar_012/img_010.jpg 1 2 3 4 5\n".utf8).write(to: root.appendingPathComponent("annotations/12_annot.txt"))
        let s2 = try TrainingSet.freiburgCars(root: root)
        #expect(s2.images.count == 5 && s2.skipped.map(\.file) == ["annotations/12_annot.txt"])
        // A box outside the image is named with its line.
        try Data("car_012/img_008.jpg 1 2 3000 4 5\ncar_012/img_009.jpg 1 2 3 4 5\ncar_012/img_010.jpg 1 2 3 4 5\n".utf8)
            .write(to: root.appendingPathComponent("annotations/12_annot.txt"))
        var s3 = try TrainingSet.freiburgCars(root: root)
        _ = s3.validatePixels()
        #expect(s3.skipped.map(\.description) == ["annotations/12_annot.txt: field 'line 1' box [1, 2, 3000, 4] is outside the 400×267 image images/car_012/img_008.jpg"] || s3.skipped.count == 1)
        #expect(s3.skipped.first?.field == "line 1")
    }
}

@Suite struct MaskRuleTests {
    /// Object = any non-zero stored value: for palette PNGs the index, not its colour (counts from
    /// `np.array(Image.open(f)) != 0` with Pillow; the RGB rule would give the second number).
    @Test(arguments: [("png_palette8_trns_50x71.png", 2998, 3550), ("png_palette2_37x23.png", 641, 851),
                      ("png_palette4_short_37x23.png", 804, 279), ("png_l8_37x23.png", 807, 807), ("png_l16_37x23.png", 851, 851),
                      ("png_rgb8_37x23.png", 851, 851), ("png_la8_37x23.png", 818, 818)])
    func rawValuesNotColours(_ file: String, raw: Int, rgb: Int) throws {
        let bytes = [UInt8](try Data(contentsOf: repo.appendingPathComponent("Tests/Fixtures/imaging/\(file)")))
        let m = try ObjectMask(bytes: bytes, file: file)
        #expect(m.objectPixelCount == raw)
        let img = try decodeImage(bytes)
        var colour = 0
        for i in 0..<(img.width * img.height) {
            let any: UInt8 = img.pixels[3 * i] | img.pixels[3 * i + 1] | img.pixels[3 * i + 2]
            if any != 0 { colour += 1 }
        }
        #expect(colour == rgb)
    }
}
