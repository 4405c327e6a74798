/*
 * NIfTI reader and writer: axis order, spacing, geometry copy, every dtype
 * through .nii and .nii.gz, NIfTI-2, byte-swapped files, scaling, atomic
 * writes, the expected code of every file in tests/fuzz/corpus/nifti/, and
 * the real Colin27/AAL volumes of mricron-data when installed.
 * (tests/ref/test_nifti_clib.py checks the same reader against nifti_clib.)
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "segloss/io.h"
#include "test_util.h"

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

static int16_t le16(const unsigned char *p) { return (int16_t)(p[0] | p[1] << 8); }
static float lef32(const unsigned char *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* A minimal NIfTI-1 header (2x2x2 uint8 unless changed), little-endian. */
static void header1(unsigned char *h, int nx, int ny, int nz, int datatype, int bitpix)
{
    memset(h, 0, 352);
    int32_t sz = 348;
    memcpy(h, &sz, 4);
    int16_t dim[8] = {3, (int16_t)nx, (int16_t)ny, (int16_t)nz, 1, 1, 1, 1};
    memcpy(h + 40, dim, 16);
    int16_t dt = (int16_t)datatype, bp = (int16_t)bitpix;
    memcpy(h + 70, &dt, 2);
    memcpy(h + 72, &bp, 2);
    float pix[8] = {1, 1, 1, 1, 0, 0, 0, 0};
    memcpy(h + 76, pix, 32);
    float vo = 352;
    memcpy(h + 108, &vo, 4);
    memcpy(h + 344, "n+1", 4);
}

static void nifti_array_axes_are_reversed_nifti_axes(void)
{
    /* Array (D=2, H=3, W=4): NIfTI dim = (4, 3, 2), x fastest = W. */
    int64_t shape[3] = {2, 3, 4};
    sl_array a = SL_ARRAY_EMPTY, b = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a, SL_DT_I16, 3, shape) == SL_OK);
    for (int i = 0; i < 24; i++) ((int16_t *)a.data)[i] = (int16_t)(i * 11 - 50);
    double spacing[3] = {2.5, 0.75, 0.5}; /* (dz, dy, dx) */
    char msg[512] = "";
    EXPECT(sl_nifti_write(tmp_path("axes.nii"), &a, spacing, NULL, msg, sizeof msg) == SL_OK);
    size_t n = 0;
    unsigned char *f = slurp(tmp_path("axes.nii"), &n);
    EXPECT(f && n == 352 + 48);
    if (f && n >= 352) {
        EXPECT(le16(f + 40) == 3 && le16(f + 42) == 4 && le16(f + 44) == 3 && le16(f + 46) == 2);
        EXPECT(lef32(f + 80) == 0.5f && lef32(f + 84) == 0.75f && lef32(f + 88) == 2.5f); /* pixdim 1..3 */
        EXPECT(le16(f + 70) == 4 && le16(f + 72) == 16);                                  /* int16 */
        EXPECT(memcmp(f + 344, "n+1", 4) == 0);
        /* Voxel (i=1, j=2, k=1) is array element [1][2][1] = index 1 + 4 * (2 + 3 * 1). */
        EXPECT(le16(f + 352 + 2 * (1 + 4 * (2 + 3 * 1))) == ((int16_t *)a.data)[1 * 12 + 2 * 4 + 1]);
    }
    free(f);
    sl_nifti_info in;
    EXPECT(sl_nifti_read(tmp_path("axes.nii"), 0, &b, &in, msg, sizeof msg) == SL_OK);
    EXPECT(b.ndim == 3 && b.shape[0] == 2 && b.shape[1] == 3 && b.shape[2] == 4);
    EXPECT(in.spacing[0] == 2.5 && in.spacing[1] == 0.75 && in.spacing[2] == 0.5);
    EXPECT(in.dim[1] == 4 && in.dim[3] == 2 && in.version == 1 && !in.swapped && !in.scaled);
    EXPECT(b.dtype == SL_DT_I16 && memcmp(a.data, b.data, 48) == 0);
    /* No reference: identity rotation, so the affine is diag(dx, dy, dz). */
    EXPECT(in.qform_code == 1 && in.sform_code == 0);
    EXPECT(in.affine[0][0] == 0.5 && in.affine[1][1] == 0.75 && in.affine[2][2] == 2.5 && in.affine[0][1] == 0);
    sl_array_free(&a);
    sl_array_free(&b);
}

