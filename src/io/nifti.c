/*
 * NIfTI-1 / NIfTI-2 single-file images (.nii, .nii.gz): reader and writer.
 *
 * Why this file parses the header and moves the bytes itself instead of
 * calling nifti_image_read()/nifti_image_write() from nifti_clib:
 *
 *  - nifti_clib prints to stderr on bad input (some messages regardless of
 *    nifti_set_debug_level, e.g. its LNI_FERR file errors), and its debug
 *    level is process-global state; the segloss library must never print
 *    and keeps no global state.
 *  - nifti_image_read() reopens the file by name after any check we could
 *    make, so a validation done first would not cover what it then reads;
 *    it also has no in-memory entry point, which the fuzz target needs.
 *  - nifti_image_write() returns void: a full disk or a failed gzip close
 *    cannot be reported, and it writes in place (not atomically).
 *
 * What we do take from nifti_clib is the specification itself: the header
 * layouts (struct nifti_1_header / nifti_2_header, used through offsetof so
 * that no struct is ever filled from untrusted bytes) and the DT_, XFORM_
 * and UNITS_ constants. The quaternion-to-matrix formula is the one the
 * nifti1.h comments define (and nifti_quatern_to_dmat44 implements);
 * tests/ref/test_nifti_clib.py checks our reader and writer against
 * nifti_clib's own nifti_image_read on real and generated files.
 *
 * Reading path (one code path for files and memory buffers):
 *   source (FILE* or buffer)  ->  optional inflate (gzip, detected by magic)
 *   -> 348 or 540 header bytes -> validate everything -> skip to vox_offset
 *   -> read exactly the data bytes -> (gzip) drain to the end of the stream
 *   so that zlib verifies the CRC -> byte swap -> optional scaling.
 * No size taken from the header is trusted for an allocation: for plain
 * files the data size is checked against the file size first; for gzip
 * streams (whose decompressed size is unknown until read) the buffer grows
 * geometrically as bytes actually arrive, so a small hostile file cannot
 * make us allocate what its header claims.
 */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat, dup */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "array.h"
#include "fileio.h"
#include "internal.h"
#include "voxlimit.h"
#include "outfile.h"
#include "segloss/io.h"

/* Debian installs the headers under <nifti/>; CMake may or may not put that
 * folder on the include path (the libFuzzer build does not). The two spec
 * headers include nothing but <stdint.h>, so either spelling works. */
#if defined(__has_include)
#if __has_include(<nifti1.h>)
#include <nifti1.h>
#include <nifti2.h>
#else
#include <nifti/nifti1.h>
#include <nifti/nifti2.h>
#endif
#else
#include <nifti1.h>
#include <nifti2.h>
#endif

_Static_assert(sizeof(nifti_1_header) == 348, "NIfTI-1 header layout");
_Static_assert(sizeof(nifti_2_header) == 540, "NIfTI-2 header layout");

#define N1(f) offsetof(nifti_1_header, f)
#define N2(f) offsetof(nifti_2_header, f)

#define NII_MAX_BYTES ((int64_t)1 << 40)   /* 1 TiB of voxel data: beyond this a header is hostile */
#define NII_MAX_OFFSET ((int64_t)1 << 32)  /* extensions larger than 4 GiB are not real */
#define GZ_DRAIN_MAX ((int64_t)64 << 20)   /* bytes read past the data to reach the gzip CRC */
#define IN_CHUNK 65536

/* ---- byte order --------------------------------------------------------- */

static void swap_bytes(void *p, size_t size)
{
    unsigned char *b = p;
    for (size_t k = 0; k < size / 2; k++) {
        unsigned char t = b[k];
        b[k] = b[size - 1 - k];
        b[size - 1 - k] = t;
    }
}

/* Field readers: the header is kept as bytes, each field read at its
 * offset and swapped if the file's byte order differs from ours. */
static int64_t rd_i16(const unsigned char *h, size_t off, int swap)
{
    int16_t v;
    memcpy(&v, h + off, 2);
    if (swap) swap_bytes(&v, 2);
    return v;
}
static int64_t rd_i32(const unsigned char *h, size_t off, int swap)
{
    int32_t v;
    memcpy(&v, h + off, 4);
    if (swap) swap_bytes(&v, 4);
    return v;
}
static int64_t rd_i64(const unsigned char *h, size_t off, int swap)
{
    int64_t v;
    memcpy(&v, h + off, 8);
    if (swap) swap_bytes(&v, 8);
    return v;
}
static double rd_f32(const unsigned char *h, size_t off, int swap)
{
    float v;
    memcpy(&v, h + off, 4);
    if (swap) swap_bytes(&v, 4);
    return v;
}
static double rd_f64(const unsigned char *h, size_t off, int swap)
{
    double v;
    memcpy(&v, h + off, 8);
    if (swap) swap_bytes(&v, 8);
    return v;
}

/* ---- datatypes ---------------------------------------------------------- */

static int dt_from_nifti(int64_t code, sl_dtype *dt)
{
    switch (code) {
    case DT_UINT8: *dt = SL_DT_U8; return 1;
    case DT_INT8: *dt = SL_DT_I8; return 1;
    case DT_UINT16: *dt = SL_DT_U16; return 1;
    case DT_INT16: *dt = SL_DT_I16; return 1;
    case DT_UINT32: *dt = SL_DT_U32; return 1;
    case DT_INT32: *dt = SL_DT_I32; return 1;
    case DT_UINT64: *dt = SL_DT_U64; return 1;
    case DT_INT64: *dt = SL_DT_I64; return 1;
    case DT_FLOAT32: *dt = SL_DT_F32; return 1;
    case DT_FLOAT64: *dt = SL_DT_F64; return 1;
    }
    return 0;
}

