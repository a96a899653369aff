import ArgumentParser
import CommandLineOptions
import Correspondence
import DINOv2
import Evaluation
import Features
import Foundation
import Hashing
import Imaging
import JSON
import Kernels
import Runtime
import SPair
import SphereMap
import TensorFiles
import Visualization

struct Transfer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Transfer the points of one source image to every image of a folder: the offline POST /v1/transfer.",
        discussion: """
            Every target gets, for each point in order, its best target point, score, and the forward–backward \
            visibility check (`visible`, `cycle_error_px`), as the service answers them. Features come from the same \
            letterbox and backbone path as evaluate (each distinct image embedded once, --cache shared with it).
            """)

    @OptionGroup var backboneOptions: BackboneOptions
    @Option(help: "Sphere bundle (.safetensors); needed for alpha > 0.")
    var bundle: String?
    @Option(help: "Source image (JPEG or PNG).")
    var source: String
    @Option(help: "The source points: a JSON array of [x, y] in source pixels.")
    var points: String
    @Option(help: "Folder of target images (its *.jpg, *.jpeg and *.png files, by name).")
    var targets: String
    @Option(help: "Write the answer (JSON) here.")
    var out: String
    @Option(help: "Weight of the sphere similarity in [0, 1]. Default: 0.2 (the paper) with --bundle, 0 without.")
    var alpha: Double?
    @Option(help: "Letterbox side, a multiple of the backbone's patch size: 14 for DINOv2 (the paper: 840), 8 or 16 for DINOv1.")
    var resolution: Int = 840
    @OptionGroup var refinementOptions: RefinementOptions
    @Option(help: "Source pixels: a point is visible when its cycle error is at most this. Default: 0.1 × the source's longer side.")
    var visibilityThreshold: Double?
    @Flag(help: "Match against the whole letterbox, padding included (the paper's evaluation), not only the image.")
    var includePadding = false
    @Option(help: "Draw a contact sheet (PNG): one colour per point on the source and every target; a directory gets transfer.png.")
    var plots: String?
    @Option(help: "Directory for the persistent feature cache (shared with evaluate).")
    var cache: String?
    @Flag(help: "No progress bar.")
    var quiet = false
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        _ = try backboneOptions.requiredPath()
        // The grid depends on the backbone's patch size and stride: --resolution and the refinement window are
        // checked against it once the backbone is loaded.
        guard resolution > 0 else { throw ValidationError("--resolution must be positive; got \(resolution)") }
        if let a = alpha, !(0...1).contains(a) { throw ValidationError("--alpha must be in [0, 1]; got \(a)") }
        if (alpha ?? 0) > 0 && bundle == nil { throw ValidationError("--alpha \(alpha!) blends in the sphere similarity and needs --bundle") }
        if let t = visibilityThreshold, !(t >= 0 && t.isFinite) { throw ValidationError("--visibility-threshold must be a number ≥ 0; got \(t)") }
    }


    func run() throws {
        engine.configure()
        let backbone = try backboneOptions.requiredPath()
        let pts = try TransferInput.points(points)
        let targetFiles = try TransferInput.images(in: targets)
        let sourceSize = try TransferInput.size(source)
        for (i, p) in pts.enumerated() where !(p.0 >= 0 && p.1 >= 0 && p.0 < Double(sourceSize.width) && p.1 < Double(sourceSize.height)) {
            throw CommandFailure("\(points): points[\(i)] = [\(p.0), \(p.1)] is outside the source image \(source) (\(sourceSize.width)×\(sourceSize.height))")
        }
        let sizes = try targetFiles.map(TransferInput.size)
        // Each distinct image (by content) is embedded once, whatever its name: later copies read the first's features.
        var firstPath: [String: String] = [sourceSize.sha256: source]
        for (file, s) in zip(targetFiles, sizes) where firstPath[s.sha256] == nil { firstPath[s.sha256] = file }
        let model = try backboneOptions.load()
        let b: SphereBundle?
        do { b = try bundle.map { try SphereBundle.load(path: $0) } } catch { throw CommandFailure("\(error)") }
        if let b, b.backboneDim != model.config.embedDim {
            throw CommandFailure("\(bundle!): trained for a backbone of width \(b.backboneDim), but \(backbone) has width \(model.config.embedDim)")
        }
        // The backbone's own grid (DINOv1: its patch size and stride, METHOD §1.5).
        guard let grid = PatchGrid(resolution: resolution, patch: model.config.patchSize, stride: model.config.patchStride) else {
            throw CommandFailure("--resolution \(resolution) is not a multiple of the patch size \(model.config.patchSize) of \(model.config.displayName)")
        }
        do { try refinementOptions.refinement().check(gridRows: grid.side, gridColumns: grid.side) } catch {
            throw CommandFailure("--\(error) (at --resolution \(resolution))")
        }
        let a = alpha ?? (b == nil ? 0 : 0.2)
        let refinement = try refinementOptions.refinement()
        let store = FeatureStore(backbone: model, backboneKey: BackboneIdentity.key(model, path: backbone), resolution: resolution,
                                 cacheDirectory: cache.map { URL(fileURLWithPath: $0) })
        var progress = Progress(total: targetFiles.count, enabled: !quiet, unit: "images", log: { logToStderr($0) })
        // The source once (descriptors and all), then each target, one at a time: features stay in memory only while
        // a later copy of the same image still needs them, so memory stays flat for any folder size.
        var lastUse: [String: Int] = [:]
        for (i, s) in sizes.enumerated() { lastUse[s.sha256] = i }
        var neededUntil = lastUse[sourceSize.sha256] ?? -1
        func image(_ path: String, _ size: (width: Int, height: Int, sha256: String)) throws -> MatchImage {
            let f: [Float]
            do { f = try store.features([firstPath[size.sha256] ?? path])[0] } catch { throw CommandFailure("\(error)") }
            let features = FloatStorage(f)
            let t = KeypointTransform(imageWidth: size.width, imageHeight: size.height, resolution: resolution, grid: grid)
            let sphere = b.map { $0.mapper.sphere(features: features.pointer, batch: 1, tokens: t.gridSize * t.gridSize) }
            return MatchImage(width: size.width, height: size.height, transform: t, features: features, sphere: a > 0 ? sphere : nil)
        }
        let t0 = Measure.now()
        let src: MatchSide
        do { src = try MatchSide(try image(source, sourceSize), restrict: !includePadding) } catch let e as CorrespondenceError {
            throw CommandFailure("\(source): \(e)")
        }
        var answers: [[String: Any]] = []
        var results: [[PointMatch]] = []
        for (i, file) in targetFiles.enumerated() {
            let matches: [PointMatch]
            do {
                let side = try MatchSide(try image(file, sizes[i]), restrict: !includePadding)
                matches = try PairMatcher(source: src, target: side, alpha: a)
                    .points(pts, refinement: refinement, visibilityThreshold: visibilityThreshold)
            } catch let e as CorrespondenceError { throw CommandFailure("\(file): \(e)") }
            results.append(matches)
            neededUntil = max(neededUntil, lastUse[sizes[i].sha256] ?? i)
            if neededUntil <= i { store.clearMemory() }
            answers.append(["file": file, "width": sizes[i].width, "height": sizes[i].height, "matches": matches.map(\.record)])
            progress.update(i + 1, note: URL(fileURLWithPath: file).lastPathComponent)
        }
        let body: [String: Any] = [
            "source": ["file": source, "width": sourceSize.width, "height": sourceSize.height],
            "points": pts.map { [$0.0, $0.1] }, "alpha": a, "resolution": resolution, "refine": refinement.record,
            "restrict_to_image": !includePadding, "backbone": backbone, "backbone_variant": model.config.displayName, "bundle": bundle ?? NSNull(),
            "visibility_threshold": visibilityThreshold ?? CycleCheck.defaultFraction * Double(max(sourceSize.width, sourceSize.height)),
            "images_embedded": store.embedded, "targets": answers,
        ]
        do {
            let json = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .prettyPrinted])
            try AtomicFile.write([UInt8](json), to: URL(fileURLWithPath: out))
        } catch { throw CommandFailure("\(out): cannot write: \(error)") }
        if let plots { try contactSheet(plots, points: pts, targets: targetFiles, results: results) }
        if !quiet {
            logToStderr(String(format: "spherecorr-train transfer: %d points to %d images in %.1f s (%d embedded) -> %@",
                               pts.count, targetFiles.count, Measure.now() - t0, store.embedded, out))
        }
    }

    /// The source with its points, then every target with its matches, one colour per point (squares: not visible).
    func contactSheet(_ plots: String, points pts: [(Double, Double)], targets files: [String], results: [[PointMatch]]) throws {
        var isDirectory: ObjCBool = false
        let url = FileManager.default.fileExists(atPath: plots, isDirectory: &isDirectory) && isDirectory.boolValue || plots.hasSuffix("/")
            ? URL(fileURLWithPath: plots).appendingPathComponent("transfer.png") : URL(fileURLWithPath: plots)
        func decoded(_ path: String) throws -> RGBImage {
            do { return try decodeImage(contentsOf: URL(fileURLWithPath: path)) } catch { throw CommandFailure("\(path): \(error)") }
        }
        var tiles: [(image: RGBImage, points: [(x: Double, y: Double, visible: Bool)])] = [(try decoded(source), pts.map { ($0.0, $0.1, true) })]
        for (file, matches) in zip(files, results) {
            tiles.append((try decoded(file), matches.map { ($0.tx, $0.ty, $0.visible ?? true) }))
        }
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try AtomicFile.write(encodePNG(Rendering.contactSheet(tiles)), to: url)
        } catch { throw CommandFailure("\(url.path): cannot write the contact sheet: \(error)") }
    }
}