static void nifti_round_trip_every_dtype_plain_and_gzip(void)
{
    static const char *ext[2] = {"rt.nii", "rt.nii.gz"};
    for (int dt = SL_DT_F32; dt <= SL_DT_I64; dt++) {
        for (int e = 0; e < 2; e++) {
            int64_t shape[4] = {3, 1, 5, 7};
            sl_array a = SL_ARRAY_EMPTY, b = SL_ARRAY_EMPTY;
            EXPECT(sl_array_alloc(&a, (sl_dtype)dt, 4, shape) == SL_OK);
            unsigned char *p = a.data;
            size_t bytes = (size_t)sl_array_count(&a) * sl_dtype_size(a.dtype);
            for (size_t i = 0; i < bytes; i++) p[i] = (unsigned char)(i * 37 + 11);
            if (dt == SL_DT_BOOL)
                for (size_t i = 0; i < bytes; i++) p[i] &= 1;
            char msg[512] = "";
            EXPECT(sl_nifti_write(tmp_path(ext[e]), &a, NULL, NULL, msg, sizeof msg) == SL_OK);
            sl_nifti_info in;
            EXPECT(sl_nifti_read(tmp_path(ext[e]), 0, &b, &in, msg, sizeof msg) == SL_OK);
            /* bool is stored as uint8; everything else keeps its dtype. */
            EXPECT(b.dtype == (dt == SL_DT_BOOL ? SL_DT_U8 : (sl_dtype)dt));
            EXPECT(b.ndim == 4 && b.shape[0] == 3 && b.shape[1] == 1 && b.shape[3] == 7);
            EXPECT(b.data && memcmp(a.data, b.data, bytes) == 0);
            sl_array_free(&a);
            sl_array_free(&b);
        }
    }
}

static void nifti_trailing_unit_axes_beyond_three_are_dropped(void)
{
    int64_t shape5[5] = {1, 1, 2, 3, 4}; /* NIfTI (4, 3, 2, 1, 1) */
    sl_array a = SL_ARRAY_EMPTY, b = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a, SL_DT_U8, 5, shape5) == SL_OK);
    EXPECT(sl_nifti_write(tmp_path("t5.nii"), &a, NULL, NULL, NULL, 0) == SL_OK);
    sl_nifti_info in;
    EXPECT(sl_nifti_read(tmp_path("t5.nii"), 0, &b, &in, NULL, 0) == SL_OK);
    EXPECT(in.dim[0] == 5 && b.ndim == 3 && b.shape[0] == 2 && b.shape[2] == 4);
    sl_array_free(&b);
    sl_array_free(&a);
    /* A single slice stored as 3-D keeps its unit axis: (1, H, W). */
    int64_t shape3[3] = {1, 3, 4};
    EXPECT(sl_array_alloc(&a, SL_DT_U8, 3, shape3) == SL_OK);
    EXPECT(sl_nifti_write(tmp_path("t3.nii"), &a, NULL, NULL, NULL, 0) == SL_OK);
    EXPECT(sl_nifti_read(tmp_path("t3.nii"), 0, &b, &in, NULL, 0) == SL_OK);
    EXPECT(b.ndim == 3 && b.shape[0] == 1);
    sl_array_free(&b);
    sl_array_free(&a);
}

