/// Client input quoted back in an error message (a part name, a query name, a JSON key) is cut to a small fixed
/// length, so that a problem body stays small whatever was sent (issue #16: a 1 MB JSON key made a 2 MB 422).
package enum Echo {
    /// Unicode scalars kept before the ellipsis.
    package static let maxScalars = 64
    /// The longest `detail` (or string member) a problem body carries, in scalars.
    package static let maxDetailScalars = 1024

    /// `text` cut to `limit` Unicode scalars, with "…" when something was cut. Reads at most `limit + 1` scalars,
    /// so quoting a megabyte costs nothing.
    package static func truncate(_ text: some StringProtocol, limit: Int = maxScalars) -> String {
        var kept = String.UnicodeScalarView()
        var it = text.unicodeScalars.makeIterator()
        var n = 0
        while let s = it.next() {
            if n == limit { return String(kept) + "…" }
            kept.append(s)
            n += 1
        }
        return String(kept)
    }
}

extension StringProtocol {
    /// `Echo.truncate(self)`.
    package var truncatedForEcho: String { Echo.truncate(self) }
}
