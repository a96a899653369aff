import ArgumentParser
import DINOv2
import Foundation
import SphereMap
import TensorFiles

struct Sphere: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the unit sphere vectors of one image: float32 .npy [Gh*Gw, 3], normalize(f_S(features)), no mask.")

    @Option(help: "Backbone: a Hugging Face directory or a torch-hub-named .safetensors file.")
    var backbone: String

    @Option(help: "Variant of a torch-hub file (small, base, large, giant); inferred from shapes when omitted.")
    var variant: String?

    @Option(help: "Sphere bundle (.safetensors).")
    var bundle: String

    @Option(help: "Image (JPEG or PNG): letterboxed to --resolution and normalised.")
    var image: String?

    @Option(help: "Letterbox side for --image, a multiple of 14.")
    var resolution: Int = 840

    @Option(help: "float32 .npy [3, H, W], already normalised, H and W multiples of 14.")
    var tensor: String?

    @Option(help: "Output .npy path.")
    var out: String

    @OptionGroup var engine: EngineOptions

    func validate() throws {
        try ImageInput.validate(image: image, tensor: tensor, resolution: resolution, variant: variant)
    }

    func run() throws {
        try engine.configure(verbose: false)
        let (input, h, w) = try ImageInput.load(image: image, tensor: tensor, resolution: resolution)
        let model = try ImageInput.backbone(backbone, variant: variant)
        let b: SphereBundle
        do { b = try SphereBundle.load(path: bundle) } catch { throw CommandFailure("\(error)") }
        guard b.backboneDim == model.config.embedDim else {
            throw CommandFailure("\(bundle): trained for a backbone of width \(b.backboneDim), but \(backbone) has width \(model.config.embedDim)")
        }
        let f = input.withUnsafeBufferPointer { model.forward(images: $0.baseAddress!, batch: 1, height: h, width: w) }
        let s = b.mapper.sphere(features: f.features.pointer, batch: 1, tokens: f.patches)
        do { try NPY.write(NPYArray(shape: [f.patches, 3], floats: s.array), to: URL(fileURLWithPath: out)) } catch {
            throw CommandFailure("\(error)")
        }
    }
}
