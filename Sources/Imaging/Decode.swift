// Image decoding with pixel parity to Pillow's `Image.open(path).convert('RGB')`.
//
// Format is sniffed from magic bytes; the header is read in Swift and checked against the pixel
// limit before any decoder state or pixel memory exists. JPEG goes through libjpeg-turbo with
// Pillow's settings, PNG through libpng with no colour transforms (Pillow ignores gAMA, iCCP,
// sBIT, ... and so do we); the conversion to RGB then follows Pillow's unpackers and
// `convert('RGB')` converters (Unpack.c / Convert.c), quoted at each case below.

import Foundation
import CJPEG
import CPNG

// MARK: - Public entry points

/// Sniffs the format and reads the image size from the header, without decoding pixels.
package func probeImage(_ bytes: UnsafeRawBufferPointer) throws(ImageError) -> ImageHeader {
    switch try sniffFormat(bytes) {
    case .jpeg: return try JPEGMarkers.frameHeader(bytes).header
    case .png: return try PNGChunks.header(bytes)
    }
}

/// Decodes a JPEG or PNG into 8-bit RGB exactly as Pillow's `Image.open(...).convert('RGB')`.
/// Alpha is dropped, not composited (as `convert('RGB')` does).
package func decodeImage(_ bytes: UnsafeRawBufferPointer, limits: DecodeLimits = DecodeLimits()) throws(ImageError) -> RGBImage {
    switch try sniffFormat(bytes) {
    case .jpeg:
        try checkLimits(JPEGMarkers.frameHeader(bytes).header, limits)
        let frame = try JPEGMarkers.validate(bytes)
        return try decodeJPEG(bytes, frame: frame, limits: limits)
    case .png:
        let info = try PNGChunks.walk(bytes)
        try checkLimits(info.header, limits)
        return try decodePNG(bytes, info: info, limits: limits)
    }
}

/// A mask image's stored values: `values[y·W + x]` is 1 where any sample of the pixel other than alpha is
/// non-zero, else 0. For a palette PNG that is the index, not its colour: masks store class ids (SPair
/// `Segmentation/`, METHOD H24) and a palette may map an id to black or 0 to a colour. A JPEG stores no such values:
/// its decoded RGB is used.
package struct NonZeroMask: Sendable, Equatable {
    package var width: Int
    package var height: Int
    package var values: [UInt8]
}

package func decodeNonZeroMask(_ bytes: UnsafeRawBufferPointer, limits: DecodeLimits = DecodeLimits()) throws(ImageError) -> NonZeroMask {
    switch try sniffFormat(bytes) {
    case .png:
        let info = try PNGChunks.walk(bytes)
        try checkLimits(info.header, limits)
        var mask: [UInt8] = []
        _ = try decodePNG(bytes, info: info, limits: limits, nonZero: &mask)
        return NonZeroMask(width: info.header.width, height: info.header.height, values: mask)
    case .jpeg:
        let img = try decodeImage(bytes, limits: limits)
        var mask = [UInt8](repeating: 0, count: img.width * img.height)
        for i in mask.indices where img.pixels[3 * i] | img.pixels[3 * i + 1] | img.pixels[3 * i + 2] != 0 { mask[i] = 1 }
        return NonZeroMask(width: img.width, height: img.height, values: mask)
    }
}

/// `decodeNonZeroMask` over an array.
package func decodeNonZeroMask(_ bytes: [UInt8], limits: DecodeLimits = DecodeLimits()) throws(ImageError) -> NonZeroMask {
    try asImageError { try bytes.withUnsafeBytes { raw throws(ImageError) in try decodeNonZeroMask(raw, limits: limits) } }
}

/// `decodeImage` over an array.
package func decodeImage(_ bytes: [UInt8], limits: DecodeLimits = DecodeLimits()) throws(ImageError) -> RGBImage {
    try asImageError { try bytes.withUnsafeBytes { raw throws(ImageError) in try decodeImage(raw, limits: limits) } }
}