static void nifti_large_extent_is_written_as_nifti2(void)
{
    int64_t shape[2] = {2, 40000};
    sl_array a = SL_ARRAY_EMPTY, b = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a, SL_DT_U8, 2, shape) == SL_OK);
    ((uint8_t *)a.data)[79999] = 9;
    double sp[2] = {3.0, 0.125};
    EXPECT(sl_nifti_write(tmp_path("big.nii.gz"), &a, sp, NULL, NULL, 0) == SL_OK);
    sl_nifti_info in;
    char msg[512] = "";
    EXPECT(sl_nifti_read(tmp_path("big.nii.gz"), 0, &b, &in, msg, sizeof msg) == SL_OK);
    EXPECT(in.version == 2 && in.dim[1] == 40000 && in.vox_offset == 544);
    EXPECT(b.ndim == 2 && b.shape[1] == 40000 && ((uint8_t *)b.data)[79999] == 9);
    EXPECT(in.spacing[0] == 3.0 && in.spacing[1] == 0.125);
    sl_array_free(&a);
    sl_array_free(&b);
}

static void nifti_reference_geometry_is_copied(void)
{
    /* A reference with an oblique qform (90 degrees about z, qfac -1), an
     * sform, anisotropic pixdim and micron units. */
    unsigned char h[360];
    header1(h, 4, 3, 2, 2, 8);
    float pix[8] = {-1, 0.5f, 0.25f, 2.0f, 0, 0, 0, 0};
    memcpy(h + 76, pix, 32);
    h[123] = 3; /* NIFTI_UNITS_MICRON */
    int16_t codes[2] = {1, 2};
    memcpy(h + 252, codes, 4);
    float q[6] = {0, 0, (float)sqrt(0.5), 10, 20, 30};
    memcpy(h + 256, q, 24);
    float srow[12] = {0, -0.25f, 0, 5, 0.5f, 0, 0, 6, 0, 0, -2, 7};
    memcpy(h + 280, srow, 48);
    unsigned char file[352 + 24];
    memcpy(file, h, 352);
    for (int i = 0; i < 24; i++) file[352 + i] = (unsigned char)i;
    spit(tmp_path("ref.nii"), file, sizeof file);

    sl_array a = SL_ARRAY_EMPTY, b = SL_ARRAY_EMPTY;
    sl_nifti_info ref, out;
    char msg[512] = "";
    EXPECT(sl_nifti_read(tmp_path("ref.nii"), 0, &a, &ref, msg, sizeof msg) == SL_OK);
    /* Micron pixdim read as mm; the affine is as stored. */
    EXPECT(fabs(ref.spacing[2] - 0.0005) < 1e-12 && fabs(ref.spacing[0] - 0.002) < 1e-12);
    EXPECT(ref.qfac == -1 && ref.qform_code == 1 && ref.sform_code == 2);
    /* qform: R = rotation by 90 deg about z = [[0,-1,0],[1,0,0],[0,0,1]],
     * columns scaled by (dx, dy, qfac * dz). */
    EXPECT(fabs(ref.qform[0][1] + 0.25) < 1e-6 && fabs(ref.qform[1][0] - 0.5) < 1e-6);
    EXPECT(fabs(ref.qform[2][2] + 2.0) < 1e-6 && fabs(ref.qform[0][0]) < 1e-6 && ref.qform[1][3] == 20);
    EXPECT(ref.affine[0][1] == -0.25 && ref.affine[2][3] == 7); /* sform wins */

    EXPECT(sl_nifti_write(tmp_path("copy.nii.gz"), &a, NULL, &ref, msg, sizeof msg) == SL_OK);
    EXPECT(sl_nifti_read(tmp_path("copy.nii.gz"), 0, &b, &out, msg, sizeof msg) == SL_OK);
    EXPECT(out.qform_code == 1 && out.sform_code == 2 && out.qfac == -1 && out.xyzt_units == 3);
    EXPECT(memcmp(out.affine, ref.affine, sizeof out.affine) == 0);
    EXPECT(memcmp(out.qform, ref.qform, sizeof out.qform) == 0);
    EXPECT(memcmp(out.spacing, ref.spacing, 3 * sizeof(double)) == 0);
    EXPECT(memcmp(a.data, b.data, 24) == 0);
    sl_array_free(&b);

    /* Explicit spacing overrides the pixdim (in mm) but keeps the transforms. */
    double sp[3] = {1.0, 2.0, 3.0};
    EXPECT(sl_nifti_write(tmp_path("copy2.nii"), &a, sp, &ref, msg, sizeof msg) == SL_OK);
    EXPECT(sl_nifti_read(tmp_path("copy2.nii"), 0, &b, &out, msg, sizeof msg) == SL_OK);
    EXPECT(out.spacing[0] == 1.0 && out.spacing[2] == 3.0 && (out.xyzt_units & 7) == 2 && out.sform_code == 2);
    sl_array_free(&b);

    /* A different grid cannot take this reference's geometry. */
    int64_t other[3] = {2, 3, 5};
    EXPECT(sl_array_alloc(&b, SL_DT_U8, 3, other) == SL_OK);
    EXPECT(sl_nifti_write(tmp_path("bad.nii"), &b, NULL, &ref, msg, sizeof msg) == SL_ESHAPE);
    EXPECT(strstr(msg, "reference") != NULL);
    sl_array_free(&b);
    sl_array_free(&a);
}

