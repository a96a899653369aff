// Error containment for libjpeg and libpng.
//
// Both libraries report fatal errors through a handler that must not return (they expect a
// longjmp). Swift can neither call setjmp nor be longjmp'ed across, so:
//
// * With the `CImageShims` C target (Sources/CImageShims), every call that can raise an error
//   runs inside a C wrapper that owns the setjmp; an error unwinds only library frames and the
//   wrapper returns -1. This is the robust path: any malformed input becomes an ImageError.
// * Without it, the same calls are made directly and the error handler traps. The decoders
//   validate structure in Swift first (a full JPEG marker walk with libjpeg's fatal checks on
//   frame, Huffman, quantization, arithmetic-conditioning and scan headers; a PNG chunk walk with
//   CRCs, IHDR validity and IEND present; the pixel limit), so garbage, truncation and random
//   damage never reach the library's error exit (no trap in ~60 000 fuzzed inputs), but a
//   crafted PNG whose zlib data is corrupt under valid CRCs would still trap.
//   `guardedDecoding` tells which path is built.
//
// The two variants of `JPEGDecompressor` and `PNGReader` below have identical interfaces.

import CJPEG
import CPNG

#if canImport(CImageShims)
import CImageShims
#endif

/// True when libjpeg/libpng errors are contained by the C guards (CImageShims), so that every
/// malformed input throws. False when they trap (see the comment at the top of this file).
#if canImport(CImageShims)
package let guardedDecoding = true
#else
package let guardedDecoding = false
#endif

// MARK: - JPEG

#if canImport(CImageShims)

/// One libjpeg decompression with a memory source; errors become `ImageError`.
struct JPEGDecompressor: ~Copyable {
    private let ctx: OpaquePointer
    /// The libjpeg state: read header fields, set decompression parameters.
    let cinfo: UnsafeMutablePointer<jpeg_decompress_struct>

    init(maxScans: Int) throws(ImageError) {
        guard let ctx = ims_jpeg_create() else { throw .corrupt("libjpeg: cannot create decompressor") }
        self.ctx = ctx
        cinfo = ims_jpeg_cinfo(ctx).assumingMemoryBound(to: jpeg_decompress_struct.self)
        ims_jpeg_set_scan_limit(ctx, Int32(clamping: maxScans))
    }

    deinit { ims_jpeg_destroy(ctx) }

    /// True once libjpeg warned that the data ended early (it then inserts a fake EOI).
    var prematureEOF: Bool { ims_jpeg_premature_eof(ctx) != 0 }

    private func check(_ status: Int32) throws(ImageError) {
        guard status == 0 else {
            if prematureEOF { throw .truncated }
            throw .corrupt("libjpeg: " + String(cString: ims_jpeg_message(ctx)))
        }
    }

    /// The bytes must stay valid until the decompressor is gone.
    func setSource(_ bytes: UnsafeRawBufferPointer) throws(ImageError) {
        try check(ims_jpeg_mem_src(ctx, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt(bytes.count)))
    }

    func readHeader() throws(ImageError) { try check(ims_jpeg_read_header(ctx)) }

    func startDecompress() throws(ImageError) { try check(ims_jpeg_start_decompress(ctx)) }

    /// Reads up to `count` scanlines; returns how many were read.
    func readScanlines(_ rows: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, count: Int) throws(ImageError) -> Int {
        var got: UInt32 = 0
        try check(ims_jpeg_read_scanlines(ctx, rows, UInt32(count), &got))
        return Int(got)
    }
}

#else

/// Fallback state: the libjpeg structs plus our warning bookkeeping, at a stable address.
private struct JPEGFallbackState {
    var cinfo = jpeg_decompress_struct()
    var err = jpeg_error_mgr()
    var prematureEOF = false
}

/// One libjpeg decompression with a memory source. Without CImageShims a libjpeg error traps.
struct JPEGDecompressor: ~Copyable {
    private let state: UnsafeMutablePointer<JPEGFallbackState>
    let cinfo: UnsafeMutablePointer<jpeg_decompress_struct>

    init(maxScans: Int) throws(ImageError) {
        state = .allocate(capacity: 1)
        state.initialize(to: JPEGFallbackState())
        let raw = UnsafeMutableRawPointer(state)
        cinfo = (raw + MemoryLayout<JPEGFallbackState>.offset(of: \.cinfo)!).assumingMemoryBound(to: jpeg_decompress_struct.self)
        let err = (raw + MemoryLayout<JPEGFallbackState>.offset(of: \.err)!).assumingMemoryBound(to: jpeg_error_mgr.self)
        cinfo.pointee.err = jpeg_std_error(err)
        err.pointee.error_exit = { common in
            var buffer = [CChar](repeating: 0, count: Int(JMSG_LENGTH_MAX))
            if let common { common.pointee.err.pointee.format_message(common, &buffer) }
            let message = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            fatalError("libjpeg error without the CImageShims guard target: \(message)")
        }
        err.pointee.output_message = { _ in }
        err.pointee.emit_message = { common, level in
            guard let common, level < 0 else { return }
            common.pointee.err.pointee.num_warnings += 1
            if common.pointee.err.pointee.msg_code == Int32(JWRN_JPEG_EOF.rawValue) {
                common.pointee.client_data.assumingMemoryBound(to: JPEGFallbackState.self).pointee.prematureEOF = true
            }
        }
        jpeg_CreateDecompress(cinfo, JPEG_LIB_VERSION, MemoryLayout<jpeg_decompress_struct>.size)
        cinfo.pointee.client_data = raw
    }

