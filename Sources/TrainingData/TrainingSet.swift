// The training images of METHOD §2.1 (SPair-71k) and §2.2/§7.3 (Freiburg Cars), checked, in the reference's
// order. The data loader of the reference yields the list `pairs * replications`, so item k is image
// k mod n; only the source image of each pair is used.

import Foundation
import Hashing
import Imaging
import SPair
import TensorFiles

/// One distinct training image with its condition and viewpoint.
package struct TrainingImage: Sendable, Equatable {
    /// Image and mask, relative to the dataset root.
    package var imagePath: String
    package var maskPath: String
    package var maskRule: ObjectMask.Rule
    /// One-hot condition index (`cat_dict`).
    package var category: Int
    /// Viewpoint bin in 0..<vpBins.
    package var viewpoint: Int
    /// The annotation file the category, viewpoint, size and box come from (named in errors).
    package var annotationFile: String
    /// Size the annotation gives (`src_imsize`), checked against the decoded image.
    package var annotatedSize: ImageSize?
    /// A box the annotation gives in pixels (Freiburg Cars), checked against the decoded image.
    package var box: BoundingBox?
    package var boxField: String?
}

/// Which on-disk format the training set comes from.
package enum TrainingSource: String, Sendable {
    case spair
    case fcars
}

/// The checked training list. Problems are either fatal (`requireValid`) or skipped and counted (`--skip-invalid`).
package struct TrainingSet: Sendable {
    package var root: URL
    package var source: TrainingSource
    /// Condition names in one-hot order (the 18 SPair categories, or `car` for Freiburg Cars).
    package var categories: [String]
    package var vpBins: Int
    /// Distinct images in the reference's order.
    package var images: [TrainingImage]
    /// ×10 in the paper for SPair; 1 (ignored) for Freiburg Cars.
    package var replications: Int
    /// Images left out because their data is bad, with why.
    package var skipped: [SPairError]

    /// Items per epoch: the replicated list.
    package var count: Int { images.count * replications }
    /// Item k of the replicated list (`pairs * replications`).
    package func image(at item: Int) -> Int { item % images.count }

    /// Fails with the first problem unless `skipInvalid`.
    package func requireValid(skipInvalid: Bool) throws(SPairError) -> TrainingSet {
        if !skipInvalid, let first = skipped.first { throw first }
        return self
    }

    // MARK: SPair-71k (METHOD §2.1, H24, H25)

    /// The first pair of each distinct source image of `PairAnnotation/<split>` in sorted order; category and
    /// `azimuth_id` of its source; mask `Segmentation/<cat>/<stem>.png` (object = any non-zero value: the
    /// reference's Mask R-CNN re-segmentations are not shipped with SPair). `vpBins` other than 8 rebins the
    /// 45° azimuth bins as Freiburg Cars does its angles: ⌊(45·id mod 360)/360·bins⌋.
    package static func spair(root: URL, split: SPairSplit = .trn, replications: Int = 10, vpBins: Int = 8) throws(SPairError) -> TrainingSet {
        precondition(replications >= 1 && vpBins >= 1)
        let ds = try SPairDataset(root: root)
        let samples = try ds.trainingSamples(split: split)
        var set = TrainingSet(root: root, source: .spair, categories: SPairCategories.all, vpBins: vpBins, images: [],
                              replications: replications, skipped: samples.invalid)
        for s in samples.items {
            guard let c = s.categoryIndex else {
                set.skipped.append(SPairError(.invalidField, file: s.pairFile, field: "category",
                                              "is \"\(s.category)\", not one of the 18 SPair-71k categories (\(SPairCategories.all.joined(separator: ", ")))"))
                continue
            }
            set.images.append(TrainingImage(imagePath: s.imagePath, maskPath: s.maskPath, maskRule: .anyNonZero, category: c,
                                            viewpoint: viewpointBin(degrees: 45 * s.azimuthID, bins: vpBins),
                                            annotationFile: s.pairFile, annotatedSize: s.imageSize))
        }
        if set.images.isEmpty && set.skipped.isEmpty {
            throw SPairError(.missingFile, file: "PairAnnotation/\(split.rawValue)", "holds no pair file: nothing to train on")
        }
        return set
    }

    /// `az2vp_id`: ⌊((az mod 360)/360)·bins⌋ with Python's non-negative modulo, in float64.
    package static func viewpointBin(degrees az: Int, bins: Int) -> Int {
        let a = ((az % 360) + 360) % 360
        return min(Int(Double(a) / 360 * Double(bins)), bins - 1)
    }
}