static void nifti_reads_byte_swapped_files(void)
{
    /* Big-endian NIfTI-1: int16 values 1, -2 on a 2x1x1 grid. */
    unsigned char h[352 + 4];
    header1(h, 2, 1, 1, 4, 16);
    /* Swap every field we set (sizeof_hdr, dim, datatype, bitpix, pixdim, vox_offset). */
    for (int off = 0; off < 4; off += 4) { unsigned char t = h[off]; h[off] = h[off + 3]; h[off + 3] = t; t = h[off + 1]; h[off + 1] = h[off + 2]; h[off + 2] = t; }
    for (int off = 40; off < 76; off += 2) { unsigned char t = h[off]; h[off] = h[off + 1]; h[off + 1] = t; }
    for (int off = 76; off < 112; off += 4) { unsigned char t = h[off]; h[off] = h[off + 3]; h[off + 3] = t; t = h[off + 1]; h[off + 1] = h[off + 2]; h[off + 2] = t; }
    h[352] = 0x00; h[353] = 0x01; h[354] = 0xFF; h[355] = 0xFE;
    sl_array a;
    sl_nifti_info in;
    char msg[512] = "";
    EXPECT(sl_nifti_parse(h, sizeof h, 0, &a, &in, msg, sizeof msg) == SL_OK);
    EXPECT(in.swapped == 1 && a.dtype == SL_DT_I16 && a.shape[2] == 2);
    if (a.data) EXPECT(((int16_t *)a.data)[0] == 1 && ((int16_t *)a.data)[1] == -2);
    sl_array_free(&a);
}

static void nifti_scaling_is_applied_unless_asked_not_to(void)
{
    unsigned char f[352 + 8];
    header1(f, 2, 2, 1, 4, 16); /* int16 */
    float slope = 0.5f, inter = -1.0f;
    memcpy(f + 112, &slope, 4);
    memcpy(f + 116, &inter, 4);
    int16_t v[4] = {0, 2, -4, 1000};
    memcpy(f + 352, v, 8);
    sl_array a;
    sl_nifti_info in;
    EXPECT(sl_nifti_parse(f, sizeof f, 0, &a, &in, NULL, 0) == SL_OK);
    EXPECT(in.scaled && a.dtype == SL_DT_F32);
    if (a.data) EXPECT(((float *)a.data)[1] == 0.0f && ((float *)a.data)[2] == -3.0f && ((float *)a.data)[3] == 499.0f);
    sl_array_free(&a);
    EXPECT(sl_nifti_parse(f, sizeof f, SL_NIFTI_NO_SCALE, &a, &in, NULL, 0) == SL_OK);
    EXPECT(!in.scaled && a.dtype == SL_DT_I16 && ((int16_t *)a.data)[3] == 1000);
    sl_array_free(&a);
    /* Identity (1, 0) and slope 0 ("no scaling" in the standard) keep the dtype. */
    slope = 1.0f; inter = 0.0f;
    memcpy(f + 112, &slope, 4);
    memcpy(f + 116, &inter, 4);
    EXPECT(sl_nifti_parse(f, sizeof f, 0, &a, &in, NULL, 0) == SL_OK && a.dtype == SL_DT_I16 && !in.scaled);
    sl_array_free(&a);
    slope = 0.0f; inter = 5.0f;
    memcpy(f + 112, &slope, 4);
    memcpy(f + 116, &inter, 4);
    EXPECT(sl_nifti_parse(f, sizeof f, 0, &a, &in, NULL, 0) == SL_OK && a.dtype == SL_DT_I16);
    sl_array_free(&a);
}

