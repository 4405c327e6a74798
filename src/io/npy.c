/*
 * The .npy format (NumPy's NEP 1): magic "\x93NUMPY", a version, a header
 * length, then a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ending in '\n', then the raw data in C or Fortran
 * order.
 *
 * The header comes from an untrusted file, so the parser below accepts only
 * that grammar (three known keys, each once; quoted strings; a tuple of
 * non-negative integers) and checks the declared byte count against the
 * bytes present before allocating anything. A file whose data is longer than
 * the header says is refused too: it is usually a header edited by hand or
 * two arrays concatenated, and silently reading a prefix would hide that.
 */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */
#define _DEFAULT_SOURCE         /* madvise, MADV_POPULATE_READ */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "fileio.h"
#include "array.h"
#include "internal.h"
#include "voxlimit.h"
#include "outfile.h"
#include "segloss/io.h"

#define NPY_MAX_FILE ((int64_t)1 << 40) /* 1 TiB: beyond this a size is hostile */

/* ---- header parsing ---------------------------------------------------- */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) { c->p++; return 1; }
    return 0;
}

/* A quoted string ('...' or "..."), no escapes (numpy never writes any in
 * these fields). Copies into buf (truncating never: too long is an error). */
static int parse_str(cursor *c, char *buf, size_t buflen)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= buflen || *c->p == '\\') return 0;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    buf[n] = 0;
    return 1;
}

static int parse_bool(cursor *c, int *v)
{
    skip_ws(c);
    if (c->end - c->p >= 4 && !memcmp(c->p, "True", 4)) { c->p += 4; *v = 1; return 1; }
    if (c->end - c->p >= 5 && !memcmp(c->p, "False", 5)) { c->p += 5; *v = 0; return 1; }
    return 0;
}

