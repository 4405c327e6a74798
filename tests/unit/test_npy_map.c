/*
 * sl_npy_map against sl_npy_read: for every dtype, byte order and header
 * version, and every file of tests/fuzz/corpus/npy/, the mapped array has
 * the dtype, shape and bytes sl_npy_read gives (or the same status and the
 * same message); native, aligned data is used in place (base != NULL),
 * byte-swapped or misaligned data, FIFOs, pipes and devices go through the
 * reader (base == NULL); a FIFO without a writer does not hang; the header
 * is refused (voxel limit) as sl_npy_read refuses it; sl_npy_unmap of a
 * zeroed or reset struct is harmless.
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
#include "voxlimit.h"

static char tmpdir[256];
static int compared, in_place, read_back;
static size_t max_diff_bytes; /* bytes that differed between the mapped and the read array, worst case */

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* A .npy file: the header (npy_header.h; the data at a multiple of 64 plus
 * `skew` bytes), then the data. */
static int write_npy(const char *path, int version, const char *dict, const void *data, size_t nbytes, int skew)
{
    unsigned char hdr[1024];
    size_t padded = npy_header(hdr, version, dict, skew);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(hdr, 1, padded, f) == padded && (nbytes == 0 || fwrite(data, 1, nbytes, f) == nbytes);
    return fclose(f) == 0 && ok;
}

/*
 * Maps and reads `path` and checks that both agree: same status and message
 * on failure; same dtype, shape and bytes on success. want_mapped: 1 = the
 * data must be used in place, 0 = it must have been read, -1 = either.
 * Returns the status.
 */
static sl_status agree(const char *path, int want_mapped, const char *what)
{
    sl_array r;
    sl_npy_mapped m;
    memset(&m, 0x5a, sizeof m); /* sl_npy_map must reset it whatever it held */
    char mr[512] = "", mm[512] = "";
    sl_status sr = sl_npy_read(path, &r, mr, sizeof mr);
    sl_status sm = sl_npy_map(path, &m, mm, sizeof mm);
    compared++;
    CHECK(sr == sm, "%s: status read %d (%s), mapped %d (%s)", what, sr, mr, sm, mm);
    CHECK(!strcmp(mr, mm), "%s: messages differ: read '%s', mapped '%s'", what, mr, mm);
    if (sr == SL_OK && sm == SL_OK) {
        CHECK(m.array.dtype == r.dtype && m.array.ndim == r.ndim, "%s: dtype/ndim %d/%d vs %d/%d", what,
              m.array.dtype, m.array.ndim, r.dtype, r.ndim);
        int same_shape = m.array.ndim == r.ndim;
        for (int i = 0; same_shape && i < r.ndim; i++) same_shape = m.array.shape[i] == r.shape[i];
        CHECK(same_shape, "%s: shapes differ", what);
        CHECK(m.array.data != NULL, "%s: mapped data is NULL", what);
        size_t bytes = (size_t)sl_array_count(&r) * sl_dtype_size(r.dtype), diff = 0;
        const unsigned char *pm = m.array.data, *pr = r.data;
        if (same_shape && pm && pr)
            for (size_t i = 0; i < bytes; i++) diff += pm[i] != pr[i];
        if (diff > max_diff_bytes) max_diff_bytes = diff;
        CHECK(diff == 0, "%s: %zu of %zu bytes differ", what, diff, bytes);
        if (m.base) {
            in_place++;
            CHECK(m.length > 0 && (const unsigned char *)m.array.data >= (const unsigned char *)m.base &&
                      (const unsigned char *)m.array.data + bytes <= (const unsigned char *)m.base + m.length,
                  "%s: data outside the mapping", what);
            CHECK((uintptr_t)m.array.data % sl_dtype_size(m.array.dtype) == 0, "%s: mapped data misaligned", what);
        } else {
            read_back++;
        }
        if (want_mapped >= 0)
            CHECK(!!m.base == want_mapped, "%s: %s, expected %s", what, m.base ? "mapped" : "read",
                  want_mapped ? "mapped" : "read");
    } else {
        CHECK(m.array.data == NULL && m.base == NULL && m.length == 0 && m.array.ndim == 0,
              "%s: a failed map left data behind", what);
    }
    sl_array_free(&r);
    sl_npy_unmap(&m);
    CHECK(m.base == NULL && m.array.data == NULL, "%s: sl_npy_unmap did not reset", what);
    return sm;
}

static const struct {
    sl_dtype dt;
    char kind;
    int size;
} dtypes[] = {{SL_DT_F32, 'f', 4}, {SL_DT_F64, 'f', 8}, {SL_DT_BOOL, 'b', 1}, {SL_DT_U8, 'u', 1},
              {SL_DT_I8, 'i', 1},  {SL_DT_U16, 'u', 2}, {SL_DT_I16, 'i', 2},  {SL_DT_U32, 'u', 4},
              {SL_DT_I32, 'i', 4}, {SL_DT_U64, 'u', 8}, {SL_DT_I64, 'i', 8}};

