// Sub-patch refinement of a match (issue #14, outside the paper): window soft-argmax as GeoAware-SC
// defines it (`utils/utils_correspondence.py`, `get_flow` + `soft_argmax`, after SFNet): around the first
// argmax (r*, c*) of one row of blended similarities over a Gh×Gw target grid, keep the cells
// [r* − w, r* + w] × [c* − w, c* + w] clamped into the grid, take `softmax(s / T)` over them and return the
// expected (column, row) in patch units, i.e. the same units as the argmax's `(j mod Gw, j div Gw)`.
//
// One deliberate difference from the reference: it multiplies the similarity map by a 0/1 window mask, so
// every cell outside the window enters the softmax with the score 0 (which can outweigh the window when
// cosines are small or negative, and always leaks weight towards the grid centre). Here cells outside the
// window are −∞: they get no weight at all. docs/METHOD.md §5 says so.
//
// Arithmetic in float64 on the float32 scores (the maximum is subtracted first, as the reference does).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The refinement methods, as the parameters and the CLI spell them.
package enum RefinementMethod: String, Sendable, CaseIterable {
    case none
    case softArgmax = "soft-argmax"
}

/// How a matched patch becomes a point.
package enum Refinement: Sendable, Equatable, CustomStringConvertible {
    /// The patch centre of the argmax (the paper).
    case none
    /// Window soft-argmax: `window` patches each side of the argmax, softmax temperature `temperature`.
    case softArgmax(window: Int, temperature: Double)

    package static let defaultWindow = 5
    package static let defaultTemperature = 0.02

    /// `none` or `soft-argmax`, as the parameters and the CLI spell it.
    package var method: String { kind.rawValue }

    package var kind: RefinementMethod {
        switch self {
        case .none: .none
        case .softArgmax: .softArgmax
        }
    }

    package var description: String {
        switch self {
        case .none: "none"
        case let .softArgmax(w, t): "soft-argmax (window \(w), temperature \(t))"
        }
    }

    /// The report's and the service's record: `{"method": …, "window": …, "temperature": …}`.
    package var record: [String: Any] {
        switch self {
        case .none: ["method": "none"]
        case let .softArgmax(w, t): ["method": "soft-argmax", "window": w, "temperature": t]
        }
    }

    /// Builds a refinement from its three parameters; nil fields take the defaults. A window or temperature
    /// given with `none` is an error (it would be silently ignored otherwise).
    package static func parse(method: String?, window: Int?, temperature: Double?) throws(RefinementError) -> Refinement {
        guard let kind = RefinementMethod(rawValue: method ?? "none") else {
            throw .field("refine", "must be 'none' or 'soft-argmax', got '\(method ?? "")'")
        }
        return try parse(method: kind, window: window, temperature: temperature)
    }

    /// The same from a method already chosen (the CLI's enum).
    package static func parse(method: RefinementMethod, window: Int?, temperature: Double?) throws(RefinementError) -> Refinement {
        switch method {
        case .none:
            if window != nil { throw .field("window", "applies only to refine=soft-argmax") }
            if temperature != nil { throw .field("temperature", "applies only to refine=soft-argmax") }
            return .none
        case .softArgmax:
            let w = window ?? defaultWindow, t = temperature ?? defaultTemperature
            guard w >= 1 else { throw .field("window", "must be at least 1 patch, got \(w)") }
            guard t.isFinite, t > 0 else { throw .field("temperature", "must be a finite number > 0, got \(t)") }
            return .softArgmax(window: w, temperature: t)
        }
    }

    /// The window must be smaller than the grid: `window < min(Gh, Gw)`. A window as large as the grid covers
    /// the whole map from every argmax and is a global soft-argmax, not a refinement.
    package func check(gridRows: Int, gridColumns: Int) throws(RefinementError) {
        guard case let .softArgmax(w, _) = self else { return }
        let side = min(gridRows, gridColumns)
        guard w < side else {
            throw .field("window", "\(w) patches is larger than the \(gridRows)×\(gridColumns) patch grid allows (window < \(side))")
        }
    }
}

/// A bad refinement parameter: the field and why.
package enum RefinementError: Error, Equatable, CustomStringConvertible {
    case field(String, String)
    package var field: String { switch self { case let .field(f, _): f } }
    package var detail: String { switch self { case let .field(_, d): d } }
    package var description: String { switch self { case let .field(f, d): "\(f): \(d)" } }
}

package enum SoftArgmax {
    /// Expected (column, row) in patch units of the window soft-argmax of one row of `rows·columns` scores
    /// (row-major). NaN scores get no weight; an all-NaN row gives the argmax cell (0, 0).
    package static func refine(_ scores: UnsafePointer<Float>, rows gh: Int, columns gw: Int,
                               window w: Int, temperature t: Double) -> (column: Double, row: Double) {
        let best = firstArgmax(scores, count: gh * gw)
        let r0 = best.index / gw, c0 = best.index % gw
        guard !best.value.isNaN else { return (Double(c0), Double(r0)) }
        let m = Double(best.value)
        var sum = 0.0, sx = 0.0, sy = 0.0
        for r in max(0, r0 - w)...min(gh - 1, r0 + w) {
            for c in max(0, c0 - w)...min(gw - 1, c0 + w) {
                let s = scores[r * gw + c]
                if s.isNaN { continue }
                let e = exp((Double(s) - m) / t)
                sum += e
                sx += e * Double(c)
                sy += e * Double(r)
            }
        }
        // sum ≥ 1: the argmax itself contributes exp(0).
        return (sx / sum, sy / sum)
    }

    /// `refine` of every row of a similarity matrix whose columns are a `rows × columns` grid.
    package static func refine(_ sim: SimilarityMatrix, rows gh: Int, columns gw: Int, window: Int,
                               temperature: Double) throws(CorrespondenceError) -> [(column: Double, row: Double)] {
        guard gh > 0, gw > 0, sim.columns == gh * gw else {
            throw .shape("similarity has \(sim.columns) columns, the grid \(gh)×\(gw) patches")
        }
        return sim.values.withUnsafeBufferPointer { p in
            (0..<sim.rows).map { k in refine(p.baseAddress! + k * sim.columns, rows: gh, columns: gw, window: window, temperature: temperature) }
        }
    }
}