/* "(d0, d1, ...)" with an optional trailing comma; "()" is a scalar. */
static int parse_shape(cursor *c, int *ndim, int64_t *shape)
{
    if (!accept(c, '(')) return 0;
    *ndim = 0;
    for (;;) {
        if (accept(c, ')')) return 1;
        skip_ws(c);
        if (c->p >= c->end || !isdigit((unsigned char)*c->p)) return 0;
        int64_t v = 0;
        while (c->p < c->end && isdigit((unsigned char)*c->p)) {
            if (v > (INT64_MAX - 9) / 10) return 0; /* absurd dimension */
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 long suffix */
        if (*ndim >= SL_MAX_NDIM) return 0;
        shape[(*ndim)++] = v;
        if (accept(c, ',')) continue;
        if (accept(c, ')')) return 1;
        return 0;
    }
}

/* descr → dtype and whether bytes must be swapped. */
static sl_status parse_descr(const char *d, sl_dtype *dt, int *swap)
{
    if (strlen(d) < 3) return SL_EDTYPE;
    char order = d[0], kind = d[1];
    const char *sz = d + 2;
    int size = 0;
    for (const char *s = sz; *s; s++) {
        if (!isdigit((unsigned char)*s) || size > 64) return SL_EDTYPE;
        size = size * 10 + (*s - '0');
    }
    if (order != '<' && order != '>' && order != '|' && order != '=') return SL_EDTYPE;
    const int little = 1;
    int host_little = *(const char *)&little == 1;
    *swap = size > 1 && ((order == '<' && !host_little) || (order == '>' && host_little));
    switch (kind) {
    case 'f':
        if (size == 4) { *dt = SL_DT_F32; return SL_OK; }
        if (size == 8) { *dt = SL_DT_F64; return SL_OK; }
        return SL_EDTYPE;
    case 'b':
        if (size == 1) { *dt = SL_DT_BOOL; return SL_OK; }
        return SL_EDTYPE;
    case 'u':
        switch (size) {
        case 1: *dt = SL_DT_U8; return SL_OK;
        case 2: *dt = SL_DT_U16; return SL_OK;
        case 4: *dt = SL_DT_U32; return SL_OK;
        case 8: *dt = SL_DT_U64; return SL_OK;
        }
        return SL_EDTYPE;
    case 'i':
        switch (size) {
        case 1: *dt = SL_DT_I8; return SL_OK;
        case 2: *dt = SL_DT_I16; return SL_OK;
        case 4: *dt = SL_DT_I32; return SL_OK;
        case 8: *dt = SL_DT_I64; return SL_OK;
        }
        return SL_EDTYPE;
    }
    return SL_EDTYPE;
}

/* A file's string quoted in a message: non-printable bytes become '?' so
 * that a message stays one line of text whatever the file holds. */
static const char *printable(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    for (; in[n] && n + 1 < outlen; n++) out[n] = in[n] >= 32 && in[n] < 127 ? in[n] : '?';
    out[n] = 0;
    return out;
}

/* The header of a .npy file of len bytes whose first avail bytes are at b
 * (avail >= len, or >= the whole header): every check of the format, and
 * of len against the shape, without touching the data. Fills dtype, ndim
 * and shape of *meta (data NULL), whether bytes must be swapped, and the
 * data's offset and size. */
static sl_status npy_layout(const unsigned char *b, size_t avail, size_t len, sl_array *meta, int *swap_out,
                            size_t *offset, size_t *nbytes, char *msg, size_t msglen)
{
    if (len < 10 || avail < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return sl_errf(msg, msglen, SL_EFORMAT, "not a .npy file (bad magic)");
    int major = b[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)b[8] | ((size_t)b[9] << 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12 || avail < 12) return sl_errf(msg, msglen, SL_EFORMAT, "truncated .npy header");
        hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
        hstart = 12;
    } else {
        return sl_errf(msg, msglen, SL_EFORMAT, "unsupported .npy format version %d", major);
    }
    if (hlen > len - hstart || hlen > avail - hstart) return sl_errf(msg, msglen, SL_EFORMAT, "truncated .npy header");

    cursor c = {(const char *)b + hstart, (const char *)b + hstart + hlen};
    char descr[32] = {0};
    int fortran = -1, have_descr = 0, have_shape = 0, ndim = 0;
    int64_t shape[SL_MAX_NDIM] = {0};
    if (!accept(&c, '{')) return sl_errf(msg, msglen, SL_EFORMAT, "malformed .npy header (expected '{')");
    for (;;) {
        if (accept(&c, '}')) break;
        char key[32];
        if (!parse_str(&c, key, sizeof key) || !accept(&c, ':'))
            return sl_errf(msg, msglen, SL_EFORMAT, "malformed .npy header (bad key)");
        if (!strcmp(key, "descr") && !have_descr) {
            skip_ws(&c);
            if (c.p < c.end && *c.p == '[')
                return sl_errf(msg, msglen, SL_EDTYPE, "structured .npy dtypes are not supported");
            if (!parse_str(&c, descr, sizeof descr))
                return sl_errf(msg, msglen, SL_EFORMAT, "malformed .npy header (bad descr)");
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order") && fortran < 0) {
            if (!parse_bool(&c, &fortran))
                return sl_errf(msg, msglen, SL_EFORMAT, "malformed .npy header (bad fortran_order)");
        } else if (!strcmp(key, "shape") && !have_shape) {
            if (!parse_shape(&c, &ndim, shape))
                return sl_errf(msg, msglen, SL_EFORMAT,
                               "malformed .npy header (bad shape, or more than %d axes)", SL_MAX_NDIM);
            have_shape = 1;
        } else {
            char shown[32];
            return sl_errf(msg, msglen, SL_EFORMAT, "malformed .npy header (unknown or repeated key '%s')",
                           printable(key, shown, sizeof shown));
        }
        if (accept(&c, ',')) continue;
        if (accept(&c, '}')) break;
        return sl_errf(msg, msglen, SL_EFORMAT, "malformed .npy header (expected ',' or '}')");
    }
    if (!have_descr || !have_shape || fortran < 0)
        return sl_errf(msg, msglen, SL_EFORMAT, "malformed .npy header (missing descr, fortran_order or shape)");
    if (fortran)
        return sl_errf(msg, msglen, SL_EUNSUPPORTED,
                       "Fortran-order .npy arrays are not supported (save with np.ascontiguousarray)");
    sl_dtype dt;
    int swap = 0;
    if (parse_descr(descr, &dt, &swap) != SL_OK) {
        char shown[32];
        return sl_errf(msg, msglen, SL_EDTYPE, "unsupported .npy dtype '%s'", printable(descr, shown, sizeof shown));
    }

    sl_array a = SL_ARRAY_EMPTY;
    a.dtype = dt;
    a.ndim = ndim;
    memcpy(a.shape, shape, sizeof shape);
    int64_t count = sl_array_count(&a);
    size_t bytes;
    if (count < 0 || sl_bytes(count, sl_dtype_size(dt), &bytes) != SL_OK || (int64_t)bytes > NPY_MAX_FILE)
        return sl_errf(msg, msglen, SL_EOVERFLOW, ".npy shape is too large");
    sl_status lim = sl_check_voxels(count, ".npy shape", msg, msglen);
    if (lim != SL_OK) return lim;
    size_t have = len - hstart - hlen;
    if (have < bytes)
        return sl_errf(msg, msglen, SL_EFORMAT, "truncated .npy data (%zu of %zu bytes)", have, bytes);
    if (have > bytes)
        return sl_errf(msg, msglen, SL_EFORMAT, ".npy data is longer than its shape (%zu bytes, expected %zu)",
                       have, bytes);
    *meta = a;
    *swap_out = swap;
    *offset = hstart + hlen;
    *nbytes = bytes;
    return SL_OK;
}

/* An array of meta's dtype and shape for the data (bytes long). */
static sl_status npy_alloc(const sl_array *meta, size_t bytes, sl_array *out, char *msg, size_t msglen)
{
    sl_status st = sl_array_alloc(out, meta->dtype, meta->ndim, meta->shape);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "cannot allocate %zu bytes for .npy data", bytes);
    return SL_OK;
}

