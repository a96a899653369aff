// Core value types of the Imaging module.
//
// Shape legend used throughout this module:
//   H, W   image height and width in pixels (rows × columns)
//   C      channels (3 for RGB images, any count for planar float tensors)
//   [H, W, 3] uint8    interleaved RGB, row-major (what Pillow's np.asarray gives)
//   [C, H, W] float32  planar, row-major (what PyTorch's NCHW gives for one image)

/// An 8-bit RGB image: `pixels` is `[height, width, 3]`, row-major, interleaved.
package struct RGBImage: Sendable, Equatable {
    package var width: Int
    package var height: Int
    /// `[height, width, 3]` uint8.
    package var pixels: [UInt8]

    package init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0, "negative image size")
        precondition(pixels.count == width * height * 3, "pixel count \(pixels.count) != \(width)×\(height)×3")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An all-black image.
    package init(width: Int, height: Int) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height * 3))
    }

    /// The pixel at column `x`, row `y`.
    package subscript(x: Int, y: Int) -> (r: UInt8, g: UInt8, b: UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}

/// Why an image could not be decoded (or processed). Decoding never traps on bad input: every
/// failure of the data itself is one of these.
package enum ImageError: Error, Equatable, Sendable {
    /// The bytes are not in a format we decode (sniffed by magic bytes: JPEG and PNG only).
    case unsupportedFormat
    /// A recognised format in a variant we do not decode (e.g. 12-bit or 2-component JPEG).
    case unsupported(String)
    /// The data ends before the image is complete. (Pillow pads truncated JPEGs only with
    /// `LOAD_TRUNCATED_IMAGES`; we reject, as Pillow does by default.)
    case truncated
    /// The data is malformed; the string says how (library message or our own check).
    case corrupt(String)
    /// The header declares more pixels than the caller's limit. Decided from the header alone,
    /// before any pixel memory is allocated.
    case tooManyPixels(width: Int, height: Int, limit: Int)
    /// No data at all, or an image too small for the requested operation (for example a
    /// letterbox whose short side would round to 0 pixels).
    case tooSmall
}

/// The image formats we decode.
package enum ImageFormat: Sendable, Equatable {
    case jpeg
    case png
}

/// What the header says, read without decoding pixels.
package struct ImageHeader: Sendable, Equatable {
    package var format: ImageFormat
    package var width: Int
    package var height: Int
}

/// Limits applied before decoding.
package struct DecodeLimits: Sendable, Equatable {
    /// Largest accepted `width × height`. The default is Pillow's `Image.MAX_IMAGE_PIXELS`
    /// (89 478 485, ≈ 0.25 GiB of RGBA), the size above which Pillow starts warning about
    /// decompression bombs.
    package var maxPixels: Int
    /// Largest number of progressive JPEG scans accepted (libjpeg-turbo's own suggestion for
    /// untrusted input is a few hundred). Enforced only when the C guard target is built.
    package var maxJPEGScans: Int

    package init(maxPixels: Int = 89_478_485, maxJPEGScans: Int = 500) {
        precondition(maxPixels > 0 && maxJPEGScans > 0)
        self.maxPixels = maxPixels
        self.maxJPEGScans = maxJPEGScans
    }
}
