// A whole-dataset check: what `spherecorr-train check-spair ROOT` prints and what scripts/fetch-spair runs after
// extracting an archive, so that a download that is not an SPair-71k-format dataset (or is missing files) is caught
// before hours of training or evaluation. It reads every annotation the evaluation and training read, and checks
// that every image and mask they name exists; it decodes nothing (that happens, file by file, when they are used).

/// What `SPairDataset.check()` found: counts per split and every problem, each naming its file.
package struct SPairCheck: Sendable {
    package struct SplitCount: Sendable, Equatable {
        package var split: SPairSplit
        /// Pairs that load (annotations parse and agree, both images present).
        package var pairs = 0
        /// Lines of `Layout/large/<split>.txt`, nil when the file is absent.
        package var layoutLines: Int?
    }

    package var categories: [String] = []
    package var splits: [SplitCount] = []
    /// Distinct source images of the training split with their masks present (what `fit` trains on).
    package var trainingImages = 0
    package var problems: [SPairError] = []

    package var isValid: Bool { problems.isEmpty }
}

extension SPairDataset {
    /// Checks the layout (docs: shared SPAIR-FORMAT.md): the four folders, every category's image annotations
    /// (`len(kps)` consistent), every pair of every split present (annotations, images), the training list's
    /// masks, and `Layout/large/<split>.txt` naming only pairs that exist. Throws only when `root` is not a
    /// dataset at all; everything else is collected in `problems`.
    package func check() throws(SPairError) -> SPairCheck {
        var result = SPairCheck()
        for folder in ["JPEGImages", "Segmentation"] where !isDirectory(folder) {
            result.problems.append(SPairError(.missingFile, file: folder, "is missing"))
        }
        result.categories = try categories()
        if result.categories.isEmpty {
            result.problems.append(SPairError(.missingFile, file: "ImageAnnotation", "has no category folder"))
        }
        for category in result.categories {
            do { result.problems += try validateKeypointCounts(category: category) } catch { result.problems.append(error) }
        }
        for split in SPairSplit.allCases {
            let folder = "PairAnnotation/\(split.rawValue)"
            guard isDirectory(folder) else {
                result.problems.append(SPairError(.missingFile, file: folder, "is missing"))
                continue
            }
            var count = SPairCheck.SplitCount(split: split)
            var names = Set<PairName>()
            for category in result.categories {
                do {
                    let pairs = try loadPairs(split: split, category: category)
                    count.pairs += pairs.items.count
                    names.formUnion(pairs.items.map(\.name))
                    result.problems += pairs.invalid
                } catch {
                    result.problems.append(error)
                }
            }
            if isRegularFile(layoutPath(.large, split: split)) {
                do {
                    let layout = try self.layout(.large, split: split)
                    count.layoutLines = layout.items.count + layout.invalid.count
                    result.problems += layout.invalid
                    for name in layout.items where !names.contains(name) {
                        result.problems.append(SPairError(.inconsistent, file: layoutPath(.large, split: split),
                                                          "names \(name) but \(pairPath(name, split: split)) does not load"))
                    }
                } catch {
                    result.problems.append(error)
                }
            }
            if split == .trn {
                do {
                    let samples = try trainingSamples(split: .trn)
                    result.trainingImages = samples.items.count
                    // Pair-level problems were reported above; add only what training alone needs (the masks).
                    result.problems += samples.invalid.filter { $0.file.hasPrefix("Segmentation/") }
                } catch {
                    result.problems.append(error)
                }
            }
            result.splits.append(count)
        }
        return result
    }
}
