import Imaging

/// Pictures people would rather look at than read: sphere maps coloured by their coordinates (as in the
/// paper's Figure 4) and matches drawn between two images.
package enum Rendering {
    /// Each pixel of the original image takes the colour ((s + 1)/2 · 255) of the sphere vector of the patch it
    /// falls in; pixels outside `box` (x1, y1, x2, y2, original pixels) are black. With `scale` < 1 the picture is
    /// drawn at that fraction of the original size (aspect kept), each pixel sampled at its centre in original
    /// coordinates: the cost is the drawn size, not the original one.
    package static func sphereMap(sphere: UnsafePointer<Float>, transform t: KeypointTransform, box: (Int, Int, Int, Int)?,
                                  scale: Double = 1) -> RGBImage {
        let f = min(1, max(scale, 1e-9))
        let width = max(1, Int((Double(t.imageWidth) * f).rounded())), height = max(1, Int((Double(t.imageHeight) * f).rounded()))
        let fx = Double(t.imageWidth) / Double(width), fy = Double(t.imageHeight) / Double(height)
        var img = RGBImage(width: width, height: height)
        let g = t.gridSize
        img.pixels.withUnsafeMutableBufferPointer { px in
            for y in 0..<height {
                for x in 0..<width {
                    // At scale 1, exactly the original pixel centres (x + 0.5, y + 0.5).
                    let ox = (Double(x) + 0.5) * fx, oy = (Double(y) + 0.5) * fy
                    if let b = box, ox < Double(b.0) || oy < Double(b.1) || ox >= Double(b.2) || oy >= Double(b.3) { continue }
                    let (lx, ly) = t.toLetterbox(x: Float(ox), y: Float(oy))
                    let col = min(max(Int(lx / 14), 0), g - 1), row = min(max(Int(ly / 14), 0), g - 1)
                    let s = sphere + (row * g + col) * 3
                    let o = (y * width + x) * 3
                    for c in 0..<3 { px[o + c] = UInt8(max(0, min(255, ((s[c] + 1) / 2 * 255).rounded()))) }
                }
            }
        }
        return img
    }

    /// Source and target side by side (heights padded to the taller), a line and two dots per match, coloured
    /// by score from red (low) to green (high). Match coordinates are in original pixels; `scale` is the factor
    /// the two images were drawn at (both the same).
    package static func matches(source: RGBImage, target: RGBImage, matches: [(sx: Double, sy: Double, tx: Double, ty: Double, score: Float)],
                                scale: Double = 1) -> RGBImage {
        let w = source.width + target.width, h = max(source.height, target.height)
        var canvas = RGBImage(width: w, height: h)
        blit(source, into: &canvas, x0: 0)
        blit(target, into: &canvas, x0: source.width)
        let scores = matches.map(\.score)
        let lo = scores.min() ?? 0, hi = scores.max() ?? 1
        for m in matches {
            let u = hi > lo ? (m.score - lo) / (hi - lo) : 1
            let colour = (UInt8(255 * (1 - u)), UInt8(255 * u), UInt8(60))
            let a = (Int((m.sx * scale).rounded()), Int((m.sy * scale).rounded()))
            let b = (Int((m.tx * scale).rounded()) + source.width, Int((m.ty * scale).rounded()))
            drawLine(&canvas, from: a, to: b, colour)
            drawDot(&canvas, a, colour)
            drawDot(&canvas, b, colour)
        }
        return canvas
    }

    /// `image` reduced to `width × height` (each no larger than the original) by averaging the block of source
    /// pixels each output pixel covers. For drawings: one read per source pixel and one row of accumulators, where
    /// LANCZOS (exact, for the model) would take ~40 taps per pixel and pass at a 6× reduction.
    package static func downscale(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        precondition(width >= 1 && height >= 1 && width <= image.width && height <= image.height, "downscale only")
        if width == image.width && height == image.height { return image }
        let w = image.width, h = image.height
        // Source column x goes to output column x·width/w: contiguous blocks, none empty (width ≤ w).
        var column = [Int](repeating: 0, count: w), blockWidth = [Int](repeating: 0, count: width)
        for x in 0..<w { column[x] = x * width / w; blockWidth[column[x]] += 1 }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        var acc = [Int](repeating: 0, count: width * 3)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                acc.withUnsafeMutableBufferPointer { sum in
                    for oy in 0..<height {
                        let y0 = oy * h / height, y1 = (oy + 1) * h / height  // ≥ y0 + 1 since height ≤ h
                        for i in 0..<(width * 3) { sum[i] = 0 }
                        for y in y0..<y1 {
                            let row = src.baseAddress! + y * w * 3
                            for x in 0..<w {
                                let o = column[x] * 3, i = x * 3
                                sum[o] += Int(row[i]); sum[o + 1] += Int(row[i + 1]); sum[o + 2] += Int(row[i + 2])
                            }
                        }
                        let rows = y1 - y0
                        for ox in 0..<width {
                            let n = rows * blockWidth[ox]
                            for c in 0..<3 { dst[(oy * width + ox) * 3 + c] = UInt8((sum[ox * 3 + c] + n / 2) / n) }
                        }
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
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
    package static func drawLine(_ img: inout RGBImage, from a: (Int, Int), to b: (Int, Int), _ c: (UInt8, UInt8, UInt8)) {
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

    package static func drawDot(_ img: inout RGBImage, _ p: (Int, Int), _ c: (UInt8, UInt8, UInt8)) {
        for dy in -2...2 { for dx in -2...2 where dx * dx + dy * dy <= 5 { put(&img, p.0 + dx, p.1 + dy, c) } }
    }
}

extension Rendering {
    /// Marks a point with a small square outline (ground truth in evaluation plots).
    package static func square(_ img: inout RGBImage, _ p: (Int, Int), _ c: (UInt8, UInt8, UInt8)) {
        for d in -3...3 {
            put(&img, p.0 + d, p.1 - 3, c); put(&img, p.0 + d, p.1 + 3, c)
            put(&img, p.0 - 3, p.1 + d, c); put(&img, p.0 + 3, p.1 + d, c)
        }
    }

    /// Two images side by side (heights padded to the taller).
    package static func sideBySide(_ a: RGBImage, _ b: RGBImage) -> RGBImage {
        var canvas = RGBImage(width: a.width + b.width, height: max(a.height, b.height))
        blit(a, into: &canvas, x0: 0)
        blit(b, into: &canvas, x0: a.width)
        return canvas
    }


    /// A grouped bar chart as SVG: one group per category, one bar per series, values in [0, 1].
    package static func barChartSVG(title: String, categories: [String], series: [(name: String, values: [Double?])]) -> String {
        let colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
        let groupWidth = 16 * max(1, series.count) + 14, left = 50, top = 40, plotH = 240
        let width = left + groupWidth * categories.count + 160, height = top + plotH + 110
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"\(left)\" y=\"20\" font-size=\"14\">\(escape(title))</text>\n"
        for tick in stride(from: 0, through: 100, by: 20) {
            let y = top + plotH - plotH * tick / 100
            s += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + groupWidth * categories.count)\" y2=\"\(y)\" stroke=\"#ddd\"/>"
            s += "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(tick)</text>\n"
        }
        for (ci, c) in categories.enumerated() {
            let x0 = left + ci * groupWidth + 7
            for (si, ser) in series.enumerated() {
                guard let v = ser.values[ci] else { continue }
                let h = Int((Double(plotH) * max(0, min(1, v))).rounded())
                s += "<rect x=\"\(x0 + si * 16)\" y=\"\(top + plotH - h)\" width=\"14\" height=\"\(h)\" fill=\"\(colours[si % colours.count])\"><title>\(escape(ser.name)) \(escape(c)): \(String(format: "%.1f", 100 * v))</title></rect>\n"
            }
            let lx = x0 + groupWidth / 2 - 7
            s += "<text x=\"\(lx)\" y=\"\(top + plotH + 12)\" transform=\"rotate(45 \(lx) \(top + plotH + 12))\">\(escape(c))</text>\n"
        }
        for (si, ser) in series.enumerated() {
            let y = top + 10 + 18 * si, x = left + groupWidth * categories.count + 20
            s += "<rect x=\"\(x)\" y=\"\(y - 10)\" width=\"12\" height=\"12\" fill=\"\(colours[si % colours.count])\"/><text x=\"\(x + 18)\" y=\"\(y)\">\(escape(ser.name))</text>\n"
        }
        return s + "</svg>\n"
    }

    static func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}

extension Rendering {
    /// A line chart as a picture (no text: the caller names the series and colours elsewhere): one line per series
    /// over x = 1…n, y scaled to [0, max] of all finite values, light grid at quarters. Colours in `lineColours` order.
    package static func lineChart(series: [[Double]], width: Int = 640, height: Int = 360) -> RGBImage {
        var img = RGBImage(width: width, height: height, pixels: [UInt8](repeating: 255, count: width * height * 3))
        let left = 40, right = 20, top = 20, bottom = 30
        let pw = width - left - right, ph = height - top - bottom
        let n = series.map(\.count).max() ?? 0
        let top1 = series.flatMap { $0 }.filter(\.isFinite).max() ?? 1
        let ymax = top1 > 0 ? top1 : 1
        for q in 0...4 {
            let y = top + ph - ph * q / 4
            drawLine(&img, from: (left, y), to: (left + pw, y), q == 0 ? (0, 0, 0) : (220, 220, 220))
        }
        drawLine(&img, from: (left, top), to: (left, top + ph), (0, 0, 0))
        func point(_ i: Int, _ v: Double) -> (Int, Int) {
            let x = left + (n > 1 ? pw * i / (n - 1) : pw / 2)
            return (x, top + ph - Int((Double(ph) * max(0, min(1, v / ymax))).rounded()))
        }
        for (s, values) in series.enumerated() {
            let c = lineColours[s % lineColours.count]
            var prev: (Int, Int)?
            for (i, v) in values.enumerated() {
                guard v.isFinite else { prev = nil; continue }
                let p = point(i, v)
                if let q = prev { drawLine(&img, from: q, to: p, c) } else { drawDot(&img, p, c) }
                prev = p
            }
        }
        return img
    }

    /// Series colours of `lineChart`: blue, orange, green, red, purple, brown.
    package static let lineColours: [(UInt8, UInt8, UInt8)] = [(76, 114, 176), (221, 132, 82), (85, 168, 104), (196, 78, 82), (129, 114, 179), (147, 120, 96)]
}

extension Rendering {
    /// Colour k of n: evenly spaced hues at full saturation, so that neighbouring points differ.
    package static func pointColour(_ k: Int, of n: Int) -> (UInt8, UInt8, UInt8) {
        let h = Double(k % max(n, 1)) / Double(max(n, 1)) * 6, x = 1 - abs(h.truncatingRemainder(dividingBy: 2) - 1)
        let (r, g, b): (Double, Double, Double) = switch Int(h) {
        case 0: (1, x, 0)
        case 1: (x, 1, 0)
        case 2: (0, 1, x)
        case 3: (0, x, 1)
        case 4: (x, 0, 1)
        default: (1, 0, x)
        }
        return (UInt8(r * 255), UInt8(g * 255), UInt8(b * 255))
    }

    /// A contact sheet (issue #14, `spherecorr-train transfer --plots`): the images in rows of `columns`, each scaled
    /// down to at most `tile` pixels on its longer side; point k (original pixels of its image) in colour k of n on
    /// every image, a dot where it is visible and a square outline where the visibility check says it is not.
    package static func contactSheet(_ tiles: [(image: RGBImage, points: [(x: Double, y: Double, visible: Bool)])], tile: Int = 256,
                                     columns: Int = 4) -> RGBImage {
        let gap = 6, cols = max(1, min(columns, tiles.count)), rows = (tiles.count + cols - 1) / cols
        var canvas = RGBImage(width: cols * (tile + gap) + gap, height: rows * (tile + gap) + gap)
        for (i, t) in tiles.enumerated() {
            let f = min(1, Double(tile) / Double(max(t.image.width, t.image.height, 1)))
            let w = max(1, Int((Double(t.image.width) * f).rounded())), h = max(1, Int((Double(t.image.height) * f).rounded()))
            let small = downscale(t.image, width: min(w, t.image.width), height: min(h, t.image.height))
            let x0 = gap + (i % cols) * (tile + gap), y0 = gap + (i / cols) * (tile + gap)
            for y in 0..<small.height {
                let s = y * small.width * 3, d = ((y0 + y) * canvas.width + x0) * 3
                canvas.pixels.replaceSubrange(d..<(d + small.width * 3), with: small.pixels[s..<(s + small.width * 3)])
            }
            let sx = Double(small.width) / Double(t.image.width), sy = Double(small.height) / Double(t.image.height)
            for (k, p) in t.points.enumerated() {
                let c = pointColour(k, of: t.points.count)
                let q = (x0 + Int((p.x * sx).rounded()), y0 + Int((p.y * sy).rounded()))
                if p.visible { drawDot(&canvas, q, c) } else { square(&canvas, q, c) }
            }
        }
        return canvas
    }
}