/// What decoding an image will hold in memory, read from its header alone (no pixel is decoded): the frame
/// header of a JPEG (up to the first scan), the IHDR of a PNG.
package struct ImageLayout: Sendable, Equatable {
    package var format: ImageFormat
    package var width: Int
    package var height: Int
    /// Samples per pixel as the decoder delivers them (PNG: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA, 1 palette;
    /// JPEG: 1, 3 or 4 components).
    package var channels: Int
    /// Bits per sample (PNG: 1–16; JPEG: 8).
    package var bitDepth: Int
    /// A progressive JPEG: libjpeg keeps every DCT coefficient of the image until the last scan.
    package var progressive: Bool

    /// An upper bound of the bytes `decodeImage` holds at its peak: the samples as the library delivers them
    /// (`decodePNG` / `decodeJPEG` `raw`, 16-bit samples at two bytes), the 8-bit RGB result, libjpeg's
    /// whole-image coefficient buffer for a progressive JPEG (64 int16 per 8×8 block and component), and 1 MiB for
    /// the libraries' own state (zlib window, row pointers, Huffman tables).
    package var decodeBytes: Int {
        let pixels = width * height
        let samples = pixels * channels * (bitDepth > 8 ? 2 : 1)
        var total = samples + pixels * 3 + height * MemoryLayout<UnsafeRawPointer>.stride + (1 << 20)
        if format == .jpeg && progressive {
            total += ((width + 7) / 8) * ((height + 7) / 8) * 64 * 2 * channels
        }
        return total
    }
}

/// The layout of an image from its header, without decoding (see `ImageLayout`).
package func probeImageLayout(_ bytes: UnsafeRawBufferPointer) throws(ImageError) -> ImageLayout {
    switch try sniffFormat(bytes) {
    case .jpeg:
        let f = try JPEGMarkers.frameHeader(bytes)
        return ImageLayout(format: .jpeg, width: f.header.width, height: f.header.height, channels: f.components, bitDepth: 8,
                           progressive: f.progressive)
    case .png:
        let i = try PNGChunks.info(bytes)
        let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][i.colorType] ?? 4
        return ImageLayout(format: .png, width: i.header.width, height: i.header.height, channels: channels, bitDepth: i.bitDepth,
                           progressive: false)
    }
}

/// `probeImageLayout` over an array.
package func probeImageLayout(_ bytes: [UInt8]) throws(ImageError) -> ImageLayout {
    try asImageError { try bytes.withUnsafeBytes { raw throws(ImageError) in try probeImageLayout(raw) } }
}

/// `probeImage` over an array.
package func probeImage(_ bytes: [UInt8]) throws(ImageError) -> ImageHeader {
    try asImageError { try bytes.withUnsafeBytes { raw throws(ImageError) in try probeImage(raw) } }
}

/// Reads a file and decodes it. File-system errors are rethrown as they come from Foundation;
/// everything about the bytes themselves is an `ImageError`.
package func decodeImage(contentsOf url: URL, limits: DecodeLimits = DecodeLimits()) throws -> RGBImage {
    let data = try Data(contentsOf: url)
    return try data.withUnsafeBytes { raw in try decodeImage(raw, limits: limits) }
}

// MARK: - Helpers

/// Runs a closure passed through a `rethrows` API, restoring the typed error.
@inline(__always)
func asImageError<T>(_ body: () throws -> T) throws(ImageError) -> T {
    do { return try body() } catch let error as ImageError { throw error } catch { throw .corrupt("\(error)") }
}

private let jpegMagic: [UInt8] = [0xFF, 0xD8, 0xFF]  // Pillow JpegImagePlugin._accept
private let pngMagic: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

func sniffFormat(_ bytes: UnsafeRawBufferPointer) throws(ImageError) -> ImageFormat {
    if bytes.isEmpty { throw .tooSmall }
    func matches(_ magic: [UInt8]) -> (full: Bool, prefix: Bool) {
        let n = min(magic.count, bytes.count)
        let prefix = (0..<n).allSatisfy { bytes[$0] == magic[$0] }
        return (prefix && bytes.count >= magic.count, prefix)
    }
    let jpeg = matches(jpegMagic), png = matches(pngMagic)
    if jpeg.full { return .jpeg }
    if png.full { return .png }
    if jpeg.prefix || png.prefix { throw .truncated }
    throw .unsupportedFormat
}

func checkLimits(_ header: ImageHeader, _ limits: DecodeLimits) throws(ImageError) {
    guard header.width > 0, header.height > 0 else { throw .corrupt("zero image dimension") }
    let (pixels, overflow) = header.width.multipliedReportingOverflow(by: header.height)
    if overflow || pixels > limits.maxPixels {
        throw .tooManyPixels(width: header.width, height: header.height, limit: limits.maxPixels)
    }
}

