import Foundation
import Testing
import TensorFiles
import Imaging
@testable import Correspondence

/// Window soft-argmax (issue #14) against GeoAware-SC's own `get_flow` (tools/parity/make_refine_fixtures.py,
/// with −∞ outside the window on both sides), and its parameters.
@Suite struct RefinementTests {
    struct Fixture: Decodable {
        struct Case: Decodable, CustomStringConvertible {
            var name: String
            var grid: Int
            var rows: Int
            var window: Int
            var temperature: Double
            var refined: [[Double]]
            var description: String { "\(name): G \(grid), window \(window), T \(temperature)" }
        }
        var cases: [Case]
    }

    static let directory = MetricFixtures.directory.deletingLastPathComponent().appendingPathComponent("refine")

    static func fixture() throws -> Fixture {
        try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: directory.appendingPathComponent("expected.json")))
    }

    @Test func matchesGeoAwareWithinATenThousandthOfAPixel() throws {
        let f = try Self.fixture()
        let maps = try SafeTensorsFile(contentsOf: Self.directory.appendingPathComponent("maps.safetensors"))
        #expect(f.cases.count == 9)
        var worst = 0.0
        for c in f.cases {
            let values = try maps.floats(c.name)
            let sim = try SimilarityMatrix(rows: c.rows, columns: c.grid * c.grid, values: values)
            let got = try SoftArgmax.refine(sim, rows: c.grid, columns: c.grid, window: c.window, temperature: c.temperature)
            #expect(got.count == c.refined.count, "\(c)")
            for (k, (g, e)) in zip(got, c.refined).enumerated() {
                // Pixels: 14 per patch (the letterbox frame of PCK).
                let dx = abs(g.column - e[0]) * 14, dy = abs(g.row - e[1]) * 14
                worst = max(worst, dx, dy)
                #expect(dx < 1e-4 && dy < 1e-4, "\(c) row \(k): got (\(g.column), \(g.row)), GeoAware-SC (\(e[0]), \(e[1]))")
            }
        }
        print("soft-argmax parity: worst difference \(worst) px over \(f.cases.reduce(0) { $0 + $1.rows }) rows")
    }

    @Test func windowIsMinusInfinityOutside() throws {
        // One peak at column 0 of a 1×8 strip… as a 8×8 grid: the argmax at (0, 0), a huge value far outside the
        // window must get no weight (the reference's 0 mask would still give weight to the 0-valued cells).
        var v = [Float](repeating: -0.9, count: 64)
        v[0] = 0.5; v[1] = 0.5 - 0.02 * Float(log(3.0))  // weight 1/3 of the peak's
        let r = v.withUnsafeBufferPointer { SoftArgmax.refine($0.baseAddress!, rows: 8, columns: 8, window: 1, temperature: 0.02) }
        #expect(abs(r.column - 0.25) < 1e-4)
        #expect(abs(r.row) < 1e-12)
    }

    @Test func symmetricNeighboursKeepTheCentre() {
        var v = [Float](repeating: 0, count: 25)
        v[12] = 1; v[11] = 0.9; v[13] = 0.9; v[7] = 0.8; v[17] = 0.8
        let r = v.withUnsafeBufferPointer { SoftArgmax.refine($0.baseAddress!, rows: 5, columns: 5, window: 2, temperature: 0.05) }
        #expect(abs(r.column - 2) < 1e-12 && abs(r.row - 2) < 1e-12)
    }

    @Test func nanGetsNoWeight() {
        var v = [Float](repeating: 0, count: 9)
        v[4] = 1; v[5] = .nan
        let r = v.withUnsafeBufferPointer { SoftArgmax.refine($0.baseAddress!, rows: 3, columns: 3, window: 1, temperature: 0.02) }
        #expect(r.column.isFinite && r.row.isFinite)
        let all = [Float](repeating: .nan, count: 9)
        let z = all.withUnsafeBufferPointer { SoftArgmax.refine($0.baseAddress!, rows: 3, columns: 3, window: 1, temperature: 0.02) }
        #expect(z.column == 0 && z.row == 0)
    }

    @Test func parametersAndDefaults() throws {
        #expect(try Refinement.parse(method: nil, window: nil, temperature: nil) == .none)
        #expect(try Refinement.parse(method: "soft-argmax", window: nil, temperature: nil) == .softArgmax(window: 5, temperature: 0.02))
        #expect(try Refinement.parse(method: "soft-argmax", window: 2, temperature: 0.1) == .softArgmax(window: 2, temperature: 0.1))
        #expect(throws: RefinementError.field("refine", "must be 'none' or 'soft-argmax', got 'bilinear'")) {
            try Refinement.parse(method: "bilinear", window: nil, temperature: nil)
        }
        for t in [0.0, -1, .nan, .infinity] {
            #expect(throws: RefinementError.self) { try Refinement.parse(method: "soft-argmax", window: nil, temperature: t) }
            do { _ = try Refinement.parse(method: "soft-argmax", window: nil, temperature: t) } catch { #expect(error.field == "temperature") }
        }
        do { _ = try Refinement.parse(method: "soft-argmax", window: 0, temperature: nil) } catch { #expect(error.field == "window") }
        do { _ = try Refinement.parse(method: "none", window: 3, temperature: nil); Issue.record("window with none accepted") } catch {
            #expect(error.field == "window")
        }
        // A window larger than the grid.
        let r = Refinement.softArgmax(window: 6, temperature: 0.02)
        #expect(throws: RefinementError.self) { try r.check(gridRows: 6, gridColumns: 6) }
        try Refinement.softArgmax(window: 5, temperature: 0.02).check(gridRows: 6, gridColumns: 6)
        try Refinement.none.check(gridRows: 1, gridColumns: 1)
    }

    @Test func pckWithNoneIsThePaper() throws {
        // The `.none` path is the argmax path: same counts.
        let grid = PatchGrid(side: 4)
        var sim = [Float](repeating: 0, count: 2 * 16)
        sim[5] = 1; sim[16 + 10] = 1; sim[16 + 11] = 0.99
        let m = try SimilarityMatrix(rows: 2, columns: 16, values: sim)
        let ks: [Float] = [10, 10, 1, 20, 20, 1]
        let kt: [Float] = [20.5, 20.5, 1, 42, 35, 1]
        var a = PCKAccumulator(), b = PCKAccumulator(), c = PCKAccumulator()
        try a.add(sourceKeypoints: ks, targetKeypoints: kt, similarity: m, threshold: 50, grid: grid)
        try b.add(sourceKeypoints: ks, targetKeypoints: kt, similarity: m, threshold: 50, grid: grid, refinement: .none)
        try c.add(sourceKeypoints: ks, targetKeypoints: kt, similarity: m, threshold: 50, grid: grid,
                  refinement: .softArgmax(window: 1, temperature: 0.02))
        #expect(a.correct == b.correct && a.evaluated == b.evaluated)
        // Row 2: argmax (col 2, row 2) at 34.5 px, its right neighbour nearly as good: refined x ≈ 34.5 + 14·0.378 ≈ 39.8,
        // 2.2 px from 42 (under 0.05·50) instead of 7.5.
        #expect(a.correct == [1, 1, 1])
        #expect(c.evaluated == 2)
        #expect(c.correct == [2, 2, 1])
    }
}

