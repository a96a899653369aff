import ArgumentParser
import DINOv2
import Foundation
import SphereMap
import TensorFiles

struct Sphere: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the unit sphere vectors of one image: float32 .npy [Gh*Gw, 3], normalize(f_S(features)), no mask.")

    @OptionGroup var input: BackboneInput

    @Option(help: "Sphere bundle (.safetensors).")
    var bundle: String

    @Option(help: "Output .npy path.")
    var out: String

    @OptionGroup var engine: EngineOptions

    func run() throws {
        try engine.configure(verbose: false)
        let (pixels, h, w) = try input.load()
        let model = try ImageInput.backbone(input.backbone, variant: input.variant)
        let b: SphereBundle
        do { b = try SphereBundle.load(path: bundle) } catch { throw CommandFailure("\(error)") }
        guard b.backboneDim == model.config.embedDim else {
            throw CommandFailure("\(bundle): trained for a backbone of width \(b.backboneDim), but \(input.backbone) has width \(model.config.embedDim)")
        }
        let f = pixels.withUnsafeBufferPointer { model.forward(images: $0.baseAddress!, batch: 1, height: h, width: w) }
        let s = b.mapper.sphere(features: f.features.pointer, batch: 1, tokens: f.patches)
        do { try NPY.write(NPYArray(shape: [f.patches, 3], floats: s.array), to: URL(fileURLWithPath: out)) } catch {
            throw CommandFailure("\(error)")
        }
    }
}