@inline(__always)
private func be16(_ b: UnsafeRawBufferPointer, _ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }

@inline(__always)
private func be32(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt32 {
    UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
}

// MARK: - JPEG

/// A structural walk over a JPEG: marker segments, their lengths and the fields libjpeg would
/// reject with a fatal error, and the entropy-coded data between scans (skipped, not decoded).
/// Junk between segments is skipped as libjpeg and Pillow do. The walk classifies truncation
/// and damage before libjpeg runs and, without the C guards, keeps common damage away from
/// libjpeg's error exit.
enum JPEGMarkers {
    struct Frame {
        var header: ImageHeader
        var components: Int
        var progressive = false
    }

    private struct Component {
        var id: UInt8, h: Int, v: Int, table: Int
    }

    /// The frame header, reading only up to the first scan header.
    static func frameHeader(_ b: UnsafeRawBufferPointer) throws(ImageError) -> Frame {
        try walk(b, wholeFile: false)
    }

    /// The frame header, after checking every segment of the file up to EOI (or the end of the
    /// data inside entropy-coded data, which libjpeg then reports as a premature end).
    static func validate(_ b: UnsafeRawBufferPointer) throws(ImageError) -> Frame {
        try walk(b, wholeFile: true)
    }

    private static func walk(_ b: UnsafeRawBufferPointer, wholeFile: Bool) throws(ImageError) -> Frame {
        let n = b.count
        var i = 2  // after SOI
        var frame: Frame?
        var components: [Component] = []
        var progressive = false, arithmetic = false, sawScan = false
        var quantDefined = [Bool](repeating: false, count: 4)
        // [class (DC, AC), index]: usable = passes libjpeg's table build; defined = seen in a DHT.
        var huffmanUsable = [Bool](repeating: true, count: 8)
        var huffmanDefined = [Bool](repeating: false, count: 8)
        while true {
            while i < n && b[i] != 0xFF { i += 1 }   // junk (libjpeg warns, Pillow skips)
            while i < n && b[i] == 0xFF { i += 1 }   // fill bytes
            guard i < n else { throw .truncated }
            let marker = b[i]
            i += 1
            switch marker {
            case 0x00, 0x01, 0xD0...0xD7:
                continue  // stuffed byte / TEM / RSTn outside a scan: no payload
            case 0xD8:
                throw .corrupt("two SOI markers")
            case 0xD9:
                guard let frame, sawScan else { throw .corrupt("JPEG datastream contains no image") }
                return frame  // EOI; anything after it is ignored
            default:
                break
            }
            guard i + 2 <= n else { throw .truncated }
            let length = be16(b, i)
            guard length >= 2 else { throw .corrupt("bad marker length") }
            guard i + length <= n else { throw .truncated }
            let p = i + 2, payload = length - 2
            switch marker {
            case 0xC0...0xCF where marker != 0xC4 && marker != 0xC8 && marker != 0xCC:  // SOFn
                guard frame == nil else { throw .corrupt("two frame headers") }
                (frame, components) = try parseSOF(b, marker: marker, at: p, length: payload)
                progressive = [0xC2, 0xC6, 0xCA, 0xCE].contains(marker)
                arithmetic = marker >= 0xC9
            case 0xC4:  // DHT
                try checkDHT(b, at: p, length: payload, usable: &huffmanUsable, defined: &huffmanDefined)
            case 0xDB:  // DQT
                var q = p
                while q < p + payload {
                    let precision = Int(b[q] >> 4), table = Int(b[q] & 15)
                    guard precision <= 1, table < 4, q + 1 + 64 * (precision + 1) <= p + payload else { throw .corrupt("bad quantization table") }
                    quantDefined[table] = true
                    q += 1 + 64 * (precision + 1)
                }
            case 0xCC:  // DAC (libjpeg get_dac)
                guard payload % 2 == 0 else { throw .corrupt("bad arithmetic conditioning") }
                for k in stride(from: p, to: p + payload, by: 2) {
                    let index = b[k], value = b[k + 1]
                    guard index < 32, index >= 16 || value & 15 <= value >> 4 else { throw .corrupt("bad arithmetic conditioning") }
                }
            case 0xDD:  // DRI
                guard payload == 2 else { throw .corrupt("bad restart interval") }
            case 0xDA:  // SOS
                guard let frame else { throw .corrupt("scan before frame header") }
                try checkSOS(b, at: p, length: payload, components: components, progressive: progressive, arithmetic: arithmetic,
                             quantDefined: quantDefined, huffmanUsable: huffmanUsable, huffmanDefined: huffmanDefined)
                guard wholeFile else { return frame }
                sawScan = true
                i += length
                // Entropy-coded data: ends at a marker other than RSTn (0xFF00 is a stuffed 0xFF).
                while true {
                    while i < n && b[i] != 0xFF { i += 1 }
                    guard i + 1 < n else { return frame }  // ends inside the scan: libjpeg decides
                    let next = b[i + 1]
                    if next == 0x00 || (0xD0...0xD7).contains(next) { i += 2; continue }
                    if next == 0xFF { i += 1; continue }
                    break
                }
                continue
            case 0xDC, 0xE0...0xEF, 0xFE:
                break  // DNL, APPn, COM: skipped by length
            default:
                throw .corrupt("unsupported JPEG marker 0xFF" + String(marker, radix: 16, uppercase: true))  // libjpeg: JERR_UNKNOWN_MARKER
            }
            i += length
        }
    }

    private static func parseSOF(_ b: UnsafeRawBufferPointer, marker: UInt8, at p: Int, length: Int) throws(ImageError) -> (Frame, [Component]) {
        guard length >= 6 else { throw .corrupt("short frame header") }
        let precision = Int(b[p])
        let height = be16(b, p + 1), width = be16(b, p + 3)
        let count = Int(b[p + 5])
        guard length == 6 + 3 * count else { throw .corrupt("bad frame header length") }
        if [0xC3, 0xC7, 0xCB, 0xCF].contains(marker) { throw .unsupported("lossless JPEG") }
        if [0xC5, 0xC6, 0xCD, 0xCE].contains(marker) { throw .unsupported("hierarchical JPEG") }
        guard precision == 8 else { throw .unsupported("\(precision)-bit JPEG") }  // as Pillow's SOF()
        guard [1, 3, 4].contains(count) else { throw .unsupported("\(count)-component JPEG") }
        guard height > 0 else { throw .unsupported("JPEG height defined by DNL") }
        guard width > 0 else { throw .corrupt("zero JPEG width") }
        var components: [Component] = []
        for c in 0..<count {
            let sampling = b[p + 6 + 3 * c + 1], table = Int(b[p + 6 + 3 * c + 2])
            let h = Int(sampling >> 4), v = Int(sampling & 15)
            guard (1...4).contains(h), (1...4).contains(v), table < 4 else { throw .corrupt("bad component parameters") }
            components.append(Component(id: b[p + 6 + 3 * c], h: h, v: v, table: table))
        }
        // libjpeg-turbo upsamples by integral factors only ("Fractional sampling not implemented").
        let maxH = components.map(\.h).max()!, maxV = components.map(\.v).max()!
        guard components.allSatisfy({ maxH % $0.h == 0 && maxV % $0.v == 0 }) else { throw .unsupported("fractional chroma sampling") }
        return (Frame(header: ImageHeader(format: .jpeg, width: width, height: height), components: count,
                      progressive: [0xC2, 0xC6, 0xCA, 0xCE].contains(marker)), components)
    }

    /// Parses a DHT segment as libjpeg's get_dht does (fatal: bad index, more than 256 symbols,
    /// overrun) and records, per (class, index), whether the table would pass
    /// jpeg_make_d_derived_tbl (code space not over-subscribed, DC symbols ≤ 15). libjpeg only
    /// builds tables a scan uses, so an unusable table is an error only once a scan names it.
    private static func checkDHT(_ b: UnsafeRawBufferPointer, at p: Int, length: Int, usable: inout [Bool],
                                 defined: inout [Bool]) throws(ImageError) {
        var q = p
        while q < p + length {
            guard q + 17 <= p + length else { throw .corrupt("bad Huffman table") }
            let tableClass = Int(b[q] >> 4), index = Int(b[q] & 15)
            guard tableClass <= 1, index < 4 else { throw .corrupt("bad Huffman table index") }
            var total = 0, code = 0, first = 0, ok = true
            for l in 1...16 {
                let count = Int(b[q + l])
                total += count
                if first == 0 && count > 0 { first = l }
                if first > 0 {
                    code += count
                    if code >= 1 << l { ok = false }
                    code <<= 1
                }
            }
            guard total <= 256, q + 17 + total <= p + length else { throw .corrupt("bad Huffman table") }
            if tableClass == 0 {
                for k in 0..<total where b[q + 17 + k] > 15 { ok = false }
            }
            usable[tableClass * 4 + index] = ok
            defined[tableClass * 4 + index] = true
            q += 17 + total
        }
    }

    private static func checkSOS(_ b: UnsafeRawBufferPointer, at p: Int, length: Int, components: [Component], progressive: Bool,
                                 arithmetic: Bool, quantDefined: [Bool], huffmanUsable: [Bool], huffmanDefined: [Bool]) throws(ImageError) {
        guard length >= 1 else { throw .corrupt("bad scan header") }
        let count = Int(b[p])
        guard (1...4).contains(count), length == 4 + 2 * count else { throw .corrupt("bad scan header") }
        let ss = Int(b[p + 1 + 2 * count]), se = Int(b[p + 2 + 2 * count])
        let ah = Int(b[p + 3 + 2 * count] >> 4), al = Int(b[p + 3 + 2 * count] & 15)
        if progressive {
            // libjpeg start_pass_phuff_decoder / jdarith: refinement scans need Al = Ah − 1.
            guard ss <= se, se <= 63, al <= 13, ah == 0 || al == ah - 1, ss == 0 ? se == 0 : count == 1 else {
                throw .corrupt("bad progression parameters")
            }
        }
        // Huffman tables this scan makes libjpeg build.
        let usesDC = !arithmetic && (!progressive || (ss == 0 && ah == 0))
        let usesAC = !arithmetic && (!progressive || ss > 0)
        var blocks = 0
        for k in 0..<count {
            let id = b[p + 1 + 2 * k], tables = b[p + 2 + 2 * k]
            guard let c = components.first(where: { $0.id == id }) else { throw .corrupt("scan names an unknown component") }
            for earlier in 0..<k where b[p + 1 + 2 * earlier] == id { throw .corrupt("scan names a component twice") }
            let dc = Int(tables >> 4), ac = Int(tables & 15)
            guard arithmetic || (dc < 4 && ac < 4) else { throw .corrupt("bad scan table index") }
            if usesDC {  // undefined tables: sequential decoding substitutes the standard tables 0 and 1 only
                guard huffmanUsable[dc] else { throw .corrupt("bad Huffman table") }
                guard huffmanDefined[dc] || (!progressive && dc < 2) else { throw .corrupt("Huffman table not defined") }
            }
            if usesAC {
                guard huffmanUsable[4 + ac] else { throw .corrupt("bad Huffman table") }
                guard huffmanDefined[4 + ac] || (!progressive && ac < 2) else { throw .corrupt("Huffman table not defined") }
            }
            guard quantDefined[c.table] else { throw .corrupt("quantization table not defined") }
            blocks += c.h * c.v
        }
        guard count == 1 || blocks <= 10 else { throw .corrupt("sampling factors too large for an interleaved scan") }
    }
}

/// libjpeg-turbo with Pillow's decoder settings (JpegDecode.c): `jpeg_read_header`, the colour
/// space libjpeg detects (JFIF/Adobe), `out_color_space` from the layer count (L → GRAYSCALE,
/// RGB → RGB, CMYK → CMYK), default DCT (ISLOW), fancy upsampling on, no scaling, no draft.
private func decodeJPEG(_ bytes: UnsafeRawBufferPointer, frame: JPEGMarkers.Frame, limits: DecodeLimits) throws(ImageError) -> RGBImage {
    let d = try JPEGDecompressor(maxScans: limits.maxJPEGScans)
    try d.setSource(bytes)
    try d.readHeader()
    let cinfo = d.cinfo
    let width = Int(cinfo.pointee.image_width), height = Int(cinfo.pointee.image_height)
    let components = Int(cinfo.pointee.num_components)
    guard width == frame.header.width, height == frame.header.height, components == frame.components else {
        throw .corrupt("frame header disagrees with libjpeg")
    }
    switch components {
    case 1: cinfo.pointee.out_color_space = JCS_GRAYSCALE
    case 3: cinfo.pointee.out_color_space = JCS_RGB
    default: cinfo.pointee.out_color_space = JCS_CMYK  // libjpeg converts YCCK → CMYK itself
    }
    cinfo.pointee.dct_method = JDCT_ISLOW
    cinfo.pointee.do_fancy_upsampling = 1
    cinfo.pointee.scale_num = 1
    cinfo.pointee.scale_denom = 1
    try d.startDecompress()
    guard Int(cinfo.pointee.output_width) == width, Int(cinfo.pointee.output_height) == height,
          Int(cinfo.pointee.output_components) == components else {
        throw .corrupt("unexpected libjpeg output geometry")
    }

    // [H, W, components] as libjpeg delivers it.
    let raw = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: width * height * components)
    defer { raw.deallocate() }
    let rowPointer = UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>.allocate(capacity: 1)
    defer { rowPointer.deallocate() }
    var y = 0
    while y < height {
        rowPointer.pointee = raw.baseAddress! + y * width * components
        let got = try d.readScanlines(rowPointer, count: 1)
        guard got == 1 else { throw .corrupt("libjpeg returned no scanline") }
        y += 1
    }
    // With a memory source, running out of data is a warning (libjpeg inserts a fake EOI and
    // pads with grey). Pillow's suspending source raises "image file is truncated" instead,
    // also when only the EOI marker is missing (the entropy decoder reads ahead).
    if d.prematureEOF { throw .truncated }

    var out = [UInt8](repeating: 0, count: width * height * 3)
    out.withUnsafeMutableBufferPointer { o in
        let n = width * height
        switch components {
        case 1:  // Convert.c l2rgb: replicate
            for p in 0..<n {
                let v = raw[p]
                o[3 * p] = v; o[3 * p + 1] = v; o[3 * p + 2] = v
            }
        case 3:
            o.baseAddress!.update(from: raw.baseAddress!, count: 3 * n)
        default:
            // JpegImagePlugin reads every 4-layer JPEG with rawmode "CMYK;I" ("assume adobe
            // conventions"): the unpacker inverts all four bytes. Convert.c cmyk2rgb then gives
            // nk = 255 − K, out = CLIP8(nk − MULDIV255(C, nk)), MULDIV255(a, b) =
            // (t = a·b + 128, ((t >> 8) + t) >> 8).
            for p in 0..<n {
                let nk = Int(raw[4 * p + 3])  // 255 − (255 − k_raw)
                for ch in 0..<3 {
                    let c = 255 - Int(raw[4 * p + ch])
                    let t = c * nk + 128
                    let v = nk - (((t >> 8) + t) >> 8)
                    o[3 * p + ch] = UInt8(clamping: v)
                }
            }
        }
    }
    return RGBImage(width: width, height: height, pixels: out)
}

