import Testing

/// |actual − expected| ≤ atol + rtol·|expected| elementwise (NaN never passes). On failure, one issue that says
/// what drifted, where (the worst element, by how far past its tolerance) and by how much (the largest |diff|).
package func expectClose<A: Collection, E: Collection>(
    _ actual: A, _ expected: E, atol: Double = 1e-5, rtol: Double = 1e-5, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) where A.Element: BinaryFloatingPoint, E.Element: BinaryFloatingPoint {
    if let message = closenessFailure(actual, expected, atol: atol, rtol: rtol, what) {
        Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
    }
}

/// The message `expectClose` records, or nil when every element is within tolerance.
package func closenessFailure<A: Collection, E: Collection>(
    _ actual: A, _ expected: E, atol: Double, rtol: Double, _ what: String
) -> String? where A.Element: BinaryFloatingPoint, E.Element: BinaryFloatingPoint {
    guard actual.count == expected.count else { return "\(what): \(actual.count) values, expected \(expected.count)" }
    var worst = -Double.infinity, worstIndex = -1, maxAbs = 0.0
    var worstPair = (0.0, 0.0)
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let x = Double(a), y = Double(e)
        let d = abs(x - y)
        let excess = d.isNaN ? .infinity : d - (atol + rtol * abs(y))
        maxAbs = max(maxAbs, d.isNaN ? .infinity : d)
        if excess > worst { worst = excess; worstIndex = i; worstPair = (x, y) }
    }
    guard worst > 0 else { return nil }
    return "\(what) drifted: max |diff| \(maxAbs); worst at index \(worstIndex): \(worstPair.0) vs expected \(worstPair.1) "
        + "(tolerance \(atol) + \(rtol)·|expected|)"
}
