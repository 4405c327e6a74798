/*
 * The decoded-voxel limit (src/core/voxlimit.h) in every reader, parsing of
 * voxel counts, and PNG in the format-agnostic image reader/writer (the
 * label maps `segloss predict` writes read back unchanged).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "segloss/io.h"
#include "segloss/png.h"
#include "test_util.h"
#include "voxlimit.h"

static char dir[256];

static const char *at(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void test_parse(void)
{
    struct {
        const char *s;
        int64_t want;
    } cases[] = {{"1000", 1000}, {"1k", 1024}, {"256M", (int64_t)256 << 20}, {"2G", (int64_t)2 << 30},
                 {"1T", (int64_t)1 << 40}, {"2^28", (int64_t)1 << 28}, {"2^0", 1}, {"0", -1}, {"-5", -1},
                 {"", -1}, {"lots", -1}, {"12x", -1}, {"1kk", -1}, {"2^63", -1}, {"99999999999T", -1},
                 {" 5", -1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int64_t got = sl_parse_voxels(cases[i].s);
        CHECK(got == cases[i].want, "sl_parse_voxels('%s') = %lld, want %lld", cases[i].s, (long long)got,
              (long long)cases[i].want);
    }
}

static void test_limit_in_readers(void)
{
    char msg[512];
    /* a 2-D uint8 image of 40 x 50 = 2000 voxels in every format */
    int64_t shape[2] = {40, 50};
    sl_array a = SL_ARRAY_EMPTY;
    sl_array_alloc(&a, SL_DT_U8, 2, shape);
    for (int64_t i = 0; i < 2000; i++) ((uint8_t *)a.data)[i] = (uint8_t)(i % 7);
    const char *names[] = {"a.npy", "a.nii", "a.nii.gz", "a.png"};
    for (int f = 0; f < 4; f++)
        CHECK(sl_image_write(at(names[f]), &a, NULL, NULL, msg, sizeof msg) == SL_OK, "write %s: %s", names[f], msg);

    CHECK(sl_max_voxels() == SL_MAX_VOXELS_DEFAULT || getenv("SEGLOSS_MAX_VOXELS"), "default limit %lld",
          (long long)sl_max_voxels());
    sl_set_max_voxels(1999);
    for (int f = 0; f < 4; f++) {
        sl_array b = SL_ARRAY_EMPTY;
        sl_status st = sl_image_read(at(names[f]), &b, NULL, msg, sizeof msg);
        CHECK(st == SL_EOVERFLOW && strstr(msg, "2000 voxels exceed the limit of 1999") && !strchr(msg, '\n') &&
                  b.data == NULL,
              "%s above the limit: status %d, '%s'", names[f], st, msg);
        sl_array_free(&b);
    }
    sl_set_max_voxels(2000);
    for (int f = 0; f < 4; f++) {
        sl_array b = SL_ARRAY_EMPTY;
        sl_image_info info;
        sl_status st = sl_image_read(at(names[f]), &b, &info, msg, sizeof msg);
        int same = st == SL_OK && b.ndim == 2 && b.shape[0] == 40 && b.shape[1] == 50 && b.dtype == SL_DT_U8 &&
                   memcmp(b.data, a.data, 2000) == 0;
        CHECK(same, "%s at the limit reads back unchanged: status %d, '%s'", names[f], st, st ? msg : "");
        if (f == 3) CHECK(info.format == SL_FORMAT_PNG && info.spacing[0] == 1.0, "PNG info");
        sl_array_free(&b);
    }
    /* the environment, and the override taking precedence over it */
    sl_set_max_voxels(0);
    setenv("SEGLOSS_MAX_VOXELS", "1k", 1);
    sl_array b = SL_ARRAY_EMPTY;
    CHECK(sl_image_read(at("a.npy"), &b, NULL, msg, sizeof msg) == SL_EOVERFLOW && strstr(msg, "limit of 1024"),
          "SEGLOSS_MAX_VOXELS=1k: '%s'", msg);
    setenv("SEGLOSS_MAX_VOXELS", "many", 1);
    CHECK(sl_image_read(at("a.nii.gz"), &b, NULL, msg, sizeof msg) == SL_EINVAL && strstr(msg, "SEGLOSS_MAX_VOXELS"),
          "malformed SEGLOSS_MAX_VOXELS: '%s'", msg);
    sl_set_max_voxels(4096);
    CHECK(sl_image_read(at("a.png"), &b, NULL, msg, sizeof msg) == SL_OK, "the override wins over the env: %s", msg);
    sl_array_free(&b);
    sl_set_max_voxels(0);
    unsetenv("SEGLOSS_MAX_VOXELS");
    CHECK(sl_max_voxels() == SL_MAX_VOXELS_DEFAULT, "back to the default: %lld", (long long)sl_max_voxels());
    sl_array_free(&a);
}

static void test_png_in_image_io(void)
{
    char msg[512];
    /* a 16-bit label map (values above 255) and a float array PNG refuses */
    int64_t shape[2] = {3, 4};
    sl_array a = SL_ARRAY_EMPTY;
    sl_array_alloc(&a, SL_DT_I32, 2, shape);
    for (int i = 0; i < 12; i++) ((int32_t *)a.data)[i] = i * 1000;
    CHECK(sl_image_write(at("wide.png"), &a, NULL, NULL, msg, sizeof msg) == SL_OK, "16-bit png: %s", msg);
    sl_array b = SL_ARRAY_EMPTY;
    sl_status st = sl_image_read(at("wide.png"), &b, NULL, msg, sizeof msg);
    int same = st == SL_OK && b.dtype == SL_DT_U16 && b.ndim == 2 && b.shape[0] == 3 && b.shape[1] == 4;
    for (int i = 0; same && i < 12; i++) same = ((uint16_t *)b.data)[i] == i * 1000;
    CHECK(same, "16-bit png reads back: %s", st ? msg : "");
    sl_array_free(&b);
    sl_array f = SL_ARRAY_EMPTY;
    sl_array_alloc(&f, SL_DT_F32, 2, shape);
    CHECK(sl_image_write(at("float.png"), &f, NULL, NULL, msg, sizeof msg) == SL_EDTYPE && access(at("float.png"), F_OK) != 0,
          "a float array is refused as PNG, nothing written: '%s'", msg);
    CHECK(sl_format_from_path("X.PNG") == SL_FORMAT_PNG, "extension case");
    sl_array_free(&f);
    sl_array_free(&a);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sl_limits_XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    unsetenv("SEGLOSS_MAX_VOXELS");
    test_parse();
    test_limit_in_readers();
    test_png_in_image_io();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_report("test_io_limits");
}
