import Foundation
import TensorFiles

/// Dense outputs by `Accept` (SERVICE-NOTES §4.7): .npy, safetensors, raw little-endian float32, or JSON.
package enum TensorFormat: String, Sendable, CaseIterable {
    case npy = "application/x-npy"
    case safetensors = "application/vnd.safetensors"
    case raw = "application/octet-stream"
    case json = "application/json"
    case png = "image/png"

    /// Label value for metrics (low cardinality).
    package var label: String {
        switch self { case .npy: "npy"; case .safetensors: "safetensors"; case .raw: "raw"; case .json: "json"; case .png: "png" }
    }
}

/// One `Accept` entry: a media range and its quality.
struct AcceptEntry {
    var type: String
    var subtype: String
    var parameters: [String: String]
    var q: Double
}

package enum ContentNegotiation {
    /// The best of `offered` (in server preference order) for an `Accept` header; `offered[0]` when the header is
    /// absent or empty; nil when nothing is acceptable (406).
    package static func choose(accept: String?, offered: [TensorFormat]) -> TensorFormat? {
        guard let accept, !accept.trimmingCharacters(in: .whitespaces).isEmpty else { return offered.first }
        let entries = parse(accept)
        var best: (TensorFormat, Double, Int)? = nil  // format, q, specificity
        for f in offered {
            var q: Double? = nil, spec = -1
            for e in entries {
                guard let s = specificity(of: e, for: f), s > spec else { continue }
                spec = s; q = e.q
            }
            guard let q, q > 0 else { continue }
            if best == nil || q > best!.1 { best = (f, q, spec) }
        }
        return best?.0
    }

    static func parse(_ header: String) -> [AcceptEntry] {
        header.split(separator: ",").compactMap { part in
            let pieces = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let range = pieces.first, let slash = range.firstIndex(of: "/") else { return nil }
            var params: [String: String] = [:]
            var q = 1.0
            for p in pieces.dropFirst() {
                let kv = p.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard kv.count == 2 else { continue }
                if kv[0].lowercased() == "q" { q = min(1, max(0, Double(kv[1]) ?? 0)) } else { params[kv[0].lowercased()] = kv[1].lowercased() }
            }
            return AcceptEntry(type: String(range[..<slash]).lowercased(), subtype: String(range[range.index(after: slash)...]).lowercased(),
                               parameters: params, q: q)
        }
    }

    /// How specifically an entry names a format (nil: it does not match).
    static func specificity(of e: AcceptEntry, for f: TensorFormat) -> Int? {
        let parts = f.rawValue.split(separator: "/").map(String.init)
        if e.type == "*" && e.subtype == "*" { return 0 }
        // application/octet-stream;format=safetensors is the documented alias of the vendor type.
        if f == .safetensors, e.type == "application", e.subtype == "octet-stream", e.parameters["format"] == "safetensors" { return 3 }
        if f == .raw, e.parameters["format"] != nil, e.parameters["format"] != "raw" { return nil }
        guard e.type == parts[0] else { return nil }
        if e.subtype == "*" { return 1 }
        return e.subtype == parts[1] ? 2 : nil
    }
}

/// A named float32 tensor for a response.
package struct OutputTensor: Sendable {
    package var name: String
    package var shape: [Int]
    package var values: [Float]
    package init(name: String, shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count)
        self.name = name; self.shape = shape; self.values = values
    }
}

package struct EncodedBody: Sendable {
    package var contentType: String
    package var headers: [(String, String)]
    package var body: [UInt8]
}

package enum TensorEncoder {
    /// Encodes the primary tensor (first) and, where the format can carry several, the others.
    /// `info` goes into JSON bodies and safetensors `__metadata__` (strings there).
    package static func encode(_ tensors: [OutputTensor], as format: TensorFormat, info: [String: any Sendable],
                               jsonArrays: Bool = false) -> EncodedBody {
        let t = tensors[0]
        let shapeHeader = ("X-Tensor-Shape", t.shape.map(String.init).joined(separator: ","))
        switch format {
        case .npy:
            return EncodedBody(contentType: format.rawValue, headers: [shapeHeader, ("X-Tensor-Dtype", "float32")],
                               body: NPY.encode(NPYArray(shape: t.shape, floats: t.values)))
        case .raw:
            return EncodedBody(contentType: format.rawValue, headers: [shapeHeader, ("X-Tensor-Dtype", "float32")],
                               body: t.values.withUnsafeBytes { Array($0) })
        case .safetensors:
            var w = SafeTensorsWriter(metadata: info.mapValues { "\($0)" })
            for x in tensors { w.add(x.name, shape: x.shape, floats: x.values) }
            return EncodedBody(contentType: format.rawValue, headers: [shapeHeader, ("X-Tensor-Dtype", "float32")], body: w.encoded())
        case .json, .png:
            var obj: [String: Any] = info
            for x in tensors {
                var entry: [String: Any] = ["shape": x.shape, "dtype": "float32"]
                if jsonArrays {
                    entry["encoding"] = "array"
                    entry["data"] = x.values
                } else {
                    entry["encoding"] = "base64"
                    entry["data"] = x.values.withUnsafeBytes { Data($0) }.base64EncodedString()
                }
                if x.name == t.name { obj.merge(entry) { _, new in new } } else { obj[x.name] = entry }
            }
            let data = (try? JSONWriter.encode(obj)) ?? Array("{}".utf8)
            return EncodedBody(contentType: "application/json", headers: [shapeHeader, ("X-Tensor-Dtype", "float32")], body: data)
        }
    }
}
