import Testing
import TestSupport

/// `expectClose` passes within tolerance and, outside it, records one issue naming the tensor, index and values.
@Suite struct ExpectCloseTests {
    @Test func passesWithinTolerance() {
        expectClose([Float(1), 2, 3.00001], [Double(1), 2, 3], atol: 1e-4, rtol: 0, "within")
        expectClose([100.01], [100.0], atol: 0, rtol: 1e-3, "relative")
    }

    @Test func reportsTheWorstElement() {
        withKnownIssue {
            expectClose([Float(1), 2.5, 3.2], [Float(1), 2, 3], atol: 0.1, rtol: 0, "w1")
        } matching: { issue in
            let text = issue.comments.map(\.rawValue).joined()
            return text.contains("w1 drifted") && text.contains("index 1") && text.contains("2.5 vs expected 2.0")
        }
    }

    @Test func nanAndCountMismatchFail() {
        withKnownIssue { expectClose([Float.nan], [Float(0)], atol: 1, rtol: 1, "nan") } matching: { issue in
            issue.comments.map(\.rawValue).joined().contains("nan drifted")
        }
        withKnownIssue { expectClose([Float(0)], [Float(0), 1], "count") } matching: { issue in
            issue.comments.map(\.rawValue).joined().contains("1 values, expected 2")
        }
    }
}
