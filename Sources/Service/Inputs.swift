import Foundation
import HTTP1
import HTTPServer

/// Reading the request: multipart parts or a raw image body, JSON parts, parameters. Every mistake is a 4xx
/// problem naming the part, field or parameter.
enum Inputs {
    static let imageTypes: Set<String> = ["image/jpeg", "image/png", "image/jpg", "application/octet-stream"]

    /// The multipart parts, or nil when the body is a raw image (`image/jpeg`, `image/png`).
    static func parts(_ request: Request, limits: MultipartLimits, rawAllowed: Bool) throws -> [MultipartPart]? {
        guard let ct = request.headers["Content-Type"], let mt = MediaType(parsing: ct) else {
            throw HTTPError(status: .unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported media type",
                            detail: "send multipart/form-data" + (rawAllowed ? " or a raw image/jpeg or image/png body" : "") + "; the request has no Content-Type")
        }
        let essence = mt.essence.lowercased()
        if essence == "multipart/form-data" {
            do { return try MultipartParser.parse(request.body, contentType: ct, limits: limits) } catch {
                throw HTTPError(status: error.status, code: error.problemCode, title: "Malformed multipart body", detail: error.detail)
            }
        }
        if rawAllowed, essence == "image/jpeg" || essence == "image/png" { return nil }
        throw HTTPError(status: .unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported media type",
                        detail: "Content-Type '\(mt.essence)' is not accepted here; send multipart/form-data"
                            + (rawAllowed ? " (part 'image') or a raw image/jpeg or image/png body" : " with parts 'source' and 'target'"))
    }

    static func requiredPart(_ parts: [MultipartPart], _ name: String) throws -> MultipartPart {
        let found = parts.filter { $0.name == name }
        guard let p = found.first else {
            throw HTTPError(status: .unprocessableContent, code: "missing_part", title: "Missing part",
                            detail: "the multipart body has no part named '\(name)' (parts present: \(parts.map { "'\($0.name)'" }.joined(separator: ", ")))",
                            extensions: ["pointer": .string("/\(name)")])
        }
        guard found.count == 1 else {
            throw HTTPError(status: .unprocessableContent, code: "invalid_parameter", title: "Duplicate part",
                            detail: "part '\(name)' appears \(found.count) times", extensions: ["pointer": .string("/\(name)")])
        }
        return p
    }

    static func rejectUnknownParts(_ parts: [MultipartPart], allowed: Set<String>) throws {
        for p in parts where !allowed.contains(p.name) {
            throw HTTPError(status: .unprocessableContent, code: "invalid_parameter", title: "Unknown part",
                            detail: "unknown part '\(p.name)'; this endpoint takes \(allowed.sorted().map { "'\($0)'" }.joined(separator: ", "))",
                            extensions: ["pointer": .string("/\(p.name)")])
        }
    }

    static func json(_ part: MultipartPart) throws -> Any {
        do { return try JSONSerialization.jsonObject(with: Data(part.body), options: [.fragmentsAllowed]) } catch {
            throw HTTPError(status: .badRequest, code: "malformed_json", title: "Malformed JSON",
                            detail: "part '\(part.name)' is not valid JSON", extensions: ["pointer": .string("/\(part.name)")])
        }
    }

    static func invalid(_ pointer: String, _ detail: String) -> HTTPError {
        HTTPError(status: .unprocessableContent, code: "invalid_parameter", title: "Invalid parameter", detail: detail,
                  extensions: ["pointer": .string(pointer)])
    }

    /// `[[x, y], …]` of finite numbers.
    static func points(_ part: MultipartPart, maxPoints: Int) throws -> [(Double, Double)] {
        guard let list = try json(part) as? [Any] else { throw invalid("/points", "part 'points' must be a JSON array of [x, y] pairs") }
        guard list.count <= maxPoints else { throw invalid("/points", "part 'points' has \(list.count) points; at most \(maxPoints) are accepted") }
        return try list.enumerated().map { i, item in
            guard let xy = item as? [Any], xy.count == 2, let x = number(xy[0]), let y = number(xy[1]), x.isFinite, y.isFinite else {
                throw invalid("/points/\(i)", "points[\(i)] must be [x, y] with two finite numbers")
            }
            return (x, y)
        }
    }

    static func number(_ v: Any) -> Double? {
        guard let n = v as? NSNumber, !isJSONBool(v) else { return nil }
        return n.doubleValue
    }

    /// A JSON object of parameters, only the allowed keys.
    static func params(_ part: MultipartPart?, allowed: Set<String>) throws -> [String: Any] {
        guard let part else { return [:] }
        guard let obj = try json(part) as? [String: Any] else { throw invalid("/params", "part 'params' must be a JSON object") }
        for k in obj.keys where !allowed.contains(k) {
            throw invalid("/params/\(k)", "unknown parameter '\(k)'; known: \(allowed.sorted().joined(separator: ", "))")
        }
        return obj
    }

    static func double(_ params: [String: Any], _ key: String, default d: Double, range: ClosedRange<Double>) throws -> Double {
        guard let v = params[key] else { return d }
        guard let x = number(v), range.contains(x) else {
            throw invalid("/params/\(key)", "'\(key)' must be a number in [\(range.lowerBound), \(range.upperBound)]")
        }
        return x
    }

    static func int(_ params: [String: Any], _ key: String, default d: Int, range: ClosedRange<Int>) throws -> Int {
        guard let v = params[key] else { return d }
        guard let x = number(v), x == x.rounded(), x >= Double(range.lowerBound), x <= Double(range.upperBound) else {
            throw invalid("/params/\(key)", "'\(key)' must be an integer in [\(range.lowerBound), \(range.upperBound)]")
        }
        return Int(x)
    }

    static func bool(_ params: [String: Any], _ key: String, default d: Bool) throws -> Bool {
        guard let v = params[key] else { return d }
        guard isJSONBool(v), let b = v as? Bool else { throw invalid("/params/\(key)", "'\(key)' must be true or false") }
        return b
    }

    /// Rejects query parameters other than `allowed`.
    static func checkQuery(_ request: Request, allowed: Set<String>) throws {
        for q in request.queryItems where !allowed.contains(q.name) {
            throw invalid("/\(q.name)", "unknown query parameter '\(q.name)'; known: \(allowed.sorted().joined(separator: ", "))")
        }
    }
}

/// JSON booleans arrive as NSNumber too (objCType "c"); numbers as "i", "q" or "d".
func isJSONBool(_ v: Any) -> Bool { (v as? NSNumber).map { String(cString: $0.objCType) == "c" } ?? false }
