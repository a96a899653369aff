// Freiburg Static Cars as the reference reads it (METHOD §2.2, §7.3; [SM] `datasets/FCars.py`):
//
//   <root>/images/<obj_id>/<image>                 obj_id e.g. "car_012"
//   <root>/annotations/<N>_annot.txt               N = int(obj_id[-2:]), lines "name x1 y1 x2 y2 az"
//   <root>/instance_masks/<obj_id>/<image>         precomputed masks, object = convert('L') > 0.5
//
// Differences from the reference, all about bad data: an image with no matching annotation line is reported
// (the reference silently takes the file's last line), as is a malformed line.

import Foundation
import SPair

extension TrainingSet {
    /// `sorted(obj/img for obj in sorted(listdir(images)) for img in listdir(images/obj))`, one condition (`car`),
    /// viewpoint ⌊((az mod 360)/360)·vpBins⌋, no replication (the reference ignores it for this set).
    package static func freiburgCars(root: URL, vpBins: Int = 8) throws(SPairError) -> TrainingSet {
        precondition(vpBins >= 1)
        func list(_ rel: String) throws(SPairError) -> [String] {
            let path = root.appendingPathComponent(rel).path
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
                throw SPairError(.missingFile, file: rel, "is missing or cannot be listed: \(root.path) is not a Freiburg Cars folder (images/, annotations/, instance_masks/)")
            }
            return names.filter { !$0.hasPrefix(".") }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        }
        var set = TrainingSet(root: root, source: .fcars, categories: ["car"], vpBins: vpBins, images: [], replications: 1, skipped: [])
        var paths: [String] = []
        for obj in try list("images") {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root.appendingPathComponent("images/\(obj)").path, isDirectory: &isDir), isDir.boolValue else { continue }
            paths += try list("images/\(obj)").map { "\(obj)/\($0)" }
        }
        paths.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var annotations: [String: Result<[String: (line: Int, box: BoundingBox, az: Int)], SPairError>] = [:]
        for p in paths {
            let obj = String(p.split(separator: "/")[0])
            guard obj.count >= 2, let n = Int(obj.suffix(2)) else {
                set.skipped.append(SPairError(.invalidName, file: "images/\(obj)", "must end in two digits (the car number, e.g. car_012)"))
                continue
            }
            let file = "annotations/\(n)_annot.txt"
            if annotations[file] == nil { annotations[file] = Result { () throws(SPairError) in try readAnnotations(set, file) } }
            let entries: [String: (line: Int, box: BoundingBox, az: Int)]
            switch annotations[file]! {
            case let .success(e): entries = e
            case let .failure(e): set.skipped.append(e); continue
            }
            guard let a = entries[String(p.dropLast(4))] else {
                set.skipped.append(SPairError(.missingField, file: file, "has no line for \(p) (the reference would silently use the last line)"))
                continue
            }
            set.images.append(TrainingImage(imagePath: "images/\(p)", maskPath: "instance_masks/\(p)", maskRule: .luminanceAbove(127),
                                            category: 0, viewpoint: viewpointBin(degrees: a.az, bins: vpBins),
                                            annotationFile: file, annotatedSize: nil, box: a.box, boxField: "line \(a.line)"))
        }
        if set.images.isEmpty && set.skipped.isEmpty { throw SPairError(.missingFile, file: "images", "holds no image: nothing to train on") }
        return set
    }

    /// `name x1 y1 x2 y2 az` lines keyed by `name[:-4]`; the first line of a name wins, as the reference's loop breaks.
    private static func readAnnotations(_ set: TrainingSet, _ file: String) throws(SPairError) -> [String: (line: Int, box: BoundingBox, az: Int)] {
        let bytes = try set.readFile(file)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw SPairError(.unreadableFile, file: file, "is not UTF-8 text") }
        var out: [String: (line: Int, box: BoundingBox, az: Int)] = [:]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let f = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if f.isEmpty { continue }
            let v = f.dropFirst().compactMap { Int($0) }
            guard f.count == 6, v.count == 5, f[0].count > 4 else {
                throw SPairError(.invalidField, file: file, field: "line \(i + 1)", "must be 'name x1 y1 x2 y2 az' with integer numbers, found \"\(raw)\"")
            }
            guard v[0] <= v[2], v[1] <= v[3] else {
                throw SPairError(.invalidField, file: file, field: "line \(i + 1)", "box must have x1 <= x2 and y1 <= y2, found \(Array(v.prefix(4)))")
            }
            let key = String(f[0].dropLast(4))
            if out[key] == nil { out[key] = (i + 1, BoundingBox(x1: v[0], y1: v[1], x2: v[2], y2: v[3]), v[4]) }
        }
        return out
    }
}