    deinit {
        jpeg_destroy_decompress(cinfo)
        state.deinitialize(count: 1)
        state.deallocate()
    }

    var prematureEOF: Bool { state.pointee.prematureEOF }

    func setSource(_ bytes: UnsafeRawBufferPointer) throws(ImageError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { throw .tooSmall }
        jpeg_mem_src(cinfo, base.assumingMemoryBound(to: UInt8.self), UInt(bytes.count))
    }

    func readHeader() throws(ImageError) { _ = jpeg_read_header(cinfo, 1) }

    func startDecompress() throws(ImageError) { _ = jpeg_start_decompress(cinfo) }

    func readScanlines(_ rows: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, count: Int) throws(ImageError) -> Int {
        Int(jpeg_read_scanlines(cinfo, rows, UInt32(count)))
    }
}

#endif

// MARK: - PNG

#if canImport(CImageShims)

/// One libpng read from memory; errors become `ImageError`.
struct PNGReader: ~Copyable {
    private let ctx: OpaquePointer
    /// `png_structp` and `png_infop`, for the non-raising png_get_*/png_set_* calls.
    let png: OpaquePointer
    let info: OpaquePointer

    /// The bytes must stay valid until the reader is gone.
    init(_ bytes: UnsafeRawBufferPointer, maxWidth: UInt32, maxHeight: UInt32) throws(ImageError) {
        guard let base = bytes.baseAddress,
              let ctx = ims_png_reader_create(base.assumingMemoryBound(to: UInt8.self), bytes.count, maxWidth, maxHeight)
        else { throw .corrupt("libpng: cannot create reader") }
        self.ctx = ctx
        png = OpaquePointer(ims_png_reader_png(ctx))
        info = OpaquePointer(ims_png_reader_info(ctx))
    }

    deinit { ims_png_reader_destroy(ctx) }

    private func check(_ status: Int32) throws(ImageError) {
        guard status == 0 else {
            if ims_png_reader_truncated(ctx) != 0 { throw .truncated }
            throw .corrupt("libpng: " + String(cString: ims_png_reader_message(ctx)))
        }
    }

    func readInfo() throws(ImageError) { try check(ims_png_read_info(ctx)) }

    func readUpdateInfo() throws(ImageError) { try check(ims_png_read_update_info(ctx)) }

    /// `rows` holds one pointer per image row (all passes of an interlaced image are combined).
    func readImage(_ rows: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>) throws(ImageError) {
        try check(ims_png_read_image(ctx, rows))
    }
}

#else

/// Memory cursor for the fallback read callback.
private struct PNGSource {
    var base: UnsafePointer<UInt8>
    var count: Int
    var offset: Int
}

/// One libpng read from memory. Without CImageShims a libpng error traps; `decodePNG` walks
/// and CRC-checks every chunk first, so reads never run past the end of the data.
struct PNGReader: ~Copyable {
    private let source: UnsafeMutablePointer<PNGSource>
    let png: OpaquePointer
    let info: OpaquePointer

    init(_ bytes: UnsafeRawBufferPointer, maxWidth: UInt32, maxHeight: UInt32) throws(ImageError) {
        guard let base = bytes.baseAddress else { throw .tooSmall }
        let errorFn: png_error_ptr = { _, message in
            fatalError("libpng error without the CImageShims guard target: \(message.map { String(cString: $0) } ?? "?")")
        }
        let warningFn: png_error_ptr = { _, _ in }
        guard let png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nil, errorFn, warningFn) else {
            throw .corrupt("libpng: cannot create reader")
        }
        var pngOptional: OpaquePointer? = png
        guard let info = png_create_info_struct(png) else {
            png_destroy_read_struct(&pngOptional, nil, nil)
            throw .corrupt("libpng: cannot create reader")
        }
        source = .allocate(capacity: 1)
        source.initialize(to: PNGSource(base: base.assumingMemoryBound(to: UInt8.self), count: bytes.count, offset: 0))
        self.png = png
        self.info = info
        png_set_read_fn(png, source) { png, out, count in
            let src = png_get_io_ptr(png)!.assumingMemoryBound(to: PNGSource.self)
            guard count <= src.pointee.count - src.pointee.offset, let out else {
                png_error(png, "unexpected end of PNG data")
            }
            out.update(from: src.pointee.base + src.pointee.offset, count: count)
            src.pointee.offset += count
        }
        png_set_user_limits(png, maxWidth, maxHeight)
    }

    deinit {
        var p: OpaquePointer? = png
        var i: OpaquePointer? = info
        png_destroy_read_struct(&p, &i, nil)
        source.deinitialize(count: 1)
        source.deallocate()
    }

    func readInfo() throws(ImageError) { png_read_info(png, info) }

    func readUpdateInfo() throws(ImageError) { png_read_update_info(png, info) }

    func readImage(_ rows: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>) throws(ImageError) {
        png_read_image(png, rows)
    }
}

#endif