static void nifti_read_header_checks_without_reading_data(void)
{
    unsigned char f[352 + 8];
    header1(f, 2, 2, 2, 2, 8);
    memset(f + 352, 1, 8);
    spit(tmp_path("h.nii"), f, sizeof f);
    sl_nifti_info in;
    char msg[512] = "";
    EXPECT(sl_nifti_read_header(tmp_path("h.nii"), &in, msg, sizeof msg) == SL_OK);
    EXPECT(in.ndim == 3 && in.dim[1] == 2 && in.datatype == 2);
    spit(tmp_path("h_short.nii"), f, sizeof f - 1); /* a plain file's size is checked */
    EXPECT(sl_nifti_read_header(tmp_path("h_short.nii"), &in, msg, sizeof msg) == SL_EFORMAT);
    EXPECT(strstr(msg, "truncated") && strstr(msg, "h_short.nii"));
}

static void nifti_write_is_atomic_and_reports_failures(void)
{
    int64_t shape[3] = {2, 2, 2};
    sl_array a = SL_ARRAY_EMPTY, b = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a, SL_DT_U8, 3, shape) == SL_OK);
    char msg[512] = "";
    EXPECT(sl_nifti_write(tmp_path("x.nrrd"), &a, NULL, NULL, msg, sizeof msg) == SL_EINVAL);
    EXPECT(strstr(msg, ".nii") != NULL);
    EXPECT(sl_nifti_write(tmp_path("missing-dir/x.nii"), &a, NULL, NULL, msg, sizeof msg) == SL_EIO);
    EXPECT(strstr(msg, "x.nii") != NULL);
    double bad[3] = {1, 0, 1};
    EXPECT(sl_nifti_write(tmp_path("x.nii"), &a, bad, NULL, msg, sizeof msg) == SL_EINVAL);
    int64_t shape8[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    sl_array a8 = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a8, SL_DT_U8, 8, shape8) == SL_OK);
    EXPECT(sl_nifti_write(tmp_path("x.nii"), &a8, NULL, NULL, msg, sizeof msg) == SL_ESHAPE);
    sl_array_free(&a8);

    /* A failed write leaves an existing file as it was; a good one replaces
     * it, and no temporary file remains either way. */
    ((uint8_t *)a.data)[0] = 42;
    EXPECT(sl_nifti_write(tmp_path("keep.nii.gz"), &a, NULL, NULL, NULL, 0) == SL_OK);
    EXPECT(sl_nifti_write(tmp_path("keep.nii.gz"), &a, bad, NULL, NULL, 0) == SL_EINVAL);
    EXPECT(sl_nifti_read(tmp_path("keep.nii.gz"), 0, &b, NULL, NULL, 0) == SL_OK && ((uint8_t *)b.data)[0] == 42);
    sl_array_free(&b);
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int tmps = 0;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) tmps++;
    if (d) closedir(d);
    EXPECT(tmps == 0);
    sl_array_free(&a);
}

static void nifti_reports_files_that_are_not_images(void)
{
    sl_array a;
    char msg[512] = "";
    EXPECT(sl_nifti_read(tmp_path("nothing.nii"), 0, &a, NULL, msg, sizeof msg) == SL_EIO);
    EXPECT(strstr(msg, "nothing.nii") != NULL);
    EXPECT(sl_nifti_read(tmpdir, 0, &a, NULL, msg, sizeof msg) == SL_EIO);
    EXPECT(strstr(msg, "regular") != NULL);
    spit(tmp_path("empty.nii"), "", 0);
    EXPECT(sl_nifti_read(tmp_path("empty.nii"), 0, &a, NULL, msg, sizeof msg) == SL_EFORMAT);
    EXPECT(strstr(msg, "empty") != NULL && a.data == NULL);
    EXPECT(sl_nifti_read(NULL, 0, &a, NULL, msg, sizeof msg) == SL_EINVAL);
}

