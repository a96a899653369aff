import Testing
import TestSupport

/// `expectClose` passes within tolerance and, outside it, reports the tensor, the worst index and both values.
@Suite struct ExpectCloseTests {
    @Test func passesWithinTolerance() {
        #expect(closenessFailure([Float(1), 2, 3.00001], [Double(1), 2, 3], atol: 1e-4, rtol: 0, "within") == nil)
        #expect(closenessFailure([100.01], [100.0], atol: 0, rtol: 1e-3, "relative") == nil)
    }

    @Test func reportsTheWorstElement() throws {
        let text = try #require(closenessFailure([Float(1), 2.5, 3.2], [Float(1), 2, 3], atol: 0.1, rtol: 0, "w1"))
        #expect(text.contains("w1 drifted") && text.contains("index 1") && text.contains("2.5 vs expected 2.0"), "\(text)")
    }

    @Test func nanAndCountMismatchFail() {
        #expect(closenessFailure([Float.nan], [Float(0)], atol: 1, rtol: 1, "nan")?.contains("nan drifted") == true)
        #expect(closenessFailure([Float(0)], [Float(0), 1], atol: 1, rtol: 1, "count") == "count: 1 values, expected 2")
    }
}
