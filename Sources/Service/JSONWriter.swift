import Foundation

/// Compact JSON with sorted keys, for response bodies. Foundation's JSONSerialization takes ~6 ms for a
/// 100-match /v1/match body on Linux (it walks NSObjects); this writes the same document directly.
/// Accepts String, Bool, Int, Int32, Float, Double, arrays and [String: Any] of those, and NSNull.
package enum JSONWriter {
    package struct NonFinite: Error, CustomStringConvertible {
        package var description: String { "JSON cannot represent NaN or infinity" }
    }

    package static func encode(_ value: Any) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        try write(value, into: &out)
        return out
    }

    private static func write(_ value: Any, into out: inout [UInt8]) throws {
        // The common types by identity first: each failed `as` below is a runtime cast, and a /v1/transfer answer
        // holds thousands of values (issue #14). The same case of the switch is taken either way.
        switch ObjectIdentifier(type(of: value)) {
        case ObjectIdentifier(Double.self): return try writeNumber(value as! Double, into: &out)
        case ObjectIdentifier(Int.self): out += Array(String(value as! Int).utf8); return
        case ObjectIdentifier(String.self): return writeString(value as! String, into: &out)
        case ObjectIdentifier(Bool.self): out += (value as! Bool) ? Array("true".utf8) : Array("false".utf8); return
        case ObjectIdentifier([Any].self): return try writeArray(value as! [Any], into: &out, write)
        case ObjectIdentifier([Double].self): return try writeArray(value as! [Double], into: &out, writeNumber)
        case ObjectIdentifier([Int].self): return writeArray(value as! [Int], into: &out) { i, o in o += Array(String(i).utf8) }
        case ObjectIdentifier([String: Any].self): return try writeObject(value as! [String: Any], into: &out)
        default: break
        }
        switch value {
        case let s as String: writeString(s, into: &out)
        case let b as Bool: out += b ? Array("true".utf8) : Array("false".utf8)
        case let i as Int: out += Array(String(i).utf8)
        case let i as Int32: out += Array(String(i).utf8)
        case let d as Double: try writeNumber(d, into: &out)
        case let f as Float: try writeFloat(f, into: &out)
        case let a as [Float]: try writeArray(a, into: &out, writeFloat)  // unboxed: feature arrays are large
        case let a as [Any]: try writeArray(a, into: &out, write)
        case let o as [String: Any]: try writeObject(o, into: &out)
        case is NSNull: out += Array("null".utf8)
        default: writeString(String(describing: value), into: &out)
        }
    }

    private static func writeObject(_ o: [String: Any], into out: inout [UInt8]) throws {
        out.append(UInt8(ascii: "{"))
        for (i, k) in o.keys.sorted().enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            writeString(k, into: &out)
            out.append(UInt8(ascii: ":"))
            try write(o[k]!, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    private static func writeArray<T>(_ a: [T], into out: inout [UInt8], _ element: (T, inout [UInt8]) throws -> Void) rethrows {
        out.append(UInt8(ascii: "["))
        for (i, v) in a.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            try element(v, &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    private static func writeNumber(_ d: Double, into out: inout [UInt8]) throws {
        guard d.isFinite else { throw NonFinite() }
        // Integral values print without a fraction (448, not 448.0); others in Swift's shortest round-trip form.
        if d == d.rounded(), abs(d) < 1e15 { out += Array(String(Int64(d)).utf8) } else { out += Array("\(d)".utf8) }
    }

    /// Float32 values in their own shortest form: it parses back to the same float32.
    private static func writeFloat(_ f: Float, into out: inout [UInt8]) throws {
        guard f.isFinite else { throw NonFinite() }
        if f == f.rounded(), abs(f) < 1e7 { out += Array(String(Int64(f)).utf8) } else { out += Array("\(f)".utf8) }
    }

    private static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20: out += Array(String(format: "\\u%04x", b).utf8)
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
