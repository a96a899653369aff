import ArgumentParser
import DINOv2
import Foundation
import Imaging
import Kernels
import TensorFiles

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the DINOv2 patch features of one image: float32 .npy [Gh*Gw, D], last block before the final norm, CLS and registers removed.")

    @OptionGroup var input: BackboneInput

    @Option(help: "Output .npy path.")
    var out: String

    @OptionGroup var engine: EngineOptions

    func run() throws {
        try engine.configure(verbose: false)
        let (pixels, h, w) = try input.load()
        let model = try ImageInput.backbone(input.backbone, variant: input.variant)
        let out = pixels.withUnsafeBufferPointer { model.forward(images: $0.baseAddress!, batch: 1, height: h, width: w) }
        do {
            try NPY.write(NPYArray(shape: [out.patches, out.dim], floats: out.features.array), to: URL(fileURLWithPath: self.out))
        } catch { throw CommandFailure("\(error)") }
    }
}

/// `--backbone`, `--variant` and the `--image` / `--tensor` input of the commands that run the backbone on one image.
struct BackboneInput: ParsableArguments {
    @Option(help: "Backbone: a Hugging Face directory (config.json + model.safetensors) or a torch-hub-named .safetensors file.")
    var backbone: String

    @Option(help: "Variant of a torch-hub file (small, base, large, giant); inferred from shapes when omitted.")
    var variant: String?

    @Option(help: "Image (JPEG or PNG): letterboxed to --resolution and normalised as the paper's evaluation does.")
    var image: String?

    @Option(help: "Letterbox side for --image, a multiple of 14.")
    var resolution: Int = 840

    @Option(help: "float32 .npy [3, H, W], already normalised, H and W multiples of 14.")
    var tensor: String?

    func validate() throws {
        if (image == nil) == (tensor == nil) { throw ValidationError("give exactly one of --image or --tensor") }
        if let why = PatchGrid.invalidReason(resolution: resolution) { throw ValidationError("--resolution \(why)") }
        if let v = variant, DinoConfig.Variant(rawValue: v) == nil {
            throw ValidationError("--variant must be one of small, base, large, giant; got '\(v)'")
        }
    }

    func load() throws -> ([Float], Int, Int) { try ImageInput.load(image: image, tensor: tensor, resolution: resolution) }
}

enum ImageInput {
    static func backbone(_ path: String, variant: String?) throws -> DinoVisionTransformer {
        do { return try DinoVisionTransformer.load(path: path, variant: variant.flatMap(DinoConfig.Variant.init)) } catch {
            throw CommandFailure("\(error)")
        }
    }

    /// A normalised [3, H, W] tensor from an image (letterboxed) or a .npy file.
    static func load(image: String?, tensor: String?, resolution: Int) throws -> ([Float], Int, Int) {
        if let tensor {
            let a: NPYArray
            do { a = try NPY.read(contentsOf: URL(fileURLWithPath: tensor)) } catch { throw CommandFailure("\(error)") }
            guard a.dtype == .float32 else { throw CommandFailure("\(tensor): dtype \(a.dtype.rawValue), expected float32 (<f4)") }
            guard a.shape.count == 3, a.shape[0] == 3 else { throw CommandFailure("\(tensor): shape \(a.shape), expected [3, H, W]") }
            guard PatchGrid(resolution: a.shape[1]) != nil, PatchGrid(resolution: a.shape[2]) != nil else {
                throw CommandFailure("\(tensor): H and W must be positive multiples of 14; shape is \(a.shape)")
            }
            let v = try a.floats()
            if let bad = v.firstIndex(where: { !$0.isFinite }) { throw CommandFailure("\(tensor): non-finite value at flat index \(bad)") }
            return (v, a.shape[1], a.shape[2])
        }
        let path = image!
        do {
            let img = try decodeImage(contentsOf: URL(fileURLWithPath: path))
            return (toNormalizedTensor(try letterbox(img, resolution: resolution)), resolution, resolution)
        } catch { throw CommandFailure("\(path): \(error)") }
    }
}
