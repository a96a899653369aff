import Foundation
import HTTP1
import HTTPServer
import JSON

/// Reading the request: multipart parts or a raw image body, JSON parts, parameters. Every mistake is a 4xx
/// problem naming the part, field or parameter.
enum Inputs {
    static let imageTypes: Set<String> = ["image/jpeg", "image/png", "image/jpg", "application/octet-stream"]

    /// The multipart parts, or nil when the body is a raw image (`image/jpeg`, `image/png`). `tooManyParts`, when
    /// given, is the endpoint's own answer to a body with more than `limits.maxParts` parts.
    static func parts(_ request: Request, limits: MultipartLimits, rawAllowed: Bool, tooManyParts: HTTPError? = nil) throws -> [MultipartPart]? {
        let ct = try contentType(request.head, rawAllowed: rawAllowed)
        guard ct.essence == "multipart/form-data" else { return nil }
        do { return try MultipartParser.parse(request.body, contentType: request.headers["Content-Type"] ?? "", limits: limits) } catch {
            if error.code == .tooManyParts, let tooManyParts { throw tooManyParts }
            throw HTTPError(status: error.status, code: error.problemCode, title: "Malformed multipart body", detail: error.detail)
        }
    }

    /// The request's Content-Type, checked from the head alone (so that a refusal goes out before `100 Continue`):
    /// present, well-formed, and multipart/form-data with a usable boundary, or (when `rawAllowed`) a raw image type.
    static func contentType(_ head: RequestHead, rawAllowed: Bool) throws -> MediaType {
        let wanted = "send multipart/form-data" + (rawAllowed ? " or a raw image/jpeg or image/png body" : " with parts 'source' and 'target'")
        guard let ct = head.headers["Content-Type"] else {
            throw HTTPError(status: .unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported media type",
                            detail: wanted + "; the request has no Content-Type")
        }
        let mt: MediaType
        switch MediaType.parse(ct) {
        case .success(let m): mt = m
        case .failure(let e):
            throw HTTPError(status: .badRequest, code: "bad_request", title: "Malformed Content-Type",
                            detail: "the Content-Type is malformed: \(e.reason); " + wanted)
        }
        if mt.essence == "multipart/form-data" {
            do { _ = try MultipartParser.boundary(fromContentType: ct) } catch {
                throw HTTPError(status: .badRequest, code: "bad_request", title: "Malformed Content-Type",
                                detail: "the Content-Type is malformed: \(error.detail)")
            }
            return mt
        }
        if rawAllowed, mt.essence == "image/jpeg" || mt.essence == "image/png" { return mt }
        throw HTTPError(status: .unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported media type",
                        detail: "Content-Type '\(mt.essence.truncatedForEcho)' is not accepted here; send multipart/form-data"
                            + (rawAllowed ? " (part 'image') or a raw image/jpeg or image/png body" : " with parts 'source' and 'target'"))
    }

    static func requiredPart(_ parts: [MultipartPart], _ name: String) throws -> MultipartPart {
        guard let p = try optionalPart(parts, name) else {
            throw HTTPError(status: .unprocessableContent, code: "missing_part", title: "Missing part",
                            detail: "the multipart body has no part named '\(name)' (parts present: \(parts.prefix(16).map { "'\($0.name.truncatedForEcho)'" }.joined(separator: ", ")))",
                            extensions: ["pointer": .string("/\(name)")])
        }
        return p
    }

    /// The part named `name`, nil when absent; a part given twice is refused rather than the first one used.
    static func optionalPart(_ parts: [MultipartPart], _ name: String) throws -> MultipartPart? {
        let found = parts.filter { $0.name == name }
        guard found.count <= 1 else {
            throw HTTPError(status: .unprocessableContent, code: "invalid_parameter", title: "Duplicate part",
                            detail: "part '\(name)' appears \(found.count) times; send it once", extensions: ["pointer": .string("/\(name)")])
        }
        return found.first
    }

    static func rejectUnknownParts(_ parts: [MultipartPart], allowed: Set<String>) throws {
        for p in parts where !allowed.contains(p.name) {
            let name = p.name.truncatedForEcho
            throw HTTPError(status: .unprocessableContent, code: "invalid_parameter", title: "Unknown part",
                            detail: "unknown part '\(name)'; this endpoint takes \(allowed.sorted().map { "'\($0)'" }.joined(separator: ", "))",
                            extensions: ["pointer": .string("/\(name)")])
        }
    }