static int dt_to_nifti(sl_dtype dt)
{
    switch (dt) {
    case SL_DT_BOOL: case SL_DT_U8: return DT_UINT8;
    case SL_DT_I8: return DT_INT8;
    case SL_DT_U16: return DT_UINT16;
    case SL_DT_I16: return DT_INT16;
    case SL_DT_U32: return DT_UINT32;
    case SL_DT_I32: return DT_INT32;
    case SL_DT_U64: return DT_UINT64;
    case SL_DT_I64: return DT_INT64;
    case SL_DT_F32: return DT_FLOAT32;
    case SL_DT_F64: return DT_FLOAT64;
    }
    return 0;
}

/* A name for a datatype code we refuse, for the error message. */
static const char *dt_refused_name(int64_t code)
{
    switch (code) {
    case DT_BINARY: return "1-bit binary";
    case DT_COMPLEX64: return "complex64";
    case DT_COMPLEX128: return "complex128";
    case DT_COMPLEX256: return "complex256";
    case DT_RGB24: return "RGB24";
    case DT_RGBA32: return "RGBA32";
    case DT_FLOAT128: return "float128";
    case 0: return "unknown (0)";
    }
    return "not a NIfTI datatype";
}

/* ---- byte source: FILE* or memory, plain or gzip ------------------------ */

typedef struct {
    FILE *f;                     /* file input, or NULL for memory */
    const unsigned char *mem;    /* memory input */
    size_t mem_len, mem_pos;
    int gz;                      /* 1: the input is a gzip stream */
    int z_live, z_end, in_eof;
    z_stream zs;
    unsigned char *inbuf;        /* compressed bytes read from f */
    int64_t raw_total;           /* size of a plain source; -1 for gzip */
    int64_t pos;                 /* (decompressed) bytes consumed so far */
    sl_status err;               /* first error, or SL_OK */
    char why[200];
} src_t;

static void src_fail(src_t *s, sl_status st, const char *why)
{
    if (s->err != SL_OK) return;
    s->err = st;
    snprintf(s->why, sizeof s->why, "%s", why);
}

/* Plain bytes from the underlying file or buffer. */
static size_t raw_read(src_t *s, void *dst, size_t n)
{
    if (s->f) {
        size_t got = fread(dst, 1, n, s->f);
        if (got < n && ferror(s->f)) src_fail(s, SL_EIO, strerror(errno));
        return got;
    }
    size_t left = s->mem_len - s->mem_pos;
    if (n > left) n = left;
    if (n) memcpy(dst, s->mem + s->mem_pos, n);
    s->mem_pos += n;
    return n;
}

/* Tops up zlib's input, keeping unread bytes (a gzip member boundary may
 * straddle two reads). */
static void gz_refill(src_t *s)
{
    if (s->in_eof) return;
    if (!s->f) {
        /* Memory input: zlib reads straight from the buffer. The bytes not
         * yet consumed always end at mem_pos, so the window just grows. */
        size_t left = s->mem_len - s->mem_pos, room = (1u << 30) - s->zs.avail_in;
        size_t add = left < room ? left : room;
        if (s->zs.avail_in == 0) s->zs.next_in = (unsigned char *)(uintptr_t)(s->mem + s->mem_pos);
        s->zs.avail_in += (uInt)add;
        s->mem_pos += add;
        if (s->mem_pos >= s->mem_len) s->in_eof = 1;
        return;
    }
    size_t keep = s->zs.avail_in;
    if (keep >= IN_CHUNK / 2) return;
    if (keep) memmove(s->inbuf, s->zs.next_in, keep);
    size_t got = fread(s->inbuf + keep, 1, IN_CHUNK - keep, s->f);
    if (got < IN_CHUNK - keep) {
        if (ferror(s->f)) src_fail(s, SL_EIO, strerror(errno));
        s->in_eof = 1;
    }
    s->zs.next_in = s->inbuf;
    s->zs.avail_in = (uInt)(keep + got);
}

/* Up to n decompressed bytes; fewer only at the end of the stream or on an
 * error (s->err). A stream that stops before its end is "truncated"; a
 * deflate or CRC error is "corrupt". Concatenated gzip members (valid gzip)
 * are read as one stream; other bytes after the last member are ignored, as
 * gzip(1) does. */
static size_t gz_read(src_t *s, unsigned char *dst, size_t n)
{
    size_t done = 0;
    while (done < n && !s->z_end && s->err == SL_OK) {
        if (s->zs.avail_in < 2) gz_refill(s);
        size_t want = n - done > (1u << 30) ? (1u << 30) : n - done;
        s->zs.next_out = dst + done;
        s->zs.avail_out = (uInt)want;
        int r = inflate(&s->zs, Z_NO_FLUSH);
        done += want - s->zs.avail_out;
        if (r == Z_STREAM_END) {
            if (s->zs.avail_in < 2) gz_refill(s);
            if (s->zs.avail_in >= 2 && s->zs.next_in[0] == 0x1f && s->zs.next_in[1] == 0x8b) {
                if (inflateReset(&s->zs) != Z_OK) src_fail(s, SL_EFORMAT, "corrupt gzip stream");
                continue;
            }
            s->z_end = 1;
        } else if (r == Z_OK) {
            continue;
        } else if (r == Z_BUF_ERROR) {
            /* No progress possible: zlib needs input we do not have. */
            if (s->in_eof && s->zs.avail_in == 0) src_fail(s, SL_EFORMAT, "truncated gzip stream");
        } else if (r == Z_MEM_ERROR) {
            src_fail(s, SL_ENOMEM, "out of memory in zlib");
        } else {
            char why[160];
            snprintf(why, sizeof why, "corrupt gzip stream (%s)", s->zs.msg ? s->zs.msg : "inflate failed");
            src_fail(s, SL_EFORMAT, why);
        }
    }
    return done;
}

static size_t src_read(src_t *s, void *dst, size_t n)
{
    size_t got = s->gz ? gz_read(s, dst, n) : raw_read(s, dst, n);
    s->pos += (int64_t)got;
    return got;
}

