/*
 * PNG files through libpng (segloss/png.h). libpng reports errors by
 * longjmp to the setjmp point of each function; every resource that must
 * be released there is held in a volatile-qualified variable or a struct
 * that lives outside the jump, so its value is defined after the jump.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fileio.h"
#include "internal.h"
#include "voxlimit.h"
#include "outfile.h"
#include "png_encode.h"
#include "png_errors.h"
#include "segloss/png.h"

int sl_png_path(const char *path)
{
    if (!path) return 0;
    size_t n = strlen(path);
    if (n < 4) return 0;
    const char *e = path + n - 4;
    return e[0] == '.' && tolower((unsigned char)e[1]) == 'p' && tolower((unsigned char)e[2]) == 'n' &&
           tolower((unsigned char)e[3]) == 'g';
}

void sl_png_on_error(png_structp png, png_const_charp m)
{
    sl_png_err *e = png_get_error_ptr(png);
    if (e) snprintf(e->text, sizeof e->text, "%s", m ? m : "libpng error");
    png_longjmp(png, 1);
}

void sl_png_on_warning(png_structp png, png_const_charp m)
{
    (void)png;
    (void)m;
}

typedef struct read_state {
    FILE *f;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    sl_array arr;
} read_state;

sl_status sl_png_read(const char *path, sl_array *out, char *msg, size_t msglen)
{
    if (!path || !out) return sl_errf(msg, msglen, SL_EINVAL, "png: NULL argument");
    sl_array empty = SL_ARRAY_EMPTY;
    *out = empty;
    sl_png_err err = {"libpng error"};
    read_state *volatile s = calloc(1, sizeof *s);
    if (!s) return sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
    sl_status st = SL_OK;
    s->f = sl_fopen_read(path);
    if (!s->f) {
        st = sl_errf(msg, msglen, SL_EIO, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    unsigned char sig[8];
    if (fread(sig, 1, 8, s->f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s is not a PNG file", path);
        goto done;
    }
    s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, sl_png_on_error, sl_png_on_warning);
    if (s->png) s->info = png_create_info_struct(s->png);
    if (!s->png || !s->info) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
        goto done;
    }
    if (setjmp(png_jmpbuf(s->png))) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: %s (corrupt or truncated PNG)", path, err.text);
        goto done;
    }
    /* refuse absurd sizes before allocating */
    png_set_user_limits(s->png, 1u << 16, 1u << 16);
    png_init_io(s->png, s->f);
    png_set_sig_bytes(s->png, 8);
    png_read_info(s->png, s->info);
    png_uint_32 w, h;
    int depth, ctype;
    png_get_IHDR(s->png, s->info, &w, &h, &depth, &ctype, NULL, NULL, NULL);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s->png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
    if (png_get_valid(s->png, s->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(s->png);
    if (ctype & PNG_COLOR_MASK_ALPHA || png_get_valid(s->png, s->info, PNG_INFO_tRNS)) png_set_strip_alpha(s->png);
    if (ctype == PNG_COLOR_TYPE_PALETTE || (ctype & PNG_COLOR_MASK_COLOR)) png_set_rgb_to_gray_fixed(s->png, 1, -1, -1);
    if (depth == 16) png_set_swap(s->png); /* PNG is big-endian; arrays are native (little-endian here) */
    png_read_update_info(s->png, s->info);
    const int channels = png_get_channels(s->png, s->info);
    const int bd = png_get_bit_depth(s->png, s->info);
    if (channels != 1 || (bd != 8 && bd != 16)) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: unsupported PNG layout (%d channels, %d bits)", path, channels, bd);
        goto done;
    }
    if ((st = sl_check_voxels((int64_t)w * (int64_t)h, path, msg, msglen)) != SL_OK) goto done;
    /* Deflate expands at most ~1032:1, so the file bounds the image it can
     * hold: refuse a size the file cannot back before allocating it (a
     * 100-byte file claiming 65535 x 65535 pixels; found by fuzz_png). */
    struct stat sb;
    if (fstat(fileno(s->f), &sb) == 0 &&
        ((double)w * (bd / 8) + 1.0) * (double)h > 1040.0 * (double)sb.st_size + 65536.0) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: %ux%u pixels cannot fit in a %lld-byte PNG (truncated?)", path,
                     (unsigned)w, (unsigned)h, (long long)sb.st_size);
        goto done;
    }
    int64_t shape[2] = {(int64_t)h, (int64_t)w};
    if ((st = sl_array_alloc(&s->arr, bd == 16 ? SL_DT_U16 : SL_DT_U8, 2, shape)) != SL_OK) {
        st = sl_errf(msg, msglen, st, "%s: image of %ux%u too large", path, (unsigned)w, (unsigned)h);
        goto done;
    }
    s->rows = malloc((size_t)h * sizeof *s->rows);
    if (!s->rows) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
        goto done;
    }
    const size_t rb = (size_t)w * (bd / 8);
    for (png_uint_32 y = 0; y < h; y++) s->rows[y] = (png_bytep)s->arr.data + (size_t)y * rb;
    png_read_image(s->png, s->rows);
    png_read_end(s->png, NULL);
    *out = s->arr;
    s->arr = empty;
done:
    if (s->png) png_destroy_read_struct((png_structpp)&s->png, s->info ? (png_infopp)&s->info : NULL, NULL);
    if (s->f) fclose(s->f);
    free(s->rows);
    sl_array_free(&s->arr);
    free(s);
    return st;
}

/* ------------------------------------------------------------- encoding */

typedef struct mem_png {
    unsigned char *p;
    size_t len, cap;
    int failed;
} mem_png;

