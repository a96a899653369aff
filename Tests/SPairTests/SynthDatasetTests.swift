import Foundation
import Testing
import Imaging
@testable import SPair

/// The synthetic SPair-format dataset shipped in shared/ (beside the repository clone), checked
/// against facts computed by tools/parity/make_metric_fixtures.py with the reference formulas
/// (Tests/Fixtures/metrics/synth_expected.json).
enum Synth {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let root = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev").standardizedFileURL
    static let expectedURL = repoRoot.appendingPathComponent("Tests/Fixtures/metrics/synth_expected.json")

    static func dataset() throws -> SPairDataset {
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent("ImageAnnotation").path) else {
            Issue.record("synthetic dataset not found at \(root.path) (expected shared/ beside the repository)")
            throw SPairError(.missingFile, file: root.path, "is missing")
        }
        return try SPairDataset(root: root)
    }

    static func expected() throws -> SynthExpected {
        try JSONDecoder().decode(SynthExpected.self, from: Data(contentsOf: expectedURL))
    }
}

struct SynthExpected: Decodable {
    struct Pair: Decodable {
        var split: String
        var name: String
        var category: String
        var src_raw: [[Double]]
        var trg_raw: [[Double]]
        var src_letterboxed: [[Double]]
        var trg_letterboxed: [[Double]]
        var src_patch: [Int]
        var trg_patch: [Int]
        var threshold: Double
    }
    struct GlobFirst: Decodable { var file: String; var count: Int }
    struct Sample: Decodable { var name: String; var category: String; var azimuth_id: Int }
    struct Training: Decodable { var count: Int; var first: [Sample]; var last: String }
    struct Mask: Decodable { var category: String; var stem: String; var width: Int; var height: Int; var object_pixels: Int }
    var resolution: Int
    var categories: [String]
    var pair_counts: [String: [String: Int]]
    var num_kps: [String: Int]
    var num_kps_glob_first: [String: GlobFirst]
    var pairs: [Pair]
    var layouts: [String: Int]
    var training: Training
    var masks: [Mask]
}

@Suite struct SynthDatasetTests {
    @Test func categoriesAndPairCounts() throws {
        let ds = try Synth.dataset(), e = try Synth.expected()
        #expect(try ds.categories() == e.categories)
        for split in SPairSplit.allCases {
            for cat in e.categories {
                let names = try ds.pairNames(split: split, category: cat)
                #expect(names.invalid.isEmpty)
                #expect(names.items.count == e.pair_counts[split.rawValue]?[cat], "\(split) \(cat)")
                #expect(names.items.map(\.fileName) == names.items.map(\.fileName).sorted())
                let loaded = try ds.loadPairs(split: split, category: cat)
                #expect(loaded.invalid.isEmpty, "\(loaded.invalid.map(\.description))")
                #expect(loaded.items.count == names.items.count)
            }
        }
    }

    /// num_kps: the reference takes the first file `glob` returns (directory order); we take the
    /// first in sorted order. Every image of a category has the same key count, so both agree.
    @Test func keypointCountsDoNotDependOnFileOrder() throws {
        let ds = try Synth.dataset(), e = try Synth.expected()
        for cat in e.categories {
            #expect(try ds.numKeypoints(category: cat) == e.num_kps[cat])
            #expect(try ds.numKeypoints(category: cat, order: .directory) == e.num_kps[cat])
            #expect(e.num_kps_glob_first[cat]?.count == e.num_kps[cat])
            #expect(try ds.validateKeypointCounts(category: cat).isEmpty)
            let directory = try ds.imageStems(category: cat, order: .directory), sorted = try ds.imageStems(category: cat)
            #expect(Set(directory) == Set(sorted) && sorted == sorted.sorted())
        }
    }

    @Test func keypointMatricesTransformsAndThresholds() throws {
        let ds = try Synth.dataset(), e = try Synth.expected()
        let r = e.resolution
        #expect(!e.pairs.isEmpty)
        for p in e.pairs {
            let name = try #require(PairName(parsing: p.name))
            let split = try #require(SPairSplit(rawValue: p.split))
            let pair = try ds.loadPair(name, split: split, numKeypoints: ds.numKeypoints(category: p.category))
            let lb = pair.letterboxed(resolution: r)
            let (ts, tt) = pair.transforms(resolution: r)
            for (got, raw, want, patches, transform) in [(pair.sourceKeypoints, p.src_raw, p.src_letterboxed, p.src_patch, ts),
                                                        (pair.targetKeypoints, p.trg_raw, p.trg_letterboxed, p.trg_patch, tt)] {
                #expect(got.values == raw.flatMap { $0.map { Float($0) } }, "\(p.name) raw K")
                let boxed = got.letterboxed(transform)
                #expect(boxed.values == want.flatMap { $0.map { Float($0) } }, "\(p.name) letterboxed K")
                let idx = (0..<boxed.count).map { transform.patch(x: boxed.x($0), y: boxed.y($0)).index }
                #expect(idx == patches, "\(p.name) patch indices")
            }
            #expect(lb.source == pair.sourceKeypoints.letterboxed(ts) && lb.target == pair.targetKeypoints.letterboxed(tt))
            #expect(lb.threshold == p.threshold, "\(p.name) threshold")
            #expect(pair.annotation.mirror == 0 && pair.annotation.category == p.category)
            #expect(ds.isRegularFile(pair.sourceImagePath) && ds.isRegularFile(pair.targetImagePath))
        }
    }

    @Test func layoutsTrainingListAndMasks() throws {
        let ds = try Synth.dataset(), e = try Synth.expected()
        for size in LayoutSize.allCases {
            for split in SPairSplit.allCases {
                let l = try ds.layout(size, split: split)
                #expect(l.invalid.isEmpty)
                #expect(l.items.count == e.layouts["\(size.rawValue)/\(split.rawValue)"])
            }
        }
        // Layout/large lists exactly the pair files.
        let large = try ds.layout(.large, split: .test).items.map(\.description).sorted()
        let files = try e.categories.flatMap { try ds.pairNames(split: .test, category: $0).items.map(\.description) }.sorted()
        #expect(large == files)

        let names = try ds.trainingPairNames()
        #expect(names.invalid.isEmpty && names.items.count == e.training.count)
        #expect(names.items.last?.description == e.training.last)
        #expect(Set(names.items.map(\.source)).count == names.items.count)
        let samples = try ds.trainingSamples()
        #expect(samples.invalid.isEmpty && samples.items.count == e.training.count)
        for (s, want) in zip(samples.items, e.training.first) {
            #expect(s.pair.description == want.name && s.category == want.category && s.azimuthID == want.azimuth_id)
            #expect(s.categoryIndex == SPairCategories.index(of: want.category))
            #expect(ds.isRegularFile(s.imagePath) && ds.isRegularFile(s.maskPath))
        }
        for m in e.masks {
            let mask = try ds.segmentationMask(category: m.category, stem: m.stem)
            #expect(mask.width == m.width && mask.height == m.height)
            #expect(mask.objectPixelCount == m.object_pixels, "\(m.category)/\(m.stem)")
        }
    }
}