// MARK: - PNG

/// A walk over PNG chunks: structure, CRCs, IHDR validity, IEND present. Run before libpng so
/// that truncation and damage are classified here (and, without the C guards, never reach it).
enum PNGChunks {
    struct Info {
        var header: ImageHeader
        var bitDepth: Int
        var colorType: Int
        var interlaced: Bool
    }

    /// IHDR (signature already checked), without walking further.
    static func info(_ b: UnsafeRawBufferPointer) throws(ImageError) -> Info { try ihdr(b) }

    /// The size from IHDR (signature already checked), without walking further.
    static func header(_ b: UnsafeRawBufferPointer) throws(ImageError) -> ImageHeader {
        try ihdr(b).header
    }

    private static func ihdr(_ b: UnsafeRawBufferPointer) throws(ImageError) -> Info {
        guard b.count >= 8 + 8 + 13 else { throw .truncated }
        guard be32(b, 8) == 13, be32(b, 12) == 0x4948_4452 else { throw .corrupt("first chunk is not IHDR") }
        let width = be32(b, 16), height = be32(b, 20)
        let depth = Int(b[24]), type = Int(b[25])
        guard width > 0, height > 0, width <= 0x7FFF_FFFF, height <= 0x7FFF_FFFF else {
            throw .corrupt("bad PNG dimensions")
        }
        let allowed: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
        guard let depths = allowed[type], depths.contains(depth) else {
            throw .corrupt("bad PNG bit depth \(depth) for colour type \(type)")
        }
        guard b[26] == 0, b[27] == 0, b[28] <= 1 else { throw .corrupt("bad PNG compression, filter or interlace method") }
        return Info(header: ImageHeader(format: .png, width: Int(width), height: Int(height)),
                    bitDepth: depth, colorType: type, interlaced: b[28] == 1)
    }