static void mem_write(png_structp png, png_bytep data, png_size_t n)
{
    mem_png *m = png_get_io_ptr(png);
    if (m->failed) return;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n) cap *= 2;
        unsigned char *q = realloc(m->p, cap);
        if (!q) {
            m->failed = 1;
            return;
        }
        m->p = q;
        m->cap = cap;
    }
    memcpy(m->p + m->len, data, n);
    m->len += n;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

/* What must survive libpng's longjmp lives here, outside the jump. */
typedef struct encode_state {
    png_structp png;
    png_infop info;
    png_bytep *rows;
    mem_png m;
} encode_state;

sl_status sl_png_encode(const unsigned char *pixels, int64_t H, int64_t W, int channels, int depth,
                        unsigned char **png, size_t *len, char *msg, size_t msglen)
{
    *png = NULL;
    *len = 0;
    if (!pixels || H < 1 || W < 1 || H > (1 << 16) || W > (1 << 16) || (channels != 1 && channels != 3) ||
        (depth != 8 && depth != 16))
        return sl_errf(msg, msglen, SL_EINVAL, "png: cannot encode %lldx%lld pixels, %d channels, %d bits",
                       (long long)H, (long long)W, channels, depth);
    sl_png_err err = {"libpng error"};
    encode_state *volatile s = calloc(1, sizeof *s);
    if (!s) return sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
    sl_status st = SL_OK;
    s->rows = sl_malloc(H, sizeof *s->rows);
    s->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, sl_png_on_error, sl_png_on_warning);
    if (s->png) s->info = png_create_info_struct(s->png);
    if (!s->rows || !s->png || !s->info) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
        goto done;
    }
    if (setjmp(png_jmpbuf(s->png))) {
        st = sl_errf(msg, msglen, SL_EIO, "png: %s", err.text);
        goto done;
    }
    const size_t row = (size_t)W * (size_t)channels * (size_t)(depth / 8);
    for (int64_t y = 0; y < H; y++) s->rows[y] = (png_bytep)(pixels + (size_t)y * row);
    png_set_write_fn(s->png, &s->m, mem_write, mem_flush);
    png_set_IHDR(s->png, s->info, (png_uint_32)W, (png_uint_32)H, depth,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(s->png, s->info);
    png_write_image(s->png, s->rows);
    png_write_end(s->png, NULL);
    if (s->m.failed) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
        goto done;
    }
    *png = s->m.p;
    *len = s->m.len;
    s->m.p = NULL;
done:
    if (s->png) png_destroy_write_struct((png_structpp)&s->png, s->info ? (png_infopp)&s->info : NULL);
    free(s->rows);
    free(s->m.p);
    free(s);
    return st;
}

sl_status sl_png_write_pixels(const char *path, const unsigned char *pixels, int64_t H, int64_t W, int channels,
                              int depth, char *msg, size_t msglen)
{
    unsigned char *png = NULL;
    size_t len = 0;
    char why[256];
    sl_status st = sl_png_encode(pixels, H, W, channels, depth, &png, &len, why, sizeof why);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "cannot write %s: %s", path, why);
    st = sl_out_write_file(path, png, len, msg, msglen);
    free(png);
    return st;
}

sl_status sl_png_write(const char *path, const sl_array *a, char *msg, size_t msglen)
{
    if (!path || !a || !a->data) return sl_errf(msg, msglen, SL_EINVAL, "png: NULL argument");
    if (a->ndim != 2 || a->shape[0] < 1 || a->shape[1] < 1)
        return sl_errf(msg, msglen, SL_ESHAPE, "png: %s needs a 2-D (H, W) array, not %d-D", path, a->ndim);
    if (a->shape[0] > (1 << 16) || a->shape[1] > (1 << 16))
        return sl_errf(msg, msglen, SL_ESHAPE, "png: %s: image larger than 65536 pixels a side", path);
    if (!sl_dtype_is_integer(a->dtype))
        return sl_errf(msg, msglen, SL_EDTYPE, "png: %s needs integer values, not %s", path, sl_dtype_name(a->dtype));
    const int64_t H = a->shape[0], W = a->shape[1], N = H * W;
    /* values as 0..65535, and the depth they need */
    uint16_t *v = sl_malloc(N, sizeof *v);
    if (!v) return sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
    sl_array i32 = SL_ARRAY_EMPTY;
    sl_status st = sl_array_to_i32(a, &i32);
    if (st != SL_OK) {
        free(v);
        return sl_errf(msg, msglen, st, "png: %s: values do not fit 0..65535", path);
    }
    int32_t mx = 0;
    for (int64_t i = 0; i < N; i++) {
        int32_t x = ((const int32_t *)i32.data)[i];
        if (x < 0 || x > 65535) {
            sl_array_free(&i32);
            free(v);
            return sl_errf(msg, msglen, SL_ERANGE, "png: %s: value %d at pixel %lld is outside 0..65535", path, (int)x,
                           (long long)i);
        }
        v[i] = (uint16_t)x;
        if (x > mx) mx = x;
    }
    sl_array_free(&i32);
    const int depth = mx > 255 ? 16 : 8;
    unsigned char *buf = sl_malloc(N, (size_t)(depth / 8));
    if (!buf) {
        free(v);
        return sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
    }
    for (int64_t i = 0; i < N; i++) {
        if (depth == 8) buf[i] = (unsigned char)v[i];
        else {
            buf[2 * i] = (unsigned char)(v[i] >> 8); /* big-endian samples */
            buf[2 * i + 1] = (unsigned char)(v[i] & 0xff);
        }
    }
    free(v);
    st = sl_png_write_pixels(path, buf, H, W, 1, depth, msg, msglen);
    free(buf);
    return st;
}
