/*
 * Fuzz target for the NIfTI reader (sl_nifti_parse: the in-memory entry to
 * the same code path sl_nifti_read uses on files, plain or gzip).
 *
 * Every input must give either SL_OK with an array and header info that
 * agree with each other, or an error with an empty array and a one-line
 * message. A successful parse is also written back (.nii, and .nii.gz for
 * small images) with the parsed info as the geometry reference, and read
 * again: the writer must accept whatever the reader accepts, and the data
 * must survive unchanged. Any disagreement abort()s.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "segloss/io.h"

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_nifti: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_msg(const char *msg)
{
    CHECK(msg[0] != 0);
    CHECK(strchr(msg, '\n') == NULL);
}

static void check_ok(const sl_array *a, const sl_nifti_info *in, unsigned flags)
{
    CHECK(a->data != NULL);
    CHECK(in->version == 1 || in->version == 2);
    CHECK(in->dim[0] >= 1 && in->dim[0] <= 7);
    CHECK(a->ndim == in->ndim && a->ndim >= 1 && a->ndim <= in->dim[0]);
    int64_t count = 1;
    for (int i = 0; i < a->ndim; i++) {
        CHECK(a->shape[i] >= 1);
        CHECK(a->shape[i] == in->dim[a->ndim - i]);
        CHECK(isfinite(in->spacing[i]) && in->spacing[i] > 0);
        count *= a->shape[i];
    }
    for (int d = a->ndim + 1; d <= in->dim[0]; d++) CHECK(in->dim[d] == 1); /* only unit axes dropped */
    CHECK(sl_array_count(a) == count);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) CHECK(isfinite(in->affine[r][c]));
    CHECK(in->vox_offset >= (in->version == 1 ? 348 : 540));
    if (flags & SL_NIFTI_NO_SCALE) CHECK(!in->scaled);
    if (in->scaled) CHECK(a->dtype == SL_DT_F32 || a->dtype == SL_DT_F64);
    CHECK(strlen(in->descrip) <= 80);
    unsigned acc = 0;
    const unsigned char *b = a->data;
    for (size_t i = 0; i < (size_t)count * sl_dtype_size(a->dtype); i++) acc += b[i];
    (void)acc;
}

/* round_trip's private folder (below) */
static char dir[64];

static void remove_dir(void)
{
    char p[96];
    snprintf(p, sizeof p, "%s/x.nii", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/x.nii.gz", dir);
    remove(p);
    rmdir(dir);
}

static void round_trip(const sl_array *a, const sl_nifti_info *in, const char *ext)
{
    /* A private folder, on tmpfs where there is one: the atomic writer
     * fsyncs and scans the target's folder for a killed run's leftovers on
     * every write, which on a disk-backed /tmp full of files cost more than
     * the parse. Made once per process, removed at exit. */
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/fuzz_nifti_XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        CHECK(mkdtemp(dir) != NULL);
        atexit(remove_dir);
    }
    char path[96], msg[512] = "";
    snprintf(path, sizeof path, "%s/x%s", dir, ext);
    sl_status st = sl_nifti_write(path, a, NULL, in, msg, sizeof msg);
    if (st != SL_OK) fprintf(stderr, "fuzz_nifti: write refused a parsed image: %s\n", msg);
    CHECK(st == SL_OK);
    sl_array b;
    sl_nifti_info in2;
    st = sl_nifti_read(path, SL_NIFTI_NO_SCALE, &b, &in2, msg, sizeof msg);
    if (st != SL_OK) fprintf(stderr, "fuzz_nifti: cannot read back what we wrote: %s\n", msg);
    CHECK(st == SL_OK);
    remove(path);
    CHECK(b.dtype == a->dtype && b.ndim == a->ndim);
    for (int i = 0; i < a->ndim; i++) CHECK(b.shape[i] == a->shape[i]);
    CHECK(memcmp(a->data, b.data, (size_t)sl_array_count(a) * sl_dtype_size(a->dtype)) == 0);
    for (int i = 0; i < a->ndim && i < 3; i++) CHECK(isfinite(in2.spacing[i]) && in2.spacing[i] > 0);
    sl_array_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned flags[2] = {0, SL_NIFTI_NO_SCALE};
    for (int k = 0; k < 2; k++) {
        sl_array a;
        sl_nifti_info in;
        char msg[512] = "";
        sl_status st = sl_nifti_parse(data, size, flags[k], &a, &in, msg, sizeof msg);
        if (st != SL_OK) {
            CHECK(st > SL_OK && st <= SL_EUNSUPPORTED);
            CHECK(a.data == NULL && a.ndim == 0);
            check_msg(msg);
            return 0; /* the flags only matter after a successful parse */
        }
        check_ok(&a, &in, flags[k]);
        if (flags[k] == SL_NIFTI_NO_SCALE) {
            size_t bytes = (size_t)sl_array_count(&a) * sl_dtype_size(a.dtype);
            if (bytes <= (1u << 20)) round_trip(&a, &in, ".nii");
            if (bytes <= (1u << 14)) round_trip(&a, &in, ".nii.gz");
        }
        sl_array_free(&a);
    }
    return 0;
}
