import Foundation
import Testing
@testable import SPair

/// A writable copy of the synthetic dataset's `car` category (plus every Layout file) in a
/// temporary folder: shared/ is read-only, and copying only one category keeps file creation low.
final class TempDataset {
    let root: URL

    init() throws {
        let source = try Synth.dataset().root
        root = FileManager.default.temporaryDirectory.appendingPathComponent("spair-\(UUID().uuidString)")
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: source.path) else { throw CocoaError(.fileReadUnknown) }
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        while let rel = walker.nextObject() as? String {
            let from = source.appendingPathComponent(rel), to = root.appendingPathComponent(rel)
            var isDir: ObjCBool = false
            _ = fm.fileExists(atPath: from.path, isDirectory: &isDir)
            let parts = rel.split(separator: "/")
            let wanted = switch parts.first {
            case "Layout", "devkit": true
            case "PairAnnotation": isDir.boolValue || rel.hasSuffix(":car.json")
            default: parts.count < 2 || parts[1] == "car"
            }
            guard wanted else {
                if isDir.boolValue { walker.skipDescendants() }
                continue
            }
            if isDir.boolValue {
                try fm.createDirectory(at: to, withIntermediateDirectories: true)
            } else {
                try Self.copyFile(from.path, to.path)
            }
        }
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    /// A plain writable copy (FileManager.copyItem keeps shared/'s read-only mode, and
    /// Data.write is atomic and synced on Linux, ten times slower for 700 small files).
    static func copyFile(_ from: String, _ to: String) throws {
        guard let input = fopen(from, "rb") else { throw CocoaError(.fileReadNoSuchFile) }
        defer { fclose(input) }
        guard let output = fopen(to, "wb") else { throw CocoaError(.fileWriteUnknown) }
        defer { fclose(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&buffer, 1, buffer.count, input)
            if n == 0 { break }
            guard fwrite(buffer, 1, n, output) == n else { throw CocoaError(.fileWriteUnknown) }
        }
    }

    func write(_ rel: String, _ text: String) throws {
        guard let f = fopen(url(rel).path, "wb") else { throw CocoaError(.fileWriteUnknown) }
        defer { fclose(f) }
        let bytes = Array(text.utf8)
        guard fwrite(bytes, 1, bytes.count, f) == bytes.count else { throw CocoaError(.fileWriteUnknown) }
    }

    func dataset() throws(SPairError) -> SPairDataset { try SPairDataset(root: root) }
    func url(_ rel: String) -> URL { root.appendingPathComponent(rel) }
    func text(_ rel: String) throws -> String { try String(contentsOf: url(rel), encoding: .utf8) }
    func remove(_ rel: String) throws { try FileManager.default.removeItem(at: url(rel)) }

    /// Replaces the first match of a regular expression in a file.
    func edit(_ rel: String, replacing pattern: String, with replacement: String) throws {
        let old = try text(rel)
        guard let range = old.range(of: pattern, options: .regularExpression) else {
            Issue.record("pattern \(pattern) not found in \(rel)")
            return
        }
        try write(rel, old.replacingCharacters(in: range, with: replacement))
    }
}

@Suite struct MalformedDataTests {
    /// The first car test pair and its file.
    func firstTestPair(_ t: TempDataset) throws -> (PairName, String) {
        let name = try #require(try t.dataset().pairNames(split: .test, category: "car").items.first)
        return (name, "PairAnnotation/test/\(name.fileName)")
    }

    func loadError(_ t: TempDataset, _ name: PairName, split: SPairSplit = .test) throws -> SPairError? {
        let ds = try t.dataset()
        do {
            _ = try ds.loadPair(name, split: split, numKeypoints: ds.numKeypoints(category: name.category))
            return nil
        } catch {
            return error
        }
    }

    @Test func missingImageAnnotationIsSkippedAndCounted() throws {
        let t = try TempDataset()
        let (name, _) = try firstTestPair(t)
        let file = "ImageAnnotation/car/\(name.source).json"
        try t.remove(file)
        let ds = try t.dataset()
        let all = try ds.pairNames(split: .test, category: "car").items
        let affected = all.filter { $0.source == name.source || $0.target == name.source }
        let result = try ds.loadPairs(split: .test, category: "car")
        #expect(result.invalid.count == affected.count && result.items.count == all.count - affected.count)
        #expect(result.invalid.allSatisfy { $0.kind == .missingFile && $0.file == file })
        #expect(result.invalid.first?.description == "\(file): is missing")
        #expect(throws: SPairError.self) { try result.requireValid() }
    }

