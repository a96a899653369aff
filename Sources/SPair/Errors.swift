// Every problem with the data is one of these values, naming the file (relative to the dataset
// root, as a user would look for it) and, where there is one, the field. Reading never traps.

import JSON

/// What is wrong with an SPair-71k-format dataset, file by file.
package struct SPairError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Kind: String, Sendable, Equatable {
        /// A file or folder that must exist is absent.
        case missingFile
        /// A file exists but could not be read.
        case unreadableFile
        /// Not JSON (position in `detail`).
        case malformedJSON
        /// A required field is absent.
        case missingField
        /// A field has the wrong type or an impossible value.
        case invalidField
        /// A pair file name (or Layout line) is not `{id}-{src}-{trg}:{category}`.
        case invalidName
        /// Two files disagree (category in the name vs the JSON, image name vs pair name,
        /// keypoint id beyond the category's keypoint count, ...).
        case inconsistent
        /// A test pair has `mirror != 0` (the reference asserts `mirror == 0`).
        case mirroredPair
        /// An image or mask could not be decoded.
        case invalidImage
        /// A training mask has no object pixel (it would give no training signal).
        case emptyMask
    }

    package var kind: Kind
    /// Path relative to the dataset root, e.g. `PairAnnotation/test/000001-a-b:car.json`.
    package var file: String
    /// The JSON field, when the problem is one field (`trg_bndbox`, `kps.12`, ...).
    package var field: String?
    /// What is wrong, phrased to follow the field: "must be 4 integers".
    package var detail: String

    package init(_ kind: Kind, file: String, field: String? = nil, _ detail: String) {
        self.kind = kind
        self.file = file
        self.field = field
        self.detail = detail
    }

    /// `PairAnnotation/test/000001-a-b:car.json: field 'trg_bndbox' must be 4 integers`.
    package var description: String {
        if let field { return "\(file): field '\(field)' \(detail)" }
        return "\(file): \(detail)"
    }
}

/// Typed accessors over one JSON object, each failing with an `SPairError` that names the file
/// and the field.
struct FieldReader {
    let file: String
    /// The members by name (StrictJSON refuses repeated names).
    let object: [String: JSONValue]

    init(file: String, value: JSONValue) throws(SPairError) {
        guard case let .object(members) = value else {
            throw SPairError(.invalidField, file: file, "must hold a JSON object, found \(value.typeName)")
        }
        self.file = file
        self.object = Dictionary(members.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    func fail(_ key: String, _ detail: String) -> SPairError { SPairError(.invalidField, file: file, field: key, detail) }

    func required(_ key: String) throws(SPairError) -> JSONValue {
        guard let v = object[key] else { throw SPairError(.missingField, file: file, field: key, "is missing") }
        return v
    }

    func int(_ key: String, in range: ClosedRange<Int>? = nil) throws(SPairError) -> Int {
        let v = try required(key)
        guard let i = v.integer else { throw fail(key, "must be an integer, found \(v.typeName)") }
        if let range, !range.contains(i) { throw fail(key, "must be in \(range.lowerBound)...\(range.upperBound), found \(i)") }
        return i
    }

    func optionalInt(_ key: String) throws(SPairError) -> Int? {
        guard object[key] != nil else { return nil }
        return try int(key)
    }

    func string(_ key: String) throws(SPairError) -> String {
        let v = try required(key)
        guard case let .string(s) = v else { throw fail(key, "must be a string, found \(v.typeName)") }
        return s
    }

    func optionalString(_ key: String) throws(SPairError) -> String? {
        guard object[key] != nil else { return nil }
        return try string(key)
    }

    /// Exactly `count` integers; `what` completes "must be ..." (e.g. "4 integers [x1, y1, x2, y2]").
    func ints(_ key: String, count: Int, what: String) throws(SPairError) -> [Int] {
        let v = try required(key)
        guard case let .array(items) = v, items.count == count else { throw fail(key, "must be \(what)") }
        var out: [Int] = []
        for item in items {
            guard let i = item.integer else { throw fail(key, "must be \(what)") }
            out.append(i)
        }
        return out
    }

    func box(_ key: String) throws(SPairError) -> BoundingBox {
        let b = try ints(key, count: 4, what: "4 integers [x1, y1, x2, y2]")
        guard b[0] <= b[2], b[1] <= b[3] else {
            throw fail(key, "must have x1 <= x2 and y1 <= y2, found \(b)")
        }
        return BoundingBox(x1: b[0], y1: b[1], x2: b[2], y2: b[3])
    }

    /// A list of [x, y] numbers.
    func points(_ key: String) throws(SPairError) -> [Point] {
        let v = try required(key)
        guard case let .array(items) = v else { throw fail(key, "must be a list of [x, y] points, found \(v.typeName)") }
        var out: [Point] = []
        for (i, item) in items.enumerated() {
            guard let p = Point(json: item) else {
                throw fail(key, "must be a list of [x, y] points; element \(i) is not two finite numbers")
            }
            out.append(p)
        }
        return out
    }
}

extension Point {
    /// `[x, y]` with two finite JSON numbers (integers in SPair; floats accepted, the reference
    /// converts to float anyway).
    init?(json: JSONValue) {
        guard case let .array(xy) = json, xy.count == 2, let x = xy[0].finiteNumber, let y = xy[1].finiteNumber else { return nil }
        self.init(x: x, y: y)
    }
}