static void image_io_dispatches_on_the_extension(void)
{
    EXPECT(sl_format_from_path("a/b.NII.GZ") == SL_FORMAT_NIFTI_GZ);
    EXPECT(sl_format_from_path("b.nii") == SL_FORMAT_NIFTI);
    EXPECT(sl_format_from_path("b.npy") == SL_FORMAT_NPY);
    EXPECT(sl_format_from_path("b.nii.bz2") == SL_FORMAT_UNKNOWN);
    EXPECT(sl_format_from_path("gz") == SL_FORMAT_UNKNOWN);
    int64_t shape[2] = {2, 3};
    sl_array a = SL_ARRAY_EMPTY, b = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a, SL_DT_F32, 2, shape) == SL_OK);
    double sp[2] = {0.5, 4};
    sl_image_info info;
    char msg[512] = "";
    EXPECT(sl_image_write(tmp_path("i.npy"), &a, sp, NULL, msg, sizeof msg) == SL_OK);
    EXPECT(sl_image_read(tmp_path("i.npy"), &b, &info, msg, sizeof msg) == SL_OK);
    EXPECT(info.format == SL_FORMAT_NPY && !info.has_spacing && info.spacing[1] == 1.0);
    sl_array_free(&b);
    EXPECT(sl_image_write(tmp_path("i.nii.gz"), &a, sp, NULL, msg, sizeof msg) == SL_OK);
    EXPECT(sl_image_read(tmp_path("i.nii.gz"), &b, &info, msg, sizeof msg) == SL_OK);
    EXPECT(info.format == SL_FORMAT_NIFTI_GZ && info.has_spacing && info.spacing[0] == 0.5 && info.spacing[1] == 4);
    sl_array_free(&b);
    EXPECT(sl_image_read(tmp_path("i.tif"), &b, &info, msg, sizeof msg) == SL_EUNSUPPORTED);
    EXPECT(strstr(msg, "i.tif") != NULL);
    EXPECT(sl_image_write(tmp_path("i.txt"), &a, NULL, NULL, msg, sizeof msg) == SL_EUNSUPPORTED);
    sl_array_free(&a);
}

/* Every generated corpus file gives the status its name promises (see
 * tests/fuzz/make_corpus.py); files not in the table fail the test. */
static void nifti_corpus_files_give_their_expected_codes(void)
{
    static const struct {
        const char *prefix;
        sl_status want;
    } table[] = {
        {"ok_", SL_OK},
        {"datatype_", SL_EDTYPE},
        {"magic_two_file_", SL_EUNSUPPORTED},
        {"dims_7x32767_overflow", SL_EOVERFLOW},
        {"dims_huge_no_data", SL_EOVERFLOW},
        {"n2_dims_int64_overflow", SL_EOVERFLOW},
        {"n2_dims_over_1TiB", SL_EOVERFLOW},
        {"n2_qform_huge", SL_OK},      /* finite, normalised: a valid if odd file */
        {"n2_srow_huge_finite", SL_OK},
        /* Everything else is malformed: SL_EFORMAT. */
        {"analyze75_", SL_EFORMAT}, {"bigendian_data_short", SL_EFORMAT}, {"bitpix_", SL_EFORMAT},
        {"data_", SL_EFORMAT}, {"dim0_", SL_EFORMAT}, {"dim2_", SL_EFORMAT}, {"dim3_", SL_EFORMAT},
        {"dims_1000x1000x100_no_data", SL_EFORMAT}, {"empty", SL_EFORMAT}, {"gz_", SL_EFORMAT},
        {"header_truncated_", SL_EFORMAT}, {"magic_", SL_EFORMAT}, {"n2_data_short", SL_EFORMAT},
        {"n2_dim_", SL_EFORMAT}, {"n2_header_truncated_", SL_EFORMAT}, {"n2_pixdim_", SL_EFORMAT},
        {"n2_vox_offset_", SL_EFORMAT}, {"npy_given_as_nifti", SL_EFORMAT}, {"one_byte", SL_EFORMAT},
        {"pixdim_", SL_EFORMAT}, {"qform_nan", SL_EFORMAT}, {"qoffset_inf", SL_EFORMAT},
        {"sform_nan", SL_EFORMAT}, {"sizeof_hdr_", SL_EFORMAT}, {"three_bytes", SL_EFORMAT},
        {"vox_offset_", SL_EFORMAT}, {"zlib_not_gzip", SL_EFORMAT},
    };
    const char *root = getenv("SEGLOSS_ROOT");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/nifti", root ? root : ".");
    DIR *d = opendir(dir);
    EXPECT(d != NULL);
    if (!d) return;
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strncmp(e->d_name, "crash_", 6)) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        sl_array a;
        sl_nifti_info in;
        char msg[512] = "";
        sl_status st = sl_nifti_read(path, 0, &a, &in, msg, sizeof msg);
        /* First matching prefix wins (specific entries come first). */
        sl_status want = SL_EINVAL;
        for (size_t k = 0; k < sizeof table / sizeof *table; k++)
            if (!strncmp(e->d_name, table[k].prefix, strlen(table[k].prefix))) {
                want = table[k].want;
                break;
            }
        if (st != want) fprintf(stderr, "  %s: got %d (%s), want %d\n", e->d_name, st, msg, want);
        EXPECT(st == want);
        if (st != SL_OK) EXPECT(msg[0] && strstr(msg, e->d_name) && !strchr(msg, '\n'));
        sl_array_free(&a);
        seen++;
    }
    closedir(d);
    EXPECT(seen >= 90);
}