/* Skips n bytes (header extensions). Returns 1 when all were there. */
static int src_skip(src_t *s, int64_t n)
{
    if (!s->gz && s->raw_total >= 0) {
        if (s->raw_total - s->pos < n) return 0;
        if (s->f && fseeko(s->f, (off_t)n, SEEK_CUR) != 0) {
            src_fail(s, SL_EIO, strerror(errno));
            return 0;
        }
        if (!s->f) s->mem_pos += (size_t)n;
        s->pos += n;
        return 1;
    }
    unsigned char scratch[4096];
    while (n > 0) {
        size_t want = n > (int64_t)sizeof scratch ? sizeof scratch : (size_t)n;
        size_t got = src_read(s, scratch, want);
        n -= (int64_t)got;
        if (got < want) return 0;
    }
    return 1;
}

/* Reads to the end of a gzip stream so that zlib checks the CRC-32 and
 * length in its trailer: a flipped bit in the data is caught here rather
 * than read as a wrong label. Stops after GZ_DRAIN_MAX bytes of trailing
 * data (not part of the image) rather than decompress without bound. */
static void src_drain(src_t *s)
{
    if (!s->gz) return;
    unsigned char scratch[4096];
    int64_t extra = 0;
    while (!s->z_end && s->err == SL_OK && extra < GZ_DRAIN_MAX) {
        size_t got = gz_read(s, scratch, sizeof scratch);
        extra += (int64_t)got;
        if (got == 0) break;
    }
}

static sl_status src_begin_gz(src_t *s)
{
    memset(&s->zs, 0, sizeof s->zs);
    /* 16 + MAX_WBITS: gzip wrapper only, with its CRC check. */
    if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK) return SL_ENOMEM;
    s->z_live = 1;
    s->raw_total = -1;
    return SL_OK;
}

static void src_close(src_t *s)
{
    if (s->z_live) inflateEnd(&s->zs);
    if (s->f) fclose(s->f);
    free(s->inbuf);
    s->z_live = 0;
    s->f = NULL;
    s->inbuf = NULL;
}

/* ---- header ------------------------------------------------------------- */

/* 4x4 matrix from the quaternion representation, as defined in nifti1.h
 * ("METHOD 2"): a = sqrt(1 - b^2 - c^2 - d^2), rotation R from (a, b, c, d),
 * then columns scaled by the voxel sizes, the third by qfac. A quaternion
 * with b^2 + c^2 + d^2 > 1 is normalised (a = 0), and a non-positive voxel
 * size is taken as 1, as nifti_quatern_to_dmat44 does. */
static void quatern_to_mat(double b, double c, double d, double qx, double qy, double qz,
                           double dx, double dy, double dz, double qfac, double m[4][4])
{
    double a = 1.0 - (b * b + c * c + d * d);
    if (a < 1.e-7) {
        double n = sqrt(b * b + c * c + d * d);
        a = n > 0 && isfinite(n) ? 1.0 / n : 0.0;
        b *= a; c *= a; d *= a;
        a = 0.0;
    } else {
        a = sqrt(a);
    }
    double xd = dx > 0 ? dx : 1.0, yd = dy > 0 ? dy : 1.0, zd = dz > 0 ? dz : 1.0;
    if (qfac < 0) zd = -zd;
    m[0][0] = (a * a + b * b - c * c - d * d) * xd;
    m[0][1] = 2.0 * (b * c - a * d) * yd;
    m[0][2] = 2.0 * (b * d + a * c) * zd;
    m[1][0] = 2.0 * (b * c + a * d) * xd;
    m[1][1] = (a * a + c * c - b * b - d * d) * yd;
    m[1][2] = 2.0 * (c * d - a * b) * zd;
    m[2][0] = 2.0 * (b * d - a * c) * xd;
    m[2][1] = 2.0 * (c * d + a * b) * yd;
    m[2][2] = (a * a + d * d - c * c - b * b) * zd;
    m[0][3] = qx; m[1][3] = qy; m[2][3] = qz;
    m[3][0] = m[3][1] = m[3][2] = 0.0;
    m[3][3] = 1.0;
}

static void identity4(double m[4][4])
{
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) m[r][c] = r == c;
}

static int all_finite4(double m[4][4])
{
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            if (!isfinite(m[r][c])) return 0;
    return 1;
}

/* What the header says about the data, once validated. */
typedef struct {
    sl_dtype dt;
    int64_t count;   /* voxels */
    size_t bytes;    /* data bytes */
} layout_t;

/* Validates a full header (hsize = 348 or 540 bytes at h) and fills info
 * and the data layout. `who` names the file in messages. */
