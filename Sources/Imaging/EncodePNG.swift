// PNG encoding of RGB images through libpng, written to memory (for sphere-map pictures and
// match drawings). The input is always valid by construction (8-bit RGB, positive size), so
// libpng has nothing to reject; its error handler traps on the one remaining failure mode, an
// allocation failure, as any Swift allocation would.

import CPNG

/// Growable output buffer for the write callback, at a stable address.
private struct PNGSink {
    var bytes: [UInt8] = []
}

/// Encodes `image` as a non-interlaced 8-bit RGB PNG. `compressionLevel` is zlib's 0...9.
package func encodePNG(_ image: RGBImage, compressionLevel: Int = 6) -> [UInt8] {
    precondition(image.width > 0 && image.height > 0, "cannot encode an empty image")
    precondition((0...9).contains(compressionLevel), "zlib level is 0...9")
    precondition(image.width <= 0x7FFF_FFFF && image.height <= 0x7FFF_FFFF)
    let errorFn: png_error_ptr = { _, message in
        fatalError("libpng write error: \(message.map { String(cString: $0) } ?? "?")")
    }
    let warningFn: png_error_ptr = { _, _ in }
    guard let png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nil, errorFn, warningFn) else {
        fatalError("libpng: cannot create write struct")
    }
    var pngOptional: OpaquePointer? = png
    var infoOptional = png_create_info_struct(png)
    defer { png_destroy_write_struct(&pngOptional, &infoOptional) }
    guard let info = infoOptional else { fatalError("libpng: cannot create info struct") }

    let sink = UnsafeMutablePointer<PNGSink>.allocate(capacity: 1)
    sink.initialize(to: PNGSink())
    defer { sink.deinitialize(count: 1); sink.deallocate() }
    sink.pointee.bytes.reserveCapacity(image.width * image.height + 1024)

    png_set_write_fn(png, sink, { png, data, count in
        guard let data else { return }
        let sink = png_get_io_ptr(png)!.assumingMemoryBound(to: PNGSink.self)
        sink.pointee.bytes.append(contentsOf: UnsafeBufferPointer(start: data, count: count))
    }, { _ in })
    // 8-bit, colour type 2 (RGB), no interlace, default compression and filter methods.
    png_set_IHDR(png, info, png_uint_32(image.width), png_uint_32(image.height), 8, 2, 0, 0, 0)
    png_set_compression_level(png, Int32(compressionLevel))
    png_write_info(png, info)
    image.pixels.withUnsafeBufferPointer { pixels in
        let rowBytes = image.width * 3
        for y in 0..<image.height {
            png_write_row(png, pixels.baseAddress! + y * rowBytes)
        }
    }
    png_write_end(png, nil)
    return sink.pointee.bytes
}