sl_status sl_npy_parse(const void *buf, size_t len, sl_array *out, char *msg, size_t msglen)
{
    if (!buf || !out) return sl_errf(msg, msglen, SL_EINVAL, "npy: NULL argument");
    sl_array empty = SL_ARRAY_EMPTY, meta;
    *out = empty;
    int swap;
    size_t off, bytes;
    sl_status st = npy_layout(buf, len, len, &meta, &swap, &off, &bytes, msg, msglen);
    if (st == SL_OK) st = npy_alloc(&meta, bytes, out, msg, msglen);
    if (st != SL_OK) return st;
    memcpy(out->data, (const unsigned char *)buf + off, bytes);
    if (swap) sl_swap_elements(out->data, sl_array_count(out), sl_dtype_size(out->dtype));
    return SL_OK;
}

/* Reads exactly n bytes at the current position of f into buf. */
static int read_n(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f) == n; }

/*
 * One copy from the file to the array: the header is read and checked
 * first (against the file's size), then the data is read straight into the
 * array's buffer, not through a buffer of the whole file.
 */
sl_status sl_npy_read(const char *path, sl_array *out, char *msg, size_t msglen)
{
    if (!path || !out) return sl_errf(msg, msglen, SL_EINVAL, "npy: NULL argument");
    sl_array empty = SL_ARRAY_EMPTY, meta;
    *out = empty;
    FILE *f = sl_fopen_read(path);
    if (!f) return sl_errf(msg, msglen, SL_EIO, "cannot open '%s': %s", path, strerror(errno));
    /* fopen succeeds on a directory: check the kind of file before trusting its size. */
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 0) {
        fclose(f);
        return sl_errf(msg, msglen, SL_EIO, "cannot read '%s': not a regular file", path);
    }
    const size_t len = (size_t)sb.st_size;
    /* the fixed part (up to 12 bytes), then the whole header it announces */
    unsigned char fixed[12];
    size_t avail = len < sizeof fixed ? len : sizeof fixed, hsize = avail;
    unsigned char *hdr = NULL;
    int ok = read_n(f, fixed, avail);
    if (ok && avail >= 10 && !memcmp(fixed, "\x93NUMPY", 6)) {
        size_t hlen = fixed[6] == 1 ? (size_t)fixed[8] | (size_t)fixed[9] << 8
                                    : avail < 12 ? 0 : (size_t)fixed[8] | (size_t)fixed[9] << 8 |
                                                           (size_t)fixed[10] << 16 | (size_t)fixed[11] << 24;
        size_t hstart = fixed[6] == 1 ? 10 : 12;
        hsize = hstart + hlen <= len ? hstart + hlen : avail; /* a header past the end is npy_layout's error */
    }
    hdr = malloc(hsize > avail ? hsize : avail);
    if (!hdr) ok = 0;
    if (ok) {
        memcpy(hdr, fixed, avail);
        if (hsize > avail) ok = read_n(f, hdr + avail, hsize - avail), avail = hsize;
    }
    if (!ok) {
        free(hdr);
        fclose(f);
        return sl_errf(msg, msglen, hdr ? SL_EIO : SL_ENOMEM, "cannot read '%s'", path);
    }
    char inner[256];
    int swap;
    size_t off, bytes;
    sl_status st = npy_layout(hdr, avail, len, &meta, &swap, &off, &bytes, inner, sizeof inner);
    free(hdr);
    if (st == SL_OK) st = npy_alloc(&meta, bytes, out, inner, sizeof inner);
    if (st == SL_OK && (fseek(f, (long)off, SEEK_SET) != 0 || !read_n(f, out->data, bytes))) {
        sl_array_free(out);
        fclose(f);
        return sl_errf(msg, msglen, SL_EIO, "cannot read '%s'", path);
    }
    fclose(f);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "%s: %s", path, inner);
    if (swap) sl_swap_elements(out->data, sl_array_count(out), sl_dtype_size(out->dtype));
    return SL_OK;
}

