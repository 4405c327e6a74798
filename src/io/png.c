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
#include "internal.h"
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
    s->f = fopen(path, "rb");
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

typedef struct write_state {
    FILE *f;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    unsigned char *buf;
    char *tmp;
} write_state;

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

    sl_png_err err = {"libpng error"};
    write_state *volatile s = calloc(1, sizeof *s);
    if (!s) {
        free(v);
        return sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
    }
    size_t plen = strlen(path);
    s->tmp = malloc(plen + 16);
    s->buf = malloc((size_t)N * (depth / 8));
    s->rows = malloc((size_t)H * sizeof *s->rows);
    if (!s->tmp || !s->buf || !s->rows) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < N; i++) {
        if (depth == 8) s->buf[i] = (unsigned char)v[i];
        else {
            s->buf[2 * i] = (unsigned char)(v[i] >> 8); /* big-endian samples */
            s->buf[2 * i + 1] = (unsigned char)(v[i] & 0xff);
        }
    }
    for (int64_t y = 0; y < H; y++) s->rows[y] = s->buf + (size_t)(y * W * (depth / 8));
    memcpy(s->tmp, path, plen);
    memcpy(s->tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(s->tmp);
    if (fd < 0) {
        st = sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, strerror(errno));
        s->tmp[0] = 0;
        goto done;
    }
    (void)fchmod(fd, 0644);
    s->f = fdopen(fd, "wb");
    if (!s->f) {
        close(fd);
        st = sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, strerror(errno));
        goto done;
    }
    s->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, sl_png_on_error, sl_png_on_warning);
    if (s->png) s->info = png_create_info_struct(s->png);
    if (!s->png || !s->info) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "png: out of memory");
        goto done;
    }
    if (setjmp(png_jmpbuf(s->png))) {
        st = sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, err.text);
        goto done;
    }
    png_init_io(s->png, s->f);
    png_set_IHDR(s->png, s->info, (png_uint_32)W, (png_uint_32)H, depth, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(s->png, s->info);
    png_write_image(s->png, s->rows);
    png_write_end(s->png, NULL);
    int e = 0;
    if (fflush(s->f) != 0 || fsync(fileno(s->f)) != 0) e = errno ? errno : EIO;
    if (fclose(s->f) != 0 && !e) e = errno ? errno : EIO;
    s->f = NULL;
    if (!e && rename(s->tmp, path) != 0) e = errno;
    if (e) {
        st = sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, strerror(e));
        goto done;
    }
    s->tmp[0] = 0; /* renamed: nothing to remove */
done:
    if (s->png) png_destroy_write_struct((png_structpp)&s->png, s->info ? (png_infopp)&s->info : NULL);
    if (s->f) fclose(s->f);
    if (s->tmp && s->tmp[0]) unlink(s->tmp);
    free(s->tmp);
    free(s->buf);
    free(s->rows);
    free(s);
    free(v);
    return st;
}
