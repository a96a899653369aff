// Reading an SPair-71k-format dataset as the reference evaluation and training code do
// (METHOD §2.1, §6.1, §7.1; [SM] `pck_spair_pascal_sphere.py::load_spair_data`, `datasets/SPair.py`).
//
// Orders:
//   - categories: `sorted(os.listdir(ImageAnnotation))` (directories only, hidden names skipped);
//   - pairs of a category: `sorted(glob(PairAnnotation/<split>/*:<cat>.json))`;
//   - training pairs: `sorted(os.listdir(PairAnnotation/trn))`.
//   Python sorts strings by code point, which for UTF-8 is byte order: names are compared as bytes.
//
// num_kps (METHOD §6.1 step 2): the reference takes `len(kps)` of the *first file returned by
// `glob`* in ImageAnnotation/<cat>/, i.e. in directory (readdir) order, which depends on the file
// system. We take the first file in **sorted** order instead, so the result does not depend on
// the file system; SPair gives every image of a category the same key set (30 slots), so both
// choices give the same count. `validateKeypointCounts(category:)` checks that assumption on a
// dataset, and `numKeypoints(category:order: .directory)` reproduces the glob order exactly.

import Foundation
import Imaging
import JSON
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Items that passed validation and the errors of those that did not, in the original order.
/// Callers either stop at the first error (`requireValid()`) or skip and count (`--skip-invalid`).
package struct Validated<Item: Sendable>: Sendable {
    package var items: [Item]
    package var invalid: [SPairError]

    package init(items: [Item] = [], invalid: [SPairError] = []) { self.items = items; self.invalid = invalid }

    /// The items, or the first error when there is one.
    package func requireValid() throws(SPairError) -> [Item] {
        if let first = invalid.first { throw first }
        return items
    }
}

/// Order of a directory listing.
package enum FileOrder: Sendable {
    /// Byte order of the names (Python `sorted`).
    case sorted
    /// The order `readdir` returns (Python `glob`/`os.listdir` without sorting).
    case directory
}

/// One pair with everything the evaluation needs, checked (METHOD §6.1).
package struct LoadedPair: Sendable {
    package var name: PairName
    package var split: SPairSplit
    /// `PairAnnotation/<split>/<name>.json`.
    package var file: String
    package var annotation: PairAnnotation
    package var source: ImageAnnotation
    package var target: ImageAnnotation
    /// K matrices in original pixel coordinates, from the per-image annotations (H28).
    package var sourceKeypoints: KeypointMatrix
    package var targetKeypoints: KeypointMatrix
    /// `JPEGImages/<category>/<imname>` (relative to the dataset root).
    package var sourceImagePath: String
    package var targetImagePath: String

    /// Letterbox keypoint transforms at resolution R, built from the **pair** JSON's
    /// `src_imsize`/`trg_imsize` (W, H), not the decoded images (H4).
    package func transforms(resolution: Int) -> (source: KeypointTransform, target: KeypointTransform) {
        let s = annotation.sourceImageSize, t = annotation.targetImageSize
        return (KeypointTransform(imageWidth: s.width, imageHeight: s.height, resolution: resolution),
                KeypointTransform(imageWidth: t.width, imageHeight: t.height, resolution: resolution))
    }

    /// PCK normaliser thr_p in the R frame: `max(x2 − x1, y2 − y1)` of `trg_bndbox` times
    /// `R / max(W_t, H_t)`, in float64 as numpy computes it (METHOD §2.3).
    package func pckThreshold(resolution: Int) -> Double {
        let t = annotation.targetImageSize
        return Double(annotation.targetBox.maxSide) * (Double(resolution) / Double(max(t.width, t.height)))
    }

    /// Both K matrices in the R×R letterbox frame, and thr_p.
    package func letterboxed(resolution: Int) -> (source: KeypointMatrix, target: KeypointMatrix, threshold: Double) {
        let (ts, tt) = transforms(resolution: resolution)
        return (sourceKeypoints.letterboxed(ts), targetKeypoints.letterboxed(tt), pckThreshold(resolution: resolution))
    }
}