    /// A JSON part, read strictly (RFC 8259, UTF-8 only). `maxArrayElements` is enforced while reading.
    static func json(_ part: MultipartPart, maxArrayElements: Int = 100_000) throws -> JSONValue {
        do { return try StrictJSON.parse(part.body, maxArrayElements: maxArrayElements) } catch {
            throw HTTPError(status: .badRequest, code: "malformed_json", title: "Malformed JSON",
                            detail: "part '\(part.name)' is not valid JSON (RFC 8259, UTF-8): \(error.reason) at byte \(error.offset)",
                            extensions: ["pointer": .string("/\(part.name)")])
        }
    }

    static func invalid(_ pointer: String, _ detail: String) -> HTTPError {
        HTTPError(status: .unprocessableContent, code: "invalid_parameter", title: "Invalid parameter", detail: detail,
                  extensions: ["pointer": .string(pointer)])
    }

    /// `[[x, y], …]` of finite numbers, at most `maxPoints` (counted while reading: a million points cost no more
    /// than the first `maxPoints + 1`).
    static func points(_ part: MultipartPart, maxPoints: Int) throws -> [(Double, Double)] {
        let value: JSONValue
        do { value = try StrictJSON.parse(part.body, maxArrayElements: max(maxPoints, 2)) } catch {
            if case .tooManyElements = error.kind {
                throw invalid("/points", "part 'points' has more than \(maxPoints) points; at most \(maxPoints) are accepted")
            }
            throw HTTPError(status: .badRequest, code: "malformed_json", title: "Malformed JSON",
                            detail: "part 'points' is not valid JSON (RFC 8259, UTF-8): \(error.reason) at byte \(error.offset)",
                            extensions: ["pointer": .string("/points")])
        }
        guard case .array(let list) = value else { throw invalid("/points", "part 'points' must be a JSON array of [x, y] pairs") }
        return try list.enumerated().map { i, item in
            guard case .array(let xy) = item, xy.count == 2, case .number(let x) = xy[0], case .number(let y) = xy[1],
                  x.isFinite, y.isFinite else {
                throw invalid("/points/\(i)", "points[\(i)] must be [x, y] with two finite numbers")
            }
            return (x, y)
        }
    }

    /// A JSON object of parameters, only the allowed keys (each at most once: the reader refuses duplicates).
    static func params(_ part: MultipartPart?, allowed: Set<String>) throws -> [String: JSONValue] {
        guard let part else { return [:] }
        guard case .object(let members) = try json(part) else { throw invalid("/params", "part 'params' must be a JSON object") }
        for (k, _) in members where !allowed.contains(k) {
            let name = k.truncatedForEcho
            throw invalid("/params/\(name)", "unknown parameter '\(name)'; known: \(allowed.sorted().joined(separator: ", "))")
        }
        return Dictionary(uniqueKeysWithValues: members.map { ($0.key, $0.value) })
    }

    static func double(_ params: [String: JSONValue], _ key: String, default d: Double, range: ClosedRange<Double>) throws -> Double {
        guard let v = params[key] else { return d }
        guard case .number(let x) = v, range.contains(x) else {
            throw invalid("/params/\(key)", "'\(key)' must be a number in [\(range.lowerBound), \(range.upperBound)]")
        }
        return x
    }

    static func int(_ params: [String: JSONValue], _ key: String, default d: Int, range: ClosedRange<Int>) throws -> Int {
        guard let v = params[key] else { return d }
        guard case .number(let x) = v, x == x.rounded(), x >= Double(range.lowerBound), x <= Double(range.upperBound) else {
            throw invalid("/params/\(key)", "'\(key)' must be an integer in [\(range.lowerBound), \(range.upperBound)]")
        }
        return Int(x)
    }

    static func bool(_ params: [String: JSONValue], _ key: String, default d: Bool) throws -> Bool {
        guard let v = params[key] else { return d }
        guard case .bool(let b) = v else { throw invalid("/params/\(key)", "'\(key)' must be true or false") }
        return b
    }

    /// The query parameters an endpoint takes, each with a check of its value (nil: any value is fine).
    typealias QuerySpec = [String: @Sendable (String) -> String?]

    /// Refuses unknown query parameters, repeated ones (first-wins would leave the later ones unchecked), and
    /// values outside their documented set or syntax. Needs only the head: it runs before `100 Continue`.
    static func checkQuery(_ items: [QueryItem], spec: QuerySpec) throws {
        var seen = Set<String>()
        for q in items {
            let name = q.name.truncatedForEcho
            guard let check = spec[q.name] else {
                throw invalid("/\(name)", "unknown query parameter '\(name)'; known: \(spec.keys.sorted().joined(separator: ", "))")
            }
            guard seen.insert(q.name).inserted else {
                throw invalid("/\(name)", "query parameter '\(name)' is given more than once; give it once")
            }
            if let problem = check(q.value) { throw invalid("/\(name)", problem) }
        }
    }
}

