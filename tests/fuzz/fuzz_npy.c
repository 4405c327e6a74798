/*
 * Fuzz target for the .npy parser (sl_npy_parse, which sl_npy_read uses).
 *
 * Any input must give either SL_OK with a result consistent with the bytes
 * given, or an error status with an empty array and a one-line message.
 * Anything else is a bug, and the target abort()s so that libFuzzer (and
 * the replay program in every test run) reports it.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/io.h"

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_npy: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* A message is one non-empty line. */
static void check_msg(const char *msg)
{
    CHECK(msg[0] != 0);
    CHECK(strchr(msg, '\n') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_array a;
    char msg[512] = "";
    sl_status st = sl_npy_parse(data, size, &a, msg, sizeof msg);
    if (st != SL_OK) {
        CHECK(st > SL_OK && st <= SL_EUNSUPPORTED);
        CHECK(a.data == NULL && a.ndim == 0);
        check_msg(msg);
        return 0;
    }
    CHECK(a.data != NULL);
    CHECK(a.ndim >= 0 && a.ndim <= SL_MAX_NDIM);
    CHECK(sl_dtype_size(a.dtype) > 0);
    for (int i = 0; i < a.ndim; i++) CHECK(a.shape[i] >= 0);
    int64_t count = sl_array_count(&a);
    CHECK(count >= 0);
    /* The data section is exactly count * itemsize bytes after the header. */
    CHECK(size >= 10);
    size_t hstart = data[6] == 1 ? 10 : 12;
    size_t hlen = data[6] == 1 ? (size_t)data[8] | (size_t)data[9] << 8
                               : (size_t)data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 |
                                     (size_t)data[11] << 24;
    CHECK(size - hstart - hlen == (size_t)count * sl_dtype_size(a.dtype));
    /* Touch every byte: an undersized buffer shows up under ASan. */
    unsigned acc = 0;
    const unsigned char *b = a.data;
    for (size_t i = 0; i < (size_t)count * sl_dtype_size(a.dtype); i++) acc += b[i];
    (void)acc;
    /* The conversions the commands apply to what they read. */
    if (count <= 4096) {
        sl_array f = SL_ARRAY_EMPTY, l = SL_ARRAY_EMPTY;
        CHECK(sl_array_to_f32(&a, &f) == SL_OK);
        sl_status s2 = sl_array_to_i32(&a, &l);
        CHECK(s2 == SL_OK || s2 == SL_ERANGE || s2 == SL_EDTYPE);
        CHECK(s2 != SL_EDTYPE || !sl_dtype_is_integer(a.dtype));
        sl_array_free(&f);
        sl_array_free(&l);
    }
    sl_array_free(&a);
    return 0;
}
