import ArgumentParser
import CommandLineOptions
import DINOv2
import Features
import Foundation
import Imaging
import Kernels
import TensorFiles

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the DINOv2 patch features of one image: float32 .npy [Gh*Gw, D], last block before the final norm, CLS and registers removed.")

    @OptionGroup var input: OneImageOptions

    func run() throws {
        let (model, image) = try input.prepare()
        let out = image.embed(with: model)
        try input.write(NPYArray(shape: [out.patches, out.dim], floats: out.features.array))
    }
}

/// The options of the commands that run the backbone on one image (`--image` or `--tensor`) and write one .npy.
struct OneImageOptions: ParsableArguments {
    @OptionGroup var backbone: BackboneOptions

    @Option(help: "Image (JPEG or PNG): letterboxed to --resolution and normalised as the paper's evaluation does.")
    var image: String?

    @Option(help: "Letterbox side for --image, a multiple of the backbone's patch size (14 for DINOv2, 8 or 16 for DINOv1).")
    var resolution: Int = 840

    @Option(help: "float32 .npy [3, H, W], already normalised, H and W multiples of the backbone's patch size.")
    var tensor: String?

    @Option(help: "Output .npy path.")
    var out: String

    @OptionGroup var engine: EngineOptions

    func validate() throws {
        _ = try backbone.requiredPath()
        if (image == nil) == (tensor == nil) { throw ValidationError("give exactly one of --image or --tensor") }
        guard resolution > 0 else { throw ValidationError("--resolution must be positive; got \(resolution)") }
    }

    /// Configures the engine, loads the backbone and the input.
    func prepare() throws -> (DinoVisionTransformer, ImageTensor) {
        engine.configure()
        // The grid is the backbone's own (a DINOv1 patch size and stride, METHOD §1.5): checked before any weights load.
        if self.image != nil { try backbone.checkSide(resolution, flag: "--resolution") }
        let image = try ImageInput.load(image: image, tensor: tensor, resolution: resolution)
        let config = try backbone.peekConfig()
        for (side, name) in [(image.height, "height"), (image.width, "width")] {
            if let why = config.invalidSideReason(side) {
                throw CommandFailure("\(tensor ?? "--resolution"): the input \(name) \(why) for \(config.displayName)")
            }
        }
        return (try backbone.load(), image)
    }

    func write(_ array: NPYArray) throws {
        do { try NPY.write(array, to: URL(fileURLWithPath: out)) } catch { throw CommandFailure("\(error)") }
    }
}

/// A normalised [3, H, W] image tensor.
struct ImageTensor {
    var pixels: [Float]
    var height: Int
    var width: Int

    func embed(with model: DinoVisionTransformer) -> DinoOutput {
        pixels.withUnsafeBufferPointer { model.forward(images: $0.baseAddress!, batch: 1, height: height, width: width) }
    }
}

enum ImageInput {
    /// A normalised [3, H, W] tensor from an image (letterboxed) or a .npy file.
    static func load(image: String?, tensor: String?, resolution: Int) throws -> ImageTensor {
        if let tensor {
            let a: NPYArray
            do { a = try NPY.read(contentsOf: URL(fileURLWithPath: tensor)) } catch { throw CommandFailure("\(error)") }
            guard a.dtype == .float32 else { throw CommandFailure("\(tensor): dtype \(a.dtype.rawValue), expected float32 (<f4)") }
            guard a.shape.count == 3, a.shape[0] == 3 else { throw CommandFailure("\(tensor): shape \(a.shape), expected [3, H, W]") }
            let v = try a.floats()
            if let bad = v.firstIndex(where: { !$0.isFinite }) { throw CommandFailure("\(tensor): non-finite value at flat index \(bad)") }
            return ImageTensor(pixels: v, height: a.shape[1], width: a.shape[2])
        }
        let path = image!
        do {
            let img = try decodeImage(contentsOf: URL(fileURLWithPath: path))
            return ImageTensor(pixels: try ModelInput.tensor(img, resolution: resolution), height: resolution, width: resolution)
        } catch { throw CommandFailure("\(path): \(error)") }
    }
}
