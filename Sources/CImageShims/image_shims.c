// setjmp/longjmp error guards for libjpeg(-turbo) and libpng. See include/image_shims.h.
//
// Each guarded wrapper follows the same shape:
//
//     if (setjmp(ctx->jump)) return -1;   // an error handler longjmp'ed back here
//     library_call(...);
//     return 0;
//
// The jump buffer is re-armed by every wrapper, so a longjmp always lands in the wrapper that
// is currently on the stack, and only the library's own C frames are unwound.

#include "image_shims.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

// ---- JPEG ---------------------------------------------------------------------------------

struct ims_jpeg {
    struct jpeg_decompress_struct cinfo;  // first member: a j_common_ptr maps back to ctx
    struct jpeg_error_mgr err;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    int created;          // jpeg_create_decompress succeeded
    int premature_eof;    // JWRN_JPEG_EOF seen
    int max_scans;        // 0 = unlimited
    char message[JMSG_LENGTH_MAX];
};

static void ims_jpeg_error_exit(j_common_ptr cinfo) {
    struct ims_jpeg *ctx = (struct ims_jpeg *)cinfo;
    (*cinfo->err->format_message)(cinfo, ctx->message);
    longjmp(ctx->jump, 1);
}

static void ims_jpeg_output_message(j_common_ptr cinfo) {
    (void)cinfo;  // silent: no stderr output from a library
}

static void ims_jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
    struct ims_jpeg *ctx = (struct ims_jpeg *)cinfo;
    if (msg_level < 0) {  // warning
        cinfo->err->num_warnings++;
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
            ctx->premature_eof = 1;
        }
    }
}

static void ims_jpeg_progress(j_common_ptr cinfo) {
    struct ims_jpeg *ctx = (struct ims_jpeg *)cinfo;
    if (cinfo->is_decompressor && ctx->max_scans > 0) {
        j_decompress_ptr d = (j_decompress_ptr)cinfo;
        if (d->input_scan_number > ctx->max_scans) {
            snprintf(ctx->message, sizeof ctx->message,
                     "JPEG has more than %d scans", ctx->max_scans);
            longjmp(ctx->jump, 1);
        }
    }
}

ims_jpeg *ims_jpeg_create(void) {
    struct ims_jpeg *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        return NULL;
    }
    ctx->cinfo.err = jpeg_std_error(&ctx->err);
    ctx->err.error_exit = ims_jpeg_error_exit;
    ctx->err.output_message = ims_jpeg_output_message;
    ctx->err.emit_message = ims_jpeg_emit_message;
    if (setjmp(ctx->jump)) {
        free(ctx);
        return NULL;
    }
    jpeg_create_decompress(&ctx->cinfo);
    ctx->created = 1;
    ctx->progress.progress_monitor = ims_jpeg_progress;
    ctx->cinfo.progress = &ctx->progress;
    return ctx;
}

void ims_jpeg_destroy(ims_jpeg *ctx) {
    if (ctx == NULL) {
        return;
    }
    if (ctx->created) {
        // jpeg_destroy cannot raise errors (it only frees pools).
        jpeg_destroy_decompress(&ctx->cinfo);
    }
    free(ctx);
}

void *ims_jpeg_cinfo(ims_jpeg *ctx) { return &ctx->cinfo; }

void ims_jpeg_set_scan_limit(ims_jpeg *ctx, int max_scans) { ctx->max_scans = max_scans; }

int ims_jpeg_mem_src(ims_jpeg *ctx, const unsigned char *data, unsigned long size) {
    if (setjmp(ctx->jump)) {
        return -1;
    }
    jpeg_mem_src(&ctx->cinfo, data, size);
    return 0;
}

int ims_jpeg_read_header(ims_jpeg *ctx) {
    if (setjmp(ctx->jump)) {
        return -1;
    }
    (void)jpeg_read_header(&ctx->cinfo, TRUE);
    return 0;
}

int ims_jpeg_start_decompress(ims_jpeg *ctx) {
    if (setjmp(ctx->jump)) {
        return -1;
    }
    (void)jpeg_start_decompress(&ctx->cinfo);
    return 0;
}

int ims_jpeg_read_scanlines(ims_jpeg *ctx, unsigned char **rows, unsigned int max_rows,
                            unsigned int *rows_read) {
    *rows_read = 0;
    if (setjmp(ctx->jump)) {
        return -1;
    }
    *rows_read = jpeg_read_scanlines(&ctx->cinfo, rows, max_rows);
    return 0;
}

long ims_jpeg_warning_count(const ims_jpeg *ctx) { return ctx->err.num_warnings; }

int ims_jpeg_premature_eof(const ims_jpeg *ctx) { return ctx->premature_eof; }

const char *ims_jpeg_message(const ims_jpeg *ctx) { return ctx->message; }

// ---- PNG ----------------------------------------------------------------------------------

struct ims_png_reader {
    png_structp png;
    png_infop info;
    const unsigned char *data;
    size_t size;
    size_t offset;
    int truncated;
    jmp_buf jump;
    char message[256];
};

static void ims_png_error(png_structp png, png_const_charp text) {
    struct ims_png_reader *r = (struct ims_png_reader *)png_get_error_ptr(png);
    snprintf(r->message, sizeof r->message, "%s", text != NULL ? text : "libpng error");
    longjmp(r->jump, 1);
}

static void ims_png_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;  // silent
}

static void ims_png_read(png_structp png, png_bytep out, size_t count) {
    struct ims_png_reader *r = (struct ims_png_reader *)png_get_io_ptr(png);
    if (count > r->size - r->offset) {
        r->truncated = 1;
        png_error(png, "unexpected end of PNG data");
    }
    memcpy(out, r->data + r->offset, count);
    r->offset += count;
}

ims_png_reader *ims_png_reader_create(const unsigned char *data, size_t size,
                                      uint32_t max_width, uint32_t max_height) {
    struct ims_png_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->data = data;
    r->size = size;
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, ims_png_error, ims_png_warning);
    if (r->png == NULL) {
        free(r);
        return NULL;
    }
    if (setjmp(r->jump)) {
        png_destroy_read_struct(&r->png, &r->info, NULL);
        free(r);
        return NULL;
    }
    r->info = png_create_info_struct(r->png);
    if (r->info == NULL) {
        png_destroy_read_struct(&r->png, NULL, NULL);
        free(r);
        return NULL;
    }
    png_set_read_fn(r->png, r, ims_png_read);
    png_set_user_limits(r->png, max_width, max_height);
    return r;
}

void ims_png_reader_destroy(ims_png_reader *r) {
    if (r == NULL) {
        return;
    }
    png_destroy_read_struct(&r->png, &r->info, NULL);
    free(r);
}

void *ims_png_reader_png(ims_png_reader *r) { return r->png; }

void *ims_png_reader_info(ims_png_reader *r) { return r->info; }

int ims_png_read_info(ims_png_reader *r) {
    if (setjmp(r->jump)) {
        return -1;
    }
    png_read_info(r->png, r->info);
    return 0;
}

int ims_png_read_update_info(ims_png_reader *r) {
    if (setjmp(r->jump)) {
        return -1;
    }
    png_read_update_info(r->png, r->info);
    return 0;
}

int ims_png_read_image(ims_png_reader *r, unsigned char **rows) {
    if (setjmp(r->jump)) {
        return -1;
    }
    png_read_image(r->png, rows);
    return 0;
}

int ims_png_reader_truncated(const ims_png_reader *r) { return r->truncated; }

const char *ims_png_reader_message(const ims_png_reader *r) { return r->message; }