/// One training item (METHOD §2.1): only the source image of its pair is used.
package struct TrainingSample: Sendable, Equatable {
    package var pair: PairName
    /// From the pair JSON.
    package var category: String
    /// `cat_dict` index (alphabetical among the 18 SPair categories); nil outside them.
    package var categoryIndex: Int?
    /// Source image stem (`src_imname` without `.jpg`).
    package var sourceStem: String
    /// `azimuth_id` of the source image annotation.
    package var azimuthID: Int
    /// `JPEGImages/<category>/<src_imname>`.
    package var imagePath: String
    /// `Segmentation/<category>/<stem>.png` (the dataset's masks; the reference's Mask R-CNN
    /// `Re_segmentation` masks are not part of SPair, see METHOD H24).
    package var maskPath: String
    /// `src_imsize` of the pair JSON (the decoded image must have it).
    package var imageSize: ImageSize
    /// `PairAnnotation/<split>/<pair>.json`, named in errors about the sample.
    package var pairFile: String
}

/// A segmentation mask: 1 where the object is (any non-zero value, METHOD H24), else 0.
package struct ObjectMask: Sendable, Equatable {
    package var width: Int
    package var height: Int
    /// `[height, width]`, 0 or 1.
    package var values: [UInt8]
    package var objectPixelCount: Int { values.reduce(0) { $0 + Int($1) } }

    /// Which pixels of a mask image are object.
    package enum Rule: Sendable, Equatable {
        /// Any non-zero value (SPair `Segmentation/`, METHOD H24: the VOC class id on the object).
        case anyNonZero
        /// Pillow `convert('L')` above a value: `to_tensor(L) > 0.5` is `L > 127` (the reference's
        /// Mask R-CNN masks, and Freiburg Cars' `instance_masks/`, METHOD §2.2).
        case luminanceAbove(UInt8)
    }

    package init(width: Int, height: Int, values: [UInt8]) { self.width = width; self.height = height; self.values = values }

    /// Decodes a mask image (PNG or JPEG; `file` names it in errors) and applies `rule`:
    /// `anyNonZero` on the stored values (for a palette PNG the index, not its colour), and
    /// `luminanceAbove` on the RGB that Pillow's `convert('RGB')` gives.
    package init(bytes: [UInt8], file: String, rule: Rule = .anyNonZero) throws(SPairError) {
        if rule == .anyNonZero {
            do {
                let m = try decodeNonZeroMask(bytes)
                self.init(width: m.width, height: m.height, values: m.values)
                return
            } catch { throw SPairError(.invalidImage, file: file, "cannot be decoded: \(error)") }
        }
        let image: RGBImage
        do { image = try decodeImage(bytes) } catch {
            throw SPairError(.invalidImage, file: file, "cannot be decoded: \(error)")
        }
        var values = [UInt8](repeating: 0, count: image.width * image.height)
        image.pixels.withUnsafeBufferPointer { p in
            switch rule {
            case .anyNonZero:
                for i in 0..<values.count where p[3 * i] | p[3 * i + 1] | p[3 * i + 2] != 0 { values[i] = 1 }
            case let .luminanceAbove(t):
                // Pillow's RGB → L: (R·19595 + G·38470 + B·7471 + 0x8000) >> 16.
                for i in 0..<values.count {
                    let l = (UInt32(p[3 * i]) * 19595 + UInt32(p[3 * i + 1]) * 38470 + UInt32(p[3 * i + 2]) * 7471 + 0x8000) >> 16
                    if l > UInt32(t) { values[i] = 1 }
                }
            }
        }
        self.init(width: image.width, height: image.height, values: values)
    }
}

