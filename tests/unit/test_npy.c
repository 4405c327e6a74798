/*
 * .npy reader and writer: round trips of every dtype, byte order, header
 * versions, the conversions the commands use, atomic writes, and the exact
 * status code of every malformed input in tests/fuzz/corpus/npy/.
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
#include "npy_header.h"
#include "test_util.h"

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* A .npy file image in memory: header dict padded as numpy pads it, then the data. */
static size_t make_npy(unsigned char *out, int version, const char *dict, const void *data, size_t nbytes)
{
    size_t padded = npy_header(out, version, dict, 0);
    if (nbytes) memcpy(out + padded, data, nbytes);
    return padded + nbytes;
}

/* Fills an array with values that exercise every byte of its dtype,
 * including the extremes of integer types and NaN / inf for floats. */
static void fill(sl_array *a)
{
    int64_t n = sl_array_count(a);
    for (int64_t i = 0; i < n; i++) {
        switch (a->dtype) {
        case SL_DT_F32: ((float *)a->data)[i] = i == 1 ? NAN : i == 2 ? -INFINITY : (float)i * -1.25f; break;
        case SL_DT_F64: ((double *)a->data)[i] = i == 1 ? NAN : i == 2 ? INFINITY : (double)i * 1e-300; break;
        case SL_DT_BOOL: ((uint8_t *)a->data)[i] = (uint8_t)(i % 2); break;
        case SL_DT_U8: ((uint8_t *)a->data)[i] = (uint8_t)(255 - i); break;
        case SL_DT_I8: ((int8_t *)a->data)[i] = (int8_t)(i == 0 ? -128 : 127 - i); break;
        case SL_DT_U16: ((uint16_t *)a->data)[i] = (uint16_t)(65535 - 257 * i); break;
        case SL_DT_I16: ((int16_t *)a->data)[i] = (int16_t)(i == 0 ? -32768 : 300 * i); break;
        case SL_DT_U32: ((uint32_t *)a->data)[i] = 0xFFFFFFFFu - (uint32_t)i * 16777259u; break;
        case SL_DT_I32: ((int32_t *)a->data)[i] = i == 0 ? INT32_MIN : (int32_t)(i * 100003); break;
        case SL_DT_U64: ((uint64_t *)a->data)[i] = UINT64_MAX - (uint64_t)i * 0x0102030405060708ull; break;
        case SL_DT_I64: ((int64_t *)a->data)[i] = i == 0 ? INT64_MIN : (int64_t)i * 0x0102030405060708ll; break;
        }
    }
}

static void npy_round_trip_preserves_every_dtype_and_shape(void)
{
    static const int64_t shapes[][4] = {{2, 3, 4, 0}, {5, 0, 0, 0}, {0, 4, 0, 0}, {1, 1, 1, 1}};
    static const int ndims[] = {3, 1, 2, 4};
    for (int dt = SL_DT_F32; dt <= SL_DT_I64; dt++) {
        for (int s = 0; s < 4; s++) {
            sl_array a = SL_ARRAY_EMPTY, b = SL_ARRAY_EMPTY;
            EXPECT(sl_array_alloc(&a, (sl_dtype)dt, ndims[s], shapes[s]) == SL_OK);
            fill(&a);
            char msg[256] = "";
            EXPECT(sl_npy_write(tmp_path("rt.npy"), &a, msg, sizeof msg) == SL_OK);
            EXPECT(sl_npy_read(tmp_path("rt.npy"), &b, msg, sizeof msg) == SL_OK);
            EXPECT(b.dtype == a.dtype && b.ndim == a.ndim);
            for (int i = 0; i < a.ndim; i++) EXPECT(b.shape[i] == a.shape[i]);
            size_t bytes = (size_t)sl_array_count(&a) * sl_dtype_size(a.dtype);
            EXPECT(b.data && memcmp(a.data, b.data, bytes) == 0); /* bitwise: NaN included */
            sl_array_free(&a);
            sl_array_free(&b);
        }
    }
    /* A 0-d array (numpy scalar) too. */
    sl_array a = SL_ARRAY_EMPTY, b = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a, SL_DT_F64, 0, NULL) == SL_OK);
    ((double *)a.data)[0] = -2.5;
    EXPECT(sl_npy_write(tmp_path("scalar.npy"), &a, NULL, 0) == SL_OK);
    EXPECT(sl_npy_read(tmp_path("scalar.npy"), &b, NULL, 0) == SL_OK);
    EXPECT(b.ndim == 0 && ((double *)b.data)[0] == -2.5);
    sl_array_free(&a);
    sl_array_free(&b);
}

