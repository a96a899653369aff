import Foundation
import TensorFiles

/// Fixtures written by tools/parity/make_metric_fixtures.py (numpy transcription of the reference
/// evaluation loop, scikit-learn's average_precision_score).
enum MetricFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/metrics")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    static func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: url("expected.json")))
    }

    static func tensors(_ file: String) throws -> SafeTensorsFile { try SafeTensorsFile(contentsOf: url(file)) }
}

struct Expected: Decodable, Sendable {
    struct Pair: Decodable, Sendable {
        var key: String
        var threshold: Double
        var trg_bbox: [Int]
        var src_size: [Int]
        var trg_size: [Int]
        var num_kps: Int
    }
    struct Category: Decodable, Sendable {
        var name: String
        var pairs: [Pair]
        var pck: [Double]
        var pck_correct: [Int]
        var pck_evaluated: Int
        var kap: [Double]
        var kap_keypoints: Int
    }
    struct Aggregate: Decodable, Sendable {
        var pck_macro: [Double]
        var pck_weighted: [Double]
        var kap_macro: [Double]
        var kap_weighted: [Double]
    }
    struct Case: Decodable, Sendable, CustomStringConvertible {
        var name: String
        var file: String
        var resolution: Int
        var grid: Int
        var alphas: [Double]
        var categories: [Category]
        var aggregate: Aggregate
        var description: String { "\(name) (R = \(resolution))" }
    }
    struct Matching: Decodable, Sendable {
        var file: String
        var alpha: Double
        var tokens: Int
        var dimension: Int
        var rows: [Int]
    }
    var cases: [Case]
    var matching: Matching
}

extension SafeTensorsFile {
    func ints(_ name: String) throws -> [Int] { try floats(name).map { Int($0) } }
}
