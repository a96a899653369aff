// zlib for Content-Encoding: gzip (Sources/Gzip). deflateInit2/inflateInit2 are macros over the *_ functions
// (they pass the library version and the stream size); Swift cannot call macros, so they are wrapped here.
#include <zlib.h>

/// A deflate stream writing the gzip wrapper (RFC 1952): window bits 15 + 16.
static inline int spc_deflate_init_gzip(z_streamp stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

/// An inflate stream reading the gzip wrapper only.
static inline int spc_inflate_init_gzip(z_streamp stream) {
    return inflateInit2(stream, 15 + 16);
}

/// An inflate stream reading raw deflate data (no wrapper): ZIP entries compressed with method 8.
static inline int spc_inflate_init_raw(z_streamp stream) {
    return inflateInit2(stream, -15);
}
