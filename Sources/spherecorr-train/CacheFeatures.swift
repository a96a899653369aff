import ArgumentParser
import CommandLineOptions
import Features
import Foundation
import Imaging
import SPair

/// `spherecorr-train cache-features`: fills the feature cache that `evaluate --cache` reads, for every image of a
/// split's pairs, optionally one shard of them. Entries are one file per image, so N shard jobs sharing the directory
/// leave exactly the files one unsharded run would, and the evaluation that follows embeds nothing.
struct CacheFeatures: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-features",
        abstract: "Fill the feature cache of evaluate --cache for every image of a split's pairs (all, or one shard of them).")

    @OptionGroup var pairs: PairsOptions
    @OptionGroup var backboneOptions: BackboneOptions
    @Option(help: "Letterbox side, a multiple of the backbone's patch size (evaluate's --resolution).")
    var resolution: Int = 840
    @Option(help: "The feature cache directory (evaluate's --cache).")
    var cache: String
    @Option(help: ArgumentHelp("Embed only the K-th of N disjoint parts of the images (sorted by path, K from 0).", valueName: "K/N"),
            transform: Shard.init(parsing:))
    var shard: Shard?
    @Flag(help: "No progress lines.")
    var quiet = false
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        _ = try backboneOptions.requiredPath()
        guard resolution > 0 else { throw ValidationError("--resolution must be positive; got \(resolution)") }
    }

    func run() throws {
        engine.configure()
        try backboneOptions.checkSide(resolution, flag: "--resolution")  // the backbone's own grid (METHOD §1.5)
        let paths = try imagePaths()
        let backbone = try backboneOptions.requiredPath()
        let model = try backboneOptions.load()
        let store = FeatureStore(backbone: model, backboneKey: BackboneIdentity.key(model, path: backbone), resolution: resolution,
                                 cacheDirectory: URL(fileURLWithPath: cache))
        let embedded: Int
        do {
            embedded = try store.fill(paths, shard: shard) { done, total in
                if !quiet, done == total || done % 50 == 0 { print("\(done)/\(total) images") }
            }
        } catch { throw CommandFailure("\(error)") }
        let part = shard?.range(total: Set(paths).count).count ?? Set(paths).count
        if !quiet { print("\(embedded) of \(part) images embedded into \(cache)\(shard.map { " (shard \($0))" } ?? ""); the rest were cached") }
    }

    /// Absolute paths of the images of the split's pairs (each image once).
    func imagePaths() throws -> [String] {
        let data = pairs.data
        do {
            let dataset = try SPairDataset(root: URL(fileURLWithPath: data))
            var cats = try dataset.categories()
            let only = pairs.only ?? []
            if let unknown = only.first(where: { !cats.contains($0) }) {
                throw CommandFailure("category '\(unknown)' is not in \(data)/ImageAnnotation (found: \(cats.joined(separator: ", ")))")
            }
            if !only.isEmpty { cats = cats.filter { only.contains($0) } }
            var paths = Set<String>()
            for c in cats {
                let v = try dataset.loadPairs(split: pairs.split, category: c)
                if let first = v.invalid.first, !pairs.skipInvalid {
                    throw CommandFailure("\(data)/\(first) (\(v.invalid.count) invalid pair(s) in \(c); --skip-invalid skips them)")
                }
                for p in v.items { paths.insert(dataset.url(p.sourceImagePath).path); paths.insert(dataset.url(p.targetImagePath).path) }
            }
            return paths.sorted()
        } catch let e as CommandFailure { throw e } catch { throw CommandFailure("\(data): \(error)") }
    }
}