static sl_status parse_header(const unsigned char *h, int version, int swap, sl_nifti_info *info,
                              layout_t *lay, const char *who, char *msg, size_t msglen)
{
    memset(info, 0, sizeof *info);
    info->version = version;
    info->swapped = swap;
    const int v1 = version == 1;

    /* Magic: "n+1" / "n+2" is a single file; "ni1" / "ni2" is the .hdr of a
     * header/image pair; anything else (ANALYZE 7.5 has none) is refused. */
    const unsigned char *mg = h + (v1 ? N1(magic) : N2(magic));
    if (mg[0] == 'n' && mg[1] == 'i' && mg[2] == (v1 ? '1' : '2') && mg[3] == 0)
        return sl_errf(msg, msglen, SL_EUNSUPPORTED,
                       "%s: two-file NIfTI (.hdr/.img) is not supported; convert it to a single .nii", who);
    if (!(mg[0] == 'n' && mg[1] == '+' && mg[2] == (v1 ? '1' : '2') && mg[3] == 0))
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: bad NIfTI-%d magic (not a NIfTI file, or ANALYZE 7.5)", who,
                       version);

    for (int i = 0; i < 8; i++) {
        info->dim[i] = v1 ? rd_i16(h, N1(dim) + 2 * (size_t)i, swap) : rd_i64(h, N2(dim) + 8 * (size_t)i, swap);
        info->pixdim[i] = v1 ? rd_f32(h, N1(pixdim) + 4 * (size_t)i, swap) : rd_f64(h, N2(pixdim) + 8 * (size_t)i, swap);
    }
    int64_t nd = info->dim[0];
    if (nd < 1 || nd > 7)
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: dim[0] = %lld (the number of axes) is outside 1..7", who,
                       (long long)nd);
    int64_t count = 1;
    for (int i = 1; i <= nd; i++) {
        if (info->dim[i] < 1)
            return sl_errf(msg, msglen, SL_EFORMAT, "%s: dim[%d] = %lld: every axis must have at least 1 voxel", who,
                           i, (long long)info->dim[i]);
        if (sl_mul_size(count, info->dim[i], &count) != SL_OK)
            return sl_errf(msg, msglen, SL_EOVERFLOW, "%s: the voxel count overflows 64 bits (dim[%d] = %lld)", who,
                           i, (long long)info->dim[i]);
    }

    int64_t dtc = v1 ? rd_i16(h, N1(datatype), swap) : rd_i16(h, N2(datatype), swap);
    int64_t bitpix = v1 ? rd_i16(h, N1(bitpix), swap) : rd_i16(h, N2(bitpix), swap);
    info->datatype = (int)dtc;
    if (!dt_from_nifti(dtc, &lay->dt))
        return sl_errf(msg, msglen, SL_EDTYPE,
                       "%s: unsupported NIfTI datatype %lld (%s); segloss reads integer and real scalar images",
                       who, (long long)dtc, dt_refused_name(dtc));
    size_t esize = sl_dtype_size(lay->dt);
    if (bitpix != (int64_t)(8 * esize))
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: bitpix = %lld does not match datatype %s (%zu bits)", who,
                       (long long)bitpix, sl_dtype_name(lay->dt), 8 * esize);
    if (sl_bytes(count, esize, &lay->bytes) != SL_OK || (int64_t)lay->bytes > NII_MAX_BYTES)
        return sl_errf(msg, msglen, SL_EOVERFLOW, "%s: %lld voxels of %s is too large an image", who,
                       (long long)count, sl_dtype_name(lay->dt));
    lay->count = count;

    /* vox_offset: a float in NIfTI-1 (so check it is a whole number), an
     * int64 in NIfTI-2. It may not point into the header; values between
     * the header size and header + 4 (no extension flag) are accepted. */
    const int64_t hsize = v1 ? 348 : 540;
    if (v1) {
        double vo = rd_f32(h, N1(vox_offset), swap);
        if (!isfinite(vo) || vo != floor(vo) || vo < 0 || vo > (double)NII_MAX_OFFSET)
            return sl_errf(msg, msglen, SL_EFORMAT, "%s: vox_offset = %g is not a valid byte offset", who, vo);
        info->vox_offset = (int64_t)vo;
    } else {
        info->vox_offset = rd_i64(h, N2(vox_offset), swap);
        if (info->vox_offset < 0 || info->vox_offset > NII_MAX_OFFSET)
            return sl_errf(msg, msglen, SL_EFORMAT, "%s: vox_offset = %lld is not a valid byte offset", who,
                           (long long)info->vox_offset);
    }
    if (info->vox_offset < hsize)
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: vox_offset = %lld points inside the %lld-byte header", who,
                       (long long)info->vox_offset, (long long)hsize);

    info->xyzt_units = v1 ? h[N1(xyzt_units)] : (int)rd_i32(h, N2(xyzt_units), swap);
    info->scl_slope = v1 ? rd_f32(h, N1(scl_slope), swap) : rd_f64(h, N2(scl_slope), swap);
    info->scl_inter = v1 ? rd_f32(h, N1(scl_inter), swap) : rd_f64(h, N2(scl_inter), swap);

    /* Array axes and spacing (see io.h "Axis order" and "Spacing"). */
    int ndim = (int)nd;
    while (ndim > 3 && info->dim[ndim] == 1) ndim--;
    info->ndim = ndim;
    int space_units = info->xyzt_units & 0x07;
    double to_mm = space_units == NIFTI_UNITS_METER ? 1000.0 : space_units == NIFTI_UNITS_MICRON ? 0.001 : 1.0;
    for (int ax = 1; ax <= ndim; ax++) {
        double p = info->pixdim[ax], s;
        if (ax <= 3) {
            if (!isfinite(p))
                return sl_errf(msg, msglen, SL_EFORMAT, "%s: pixdim[%d] = %g is not a voxel size", who, ax, p);
            p = fabs(p);
            if (p == 0) {
                p = 1.0 / to_mm;
                info->spacing_defaulted = 1;
            }
            s = p * to_mm;
            if (!isfinite(s) || s <= 0)
                return sl_errf(msg, msglen, SL_EFORMAT, "%s: pixdim[%d] = %g is not a usable voxel size", who, ax,
                               info->pixdim[ax]);
        } else {
            s = isfinite(p) && p > 0 ? p : 1.0;
        }
        info->spacing[ndim - ax] = s;
    }

    /* Orientation. Codes > 0 mean "present"; their parameters must then be
     * finite (a NaN affine would poison every world coordinate). */
    info->qform_code = (int)(v1 ? rd_i16(h, N1(qform_code), swap) : rd_i32(h, N2(qform_code), swap));
    info->sform_code = (int)(v1 ? rd_i16(h, N1(sform_code), swap) : rd_i32(h, N2(sform_code), swap));
    static const size_t q1[6] = {N1(quatern_b), N1(quatern_c), N1(quatern_d), N1(qoffset_x), N1(qoffset_y), N1(qoffset_z)};
    static const size_t q2[6] = {N2(quatern_b), N2(quatern_c), N2(quatern_d), N2(qoffset_x), N2(qoffset_y), N2(qoffset_z)};
    for (int i = 0; i < 3; i++) {
        info->quatern[i] = v1 ? rd_f32(h, q1[i], swap) : rd_f64(h, q2[i], swap);
        info->qoffset[i] = v1 ? rd_f32(h, q1[i + 3], swap) : rd_f64(h, q2[i + 3], swap);
    }
    static const size_t s1[3] = {N1(srow_x), N1(srow_y), N1(srow_z)};
    static const size_t s2[3] = {N2(srow_x), N2(srow_y), N2(srow_z)};
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            info->srow[r][c] = v1 ? rd_f32(h, s1[r] + 4 * (size_t)c, swap) : rd_f64(h, s2[r] + 8 * (size_t)c, swap);
    info->qfac = info->pixdim[0] < 0 ? -1.0 : 1.0;
    identity4(info->qform);
    identity4(info->sform);
    if (info->qform_code > 0) {
        for (int i = 0; i < 3; i++)
            if (!isfinite(info->quatern[i]) || !isfinite(info->qoffset[i]))
                return sl_errf(msg, msglen, SL_EFORMAT, "%s: qform_code is %d but the quaternion or qoffset is not finite", who,
                               info->qform_code);
        double d[3];
        for (int i = 0; i < 3; i++) d[i] = isfinite(info->pixdim[i + 1]) ? info->pixdim[i + 1] : 0.0;
        quatern_to_mat(info->quatern[0], info->quatern[1], info->quatern[2], info->qoffset[0], info->qoffset[1],
                       info->qoffset[2], d[0], d[1], d[2], info->qfac, info->qform);
        if (!all_finite4(info->qform))
            return sl_errf(msg, msglen, SL_EFORMAT, "%s: the qform gives a non-finite affine", who);
    }
    if (info->sform_code > 0) {
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) {
                if (!isfinite(info->srow[r][c]))
                    return sl_errf(msg, msglen, SL_EFORMAT, "%s: sform_code is %d but srow is not finite", who,
                                   info->sform_code);
                info->sform[r][c] = info->srow[r][c];
            }
    }
    if (info->sform_code > 0) {
        memcpy(info->affine, info->sform, sizeof info->affine);
    } else if (info->qform_code > 0) {
        memcpy(info->affine, info->qform, sizeof info->affine);
    } else {
        identity4(info->affine);
        for (int i = 0; i < 3; i++) {
            double p = info->pixdim[i + 1];
            info->affine[i][i] = isfinite(p) && p != 0 ? p : 1.0;
        }
    }

    const unsigned char *ds = h + (v1 ? N1(descrip) : N2(descrip));
    size_t n = 0;
    for (; n < 80 && ds[n]; n++) info->descrip[n] = ds[n] >= 32 && ds[n] < 127 ? (char)ds[n] : '?';
    info->descrip[n] = 0;
    return SL_OK;
}