static void map_equals_read_for_every_dtype_order_version_and_offset(void)
{
    static const char *shapes[] = {"(2, 3, 5)", "(7,)", "()", "(4, 0, 3)", "(0,)"};
    static const int counts[] = {30, 7, 1, 0, 0};
    static const char orders[] = {'<', '>', '|', '='};
    unsigned char data[30 * 8];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 37 + 11); /* NaN patterns included */
    const int one = 1, host_little = *(const char *)&one == 1;
    for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++) {
        for (size_t o = 0; o < sizeof orders; o++) {
            char ord = orders[o];
            if (ord == '|' && dtypes[d].size != 1) continue; /* numpy writes '|' only for one-byte types */
            int swapped = dtypes[d].size > 1 && ((ord == '<' && !host_little) || (ord == '>' && host_little));
            for (int ver = 1; ver <= 3; ver++) {
                for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                    /* skew 0: aligned (numpy's layout); 1, 2, 4: misaligned for larger elements */
                    static const int skews[] = {0, 1, 2, 4};
                    for (size_t k = 0; k < sizeof skews / sizeof *skews; k++) {
                        char dict[160], what[200];
                        snprintf(dict, sizeof dict, "{'descr': '%c%c%d', 'fortran_order': False, 'shape': %s, }", ord,
                                 dtypes[d].kind, dtypes[d].size, shapes[s]);
                        snprintf(what, sizeof what, "v%d skew %d %s", ver, skews[k], dict);
                        size_t nbytes = (size_t)counts[s] * (size_t)dtypes[d].size;
                        EXPECT(write_npy(tmp_path("a.npy"), ver, dict, data, nbytes, skews[k]));
                        int aligned = skews[k] % dtypes[d].size == 0;
                        EXPECT(agree(tmp_path("a.npy"), !swapped && aligned, what) == SL_OK);
                    }
                }
            }
        }
    }
    /* numpy's own writer: sl_npy_write's files are mapped in place */
    int64_t shape[3] = {3, 4, 5};
    sl_array a = SL_ARRAY_EMPTY;
    EXPECT(sl_array_alloc(&a, SL_DT_F32, 3, shape) == SL_OK);
    for (int i = 0; i < 60; i++) ((float *)a.data)[i] = i == 7 ? NAN : (float)i * -0.5f;
    EXPECT(sl_npy_write(tmp_path("w.npy"), &a, NULL, 0) == SL_OK);
    agree(tmp_path("w.npy"), 1, "sl_npy_write's file");
    sl_array_free(&a);
}

static void errors_give_the_readers_status_and_message(void)
{
    const float v[4] = {1, 2, 3, 4};
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
    EXPECT(agree(tmp_path("does-not-exist.npy"), -1, "missing file") == SL_EIO);
    EXPECT(agree(tmpdir, -1, "a directory") == SL_EIO);
    EXPECT(agree("", -1, "an empty path") == SL_EIO);
    EXPECT(write_npy(tmp_path("trunc.npy"), 1, dict, v, sizeof v - 3, 0));
    EXPECT(agree(tmp_path("trunc.npy"), -1, "truncated data") == SL_EFORMAT);
    EXPECT(write_npy(tmp_path("nodata.npy"), 1, dict, v, 0, 0));
    EXPECT(agree(tmp_path("nodata.npy"), -1, "no data at all") == SL_EFORMAT);
    EXPECT(write_npy(tmp_path("long.npy"), 1, dict, v, sizeof v, 0));
    FILE *f = fopen(tmp_path("long.npy"), "ab");
    EXPECT(f && fputc(0, f) == 0 && fclose(f) == 0);
    EXPECT(agree(tmp_path("long.npy"), -1, "data longer than the shape") == SL_EFORMAT);
    EXPECT(write_npy(tmp_path("fortran.npy"), 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }", v,
                     sizeof v, 0));
    EXPECT(agree(tmp_path("fortran.npy"), -1, "Fortran order") == SL_EUNSUPPORTED);
    EXPECT(write_npy(tmp_path("c8.npy"), 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", v,
                     sizeof v, 0));
    EXPECT(agree(tmp_path("c8.npy"), -1, "complex dtype") == SL_EDTYPE);
    static const struct {
        const char *name;
        const char *bytes;
        size_t len;
    } raw[] = {
        {"empty.npy", "", 0},
        {"magic.npy", "\x93NUMPZ\x01\x00\x00\x00", 10},
        {"short.npy", "\x93NUM", 4},
        {"version4.npy", "\x93NUMPY\x04\x00\x00\x00", 10},
        {"hdrpast.npy", "\x93NUMPY\x01\x00\xff\x00{}", 12},
        {"v2short.npy", "\x93NUMPY\x02\x00\x00\x00", 10},
    };
    for (size_t k = 0; k < sizeof raw / sizeof *raw; k++) {
        f = fopen(tmp_path(raw[k].name), "wb");
        EXPECT(f && (raw[k].len == 0 || fwrite(raw[k].bytes, 1, raw[k].len, f) == raw[k].len) && fclose(f) == 0);
        EXPECT(agree(tmp_path(raw[k].name), -1, raw[k].name) == SL_EFORMAT);
    }
    /* the voxel limit refuses the header before a data page is touched */
    float big[1000] = {0};
    EXPECT(write_npy(tmp_path("big.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (10, 100), }", big,
                     sizeof big, 0));
    sl_set_max_voxels(999);
    EXPECT(agree(tmp_path("big.npy"), -1, "over the voxel limit") == SL_EOVERFLOW);
    sl_set_max_voxels(1000);
    EXPECT(agree(tmp_path("big.npy"), 1, "at the voxel limit") == SL_OK);
    sl_set_max_voxels(0);
    /* NULL arguments */
    sl_npy_mapped m;
    char msg[128] = "";
    EXPECT(sl_npy_map(NULL, &m, msg, sizeof msg) == SL_EINVAL);
    EXPECT(sl_npy_map(tmp_path("big.npy"), NULL, msg, sizeof msg) == SL_EINVAL);
    EXPECT(sl_npy_map(tmp_path("big.npy"), &m, NULL, 0) == SL_OK && m.base); /* msg may be NULL */
    sl_npy_unmap(&m);
}