// MARK: - Pixels

/// A training image decoded and checked: the 4-channel tensor and a fingerprint of its image and mask bytes.
package struct LoadedImage: Sendable {
    package var pixels: ImageWithMask
    /// SHA-256 over the image bytes, the mask bytes and the mask rule: the view cache's key for the content.
    package var fingerprint: String
    package var objectPixels: Int
}

extension TrainingSet {
    /// Reads, decodes and checks one image and its mask: both decodable, the same size, the annotated size and box
    /// inside, at least one object pixel. Errors name the file and field.
    package func load(_ index: Int) throws(SPairError) -> LoadedImage {
        let t = images[index]
        let imageBytes = try readFile(t.imagePath)
        let image: RGBImage
        do { image = try decodeImage(imageBytes) } catch {
            throw SPairError(.invalidImage, file: t.imagePath, "cannot be decoded: \(error)")
        }
        if let s = t.annotatedSize, s.width != image.width || s.height != image.height {
            throw SPairError(.inconsistent, file: t.annotationFile, field: "src_imsize",
                             "is \(s.width)×\(s.height) but \(t.imagePath) is \(image.width)×\(image.height)")
        }
        if let b = t.box, !(b.x1 >= 0 && b.y1 >= 0 && b.x2 <= image.width && b.y2 <= image.height) {
            throw SPairError(.invalidField, file: t.annotationFile, field: t.boxField,
                             "box [\(b.x1), \(b.y1), \(b.x2), \(b.y2)] is outside the \(image.width)×\(image.height) image \(t.imagePath)")
        }
        let maskBytes = try readFile(t.maskPath)
        let mask = try ObjectMask(bytes: maskBytes, file: t.maskPath, rule: t.maskRule)
        guard mask.width == image.width, mask.height == image.height else {
            throw SPairError(.inconsistent, file: t.maskPath, "is \(mask.width)×\(mask.height) but its image \(t.imagePath) is \(image.width)×\(image.height)")
        }
        let objects = mask.objectPixelCount
        guard objects > 0 else {
            throw SPairError(.emptyMask, file: t.maskPath, "has no object pixel (\(t.maskRule == .anyNonZero ? "every value is 0" : "no value above the threshold")): the image would give no training signal")
        }
        var h = SHA256()
        h.update(imageBytes)
        h.update(Array("|\(t.maskRule)|".utf8))
        h.update(maskBytes)
        return LoadedImage(pixels: ImageWithMask(image: image, mask: mask.values), fingerprint: SHA256.hex(h.finalize()), objectPixels: objects)
    }

    /// Loads every image once: the bad ones move to `skipped`. Returns the fingerprints of the kept ones, in order.
    package mutating func validatePixels(progress: ((Int, Int) -> Void)? = nil) -> [String] {
        var kept: [TrainingImage] = [], prints: [String] = []
        for i in images.indices {
            do {
                prints.append(try load(i).fingerprint)
                kept.append(images[i])
            } catch {
                skipped.append(error)
            }
            progress?(i + 1, images.count)
        }
        images = kept
        return prints
    }

    /// One hash over what defines the data: source, categories, bins, replications and every image's path,
    /// condition, viewpoint and content.
    package func fingerprint(contents: [String]) -> String {
        precondition(contents.count == images.count)
        var text = "\(source.rawValue)|\(categories.joined(separator: ","))|bins \(vpBins)|x\(replications)\n"
        for (t, c) in zip(images, contents) { text += "\(t.imagePath)|\(t.category)|\(t.viewpoint)|\(c)\n" }
        return SHA256.hex(Array(text.utf8))
    }

    func readFile(_ relative: String) throws(SPairError) -> [UInt8] {
        let url = root.appendingPathComponent(relative)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else { throw SPairError(.missingFile, file: relative, "is missing") }
        guard !isDir.boolValue else { throw SPairError(.unreadableFile, file: relative, "is a directory, not a file") }
        do { return [UInt8](try Data(contentsOf: url)) } catch {
            throw SPairError(.unreadableFile, file: relative, "cannot be read: \(error.localizedDescription)")
        }
    }
}