/* ---- reading ------------------------------------------------------------ */

/* Replaces *a by slope * a + inter (see io.h "Scaling"): float32 unless
 * the stored values need float64 to stay exact (32/64-bit integers). The
 * product is formed in double either way. */
static sl_status apply_scaling(sl_array *a, double slope, double inter)
{
    sl_dtype odt = SL_DT_F32;
    switch (a->dtype) {
    case SL_DT_F64: case SL_DT_I32: case SL_DT_U32: case SL_DT_I64: case SL_DT_U64: odt = SL_DT_F64; break;
    default: break;
    }
    int64_t n = sl_array_count(a);
    sl_array out = SL_ARRAY_EMPTY;
    sl_status st = sl_array_alloc(&out, odt, a->ndim, a->shape);
    if (st != SL_OK) return st;
    if (odt == SL_DT_F32) {
        float *o = out.data;
        for (int64_t i = 0; i < n; i++) o[i] = (float)(slope * sl_array_get_f64(a, i) + inter);
    } else {
        double *o = out.data;
        for (int64_t i = 0; i < n; i++) o[i] = slope * sl_array_get_f64(a, i) + inter;
    }
    sl_array_free(a);
    *a = out;
    return SL_OK;
}

/* The common reader: header from the source, validation, data. With
 * want_data = 0 only the header is validated (and, for a plain source,
 * the data size checked against the file size). */