    static func walk(_ b: UnsafeRawBufferPointer) throws(ImageError) -> Info {
        let info = try ihdr(b)
        var i = 8
        var sawIDAT = false, sawPLTE = false
        while true {
            guard i + 8 <= b.count else { throw .truncated }
            let length = Int(be32(b, i)), type = be32(b, i + 4)
            guard length <= 0x7FFF_FFFF else { throw .corrupt("bad PNG chunk length") }
            guard i + 12 + length <= b.count else { throw .truncated }
            let stored = be32(b, i + 8 + length)
            guard crc32(b, from: i + 4, count: 4 + length) == stored else {
                throw .corrupt("bad CRC in PNG chunk \(chunkName(type))")
            }
            switch type {
            case 0x4944_4154: sawIDAT = true  // IDAT
            case 0x504C_5445:  // PLTE
                sawPLTE = true
                if info.colorType == 3 {
                    guard length > 0, length % 3 == 0, length <= 3 * 256 else { throw .corrupt("bad PNG palette") }
                }
            case 0x4945_4E44:  // IEND
                guard sawIDAT else { throw .corrupt("PNG without image data") }
                guard info.colorType != 3 || sawPLTE else { throw .corrupt("palette PNG without PLTE") }
                return info
            default: break
            }
            i += 12 + length
        }
    }