static void non_regular_files_are_refused_without_hanging(void)
{
    const float v[2] = {1, 2};
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    EXPECT(write_npy(tmp_path("ok.npy"), 1, dict, v, sizeof v, 0));
    /* a FIFO with no writer: a blocking open would wait forever (alarm ends the test then) */
    EXPECT(mkfifo(tmp_path("fifo.npy"), 0600) == 0);
    alarm(20);
    EXPECT(agree(tmp_path("fifo.npy"), -1, "a FIFO without a writer") == SL_EIO);
    /* a pipe holding a valid .npy file: refused as sl_npy_read refuses it, nothing consumed */
    int p[2];
    EXPECT(pipe(p) == 0);
    FILE *src = fopen(tmp_path("ok.npy"), "rb");
    unsigned char buf[256];
    size_t n = src ? fread(buf, 1, sizeof buf, src) : 0;
    if (src) fclose(src);
    EXPECT(n > 0 && write(p[1], buf, n) == (ssize_t)n);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", p[0]);
    EXPECT(agree(path, -1, "a pipe (/dev/fd/N)") == SL_EIO);
    close(p[0]);
    close(p[1]);
    EXPECT(agree("/dev/null", -1, "/dev/null") == SL_EIO);
    alarm(0);
    /* a symlink to a regular file is that file */
    char target[512];
    snprintf(target, sizeof target, "%s", tmp_path("ok.npy"));
    EXPECT(symlink(target, tmp_path("link.npy")) == 0);
    EXPECT(agree(tmp_path("link.npy"), 1, "a symlink") == SL_OK);
}

static void unmap_of_an_empty_struct_is_harmless(void)
{
    sl_npy_mapped z;
    memset(&z, 0, sizeof z);
    sl_npy_unmap(&z);
    sl_npy_unmap(&z);
    sl_npy_unmap(NULL);
    EXPECT(z.base == NULL && z.array.data == NULL && z.length == 0);
}

/* Every file of the fuzz corpus, accepted or refused, gives what sl_npy_read gives. */
static void corpus_files_agree(void)
{
    const char *root = getenv("SEGLOSS_ROOT");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/npy", root ? root : ".");
    DIR *d = opendir(dir);
    EXPECT(d != NULL);
    if (!d) return;
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        agree(path, -1, e->d_name);
        seen++;
    }
    closedir(d);
    EXPECT(seen > 20);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_npy_map_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(map_equals_read_for_every_dtype_order_version_and_offset);
    TEST_RUN(errors_give_the_readers_status_and_message);
    TEST_RUN(non_regular_files_are_refused_without_hanging);
    TEST_RUN(unmap_of_an_empty_struct_is_harmless);
    TEST_RUN(corpus_files_agree);
    printf("max bytes differing between sl_npy_map and sl_npy_read: %zu (%d files compared: %d mapped in place, "
           "%d read by the fallback, the rest refused with the same status and message)\n",
           max_diff_bytes, compared, in_place, read_back);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return test_report("test_npy_map");
}