static sl_status read_source(src_t *s, const char *who, unsigned flags, int want_data, sl_array *out,
                             sl_nifti_info *info, char *msg, size_t msglen)
{
    unsigned char h[540];
    size_t got = src_read(s, h, 4);
    if (s->err != SL_OK) return sl_errf(msg, msglen, s->err, "%s: %s", who, s->why);
    if (got == 0) return sl_errf(msg, msglen, SL_EFORMAT, "%s: empty file", who);
    if (got < 4) return sl_errf(msg, msglen, SL_EFORMAT, "%s: truncated NIfTI header (%zu bytes; a header has 348 or 540)", who, got);

    /* sizeof_hdr tells both the version and the byte order: 348 or 540
     * read natively or byte-swapped. (nifti_clib uses dim[0] for the byte
     * order; sizeof_hdr is unambiguous and read first.) */
    int32_t sz, szs;
    memcpy(&sz, h, 4);
    szs = sz;
    swap_bytes(&szs, 4);
    int version, swap;
    if (sz == 348) { version = 1; swap = 0; }
    else if (szs == 348) { version = 1; swap = 1; }
    else if (sz == 540) { version = 2; swap = 0; }
    else if (szs == 540) { version = 2; swap = 1; }
    else {
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: not a NIfTI file (sizeof_hdr = %ld, expected 348 or 540)", who,
                       (long)sz);
    }
    size_t hsize = version == 1 ? 348 : 540;
    got = src_read(s, h + 4, hsize - 4);
    if (s->err != SL_OK) return sl_errf(msg, msglen, s->err, "%s: %s", who, s->why);
    if (got < hsize - 4)
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: truncated NIfTI-%d header (%zu of %zu bytes)", who, version,
                       got + 4, hsize);

    sl_nifti_info local;
    sl_nifti_info *inf = info ? info : &local;
    layout_t lay;
    sl_status st = parse_header(h, version, swap, inf, &lay, who, msg, msglen);
    if (st != SL_OK) return st;

    /* For a plain source the bytes present are known: check before
     * allocating anything. */
    if (!s->gz && s->raw_total >= 0) {
        int64_t have = s->raw_total - inf->vox_offset;
        if (have < (int64_t)lay.bytes)
            return sl_errf(msg, msglen, SL_EFORMAT,
                           "%s: truncated NIfTI data (%lld voxels of %s need %zu bytes at offset %lld; the file has "
                           "%lld)",
                           who, (long long)lay.count, sl_dtype_name(lay.dt), lay.bytes, (long long)inf->vox_offset,
                           (long long)(have > 0 ? have : 0));
    }
    if (!want_data) return SL_OK;
    /* a gzip stream does not bound the size it declares: the voxel limit
     * does, before the first allocation */
    if ((st = sl_check_voxels(lay.count, who, msg, msglen)) != SL_OK) return st;

    if (!src_skip(s, inf->vox_offset - s->pos)) {
        if (s->err != SL_OK) return sl_errf(msg, msglen, s->err, "%s: %s", who, s->why);
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: the file ends before vox_offset = %lld", who,
                       (long long)inf->vox_offset);
    }

    /* Data: exact allocation when the size was checked; otherwise grow as
     * decompressed bytes arrive (start at 1 MiB, double). */
    size_t cap = (!s->gz && s->raw_total >= 0) ? lay.bytes : (lay.bytes < ((size_t)1 << 20) ? lay.bytes : (size_t)1 << 20);
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf) return sl_errf(msg, msglen, SL_ENOMEM, "%s: cannot allocate %zu bytes", who, cap);
    size_t have = 0;
    for (;;) {
        size_t n = src_read(s, buf + have, cap - have);
        have += n;
        if (have < cap || have == lay.bytes) break;
        size_t ncap = cap > lay.bytes / 2 ? lay.bytes : cap * 2;
        unsigned char *nb = realloc(buf, ncap);
        if (!nb) {
            free(buf);
            return sl_errf(msg, msglen, SL_ENOMEM, "%s: cannot allocate %zu bytes", who, ncap);
        }
        buf = nb;
        cap = ncap;
    }
    if (s->err != SL_OK) {
        free(buf);
        return sl_errf(msg, msglen, s->err, "%s: %s", who, s->why);
    }
    if (have < lay.bytes) {
        free(buf);
        return sl_errf(msg, msglen, SL_EFORMAT,
                       "%s: truncated NIfTI data (%lld voxels of %s need %zu bytes; the %s ends after %zu)", who,
                       (long long)lay.count, sl_dtype_name(lay.dt), lay.bytes,
                       s->gz ? "decompressed stream" : "file", have);
    }
    src_drain(s);
    if (s->err != SL_OK) {
        free(buf);
        return sl_errf(msg, msglen, s->err, "%s: %s after the image data", who, s->why);
    }

    sl_array a = SL_ARRAY_EMPTY;
    a.dtype = lay.dt;
    a.ndim = inf->ndim;
    for (int i = 0; i < inf->ndim; i++) a.shape[i] = inf->dim[inf->ndim - i];
    a.data = buf;
    if (swap) sl_swap_elements(a.data, lay.count, sl_dtype_size(lay.dt));

    double slope = inf->scl_slope, inter = isfinite(inf->scl_inter) ? inf->scl_inter : 0.0;
    if (!(flags & SL_NIFTI_NO_SCALE) && isfinite(slope) && slope != 0 && !(slope == 1 && inter == 0)) {
        st = apply_scaling(&a, slope, inter);
        if (st != SL_OK) {
            sl_array_free(&a);
            return sl_errf(msg, msglen, st, "%s: cannot allocate the scaled image", who);
        }
        inf->scaled = 1;
    }
    *out = a;
    return SL_OK;
}

/* Sets up a source on a file: plain or gzip by its first two bytes. */
static sl_status src_open_file(src_t *s, const char *path, char *msg, size_t msglen)
{
    memset(s, 0, sizeof *s);
    s->f = sl_fopen_read(path);
    if (!s->f) return sl_errf(msg, msglen, SL_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fileno(s->f), &stt) != 0 || !S_ISREG(stt.st_mode)) {
        src_close(s);
        return sl_errf(msg, msglen, SL_EIO, "cannot read '%s': not a regular file", path);
    }
    unsigned char m[2] = {0, 0};
    size_t got = fread(m, 1, 2, s->f);
    if (ferror(s->f) || fseeko(s->f, 0, SEEK_SET) != 0) {
        src_close(s);
        return sl_errf(msg, msglen, SL_EIO, "cannot read '%s': %s", path, strerror(errno));
    }
    if (got == 2 && m[0] == 0x1f && m[1] == 0x8b) {
        s->gz = 1;
        s->inbuf = malloc(IN_CHUNK);
        if (!s->inbuf || src_begin_gz(s) != SL_OK) {
            src_close(s);
            return sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", path);
        }
    } else {
        s->raw_total = (int64_t)stt.st_size;
    }
    return SL_OK;
}

sl_status sl_nifti_read(const char *path, unsigned flags, sl_array *out, sl_nifti_info *info, char *msg,
                        size_t msglen)
{
    if (!path || !out) return sl_errf(msg, msglen, SL_EINVAL, "nifti: NULL argument");
    sl_array empty = SL_ARRAY_EMPTY;
    *out = empty;
    src_t s;
    sl_status st = src_open_file(&s, path, msg, msglen);
    if (st != SL_OK) return st;
    st = read_source(&s, path, flags, 1, out, info, msg, msglen);
    src_close(&s);
    return st;
}