/*
 * The mapped reader: the whole file mapped read-only, the header checked by
 * the same npy_layout as sl_npy_read (before any data page is touched, so a
 * huge or hostile file costs nothing more than its header), then the pages
 * brought in from the page cache in one call (MADV_POPULATE_READ) instead
 * of one fault each, and the array pointed at the data in the mapping.
 * Whatever cannot be used in place goes through sl_npy_read, which gives
 * the same result or the same message: a path that cannot be opened, a
 * file that is not regular or cannot be mapped, data in the other byte
 * order or not aligned to its element size, and a file that shrank since
 * fstat (populating would have raised SIGBUS: EFAULT).
 */
sl_status sl_npy_map(const char *path, sl_npy_mapped *out, char *msg, size_t msglen)
{
    if (!path || !out) return sl_errf(msg, msglen, SL_EINVAL, "npy: NULL argument");
    sl_npy_mapped empty = {SL_ARRAY_EMPTY, NULL, 0};
    *out = empty;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (sl_npy_read refuses it) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return sl_npy_read(path, &out->array, msg, msglen); /* its message for a path it cannot open */
    struct stat sb;
    void *base = MAP_FAILED;
    size_t len = 0;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 && (int64_t)sb.st_size <= NPY_MAX_FILE) {
        len = (size_t)sb.st_size;
        base = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    }
    close(fd);
    if (base == MAP_FAILED) return sl_npy_read(path, &out->array, msg, msglen);

    sl_array meta;
    int swap;
    size_t off, bytes;
    char inner[256];
    /* npy_layout reads only the header, within the len bytes the file has */
    sl_status st = npy_layout(base, len, len, &meta, &swap, &off, &bytes, inner, sizeof inner);
    if (st != SL_OK) {
        munmap(base, len);
        return sl_errf(msg, msglen, st, "%s: %s", path, inner);
    }
    unsigned char *data = (unsigned char *)base + off;
    int in_place = !swap && (uintptr_t)data % sl_dtype_size(meta.dtype) == 0;
#ifdef MADV_POPULATE_READ
    /* Linux >= 5.14; EINVAL on older kernels (then the pages fault in on first use); EFAULT when part of the
     * mapping lies past the end of the file now (truncated since fstat): sl_npy_read then reads what is there */
    if (in_place && madvise(base, len, MADV_POPULATE_READ) != 0 && errno == EFAULT) in_place = 0;
