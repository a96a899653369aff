// CImageShims: setjmp/longjmp error guards for libjpeg(-turbo) and libpng.
//
// Both libraries report fatal errors by calling a handler that must not return; the only
// portable way out is longjmp. Swift cannot call setjmp, and a longjmp across Swift frames is
// undefined, so every library call that can raise an error is wrapped here: each wrapper calls
// setjmp in its own C frame, so an error unwinds only C frames (the library's) back into the
// wrapper, which then returns -1. Swift drives the decode step by step through these wrappers.
//
// The header exposes only opaque handles and void pointers, so it does not pull jpeglib.h or
// png.h into this module (Swift imports those through CJPEG and CPNG; declaring the same C types
// in two Clang modules would give two distinct Swift types).
//
// Status convention: 0 = success, -1 = the library raised an error (see *_message).
#ifndef IMAGE_SHIMS_H
#define IMAGE_SHIMS_H

#include <stddef.h>
#include <stdint.h>

// ---- JPEG decompression -------------------------------------------------------------------

typedef struct ims_jpeg ims_jpeg;

/// Allocates a decompressor (jpeg_create_decompress with a longjmp error manager, silent
/// output_message, warning bookkeeping). NULL if allocation or creation failed.
ims_jpeg *ims_jpeg_create(void);
/// jpeg_destroy_decompress and free. Accepts NULL.
void ims_jpeg_destroy(ims_jpeg *ctx);
/// The `struct jpeg_decompress_struct *` owned by ctx, for reading and setting parameters.
void *ims_jpeg_cinfo(ims_jpeg *ctx);
/// Aborts decoding (via the progress monitor) once more than `max_scans` scans have started.
/// 0 disables the limit (the default).
void ims_jpeg_set_scan_limit(ims_jpeg *ctx, int max_scans);
/// jpeg_mem_src. The bytes must outlive the decompressor.
int ims_jpeg_mem_src(ims_jpeg *ctx, const unsigned char *data, unsigned long size);
/// jpeg_read_header(cinfo, TRUE).
int ims_jpeg_read_header(ims_jpeg *ctx);
/// jpeg_start_decompress.
int ims_jpeg_start_decompress(ims_jpeg *ctx);
/// jpeg_read_scanlines; `*rows_read` receives the count.
int ims_jpeg_read_scanlines(ims_jpeg *ctx, unsigned char **rows, unsigned int max_rows,
                            unsigned int *rows_read);
/// Number of warnings libjpeg emitted so far.
long ims_jpeg_warning_count(const ims_jpeg *ctx);
/// Non-zero once libjpeg warned JWRN_JPEG_EOF (the data ended early and a fake EOI was
/// inserted); this is how a truncated file shows up with a memory source.
int ims_jpeg_premature_eof(const ims_jpeg *ctx);
/// Message of the last fatal error ("" if none).
const char *ims_jpeg_message(const ims_jpeg *ctx);

// ---- PNG decompression --------------------------------------------------------------------

typedef struct ims_png_reader ims_png_reader;

/// Creates a libpng read struct and info struct reading from memory (the bytes must outlive the
/// reader), with user limits on width and height, warnings silenced, and an error handler
/// that longjmps. NULL on failure.
ims_png_reader *ims_png_reader_create(const unsigned char *data, size_t size,
                                      uint32_t max_width, uint32_t max_height);
/// png_destroy_read_struct and free. Accepts NULL.
void ims_png_reader_destroy(ims_png_reader *r);
/// The `png_structp` (pointer to png_struct).
void *ims_png_reader_png(ims_png_reader *r);
/// The `png_infop` (pointer to png_info).
void *ims_png_reader_info(ims_png_reader *r);
/// png_read_info.
int ims_png_read_info(ims_png_reader *r);
/// png_read_update_info.
int ims_png_read_update_info(ims_png_reader *r);
/// png_read_image (all passes of an interlaced image) into `height` row pointers.
int ims_png_read_image(ims_png_reader *r, unsigned char **rows);
/// Non-zero once the reader was asked for bytes past the end of the data.
int ims_png_reader_truncated(const ims_png_reader *r);
/// Message of the last fatal error ("" if none).
const char *ims_png_reader_message(const ims_png_reader *r);

#endif  // IMAGE_SHIMS_H