sl_status sl_nifti_read_header(const char *path, sl_nifti_info *info, char *msg, size_t msglen)
{
    if (!path || !info) return sl_errf(msg, msglen, SL_EINVAL, "nifti: NULL argument");
    src_t s;
    sl_status st = src_open_file(&s, path, msg, msglen);
    if (st != SL_OK) return st;
    st = read_source(&s, path, 0, 0, NULL, info, msg, msglen);
    src_close(&s);
    return st;
}

sl_status sl_nifti_parse(const void *buf, size_t len, unsigned flags, sl_array *out, sl_nifti_info *info,
                         char *msg, size_t msglen)
{
    if (!buf || !out) return sl_errf(msg, msglen, SL_EINVAL, "nifti: NULL argument");
    sl_array empty = SL_ARRAY_EMPTY;
    *out = empty;
    src_t s;
    memset(&s, 0, sizeof s);
    s.mem = buf;
    s.mem_len = len;
    if (len >= 2 && s.mem[0] == 0x1f && s.mem[1] == 0x8b) {
        s.gz = 1;
        if (src_begin_gz(&s) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "nifti: out of memory");
    } else {
        s.raw_total = (int64_t)len;
    }
    sl_status st = read_source(&s, "<memory>", flags, 1, out, info, msg, msglen);
    src_close(&s);
    return st;
}

/* ---- writing ------------------------------------------------------------ */

/* 1 when v survives a trip through a NIfTI-1 float field: finite, within
 * float range, and not flushed to zero. */
static int fits_f32(double v)
{
    return isfinite(v) && fabs(v) <= FLT_MAX && (v == 0 || (float)v != 0.0f);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++) {
        char c = s[n - m + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != suffix[i]) return 0;
    }
    return 1;
}

/* gzwrite in chunks that fit its unsigned length. */
static int gz_put(gzFile g, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0) {
        unsigned k = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        if (gzwrite(g, b, k) != (int)k) return 0;
        b += k;
        n -= k;
    }
    return 1;
}