@Suite struct CycleCheckTests {
    @Test func errorAndThreshold() {
        #expect(CycleCheck.error(from: (1, 2), back: (4, 6)) == 5)
        #expect(CycleCheck.visible(error: 5, threshold: 5))
        #expect(!CycleCheck.visible(error: 5.0001, threshold: 5))
        #expect(!CycleCheck.visible(error: .nan, threshold: 5))
    }

    @Test func backwardTakesTheFirstBestSource() throws {
        // Rows = target tokens, columns = source tokens.
        let m = try SimilarityMatrix(rows: 2, columns: 3, values: [0.1, 0.9, 0.9, 0.7, 0.2, 0.1])
        #expect(try CycleCheck.backward(m, targets: [0, 1, 0]) == [1, 0, 1])
        #expect(throws: CorrespondenceError.self) { try CycleCheck.backward(m, targets: [2]) }
    }

    @Test func precisionRecallF1() {
        var s = VisibilityScore()
        #expect(s.precision == nil && s.recall == nil && s.f1 == nil)
        for (p, h) in [(true, true), (true, false), (false, true), (false, false), (true, true)] { s.add(predictedHidden: p, hidden: h) }
        #expect(s.precision == 2.0 / 3 && s.recall == 2.0 / 3)
        #expect(abs(s.f1! - 2.0 / 3) < 1e-12)
        var none = VisibilityScore()
        none.add(predictedHidden: false, hidden: true)
        #expect(none.precision == nil && none.recall == 0 && none.f1 == 0)
    }
}