    private static func chunkName(_ type: UInt32) -> String {
        String(decoding: [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: type >> $0) }, as: UTF8.self)
    }

    private static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ b: UnsafeRawBufferPointer, from start: Int, count: Int) -> UInt32 {
        crcTable.withUnsafeBufferPointer { table in
            var c: UInt32 = 0xFFFF_FFFF
            for k in start..<(start + count) {
                c = table[Int((c ^ UInt32(b[k])) & 0xFF)] ^ (c >> 8)
            }
            return c ^ 0xFFFF_FFFF
        }
    }
}

/// libpng for decompression, unfiltering and Adam7 de-interlacing only (plus `png_set_packing`
/// so sub-byte samples arrive one per byte, unscaled); everything else as Pillow does it.
private func decodePNG(_ bytes: UnsafeRawBufferPointer, info: PNGChunks.Info, limits: DecodeLimits,
                       nonZero: UnsafeMutablePointer<[UInt8]>? = nil) throws(ImageError) -> RGBImage {
    let side = UInt32(clamping: min(limits.maxPixels, 0x7FFF_FFFF))
    let r = try PNGReader(bytes, maxWidth: side, maxHeight: side)
    try r.readInfo()
    var w: png_uint_32 = 0, h: png_uint_32 = 0
    var depth: Int32 = 0, type: Int32 = 0, interlace: Int32 = 0, compression: Int32 = 0, filter: Int32 = 0
    guard png_get_IHDR(r.png, r.info, &w, &h, &depth, &type, &interlace, &compression, &filter) != 0,
          Int(w) == info.header.width, Int(h) == info.header.height,
          Int(depth) == info.bitDepth, Int(type) == info.colorType else {
        throw .corrupt("IHDR disagrees with libpng")
    }
    let width = Int(w), height = Int(h), bitDepth = Int(depth), colorType = Int(type)
    if bitDepth < 8 { png_set_packing(r.png) }
    _ = png_set_interlace_handling(r.png)
    try r.readUpdateInfo()

    let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colorType]!
    let bytesPerSample = bitDepth == 16 ? 2 : 1
    let rowBytes = width * channels * bytesPerSample
    guard png_get_rowbytes(r.png, r.info) == rowBytes else { throw .corrupt("unexpected libpng row size") }

    // [H, rowBytes]: samples as libpng delivers them (16-bit big-endian).
    let raw = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: height * rowBytes)
    defer { raw.deallocate() }
    raw.initialize(repeating: 0)
    let rows = UnsafeMutableBufferPointer<UnsafeMutablePointer<UInt8>?>.allocate(capacity: height)
    defer { rows.deallocate() }
    for y in 0..<height { rows[y] = raw.baseAddress! + y * rowBytes }
    try r.readImage(rows.baseAddress!)

    if let nonZero {
        // Stored values, not colours: a pixel is non-zero when any of its samples other than alpha is.
        let colour = colorType == 4 || colorType == 6 ? channels - 1 : channels
        let sampleBytes = colour * bytesPerSample, pixelBytes = channels * bytesPerSample
        var mask = [UInt8](repeating: 0, count: width * height)
        for y in 0..<height {
            let src = raw.baseAddress! + y * rowBytes
            for x in 0..<width {
                var any: UInt8 = 0
                for b in 0..<sampleBytes { any |= src[x * pixelBytes + b] }
                if any != 0 { mask[y * width + x] = 1 }
            }
        }
        nonZero.pointee = mask
        return RGBImage(width: 0, height: 0, pixels: [])  // the caller asked for the mask only
    }

    // Palette: 256 entries, unused ones black (Pillow's ImagingPaletteNew callocs the palette
    // and putpalette fills only the entries the PLTE chunk has).
    var palette = [UInt8](repeating: 0, count: 256 * 3)
    if colorType == 3 {
        var entries: UnsafeMutablePointer<png_color>?
        var count: Int32 = 0
        guard png_get_PLTE(r.png, r.info, &entries, &count) != 0, let entries else { throw .corrupt("palette PNG without PLTE") }
        for k in 0..<min(Int(count), 256) {
            palette[3 * k] = entries[k].red; palette[3 * k + 1] = entries[k].green; palette[3 * k + 2] = entries[k].blue
        }
    }

    var out = [UInt8](repeating: 0, count: width * height * 3)
    out.withUnsafeMutableBufferPointer { o in
        palette.withUnsafeBufferPointer { pal in
            for y in 0..<height {
                let src = raw.baseAddress! + y * rowBytes
                let dst = o.baseAddress! + y * width * 3
                convertPNGRow(dst, src, width: width, colorType: colorType, bitDepth: bitDepth, palette: pal)
            }
        }
    }
    return RGBImage(width: width, height: height, pixels: out)
}