#endif
    if (!in_place) {
        munmap(base, len);
        return sl_npy_read(path, &out->array, msg, msglen);
    }
    meta.data = data;
    out->array = meta;
    out->base = base;
    out->length = len;
    return SL_OK;
}

void sl_npy_unmap(sl_npy_mapped *m)
{
    if (!m) return;
    if (m->base) munmap(m->base, m->length);
    else sl_array_free(&m->array);
    sl_npy_mapped empty = {SL_ARRAY_EMPTY, NULL, 0};
    *m = empty;
}

/* Writes a (alen bytes) then b (blen bytes) to fd with writev, resuming
 * after partial writes and EINTR. 1 on success, 0 with errno set. */
static int write_all2(int fd, const void *a, size_t alen, const void *b, size_t blen)
{
    struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
    struct iovec *v = iov;
    int nv = 2;
    while (nv > 0) {
        if (v->iov_len == 0) {
            v++, nv--;
            continue;
        }
        ssize_t w = writev(fd, v, nv);
        if (w < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        size_t done = (size_t)w;
        while (nv > 0 && done >= v->iov_len) done -= v->iov_len, v++, nv--;
        if (nv > 0) v->iov_base = (char *)v->iov_base + done, v->iov_len -= done;
    }
    return 1;
}

sl_status sl_npy_write(const char *path, const sl_array *a, char *msg, size_t msglen)
{
    if (!path || !a || !a->data) return sl_errf(msg, msglen, SL_EINVAL, "npy: NULL argument");
    static const char *descr[] = {"<f4", "<f8", "|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8"};
    if ((unsigned)a->dtype >= sizeof descr / sizeof *descr || a->ndim < 0 || a->ndim > SL_MAX_NDIM)
        return sl_errf(msg, msglen, SL_EINVAL, "npy: invalid array");
    int64_t count = sl_array_count(a);
    size_t bytes;
    if (count < 0 || sl_bytes(count, sl_dtype_size(a->dtype), &bytes) != SL_OK)
        return sl_errf(msg, msglen, SL_EOVERFLOW, "npy: array too large");

    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr[a->dtype]);
    for (int i = 0; i < a->ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld%s", (long long)a->shape[i],
                      a->ndim == 1 ? "," : (i + 1 < a->ndim ? ", " : ""));
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* Header (magic + version + length + dict + padding + '\n') is padded to
     * a multiple of 64 bytes, as numpy does, so the data is aligned. */
    size_t pre = 10, total = pre + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    unsigned char hdr[640];
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    size_t hl = padded - pre;
    hdr[8] = (unsigned char)(hl & 0xff);
    hdr[9] = (unsigned char)(hl >> 8);
    memcpy(hdr + pre, dict, (size_t)n);
    memset(hdr + pre + n, ' ', padded - pre - (size_t)n - 1);
    hdr[padded - 1] = '\n';

    sl_out *o;
    sl_status st = sl_out_open(path, &o, msg, msglen);
    if (st != SL_OK) return st;
    FILE *f = sl_out_file(o);
    errno = 0;
    int ok;
    /* Host is little-endian on every platform we build for; swap otherwise. */
    const int one = 1;
    if (*(const char *)&one == 1 || sl_dtype_size(a->dtype) == 1) {
        /* header and data in one writev on the descriptor, straight from the
         * caller's buffer (the FILE* is flushed first, so nothing it holds
         * lands after the data) */
        ok = fflush(f) == 0 && write_all2(sl_out_fd(o), hdr, padded, a->data, bytes);
    } else {
        ok = fwrite(hdr, 1, padded, f) == padded;
        unsigned char *copy = malloc(bytes ? bytes : 1);
        ok = ok && copy;
        if (copy) {
            memcpy(copy, a->data, bytes);
            sl_swap_elements(copy, count, sl_dtype_size(a->dtype));
            ok = ok && fwrite(copy, 1, bytes, f) == bytes;
            free(copy);
        }
    }
    if (!ok) {
        int e = errno ? errno : EIO;
        sl_out_abort(o);
        return sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return sl_out_commit(o, msg, msglen);
}
