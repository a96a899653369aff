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
