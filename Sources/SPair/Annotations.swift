// The SPair-71k annotation files (METHOD §7.1): pair names, pair JSON,
// image JSON. Parsing checks every field's type; files that disagree with each other are
// checked where they are combined (Dataset.swift).

import JSON

/// The three SPair-71k splits, named as on disk.
package enum SPairSplit: String, Sendable, CaseIterable, Equatable {
    case trn, val, test
}

/// `Layout/{large,small}`: `large` is the full split, `small` a subset.
package enum LayoutSize: String, Sendable, CaseIterable, Equatable {
    case large, small
}

/// A pixel position `(x, y)` = (column, row), as written in the JSON.
package struct Point: Sendable, Equatable {
    package var x: Double
    package var y: Double
    package init(x: Double, y: Double) { self.x = x; self.y = y }
}

/// `[x1, y1, x2, y2]` corners in pixels (VOC, 1-based inclusive in SPair).
package struct BoundingBox: Sendable, Equatable {
    package var x1: Int, y1: Int, x2: Int, y2: Int
    package init(x1: Int, y1: Int, x2: Int, y2: Int) { self.x1 = x1; self.y1 = y1; self.x2 = x2; self.y2 = y2 }
    /// `max(x2 − x1, y2 − y1)`: the PCK normaliser before scaling (METHOD §2.3).
    package var maxSide: Int { max(x2 - x1, y2 - y1) }
}

/// `[W, H, C]` as in `src_imsize` / `trg_imsize` (width first).
package struct ImageSize: Sendable, Equatable {
    package var width: Int, height: Int, depth: Int
    package init(width: Int, height: Int, depth: Int = 3) { self.width = width; self.height = height; self.depth = depth }
}

/// The 18 SPair-71k categories in the reference's `cat_dict` order (alphabetical), and their
/// test-pair counts: the weights of the reference's "Weighted PCK" line (METHOD §6.2).
package enum SPairCategories {
    package static let all = [
        "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "train", "tvmonitor",
    ]
    package static let testPairCounts = [690, 650, 702, 702, 870, 644, 564, 600, 646, 640, 600, 600, 702, 650, 862, 664, 756, 692]
    /// `testPairCounts` by category name (the reference's `weights_spair`, summing to 12 234).
    package static var testPairCountByName: [String: Int] { Dictionary(uniqueKeysWithValues: zip(all, testPairCounts)) }

    /// Condition index of the sphere mapper (`cat_dict`), nil for a category outside the 18.
    package static func index(of category: String) -> Int? { all.firstIndex(of: category) }
}

/// A pair file name `{pair_id}-{src}-{trg}:{category}` (`.json` optional), parsed as the loaders
/// do: category after ':', then `-` splits id, source stem and target stem (stems never contain
/// `-` or `:`).
package struct PairName: Sendable, Hashable, CustomStringConvertible {
    package var pairID: Int
    /// The id as written (zero-padded, `%06d` in SPair).
    package var idText: String
    package var source: String
    package var target: String
    package var category: String

    /// The name without extension.
    package var description: String { "\(idText)-\(source)-\(target):\(category)" }
    package var fileName: String { description + ".json" }

    /// nil unless the name has exactly that shape (digits, two non-empty stems, a category).
    package init?(parsing name: String) {
        var stem = Substring(name)
        if stem.hasSuffix(".json") { stem = stem.dropLast(5) }
        let colon = stem.split(separator: ":", omittingEmptySubsequences: false)
        guard colon.count == 2, !colon[1].isEmpty, !colon[1].contains("/") else { return nil }
        let parts = colon[0].split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              parts[0].count <= 18, let id = Int(parts[0]),
              !parts[1].isEmpty, !parts[2].isEmpty, !parts[1].contains("/"), !parts[2].contains("/") else { return nil }
        self.pairID = id
        self.idText = String(parts[0])
        self.source = String(parts[1])
        self.target = String(parts[2])
        self.category = String(colon[1])
    }
}