sl_status sl_nifti_write(const char *path, const sl_array *a, const double *spacing, const sl_nifti_info *ref,
                         char *msg, size_t msglen)
{
    if (!path || !a || !a->data) return sl_errf(msg, msglen, SL_EINVAL, "nifti: NULL argument");
    int gz;
    if (ends_with(path, ".nii.gz")) gz = 1;
    else if (ends_with(path, ".nii")) gz = 0;
    else return sl_errf(msg, msglen, SL_EINVAL, "'%s': a NIfTI file name must end in .nii or .nii.gz", path);
    if (a->ndim < 1 || a->ndim > 7)
        return sl_errf(msg, msglen, SL_ESHAPE, "'%s': NIfTI holds 1 to 7 axes, the array has %d", path, a->ndim);
    int dtc = dt_to_nifti(a->dtype);
    if (!dtc) return sl_errf(msg, msglen, SL_EDTYPE, "'%s': cannot store dtype %d in NIfTI", path, (int)a->dtype);
    int64_t count = sl_array_count(a);
    size_t bytes;
    if (count < 0 || sl_bytes(count, sl_dtype_size(a->dtype), &bytes) != SL_OK)
        return sl_errf(msg, msglen, SL_EOVERFLOW, "'%s': array too large", path);

    /* NIfTI axis d+1 is array axis ndim-1-d. */
    const int nd = a->ndim;
    int64_t dim[8] = {0};
    double pix[8] = {0};
    int version = 1;
    dim[0] = nd;
    for (int d = 1; d <= 7; d++) {
        dim[d] = d <= nd ? a->shape[nd - d] : 1;
        if (dim[d] < 1)
            return sl_errf(msg, msglen, SL_ESHAPE, "'%s': NIfTI cannot store an axis of extent %lld", path,
                           (long long)dim[d]);
        if (dim[d] > 32767) version = 2;
        pix[d] = 1.0;
    }
    if (ref) {
        int nsp = nd < 3 ? nd : 3;
        for (int d = 1; d <= nsp; d++) {
            int64_t rd = d <= ref->dim[0] ? ref->dim[d] : 1;
            if (rd != dim[d])
                return sl_errf(msg, msglen, SL_ESHAPE,
                               "'%s': the array's grid (%lld x %lld x %lld) differs from the reference image's "
                               "(%lld x %lld x %lld)",
                               path, (long long)dim[1], (long long)dim[2], (long long)dim[3],
                               (long long)(ref->dim[0] >= 1 ? ref->dim[1] : 1),
                               (long long)(ref->dim[0] >= 2 ? ref->dim[2] : 1),
                               (long long)(ref->dim[0] >= 3 ? ref->dim[3] : 1));
        }
    }
    int units = NIFTI_UNITS_MM;
    if (spacing) {
        for (int d = 1; d <= nd; d++) {
            double sp = spacing[nd - d];
            if (!isfinite(sp) || sp <= 0)
                return sl_errf(msg, msglen, SL_EINVAL, "'%s': spacing %g of axis %d is not a positive number", path,
                               sp, nd - d);
            pix[d] = sp;
        }
        if (ref) units = NIFTI_UNITS_MM | (ref->xyzt_units & 0x38);
    } else if (ref) {
        for (int d = 1; d <= nd && d <= 7; d++) {
            double p = d <= ref->dim[0] ? ref->pixdim[d] : 1.0;
            pix[d] = isfinite(p) && p != 0 ? fabs(p) : 1.0;
        }
        units = ref->xyzt_units;
    }
    pix[0] = ref && ref->qfac < 0 ? -1.0 : 1.0;

    int qcode = NIFTI_XFORM_SCANNER_ANAT, scode = 0;
    double quat[3] = {0, 0, 0}, qoff[3] = {0, 0, 0}, srow[3][4] = {{0}};
    if (ref) {
        /* Only the transforms the reference declares (code > 0) are copied:
         * the fields of an absent one may hold anything, NaN included. */
        qcode = ref->qform_code > 0 ? ref->qform_code : 0;
        scode = ref->sform_code > 0 ? ref->sform_code : 0;
        if (qcode) {
            memcpy(quat, ref->quatern, sizeof quat);
            memcpy(qoff, ref->qoffset, sizeof qoff);
        }
        if (scode) memcpy(srow, ref->srow, sizeof srow);
    }

    /* Geometry copied from a NIfTI-2 reference may not fit NIfTI-1's float
     * fields; then the output is NIfTI-2 too rather than silently wrong. */
    for (int d = 0; d < 8; d++) if (!fits_f32(pix[d])) version = 2;
    for (int i = 0; i < 3; i++) {
        if (!fits_f32(quat[i]) || !fits_f32(qoff[i])) version = 2;
        for (int c = 0; c < 4; c++) if (!fits_f32(srow[i][c])) version = 2;
    }

    /* The header, in host byte order (readers detect the order from
     * sizeof_hdr, so no swapping is ever needed on write). */
    unsigned char hdr[544];
    size_t hsize;
    memset(hdr, 0, sizeof hdr);
    if (version == 1) {
        nifti_1_header h1;
        memset(&h1, 0, sizeof h1);
        h1.sizeof_hdr = 348;
        h1.regular = 'r';
        for (int d = 0; d < 8; d++) {
            h1.dim[d] = (short)dim[d];
            h1.pixdim[d] = (float)pix[d];
        }
        h1.datatype = (short)dtc;
        h1.bitpix = (short)(8 * sl_dtype_size(a->dtype));
        h1.vox_offset = 352.0f;
        h1.scl_slope = 1.0f;
        h1.scl_inter = 0.0f;
        h1.xyzt_units = (char)units;
        h1.qform_code = (short)qcode;
        h1.sform_code = (short)scode;
        h1.quatern_b = (float)quat[0]; h1.quatern_c = (float)quat[1]; h1.quatern_d = (float)quat[2];
        h1.qoffset_x = (float)qoff[0]; h1.qoffset_y = (float)qoff[1]; h1.qoffset_z = (float)qoff[2];
        for (int c = 0; c < 4; c++) {
            h1.srow_x[c] = (float)srow[0][c];
            h1.srow_y[c] = (float)srow[1][c];
            h1.srow_z[c] = (float)srow[2][c];
        }
        snprintf(h1.descrip, sizeof h1.descrip, "segloss %s", SL_VERSION_STRING);
        memcpy(h1.magic, "n+1", 4);
        memcpy(hdr, &h1, sizeof h1);
        hsize = 352; /* + 4 zero bytes: no extensions */
    } else {
        nifti_2_header h2;
        memset(&h2, 0, sizeof h2);
        h2.sizeof_hdr = 540;
        memcpy(h2.magic, "n+2\0\r\n\032\n", 8);
        for (int d = 0; d < 8; d++) {
            h2.dim[d] = dim[d];
            h2.pixdim[d] = pix[d];
        }
        h2.datatype = (int16_t)dtc;
        h2.bitpix = (int16_t)(8 * sl_dtype_size(a->dtype));
        h2.vox_offset = 544;
        h2.scl_slope = 1.0;
        h2.scl_inter = 0.0;
        h2.xyzt_units = units;
        h2.qform_code = qcode;
        h2.sform_code = scode;
        h2.quatern_b = quat[0]; h2.quatern_c = quat[1]; h2.quatern_d = quat[2];
        h2.qoffset_x = qoff[0]; h2.qoffset_y = qoff[1]; h2.qoffset_z = qoff[2];
        for (int c = 0; c < 4; c++) {
            h2.srow_x[c] = srow[0][c];
            h2.srow_y[c] = srow[1][c];
            h2.srow_z[c] = srow[2][c];
        }
        snprintf(h2.descrip, sizeof h2.descrip, "segloss %s", SL_VERSION_STRING);
        memcpy(hdr, &h2, sizeof h2);
        hsize = 544;
    }

    /* Floats barely compress; level 1 saves most of the time at little
     * size cost. Label maps compress well at the default level. "T" =
     * transparent: zlib writes the bytes unchanged (plain .nii). */
    const char *mode = !gz ? "wbT" : (a->dtype == SL_DT_F32 || a->dtype == SL_DT_F64) ? "wb1" : "wb6";
    sl_out *o;
    sl_status st = sl_out_open(path, &o, msg, msglen);
    if (st != SL_OK) return st;
    /* gzclose closes the descriptor it was given: hand zlib a duplicate,
     * so the writer's own descriptor stays open for the commit's fsync */
    errno = 0;
    int zfd = dup(sl_out_fd(o));
    gzFile g = zfd >= 0 ? gzdopen(zfd, mode) : NULL;
    if (!g) {
        int e = errno;
        if (zfd >= 0) close(zfd);
        sl_out_abort(o);
        return sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, e ? strerror(e) : "out of memory");
    }
    gzbuffer(g, 1u << 17);
    int ok = gz_put(g, hdr, hsize);
    /* bool is stored as uint8 0/1; every other dtype as its bytes. */
    ok = ok && gz_put(g, a->data, bytes);
    char why[200] = "";
    if (!ok) {
        int zerr;
        const char *zm = gzerror(g, &zerr);
        snprintf(why, sizeof why, "%s", zerr == Z_ERRNO ? strerror(errno) : zm);
    }
    int cl = gzclose(g);
    if (ok && cl != Z_OK) {
        ok = 0;
        snprintf(why, sizeof why, "%s", cl == Z_ERRNO ? strerror(errno) : "gzip close failed");
    }
    if (!ok) {
        sl_out_abort(o);
        return sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, why);
    }
    return sl_out_commit(o, msg, msglen);
}