    @Test func malformedJSON() throws {
        let t = try TempDataset()
        let (name, file) = try firstTestPair(t)
        try t.write(file, "{\"pair_id\": 1,\n \"src_imname\": }")
        let e = try #require(try loadError(t, name))
        #expect(e.kind == .malformedJSON && e.file == file)
        #expect(e.description == "\(file): is not valid JSON: unexpected '}'; expected a JSON value at line 2, column 16")
        try t.write(file, "")
        #expect(try loadError(t, name)?.description == "\(file): is not valid JSON: unexpected end of the JSON text at line 1, column 1")
        // One reader for the service and the dataset: RFC 8259 strictly, so a repeated key or a NaN is refused by position.
        try t.write(file, "{\"pair_id\": 1,\n \"pair_id\": 2}")
        #expect(try loadError(t, name)?.description == "\(file): is not valid JSON: member 'pair_id' appears twice at line 2, column 2")
        try t.write(file, "{\"pair_id\": NaN}")
        #expect(try loadError(t, name)?.kind == .malformedJSON)
        try t.write(file, "[1, 2]")
        #expect(try loadError(t, name)?.description == "\(file): must hold a JSON object, found an array")
    }

    @Test func missingField() throws {
        let t = try TempDataset()
        let (name, file) = try firstTestPair(t)
        try t.edit(file, replacing: #""trg_bndbox": \[[^\]]*\], "#, with: "")
        let e = try #require(try loadError(t, name))
        #expect(e.kind == .missingField && e.field == "trg_bndbox")
        #expect(e.description == "\(file): field 'trg_bndbox' is missing")
    }

    @Test(arguments: [
        (#""trg_bndbox": \[[^\]]*\]"#, #""trg_bndbox": [16, 9, "220", 137]"#, "trg_bndbox", "must be 4 integers [x1, y1, x2, y2]"),
        (#""trg_bndbox": \[[^\]]*\]"#, #""trg_bndbox": [16, 9, 220]"#, "trg_bndbox", "must be 4 integers [x1, y1, x2, y2]"),
        (#""trg_bndbox": \[[^\]]*\]"#, #""trg_bndbox": [220, 9, 16, 137]"#, "trg_bndbox", "must have x1 <= x2 and y1 <= y2, found [220, 9, 16, 137]"),
        (#""src_imsize": \[[^\]]*\]"#, #""src_imsize": [375, 281]"#, "src_imsize", "must be 3 integers [width, height, depth]"),
        // RFC 8259 has one number type: 1.0 is the integer 1 (as Python's int(1.0)); 1.5 is not an integer.
        (#""pair_id": [0-9]+"#, #""pair_id": 1.5"#, "pair_id", "must be an integer, found a non-integer number"),
        (#""mirror": 0"#, #""mirror": false"#, "mirror", "must be an integer, found a boolean"),
        (#""mirror": 0"#, #""mirror": 2"#, "mirror", "must be in 0...1, found 2"),
        (#""category": "car""#, #""category": null"#, "category", "must be a string, found null"),
        (#""kps_ids": \[[^\]]*\]"#, #""kps_ids": ["8", "x", "11"]"#, "kps_ids", "element 1 is \"x\", not a keypoint id (a non-negative integer)"),
        (#""kps_ids": \[[^\]]*\]"#, #""kps_ids": [true, 10, 11]"#, "kps_ids", "element 0 must be a keypoint id (a string or an integer), found a boolean"),
        (#""src_kps": \[\["#, #""src_kps": [["a", 1], ["#, "src_kps", "must be a list of [x, y] points; element 0 is not two finite numbers"),
    ] as [(String, String, String, String)])
    func wrongTypesInPairAnnotation(_ pattern: String, _ replacement: String, _ field: String, _ detail: String) throws {
        let t = try TempDataset()
        let (name, file) = try firstTestPair(t)
        try t.edit(file, replacing: pattern, with: replacement)
        let e = try #require(try loadError(t, name))
        #expect(e.kind == .invalidField && e.file == file && e.field == field)
        #expect(e.description == "\(file): field '\(field)' \(detail)")
    }

    @Test(arguments: [
        (#""image_width": [0-9]+"#, #""image_width": "400""#, "image_width", "must be an integer, found a string"),
        (#""azimuth_id": [0-9]+"#, #""azimuth_id": 8"#, "azimuth_id", "must be in 0...7, found 8"),
        (#""bndbox": \[[^\]]*\]"#, #""bndbox": {}"#, "bndbox", "must be 4 integers [x1, y1, x2, y2]"),
        (#""7": (null|\[[^\]]*\])"#, #""7": "x""#, "kps.7", "must be [x, y] (two numbers) or null, found a string"),
        (#""7": (null|\[[^\]]*\])"#, #""7": [1, 2, 3]"#, "kps.7", "must be [x, y] (two numbers) or null, found an array"),
        (#""kps": \{"#, #""kps": {"a": null, "#, "kps", "has key \"a\", which is not a keypoint id (a non-negative integer)"),
        (#""kps": \{"#, #""kps": {"007": null, "#, "kps", "has keys \"007\" and \"7\" for the same keypoint id 7"),
        (#""kps": \{[^}]*\}"#, #""kps": []"#, "kps", "must be an object of keypoint id → [x, y] or null, found an array"),
    ] as [(String, String, String, String)])
    func wrongTypesInImageAnnotation(_ pattern: String, _ replacement: String, _ field: String, _ detail: String) throws {
        let t = try TempDataset()
        let (name, _) = try firstTestPair(t)
        let file = "ImageAnnotation/car/\(name.target).json"
        try t.edit(file, replacing: pattern, with: replacement)
        let e = try #require(try loadError(t, name))
        #expect(e.file == file && e.field == field)
        #expect(e.description == "\(file): field '\(field)' \(detail)")
    }

    @Test func keypointIDsAsIntegersAreAccepted() throws {
        let t = try TempDataset()
        let (name, file) = try firstTestPair(t)
        let ids = try t.dataset().pairAnnotation(name, split: .test).keypointIDs
        try t.edit(file, replacing: #""kps_ids": \[[^\]]*\]"#, with: "\"kps_ids\": \(ids)")
        #expect(try t.dataset().pairAnnotation(name, split: .test).keypointIDs == ids)
        #expect(try loadError(t, name) == nil)
    }

    @Test func mirroredTestPairIsAValidationError() throws {
        let t = try TempDataset()
        let (name, file) = try firstTestPair(t)
        try t.edit(file, replacing: #""mirror": 0"#, with: #""mirror": 1"#)
        let e = try #require(try loadError(t, name))
        #expect(e.kind == .mirroredPair && e.field == "mirror")
        #expect(e.description == "\(file): field 'mirror' must be 0 in the test split (the reference asserts it), found 1")
        let result = try t.dataset().loadPairs(split: .test, category: "car")
        #expect(result.invalid == [e] && result.items.count == 29)
        // Outside the test split a mirrored pair is fine.
        let trn = try #require(try t.dataset().pairNames(split: .trn, category: "car").items.first)
        try t.edit("PairAnnotation/trn/\(trn.fileName)", replacing: #""mirror": 0"#, with: #""mirror": 1"#)
        #expect(try loadError(t, trn, split: .trn) == nil)
    }

    @Test func filesThatDisagree() throws {
        let t = try TempDataset()
        let (name, file) = try firstTestPair(t)
        try t.edit(file, replacing: #""category": "car""#, with: #""category": "dog""#)
        var e = try #require(try loadError(t, name))
        #expect(e.kind == .inconsistent && e.description == "\(file): field 'category' is \"dog\" but the file name says \"car\"")
        try t.edit(file, replacing: #""category": "dog""#, with: #""category": "car""#)
        try t.edit(file, replacing: #""trg_imname": "[^"]*""#, with: #""trg_imname": "other.jpg""#)
        e = try #require(try loadError(t, name))
        #expect(e.kind == .inconsistent && e.field == "trg_imname")
    }

    @Test func keypointIDBeyondTheCategoryCount() throws {
        let t = try TempDataset()
        let (name, _) = try firstTestPair(t)
        let file = "ImageAnnotation/car/\(name.source).json"
        try t.edit(file, replacing: #""kps": \{"#, with: #""kps": {"30": [5, 6], "#)
        let e = try #require(try loadError(t, name))
        #expect(e.kind == .inconsistent && e.file == file && e.field == "kps.30")
        // ...and the count check reports the file whose key count differs.
        let counts = try t.dataset().validateKeypointCounts(category: "car")
        #expect(counts.map(\.file) == [file])
    }

    @Test func missingImageFile() throws {
        let t = try TempDataset()
        let (name, _) = try firstTestPair(t)
        try t.remove("JPEGImages/car/\(name.target).jpg")
        let e = try #require(try loadError(t, name))
        #expect(e.kind == .missingFile && e.file == "JPEGImages/car/\(name.target).jpg")
    }

    @Test func badNamesAndListings() throws {
        let t = try TempDataset()
        try t.write("PairAnnotation/test/bogus:car.json", "{}")
        try t.write("PairAnnotation/test/1-a-b-c:car.json", "{}")
        try t.write("PairAnnotation/trn/README.txt", "not a pair")
        let ds = try t.dataset()
        let names = try ds.pairNames(split: .test, category: "car")
        #expect(names.items.count == 30)
        #expect(names.invalid.map(\.file) == ["PairAnnotation/test/1-a-b-c:car.json", "PairAnnotation/test/bogus:car.json"])
        #expect(names.invalid.allSatisfy { $0.kind == .invalidName })
        let loaded = try ds.loadPairs(split: .test, category: "car")
        #expect(loaded.items.count == 30 && loaded.invalid.count == 2)
        let training = try ds.trainingPairNames()
        #expect(training.invalid.map(\.file) == ["PairAnnotation/trn/README.txt"])
        #expect(throws: SPairError.self) { try ds.pairNames(split: .test, category: "car").requireValid() }
    }

    @Test func layouts() throws {
        let t = try TempDataset()
        var text = try t.text("Layout/large/test.txt")
        text.removeLast()  // no final newline: the last pair is still listed
        try t.write("Layout/large/test.txt", text + "\nnot a pair\n")
        let l = try t.dataset().layout(.large, split: .test)
        #expect(l.items.count == 90)
        #expect(l.invalid.map(\.description) == ["Layout/large/test.txt: line 91 \"not a pair\" is not a pair name {pair_id}-{source}-{target}:{category}"])
        try t.remove("Layout/small/val.txt")
        #expect(throws: SPairError(.missingFile, file: "Layout/small/val.txt", "is missing")) { try t.dataset().layout(.small, split: .val) }
    }

    @Test func rootAndMasks() throws {
        #expect(throws: SPairError.self) { try SPairDataset(root: URL(fileURLWithPath: "/nonexistent-spair")) }
        let t = try TempDataset()
        try t.write("Segmentation/car/2101_000001.png", "not a png")
        #expect(throws: SPairError.self) { try t.dataset().segmentationMask(category: "car", stem: "2101_000001") }
        do {
            _ = try t.dataset().segmentationMask(category: "car", stem: "2101_000001")
        } catch {
            #expect(error.kind == .invalidImage && error.file == "Segmentation/car/2101_000001.png")
        }
        #expect(throws: SPairError(.missingFile, file: "Segmentation/car/none.png", "is missing")) {
            try t.dataset().segmentationMask(category: "car", stem: "none")
        }
    }
}

@Suite struct PairNameTests {
    @Test func pairNames() {
        let n = PairName(parsing: "000009-2008_001546-2009_000327:aeroplane.json")
        #expect(n?.pairID == 9 && n?.source == "2008_001546" && n?.target == "2009_000327" && n?.category == "aeroplane")
        #expect(n?.fileName == "000009-2008_001546-2009_000327:aeroplane.json")
        for bad in ["a-b-c:car", "1-b:car", "1-b-c", "1-b-c:", "1--c:car", "1-b-c:car:x", "1-b-c-d:car", "x1-b-c:car"] {
            #expect(PairName(parsing: bad) == nil, "\(bad)")
        }
    }
}
