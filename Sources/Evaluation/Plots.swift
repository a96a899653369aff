import Correspondence
import Foundation
import Imaging
import SPair
import Visualization

/// Pictures of an evaluation: predicted vs ground-truth matches and sphere maps for the first pairs of each
/// category, and a per-category PCK chart per alpha.
package enum Plots {
    static func pair(directory: String, category: String, index: Int, alpha: Double, pair: LoadedPair, dataset: SPairDataset,
                     similarity: SimilarityMatrix, grid: PatchGrid, threshold: Double, spheres: ([Float], [Float])?) throws {
        let dir = URL(fileURLWithPath: directory).appendingPathComponent(category)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let src = try decodeImage(contentsOf: dataset.url(pair.sourceImagePath))
        let trg = try decodeImage(contentsOf: dataset.url(pair.targetImagePath))
        let (ts, tt) = pair.transforms(resolution: grid.resolution, grid: grid)
        let (ks, kt, _) = pair.letterboxed(resolution: grid.resolution, grid: grid)
        var canvas = Rendering.sideBySide(src, trg)
        let predictions = similarity.argmaxPerRow()
        for k in 0..<ks.count where ks.isVisible(k) && kt.isVisible(k) {
            let c = grid.centre(of: predictions[k])
            let correct = PCK.isCorrect(error: PCK.error(predicted: c, groundTruth: (kt.x(k), kt.y(k))), alpha: 0.1, threshold: threshold)
            let colour: (UInt8, UInt8, UInt8) = correct ? (40, 220, 60) : (230, 40, 40)
            let s = ts.toOriginal(x: Double(ks.x(k)), y: Double(ks.y(k)))
            let p = tt.toOriginal(x: Double(c.x), y: Double(c.y))
            let g = tt.toOriginal(x: Double(kt.x(k)), y: Double(kt.y(k)))
            let a = (Int(s.x.rounded()), Int(s.y.rounded()))
            let b = (Int(p.x.rounded()) + src.width, Int(p.y.rounded()))
            Rendering.drawLine(&canvas, from: a, to: b, colour)
            Rendering.drawDot(&canvas, a, colour)
            Rendering.drawDot(&canvas, b, colour)
            Rendering.square(&canvas, (Int(g.x.rounded()) + src.width, Int(g.y.rounded())), (255, 255, 255))
        }
        let stem = "\(String(format: "%02d", index))-\(pair.name.source)-\(pair.name.target)"
        try write(encodePNG(canvas), dir.appendingPathComponent("\(stem)-alpha\(String(format: "%g", alpha)).png"))
        if let (s1, s2) = spheres {
            let a = s1.withUnsafeBufferPointer { Rendering.sphereMap(sphere: $0.baseAddress!, transform: ts, box: nil) }
            let b = s2.withUnsafeBufferPointer { Rendering.sphereMap(sphere: $0.baseAddress!, transform: tt, box: nil) }
            try write(encodePNG(Rendering.sideBySide(a, b)), dir.appendingPathComponent("\(stem)-sphere.png"))
        }
    }

    package static func charts(directory: String, result: EvaluationResult) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cats = result.runs.first?.categories.map(\.category) ?? []
        for (name, pick) in [("pck", { (c: CategoryResult) in c.pck }), ("kap", { (c: CategoryResult) in c.kap })] {
            guard result.runs.contains(where: { $0.categories.contains { pick($0) != nil } }) else { continue }
            let series = result.runs.map { run in ("α = \(String(format: "%g", run.alpha))", run.categories.map { pick($0)?[0] }) }
            let svg = Rendering.barChartSVG(title: "\(name.uppercased())@0.1 per category", categories: cats, series: series)
            try write(Array(svg.utf8), URL(fileURLWithPath: directory).appendingPathComponent("\(name)-0.1.svg"))
        }
    }

    static func write(_ bytes: [UInt8], _ url: URL) throws {
        do { try Data(bytes).write(to: url, options: .atomic) } catch {
            throw EvaluationError.data(file: url.path, detail: "cannot write plot: \(error.localizedDescription)")
        }
    }
}
