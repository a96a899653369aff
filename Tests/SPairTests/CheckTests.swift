import Foundation
import Testing
@testable import SPair

/// `SPairDataset.check()` (spherecorr-train check-spair, run by scripts/fetch-spair after extracting): the whole
/// synthetic set passes with its counts; every broken copy is reported with the file named.
@Suite struct CheckTests {
    @Test func synthDatasetPasses() throws {
        let report = try Synth.dataset().check()
        #expect(report.problems.map(\.description) == [])
        #expect(report.categories == ["car", "chair", "dog"])
        #expect(report.splits.map(\.split) == [.trn, .val, .test])
        #expect(report.splits.map(\.pairs) == [180, 60, 90])
        #expect(report.splits.map(\.layoutLines) == [180, 60, 90])
        #expect(report.trainingImages == 58)
    }

    @Test func problemsNameTheirFiles() throws {
        let t = try TempDataset()  // the car category only, with every Layout file
        // Layout/large still lists the chair and dog pairs, whose files this copy lacks.
        let before = try t.dataset().check()
        #expect(!before.isValid)
        #expect(before.problems.allSatisfy { $0.kind == .inconsistent && $0.file.hasPrefix("Layout/large/") && !$0.detail.contains(":car ") })
        for split in SPairSplit.allCases {
            let file = "Layout/large/\(split.rawValue).txt"
            let car = try t.text(file).split(separator: "\n").filter { $0.hasSuffix(":car") }
            try t.write(file, car.joined(separator: "\n") + "\n")
        }
        #expect(try t.dataset().check().problems.map(\.description) == [])

        let pair = try #require(try t.dataset().trainingPairNames().items.first)
        try t.remove("Segmentation/car/\(pair.source).png")
        let test = try #require(try t.dataset().pairNames(split: .test, category: "car").items.first)
        try t.remove("JPEGImages/car/\(test.target).jpg")
        try FileManager.default.removeItem(at: t.url("PairAnnotation/val"))
        let after = try t.dataset().check()
        let text = after.problems.map(\.description)
        #expect(text.contains("Segmentation/car/\(pair.source).png: is missing (mask of the source image of pair \(pair))"), "\(text)")
        #expect(text.contains { $0.hasPrefix("JPEGImages/car/\(test.target).jpg") }, "\(text)")
        #expect(text.contains("PairAnnotation/val: is missing"), "\(text)")
        #expect(after.splits.map(\.split) == [.trn, .test])
    }

    @Test func notADataset() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("not-spair-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: SPairError.self) { try SPairDataset(root: dir).check() }
    }
}