/// The files `transfer` reads, each refused with its name and what is wrong.
enum TransferInput {
    /// `[[x, y], …]`: finite numbers, at least one point.
    static func points(_ path: String) throws -> [(Double, Double)] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw CommandFailure("\(path): cannot read: \(error.localizedDescription)") }
        let value: JSONValue
        do { value = try StrictJSON.parse([UInt8](data)) } catch { throw CommandFailure("\(path): not valid JSON: \(error)") }
        guard case .array(let list) = value else { throw CommandFailure("\(path): must be a JSON array of [x, y] pairs") }
        guard !list.isEmpty else { throw CommandFailure("\(path): no points (an empty array)") }
        return try list.enumerated().map { i, item in
            guard case .array(let xy) = item, xy.count == 2, let x = xy[0].finiteNumber, let y = xy[1].finiteNumber else {
                throw CommandFailure("\(path): points[\(i)] must be [x, y] with two finite numbers")
            }
            return (x, y)
        }
    }

    /// The JPEG and PNG files of a folder, sorted by name.
    static func images(in dir: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CommandFailure("\(dir): not a directory (--targets takes a folder of images)")
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch { throw CommandFailure("\(dir): cannot list: \(error.localizedDescription)") }
        let files = names.filter { ["jpg", "jpeg", "png"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }.sorted()
            .map { URL(fileURLWithPath: dir).appendingPathComponent($0).path }
        guard !files.isEmpty else { throw CommandFailure("\(dir): no .jpg, .jpeg or .png images") }
        return files
    }

    /// Width and height from the header (the file is decoded once, for its features), and the content hash.
    static func size(_ path: String) throws -> (width: Int, height: Int, sha256: String) {
        let bytes: [UInt8]
        do { bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) } catch { throw CommandFailure("\(path): cannot read: \(error.localizedDescription)") }
        do {
            let h = try probeImage(bytes)
            guard min(h.width, h.height) >= PatchGrid.patchSize else {
                throw CommandFailure("\(path): \(h.width)×\(h.height) is smaller than one patch (\(PatchGrid.patchSize) px)")
            }
            return (h.width, h.height, SHA256.hex(bytes))
        } catch let e as CommandFailure { throw e } catch { throw CommandFailure("\(path): not a readable JPEG or PNG image: \(error)") }
    }
}
