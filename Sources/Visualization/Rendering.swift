import Imaging

/// Pictures people would rather look at than read: sphere maps coloured by their coordinates (as in the
/// paper's Figure 4) and matches drawn between two images.
package enum Rendering {
    /// Each pixel of the original image takes the colour ((s + 1)/2 · 255) of the sphere vector of the patch it
    /// falls in; pixels outside `box` (x1, y1, x2, y2, original pixels) are black.
    package static func sphereMap(sphere: UnsafePointer<Float>, transform t: KeypointTransform, box: (Int, Int, Int, Int)?) -> RGBImage {
        var img = RGBImage(width: t.imageWidth, height: t.imageHeight)
        let g = t.gridSize
        img.pixels.withUnsafeMutableBufferPointer { px in
            for y in 0..<t.imageHeight {
                for x in 0..<t.imageWidth {
                    if let b = box, x < b.0 || y < b.1 || x >= b.2 || y >= b.3 { continue }
                    let (lx, ly) = t.toLetterbox(x: Float(x) + 0.5, y: Float(y) + 0.5)
                    let col = min(max(Int(lx / 14), 0), g - 1), row = min(max(Int(ly / 14), 0), g - 1)
                    let s = sphere + (row * g + col) * 3
                    let o = (y * t.imageWidth + x) * 3
                    for c in 0..<3 { px[o + c] = UInt8(max(0, min(255, ((s[c] + 1) / 2 * 255).rounded()))) }
                }
            }
        }
        return img
    }

    /// Source and target side by side (heights padded to the taller), a line and two dots per match, coloured
    /// by score from red (low) to green (high).
    package static func matches(source: RGBImage, target: RGBImage, matches: [(sx: Double, sy: Double, tx: Double, ty: Double, score: Float)]) -> RGBImage {
        let w = source.width + target.width, h = max(source.height, target.height)
        var canvas = RGBImage(width: w, height: h)
        blit(source, into: &canvas, x0: 0)
        blit(target, into: &canvas, x0: source.width)
        let scores = matches.map(\.score)
        let lo = scores.min() ?? 0, hi = scores.max() ?? 1
        for m in matches {
            let u = hi > lo ? (m.score - lo) / (hi - lo) : 1
            let colour = (UInt8(255 * (1 - u)), UInt8(255 * u), UInt8(60))
            let a = (Int(m.sx.rounded()), Int(m.sy.rounded())), b = (Int(m.tx.rounded()) + source.width, Int(m.ty.rounded()))
            line(&canvas, a, b, colour)
            dot(&canvas, a, colour)
            dot(&canvas, b, colour)
        }
        return canvas
    }

    static func blit(_ src: RGBImage, into dst: inout RGBImage, x0: Int) {
        for y in 0..<src.height {
            let s = y * src.width * 3, d = (y * dst.width + x0) * 3
            dst.pixels.replaceSubrange(d..<(d + src.width * 3), with: src.pixels[s..<(s + src.width * 3)])
        }
    }

    static func put(_ img: inout RGBImage, _ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < img.width, y < img.height else { return }
        let o = (y * img.width + x) * 3
        img.pixels[o] = c.0; img.pixels[o + 1] = c.1; img.pixels[o + 2] = c.2
    }

    /// Bresenham.
    static func line(_ img: inout RGBImage, _ a: (Int, Int), _ b: (Int, Int), _ c: (UInt8, UInt8, UInt8)) {
        var (x, y) = a
        let dx = abs(b.0 - a.0), dy = -abs(b.1 - a.1), sx = a.0 < b.0 ? 1 : -1, sy = a.1 < b.1 ? 1 : -1
        var err = dx + dy
        while true {
            put(&img, x, y, c)
            if x == b.0 && y == b.1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    static func dot(_ img: inout RGBImage, _ p: (Int, Int), _ c: (UInt8, UInt8, UInt8)) {
        for dy in -2...2 { for dx in -2...2 where dx * dx + dy * dy <= 5 { put(&img, p.0 + dx, p.1 + dy, c) } }
    }
}