/// One row of PNG samples → RGB, following Pillow's PngImagePlugin._MODES rawmodes, the
/// unpackers and `convert('RGB')`.
private func convertPNGRow(_ dst: UnsafeMutablePointer<UInt8>, _ src: UnsafePointer<UInt8>, width: Int, colorType: Int, bitDepth: Int,
                           palette: UnsafeBufferPointer<UInt8>) {
    @inline(__always) func put(_ x: Int, _ r: UInt8, _ g: UInt8, _ b: UInt8) {
        dst[3 * x] = r; dst[3 * x + 1] = g; dst[3 * x + 2] = b
    }
    switch (colorType, bitDepth) {
    case (0, 1):  // mode "1": bit2rgb, non-zero → 255
        for x in 0..<width { let v: UInt8 = src[x] != 0 ? 255 : 0; put(x, v, v, v) }
    case (0, 2):  // "L;2": value · 0x55
        for x in 0..<width { let v = src[x] &* 0x55; put(x, v, v, v) }
    case (0, 4):  // "L;4": value · 0x11
        for x in 0..<width { let v = src[x] &* 0x11; put(x, v, v, v) }
    case (0, 8):  // "L": l2rgb
        for x in 0..<width { let v = src[x]; put(x, v, v, v) }
    case (0, 16):
        // Mode "I;16" (rawmode "I;16B"); I;16 → RGB clips: v = (v16 > 255) ? 255 : v16.
        for x in 0..<width {
            let hi = src[2 * x], lo = src[2 * x + 1]
            let v: UInt8 = hi == 0 ? lo : 255
            put(x, v, v, v)
        }
    case (2, 8):
        dst.update(from: src, count: 3 * width)
    case (2, 16):  // "RGB;16B": most significant byte of each sample
        for x in 0..<width { put(x, src[6 * x], src[6 * x + 2], src[6 * x + 4]) }
    case (3, _):  // "P", "P;1/2/4": palette lookup (p2rgb)
        for x in 0..<width {
            let i = 3 * Int(src[x])
            put(x, palette[i], palette[i + 1], palette[i + 2])
        }
    case (4, 8):  // "LA": la2rgb, alpha dropped
        for x in 0..<width { let v = src[2 * x]; put(x, v, v, v) }
    case (4, 16):  // mode "RGBA" via "LA;16B": MSB of grey replicated, alpha dropped
        for x in 0..<width { let v = src[4 * x]; put(x, v, v, v) }
    case (6, 8):  // "RGBA": rgba2rgb, alpha dropped
        for x in 0..<width { put(x, src[4 * x], src[4 * x + 1], src[4 * x + 2]) }
    case (6, 16):  // "RGBA;16B": MSBs, alpha dropped
        for x in 0..<width { put(x, src[8 * x], src[8 * x + 2], src[8 * x + 4]) }
    default:
        preconditionFailure("PNG colour type/bit depth validated by PNGChunks")
    }
}