/* The real data the demo and the CLI tests use, when mricron-data is there:
 * the voxel sums were computed with numpy on the decompressed bytes. */
static void nifti_reads_colin27_and_aal(void)
{
    static const struct {
        const char *file;
        long long sum;
    } vols[] = {{"/usr/share/mricron/templates/ch2bet.nii.gz", 158526435LL},
                {"/usr/share/mricron/templates/aal.nii.gz", 76656511LL}};
    for (int v = 0; v < 2; v++) {
        struct stat st;
        if (stat(vols[v].file, &st) != 0) {
            printf("skip: %s not installed (apt-get install mricron-data)\n", vols[v].file);
            continue;
        }
        sl_array a;
        sl_nifti_info in;
        char msg[512] = "";
        EXPECT(sl_nifti_read(vols[v].file, 0, &a, &in, msg, sizeof msg) == SL_OK);
        if (!a.data) continue;
        EXPECT(a.dtype == SL_DT_U8 && a.ndim == 3 && a.shape[0] == 181 && a.shape[1] == 217 && a.shape[2] == 181);
        EXPECT(in.spacing[0] == 1 && in.spacing[1] == 1 && in.spacing[2] == 1);
        EXPECT(in.sform_code == 4 && in.affine[0][3] == -90 && in.affine[1][3] == -125 && in.affine[2][3] == -71);
        long long s = 0;
        for (int64_t i = 0; i < 181LL * 217 * 181; i++) s += ((uint8_t *)a.data)[i];
        EXPECT(s == vols[v].sum);
        sl_array_free(&a);
    }
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_nifti_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
#define RUN(t) TEST_RUN(t)
    RUN(nifti_array_axes_are_reversed_nifti_axes);
    RUN(nifti_round_trip_every_dtype_plain_and_gzip);
    RUN(nifti_trailing_unit_axes_beyond_three_are_dropped);
    RUN(nifti_large_extent_is_written_as_nifti2);
    RUN(nifti_reference_geometry_is_copied);
    RUN(nifti_reads_byte_swapped_files);
    RUN(nifti_scaling_is_applied_unless_asked_not_to);
    RUN(nifti_read_header_checks_without_reading_data);
    RUN(nifti_write_is_atomic_and_reports_failures);
    RUN(nifti_reports_files_that_are_not_images);
    RUN(image_io_dispatches_on_the_extension);
    RUN(nifti_corpus_files_give_their_expected_codes);
    RUN(nifti_reads_colin27_and_aal);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return test_report("test_nifti");
}
