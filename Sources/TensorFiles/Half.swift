/// IEEE binary16 → Float (exact; subnormals, inf and NaN preserved).
@inline(__always)
package func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31
    let exp = UInt32(h >> 10) & 0x1f
    let mant = UInt32(h) & 0x3ff
    if exp == 0 {
        // zero or subnormal: mant · 2^-24
        let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign == 0 ? v : -v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
}

/// bfloat16 → Float: the upper half of a binary32.
@inline(__always)
package func bfloat16ToFloat(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

/// Float → IEEE binary16, rounded to nearest even (overflow → ±inf, NaN kept NaN), as torch's `.half()`.
@inline(__always)
package func floatToHalf(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    let sign = UInt16((x >> 16) & 0x8000)
    let exp = Int((x >> 23) & 0xff), mant = x & 0x7f_ffff
    if exp == 0xff { return sign | 0x7c00 | (mant != 0 ? 0x200 : 0) }
    let e = exp - 127 + 15
    if e >= 31 { return sign | 0x7c00 }
    if e <= 0 {
        // Subnormal half (or zero): shift the full significand, round half to even.
        if e < -10 { return sign }
        let m = mant | 0x80_0000
        let shift = UInt32(14 - e)
        var h = m >> shift
        let rem = m & ((1 << shift) - 1), half = UInt32(1) << (shift - 1)
        if rem > half || (rem == half && h & 1 == 1) { h += 1 }
        return sign | UInt16(h)
    }
    var h = UInt32(e) << 10 | (mant >> 13)
    let rem = mant & 0x1fff
    if rem > 0x1000 || (rem == 0x1000 && h & 1 == 1) { h += 1 }  // a carry into the exponent is correct (up to inf)
    return sign | UInt16(h)
}

/// Float → bfloat16, rounded to nearest even (NaN kept NaN), as torch's `.bfloat16()`.
@inline(__always)
package func floatToBFloat16(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    if f.isNaN { return UInt16(x >> 16) | 0x40 }
    let rounded = x &+ 0x7fff &+ ((x >> 16) & 1)
    return UInt16(rounded >> 16)
}
