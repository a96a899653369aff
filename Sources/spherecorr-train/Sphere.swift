import ArgumentParser
import CommandLineOptions
import DINOv2
import Foundation
import SphereMap
import TensorFiles

struct Sphere: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the unit sphere vectors of one image: float32 .npy [Gh*Gw, 3], normalize(f_S(features)), no mask.")

    @OptionGroup var input: OneImageOptions

    @Option(help: "Sphere bundle (.safetensors).")
    var bundle: String

    func run() throws {
        let (model, image) = try input.prepare()
        let b: SphereBundle
        do { b = try SphereBundle.load(path: bundle) } catch { throw CommandFailure("\(error)") }
        guard b.backboneDim == model.config.embedDim else {
            throw CommandFailure("\(bundle): trained for a backbone of width \(b.backboneDim), but \(try input.backbone.requiredPath()) has width \(model.config.embedDim)")
        }
        let f = image.embed(with: model)
        let s = b.mapper.sphere(features: f.features.pointer, batch: 1, tokens: f.patches)
        try input.write(NPYArray(shape: [f.patches, 3], floats: s.array))
    }
}