/// One `PairAnnotation/<split>/<name>.json` (every field of METHOD §7.1).
package struct PairAnnotation: Sendable, Equatable {
    package var pairID: Int
    /// `filename` (the pair name without `.json`); present in SPair but not read by the reference.
    package var filename: String?
    package var sourceImageName: String
    package var targetImageName: String
    package var sourceImageSize: ImageSize
    package var targetImageSize: ImageSize
    package var sourceBox: BoundingBox
    package var targetBox: BoundingBox
    package var sourcePose: String
    package var targetPose: String
    /// Keypoints visible in both images, aligned with `keypointIDs`.
    package var sourceKeypoints: [Point]
    package var targetKeypoints: [Point]
    /// `kps_ids`, written as strings or integers in the files; `int()`-converted as [SD] does.
    package var keypointIDs: [Int]
    package var category: String
    package var mirror: Int
    package var viewpointVariation: Int
    package var scaleVariation: Int
    package var truncation: Int
    package var occlusion: Int

    /// Parses a pair JSON document; `file` names it in errors.
    package init(json: JSONValue, file: String) throws(SPairError) {
        let r = try FieldReader(file: file, value: json)
        pairID = try r.int("pair_id")
        filename = try r.optionalString("filename")
        sourceImageName = try r.string("src_imname")
        targetImageName = try r.string("trg_imname")
        sourceImageSize = try Self.size(r, "src_imsize")
        targetImageSize = try Self.size(r, "trg_imsize")
        sourceBox = try r.box("src_bndbox")
        targetBox = try r.box("trg_bndbox")
        sourcePose = try r.string("src_pose")
        targetPose = try r.string("trg_pose")
        sourceKeypoints = try r.points("src_kps")
        targetKeypoints = try r.points("trg_kps")
        keypointIDs = try Self.ids(r)
        category = try r.string("category")
        mirror = try r.int("mirror", in: 0...1)
        viewpointVariation = try r.int("viewpoint_variation")
        scaleVariation = try r.int("scale_variation")
        truncation = try r.int("truncation")
        occlusion = try r.int("occlusion")
        guard sourceKeypoints.count == keypointIDs.count, targetKeypoints.count == keypointIDs.count else {
            throw r.fail("kps_ids", "must have as many entries as 'src_kps' and 'trg_kps' (\(keypointIDs.count) vs \(sourceKeypoints.count) and \(targetKeypoints.count))")
        }
    }

    private static func size(_ r: FieldReader, _ key: String) throws(SPairError) -> ImageSize {
        let s = try r.ints(key, count: 3, what: "3 integers [width, height, depth]")
        guard s[0] > 0, s[1] > 0 else { throw r.fail(key, "must have a positive width and height, found \(s)") }
        return ImageSize(width: s[0], height: s[1], depth: s[2])
    }

    private static func ids(_ r: FieldReader) throws(SPairError) -> [Int] {
        let v = try r.required("kps_ids")
        guard case let .array(items) = v else { throw r.fail("kps_ids", "must be a list of keypoint ids, found \(v.typeName)") }
        var out: [Int] = []
        for (i, item) in items.enumerated() {
            switch item {
            case .number where (item.integer ?? -1) >= 0: out.append(item.integer!)
            case let .string(s):
                guard let k = keypointID(s) else {
                    throw r.fail("kps_ids", "element \(i) is \"\(s)\", not a keypoint id (a non-negative integer)")
                }
                out.append(k)
            default:
                throw r.fail("kps_ids", "element \(i) must be a keypoint id (a string or an integer), found \(item.typeName)")
            }
        }
        return out
    }
}

/// A keypoint id written as a string: ASCII digits only.
func keypointID(_ s: String) -> Int? {
    guard !s.isEmpty, s.utf8.count <= 9, s.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
    return Int(s)
}

/// One keypoint slot of an image annotation: its id (the `kps` key) and position, nil when the
/// keypoint is not visible (`null`).
package struct KeypointSlot: Sendable, Equatable {
    package var id: Int
    package var position: Point?
}

/// One `ImageAnnotation/<category>/<stem>.json`.
package struct ImageAnnotation: Sendable, Equatable {
    package var filename: String?
    package var sourceDatabase: String?
    package var sourceAnnotation: String?
    package var sourceImage: String?
    package var width: Int
    package var height: Int
    package var depth: Int?
    package var category: String?
    package var pose: String?
    package var truncated: Int?
    package var occluded: Int?
    package var difficult: Int?
    package var box: BoundingBox
    /// The `kps` entries in file order (after Python's last-wins rule for repeated keys).
    package var keypoints: [KeypointSlot]
    /// Viewpoint bin 0...7 (`vp` in training).
    package var azimuthID: Int

    /// `len(kps)`: how the reference counts a category's keypoints (METHOD §6.1 step 2).
    package var slotCount: Int { keypoints.count }

    /// Parses an image JSON document. Required: `image_width`, `image_height`, `bndbox`, `kps`,
    /// `azimuth_id`; the other fields are optional but must have their types when present.
    package init(json: JSONValue, file: String) throws(SPairError) {
        let r = try FieldReader(file: file, value: json)
        filename = try r.optionalString("filename")
        sourceDatabase = try r.optionalString("src_database")
        sourceAnnotation = try r.optionalString("src_annotation")
        sourceImage = try r.optionalString("src_image")
        width = try r.int("image_width", in: 1...Int(Int32.max))
        height = try r.int("image_height", in: 1...Int(Int32.max))
        depth = try r.optionalInt("image_depth")
        category = try r.optionalString("category")
        pose = try r.optionalString("pose")
        truncated = try r.optionalInt("truncated")
        occluded = try r.optionalInt("occluded")
        difficult = try r.optionalInt("difficult")
        box = try r.box("bndbox")
        azimuthID = try r.int("azimuth_id", in: 0...7)

        let kv = try r.required("kps")
        guard case let .object(kps) = kv else {
            throw r.fail("kps", "must be an object of keypoint id → [x, y] or null, found \(kv.typeName)")
        }
        var slots: [KeypointSlot] = []
        var seen: [Int: String] = [:]
        for (key, value) in kps {
            guard let id = keypointID(key) else {
                throw r.fail("kps", "has key \"\(key)\", which is not a keypoint id (a non-negative integer)")
            }
            if let other = seen[id] { throw r.fail("kps", "has keys \"\(other)\" and \"\(key)\" for the same keypoint id \(id)") }
            seen[id] = key
            if value == .null {
                slots.append(KeypointSlot(id: id, position: nil))
            } else if let p = Point(json: value) {
                slots.append(KeypointSlot(id: id, position: p))
            } else {
                throw r.fail("kps.\(key)", "must be [x, y] (two numbers) or null, found \(value.typeName)")
            }
        }
        keypoints = slots
    }
}