static void npy_reads_big_endian_input_in_native_order(void)
{
    unsigned char buf[256];
    const unsigned char i4[] = {0xFF, 0xFF, 0xFF, 0xFE, 0x00, 0x00, 0x01, 0x00}; /* -2, 256 */
    size_t n = make_npy(buf, 1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", i4, sizeof i4);
    sl_array a;
    EXPECT(sl_npy_parse(buf, n, &a, NULL, 0) == SL_OK);
    EXPECT(a.dtype == SL_DT_I32 && ((int32_t *)a.data)[0] == -2 && ((int32_t *)a.data)[1] == 256);
    sl_array_free(&a);

    const unsigned char f8[] = {0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18}; /* pi */
    n = make_npy(buf, 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (1, 1), }", f8, sizeof f8);
    EXPECT(sl_npy_parse(buf, n, &a, NULL, 0) == SL_OK);
    EXPECT(a.dtype == SL_DT_F64 && ((double *)a.data)[0] == 3.141592653589793);
    sl_array_free(&a);

    const unsigned char u2[] = {0x12, 0x34};
    n = make_npy(buf, 1, "{'descr': '>u2', 'fortran_order': False, 'shape': (1,), }", u2, sizeof u2);
    EXPECT(sl_npy_parse(buf, n, &a, NULL, 0) == SL_OK);
    EXPECT(a.dtype == SL_DT_U16 && ((uint16_t *)a.data)[0] == 0x1234);
    sl_array_free(&a);

    /* '|' and '=' byte orders for one-byte types. */
    const unsigned char u1[] = {7};
    n = make_npy(buf, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }", u1, 1);
    EXPECT(sl_npy_parse(buf, n, &a, NULL, 0) == SL_OK && ((uint8_t *)a.data)[0] == 7);
    sl_array_free(&a);
}

static void npy_accepts_version_2_and_3_headers(void)
{
    unsigned char buf[256];
    const float v[3] = {1.5f, -2.0f, 0.25f};
    for (int ver = 2; ver <= 3; ver++) {
        size_t n = make_npy(buf, ver, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", v, sizeof v);
        sl_array a;
        char msg[256] = "";
        EXPECT(sl_npy_parse(buf, n, &a, msg, sizeof msg) == SL_OK);
        EXPECT(a.ndim == 1 && a.shape[0] == 3 && memcmp(a.data, v, sizeof v) == 0);
        sl_array_free(&a);
    }
    /* The writer switches to version 2 only when needed; a long shape still
     * round-trips. */
    int64_t shape[8] = {1, 1, 1, 1, 1, 1, 1, 3};
    sl_array a = SL_ARRAY_EMPTY, b = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a, SL_DT_I16, 8, shape) == SL_OK);
    EXPECT(sl_npy_write(tmp_path("long.npy"), &a, NULL, 0) == SL_OK);
    EXPECT(sl_npy_read(tmp_path("long.npy"), &b, NULL, 0) == SL_OK && b.ndim == 8 && b.shape[7] == 3);
    sl_array_free(&a);
    sl_array_free(&b);
}