/// An SPair-71k-format dataset at `root` (the folder holding ImageAnnotation, PairAnnotation, ...).
/// Stateless: every call reads the files it needs.
package struct SPairDataset: Sendable {
    package let root: URL

    /// Largest annotation file read (real ones are about 1 KB).
    package static let maxJSONBytes = 16 << 20

    /// Checks that `root` holds `ImageAnnotation/` and `PairAnnotation/`.
    package init(root: URL) throws(SPairError) {
        self.root = root
        for folder in ["ImageAnnotation", "PairAnnotation"] where !isDirectory(folder) {
            throw SPairError(.missingFile, file: folder, "is missing: \(root.path) is not an SPair-71k-format dataset")
        }
    }

    // MARK: Paths

    package func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    package func imagePath(category: String, imageName: String) -> String { "JPEGImages/\(category)/\(imageName)" }
    package func imageAnnotationPath(category: String, stem: String) -> String { "ImageAnnotation/\(category)/\(stem).json" }
    package func segmentationPath(category: String, stem: String) -> String { "Segmentation/\(category)/\(stem).png" }
    package func pairPath(_ name: PairName, split: SPairSplit) -> String { "PairAnnotation/\(split.rawValue)/\(name.fileName)" }
    package func layoutPath(_ size: LayoutSize, split: SPairSplit) -> String { "Layout/\(size.rawValue)/\(split.rawValue).txt" }

    // MARK: Listings

    /// `sorted(os.listdir(ImageAnnotation))`, keeping directories and skipping hidden names.
    package func categories() throws(SPairError) -> [String] {
        try entries("ImageAnnotation", order: .sorted).filter { !$0.hasPrefix(".") && isDirectory("ImageAnnotation/\($0)") }
    }

    /// Pair names of a category in a split: `sorted(glob(PairAnnotation/<split>/*:<cat>.json))`.
    /// File names that match the glob but not `{id}-{src}-{trg}:{cat}` are reported as invalid.
    package func pairNames(split: SPairSplit, category: String) throws(SPairError) -> Validated<PairName> {
        let folder = "PairAnnotation/\(split.rawValue)"
        let suffix = ":\(category).json"
        var result = Validated<PairName>()
        for file in try entries(folder, order: .sorted) where !file.hasPrefix(".") && file.hasSuffix(suffix) {
            if let name = PairName(parsing: file), name.category == category {
                result.items.append(name)
            } else {
                result.invalid.append(SPairError(.invalidName, file: "\(folder)/\(file)", "is not named {pair_id}-{source}-{target}:{category}.json"))
            }
        }
        return result
    }

    /// Image annotation stems of a category (`ImageAnnotation/<cat>/*.json`) in the given order.
    package func imageStems(category: String, order: FileOrder = .sorted) throws(SPairError) -> [String] {
        try entries("ImageAnnotation/\(category)", order: order)
            .filter { !$0.hasPrefix(".") && $0.hasSuffix(".json") }
            .map { String($0.dropLast(5)) }
    }

    /// num_kps of a category: `len(kps)` of the first image annotation (see the note at the top
    /// of this file for `order`).
    package func numKeypoints(category: String, order: FileOrder = .sorted) throws(SPairError) -> Int {
        guard let first = try imageStems(category: category, order: order).first else {
            throw SPairError(.missingFile, file: "ImageAnnotation/\(category)", "has no .json image annotation")
        }
        return try imageAnnotation(category: category, stem: first).slotCount
    }

    /// Errors for every image annotation of the category that does not parse or whose
    /// `len(kps)` differs from `numKeypoints(category:)`; empty when the reference's glob-order
    /// choice cannot matter.
    package func validateKeypointCounts(category: String) throws(SPairError) -> [SPairError] {
        let expected = try numKeypoints(category: category)
        var errors: [SPairError] = []
        for stem in try imageStems(category: category) {
            let file = imageAnnotationPath(category: category, stem: stem)
            do {
                let a = try imageAnnotation(category: category, stem: stem)
                if a.slotCount != expected {
                    errors.append(SPairError(.inconsistent, file: file, field: "kps",
                                             "has \(a.slotCount) entries, the category's first annotation has \(expected)"))
                }
            } catch {
                errors.append(error)
            }
        }
        return errors
    }

    /// `Layout/<size>/<split>.txt`: one pair name per line, each line ending in a newline
    /// (`read().split('\n')[:-1]`). A final line without a newline is kept (the reference's
    /// loaders would drop it); lines that are not pair names are reported as invalid.
    package func layout(_ size: LayoutSize, split: SPairSplit) throws(SPairError) -> Validated<PairName> {
        let file = layoutPath(size, split: split)
        let bytes = try read(file)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SPairError(.unreadableFile, file: file, "is not UTF-8 text")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        var result = Validated<PairName>()
        for (i, raw) in lines.enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if let name = PairName(parsing: String(line)), !line.hasSuffix(".json") {
                result.items.append(name)
            } else {
                result.invalid.append(SPairError(.invalidName, file: file, "line \(i + 1) \"\(line)\" is not a pair name {pair_id}-{source}-{target}:{category}"))
            }
        }
        return result
    }

    // MARK: Annotations

    /// Parses `PairAnnotation/<split>/<name>.json`.
    package func pairAnnotation(_ name: PairName, split: SPairSplit) throws(SPairError) -> PairAnnotation {
        let file = pairPath(name, split: split)
        return try PairAnnotation(json: readJSON(file), file: file)
    }

    /// Parses `ImageAnnotation/<category>/<stem>.json`.
    package func imageAnnotation(category: String, stem: String) throws(SPairError) -> ImageAnnotation {
        let file = imageAnnotationPath(category: category, stem: stem)
        return try ImageAnnotation(json: readJSON(file), file: file)
    }

    /// Loads and checks one pair: its JSON; the category in the name equals the JSON's (asserted by
    /// the reference); `mirror == 0` in the test split (asserted by the reference); image names
    /// `<src>.jpg` / `<trg>.jpg` as in the file name; both image annotations; K matrices of
    /// `numKeypoints` rows; both JPEG files present.
    package func loadPair(_ name: PairName, split: SPairSplit, numKeypoints: Int) throws(SPairError) -> LoadedPair {
        var cache: [String: ImageAnnotation] = [:]
        return try loadPair(name, split: split, numKeypoints: numKeypoints, cache: &cache)
    }

    /// All pairs of a category in a split, in reference order, with the invalid ones reported
    /// instead of loaded (`--skip-invalid`). Throws only when the category itself is unusable
    /// (no readable first image annotation, missing folder).
    package func loadPairs(split: SPairSplit, category: String) throws(SPairError) -> Validated<LoadedPair> {
        let names = try pairNames(split: split, category: category)
        var result = Validated<LoadedPair>(invalid: names.invalid)
        guard !names.items.isEmpty else { return result }
        let numKps = try numKeypoints(category: category)
        var cache: [String: ImageAnnotation] = [:]
        for name in names.items {
            do {
                result.items.append(try loadPair(name, split: split, numKeypoints: numKps, cache: &cache))
            } catch {
                result.invalid.append(error)
            }
        }
        return result
    }

    private func loadPair(_ name: PairName, split: SPairSplit, numKeypoints: Int,
                          cache: inout [String: ImageAnnotation]) throws(SPairError) -> LoadedPair {
        let file = pairPath(name, split: split)
        let a = try PairAnnotation(json: readJSON(file), file: file)
        guard a.category == name.category else {
            throw SPairError(.inconsistent, file: file, field: "category", "is \"\(a.category)\" but the file name says \"\(name.category)\"")
        }
        if split == .test, a.mirror != 0 {
            throw SPairError(.mirroredPair, file: file, field: "mirror", "must be 0 in the test split (the reference asserts it), found \(a.mirror)")
        }
        for (key, imname, stem) in [("src_imname", a.sourceImageName, name.source), ("trg_imname", a.targetImageName, name.target)]
        where imname != stem + ".jpg" {
            throw SPairError(.inconsistent, file: file, field: key, "is \"\(imname)\" but the file name says \"\(stem).jpg\"")
        }
        func annotation(_ stem: String) throws(SPairError) -> (ImageAnnotation, String) {
            let path = imageAnnotationPath(category: a.category, stem: stem)
            if let hit = cache[path] { return (hit, path) }
            let parsed = try ImageAnnotation(json: readJSON(path), file: path)
            cache[path] = parsed
            return (parsed, path)
        }
        let (src, srcFile) = try annotation(name.source)
        let (trg, trgFile) = try annotation(name.target)
        let srcK = try KeypointMatrix(annotation: src, count: numKeypoints, file: srcFile)
        let trgK = try KeypointMatrix(annotation: trg, count: numKeypoints, file: trgFile)
        let srcImage = imagePath(category: a.category, imageName: a.sourceImageName)
        let trgImage = imagePath(category: a.category, imageName: a.targetImageName)
        for path in [srcImage, trgImage] where !isRegularFile(path) {
            throw SPairError(.missingFile, file: path, "is missing (image of pair \(name))")
        }
        return LoadedPair(name: name, split: split, file: file, annotation: a, source: src, target: trg,
                          sourceKeypoints: srcK, targetKeypoints: trgK, sourceImagePath: srcImage, targetImagePath: trgImage)
    }

    // MARK: Training list (METHOD §2.1, H25)

    /// The training pair list: `sorted(os.listdir(PairAnnotation/<split>))`, keeping the **first**
    /// pair for each distinct source stem (`name.split('-')[1]`, compared across categories as the
    /// reference does). Replication (×10) is left to the caller. Entries that are not pair files
    /// are reported as invalid; de-duplication happens on names, before any JSON is read.
    package func trainingPairNames(split: SPairSplit = .trn) throws(SPairError) -> Validated<PairName> {
        let folder = "PairAnnotation/\(split.rawValue)"
        var result = Validated<PairName>()
        var seen = Set<String>()
        for file in try entries(folder, order: .sorted) where !file.hasPrefix(".") {
            guard file.hasSuffix(".json"), let name = PairName(parsing: file) else {
                result.invalid.append(SPairError(.invalidName, file: "\(folder)/\(file)", "is not named {pair_id}-{source}-{target}:{category}.json"))
                continue
            }
            if seen.insert(name.source).inserted { result.items.append(name) }
        }
        return result
    }

    /// One training item: category from the pair JSON, `azimuth_id` from the source image
    /// annotation, the image and its Segmentation mask present, the source box and keypoints
    /// inside `src_imsize` (VOC boxes are 1-based inclusive, so x2 may equal the width). The
    /// reference reads the same files (it never looks at the boxes or keypoints in training, but
    /// values outside the image mean the annotation does not describe it).
    package func trainingSample(_ name: PairName, split: SPairSplit = .trn) throws(SPairError) -> TrainingSample {
        let file = pairPath(name, split: split)
        let a = try PairAnnotation(json: readJSON(file), file: file)
        guard a.category == name.category else {
            throw SPairError(.inconsistent, file: file, field: "category", "is \"\(a.category)\" but the file name says \"\(name.category)\"")
        }
        guard a.sourceImageName.hasSuffix(".jpg") else {
            throw SPairError(.invalidField, file: file, field: "src_imname", "must name a .jpg file, found \"\(a.sourceImageName)\"")
        }
        let size = a.sourceImageSize
        let b = a.sourceBox
        guard b.x1 >= 0, b.y1 >= 0, b.x2 <= size.width, b.y2 <= size.height else {
            throw SPairError(.invalidField, file: file, field: "src_bndbox",
                             "[\(b.x1), \(b.y1), \(b.x2), \(b.y2)] is outside the \(size.width)×\(size.height) image ('src_imsize')")
        }
        for (i, p) in a.sourceKeypoints.enumerated()
        where !(p.x >= 0 && p.y >= 0 && p.x <= Double(size.width) && p.y <= Double(size.height)) {
            throw SPairError(.invalidField, file: file, field: "src_kps",
                             "point \(i) (\(p.x), \(p.y)) is outside the \(size.width)×\(size.height) image ('src_imsize')")
        }
        let stem = String(a.sourceImageName.dropLast(4))
        let src = try imageAnnotation(category: a.category, stem: stem)
        let image = imagePath(category: a.category, imageName: a.sourceImageName)
        guard isRegularFile(image) else { throw SPairError(.missingFile, file: image, "is missing (source image of pair \(name))") }
        let mask = segmentationPath(category: a.category, stem: stem)
        guard isRegularFile(mask) else { throw SPairError(.missingFile, file: mask, "is missing (mask of the source image of pair \(name))") }
        return TrainingSample(pair: name, category: a.category, categoryIndex: SPairCategories.index(of: a.category),
                              sourceStem: stem, azimuthID: src.azimuthID, imagePath: image, maskPath: mask,
                              imageSize: size, pairFile: file)
    }

    /// `trainingPairNames` loaded into samples, invalid ones reported.
    package func trainingSamples(split: SPairSplit = .trn) throws(SPairError) -> Validated<TrainingSample> {
        let names = try trainingPairNames(split: split)
        var result = Validated<TrainingSample>(invalid: names.invalid)
        for name in names.items {
            do { result.items.append(try trainingSample(name, split: split)) } catch { result.invalid.append(error) }
        }
        return result
    }

    // MARK: Masks

    /// `Segmentation/<category>/<stem>.png` as an object mask: any non-zero stored value is object
    /// (METHOD H24; the files hold the VOC class id on the object, 0 elsewhere; for a palette file the
    /// index counts, not its colour).
    package func segmentationMask(category: String, stem: String) throws(SPairError) -> ObjectMask {
        try mask(at: segmentationPath(category: category, stem: stem))
    }

    /// Any mask PNG (or JPEG) at a relative path, read as `segmentationMask` does.
    package func mask(at path: String, rule: ObjectMask.Rule = .anyNonZero) throws(SPairError) -> ObjectMask {
        try ObjectMask(bytes: read(path, limit: 256 << 20), file: path, rule: rule)
    }

    // MARK: File access

    package func isDirectory(_ relative: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url(relative).path, isDirectory: &isDir) && isDir.boolValue
    }

    package func isRegularFile(_ relative: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url(relative).path, isDirectory: &isDir) && !isDir.boolValue
    }

    /// Names in a folder (without "." and ".."), in `readdir` order or sorted by bytes.
    package func entries(_ relative: String, order: FileOrder) throws(SPairError) -> [String] {
        let path = url(relative).path
        guard let dir = opendir(path) else {
            let code = errno
            throw SPairError(code == ENOENT || code == ENOTDIR ? .missingFile : .unreadableFile, file: relative,
                             code == ENOENT ? "is missing" : "cannot be listed: \(String(cString: strerror(code)))")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { p in
                p.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        if order == .sorted { names.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) } }
        return names
    }

    /// The bytes of a file, or an error naming it.
    package func read(_ relative: String, limit: Int = SPairDataset.maxJSONBytes) throws(SPairError) -> [UInt8] {
        let u = url(relative)
        if isDirectory(relative) { throw SPairError(.unreadableFile, file: relative, "is a directory, not a file") }
        guard FileManager.default.fileExists(atPath: u.path) else { throw SPairError(.missingFile, file: relative, "is missing") }
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: u) } catch {
            throw SPairError(.unreadableFile, file: relative, "cannot be opened: \(error.localizedDescription)")
        }
        defer { try? handle.close() }
        let data: Data?
        do { data = try handle.read(upToCount: limit + 1) } catch {
            throw SPairError(.unreadableFile, file: relative, "cannot be read: \(error.localizedDescription)")
        }
        let bytes = [UInt8](data ?? Data())
        guard bytes.count <= limit else { throw SPairError(.unreadableFile, file: relative, "is larger than \(limit) bytes") }
        return bytes
    }

    /// A file parsed as JSON (RFC 8259, strictly: the service's reader); errors give the line and column.
    package func readJSON(_ relative: String) throws(SPairError) -> JSONValue {
        let bytes = try read(relative)
        do { return try StrictJSON.parse(bytes) } catch {
            let (line, column) = error.position(in: bytes)
            throw SPairError(.malformedJSON, file: relative, "is not valid JSON: \(error.reason) at line \(line), column \(column)")
        }
    }
}