static void npy_rejects_each_malformed_header_with_its_code(void)
{
    static const struct {
        const char *dict;
        size_t data;
        sl_status want;
        const char *word; /* a word the message must contain */
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8, SL_EUNSUPPORTED, "Fortran"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, SL_EDTYPE, "<c8"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16, SL_EDTYPE, "dtype"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, SL_EDTYPE, "structured"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }", 0, SL_EOVERFLOW,
         "too large"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8, SL_EFORMAT, "truncated"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 8, SL_EFORMAT, "longer"},
        {"{'descr': '<f4', 'fortran_order': False, }", 4, SL_EFORMAT, "missing"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1, }", 4, SL_EFORMAT, "'x'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 4, SL_EFORMAT, "shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4, SL_EFORMAT, "axes"},
        {"['descr', '<f4']", 4, SL_EFORMAT, "'{'"},
    };
    unsigned char buf[512], zeros[64] = {0};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        size_t n = make_npy(buf, 1, cases[k].dict, zeros, cases[k].data);
        sl_array a = {SL_DT_F32, 3, {1, 2, 3}, (void *)buf};
        char msg[256] = "";
        sl_status st = sl_npy_parse(buf, n, &a, msg, sizeof msg);
        if (st != cases[k].want || !strstr(msg, cases[k].word))
            fprintf(stderr, "  case %zu: got %d '%s', want %d with '%s'\n", k, st, msg, cases[k].want, cases[k].word);
        EXPECT(st == cases[k].want);
        EXPECT(strstr(msg, cases[k].word) != NULL);
        EXPECT(a.data == NULL && a.ndim == 0); /* left empty on failure */
    }
    /* Bad magic, unknown version, header length past the end. */
    sl_array a;
    EXPECT(sl_npy_parse("\x93NUMPZ\x01\x00\x00\x00", 10, &a, NULL, 0) == SL_EFORMAT);
    EXPECT(sl_npy_parse("\x93NUMPY\x04\x00\x00\x00", 10, &a, NULL, 0) == SL_EFORMAT);
    EXPECT(sl_npy_parse("\x93NUMPY\x01\x00\xff\x00{}", 12, &a, NULL, 0) == SL_EFORMAT);
    EXPECT(sl_npy_parse("", 0, &a, NULL, 0) == SL_EFORMAT);
    EXPECT(sl_npy_parse(NULL, 0, &a, NULL, 0) == SL_EINVAL);
}

static void npy_read_reports_missing_files_and_directories(void)
{
    sl_array a;
    char msg[512] = "";
    EXPECT(sl_npy_read(tmp_path("does-not-exist.npy"), &a, msg, sizeof msg) == SL_EIO);
    EXPECT(strstr(msg, "does-not-exist.npy") != NULL);
    EXPECT(sl_npy_read(tmpdir, &a, msg, sizeof msg) == SL_EIO);
    EXPECT(a.data == NULL);
}

static void npy_write_is_atomic_and_reports_failures(void)
{
    int64_t shape[1] = {4};
    sl_array a = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a, SL_DT_U8, 1, shape) == SL_OK);
    char msg[512] = "";
    EXPECT(sl_npy_write(tmp_path("no-such-dir/x.npy"), &a, msg, sizeof msg) == SL_EIO);
    EXPECT(strstr(msg, "x.npy") != NULL);
    /* Overwriting an existing file leaves no temporary behind. */
    EXPECT(sl_npy_write(tmp_path("over.npy"), &a, NULL, 0) == SL_OK);
    EXPECT(sl_npy_write(tmp_path("over.npy"), &a, NULL, 0) == SL_OK);
    struct stat st;
    EXPECT(stat(tmp_path("over.npy.tmp"), &st) != 0);
    sl_array_free(&a);
}

static void npy_conversions_cast_and_range_check(void)
{
    int64_t shape[1] = {3};
    sl_array a = SL_ARRAY_EMPTY, f = SL_ARRAY_EMPTY, l = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a, SL_DT_U64, 1, shape) == SL_OK);
    uint64_t *u = a.data;
    u[0] = 0; u[1] = 7; u[2] = (uint64_t)INT32_MAX;
    EXPECT(sl_array_to_i32(&a, &l) == SL_OK && ((int32_t *)l.data)[2] == INT32_MAX);
    sl_array_free(&l);
    u[2] = (uint64_t)INT32_MAX + 1;
    EXPECT(sl_array_to_i32(&a, &l) == SL_ERANGE && l.data == NULL);
    EXPECT(sl_array_to_f32(&a, &f) == SL_OK && ((float *)f.data)[1] == 7.0f);
    EXPECT(sl_array_to_i32(&f, &l) == SL_EDTYPE);
    sl_array_free(&a);
    sl_array_free(&f);
}

/* Every file of the committed corpus gives the status its name promises:
 * ok_* parse, every other generated file fails with the code listed here.
 * A new corpus file without an entry fails the test, so the table and the
 * generator (tests/fuzz/make_corpus.py) stay in step. crash_* files (fuzzer
 * finds) only need to be handled cleanly, which the replay checks. */
static void npy_corpus_files_give_their_expected_codes(void)
{
    static const struct {
        const char *name;
        sl_status want;
    } table[] = {
        {"bad_magic", SL_EFORMAT}, {"data_missing", SL_EFORMAT}, {"data_too_long", SL_EFORMAT},
        {"data_truncated", SL_EFORMAT}, {"dtype_bad_order", SL_EDTYPE}, {"dtype_bytes", SL_EDTYPE},
        {"dtype_complex", SL_EDTYPE}, {"dtype_datetime", SL_EDTYPE}, {"dtype_empty_descr", SL_EDTYPE},
        {"dtype_f16", SL_EDTYPE}, {"dtype_f2", SL_EDTYPE}, {"dtype_long_size", SL_EDTYPE},
        {"dtype_object", SL_EDTYPE}, {"dtype_unicode", SL_EDTYPE}, {"dtype_void", SL_EDTYPE},
        {"duplicate_key", SL_EFORMAT}, {"empty", SL_EFORMAT}, {"escape_in_string", SL_EFORMAT},
        {"fortran_order", SL_EUNSUPPORTED}, {"fortran_order_not_bool", SL_EFORMAT},
        {"header_longer_than_file", SL_EFORMAT}, {"huge_shape", SL_EOVERFLOW}, {"magic_only", SL_EFORMAT},
        {"missing_descr", SL_EFORMAT}, {"missing_shape", SL_EFORMAT}, {"nifti_given_as_npy", SL_EFORMAT},
        {"no_braces", SL_EFORMAT}, {"shape_9_axes", SL_EFORMAT}, {"shape_negative", SL_EFORMAT},
        {"shape_nested", SL_EFORMAT}, {"shape_not_tuple", SL_EFORMAT}, {"shape_over_1TiB", SL_EOVERFLOW},
        {"shape_overflow", SL_EOVERFLOW}, {"shape_too_many_digits", SL_EFORMAT},
        {"shape_unclosed", SL_EFORMAT}, {"structured_dtype", SL_EDTYPE}, {"unknown_key", SL_EFORMAT},
        {"unterminated_string", SL_EFORMAT}, {"v2_header_length_4GiB", SL_EFORMAT},
        {"v2_truncated_length", SL_EFORMAT}, {"version_9", SL_EFORMAT},
    };
    const char *root = getenv("SEGLOSS_ROOT");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/npy", root ? root : ".");
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
        char msg[512] = "";
        sl_status st = sl_npy_read(path, &a, msg, sizeof msg);
        sl_status want = SL_EINVAL; /* "not in the table" */
        if (!strncmp(e->d_name, "ok_", 3)) want = SL_OK;
        for (size_t k = 0; k < sizeof table / sizeof *table; k++)
            if (!strcmp(table[k].name, e->d_name)) want = table[k].want;
        if (st != want) fprintf(stderr, "  %s: got %d (%s), want %d\n", e->d_name, st, msg, want);
        EXPECT(st == want);
        if (st != SL_OK) EXPECT(msg[0] && strstr(msg, e->d_name)); /* names the file */
        sl_array_free(&a);
        seen++;
    }
    closedir(d);
    EXPECT(seen >= (int)(sizeof table / sizeof *table));
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_npy_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
#define RUN(t) TEST_RUN(t)
    RUN(npy_round_trip_preserves_every_dtype_and_shape);
    RUN(npy_reads_big_endian_input_in_native_order);
    RUN(npy_accepts_version_2_and_3_headers);
    RUN(npy_rejects_each_malformed_header_with_its_code);
    RUN(npy_read_reports_missing_files_and_directories);
    RUN(npy_write_is_atomic_and_reports_failures);
    RUN(npy_conversions_cast_and_range_check);
    RUN(npy_corpus_files_give_their_expected_codes);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return test_report("test_npy");
}
