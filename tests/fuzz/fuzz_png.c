/*
 * Fuzz target for the PNG reader (sl_png_read in src/io/png.c, used by
 * `segloss predict`). The reader takes a path, so each input is written to
 * a per-process temporary file first.
 *
 * Any input must give either SL_OK with a consistent (H, W) uint8/uint16
 * array, or an error with an empty array and a one-line message naming the
 * file. A successful read is written back with sl_png_write and read again:
 * the values must survive (the writer's 8/16-bit choice may differ from
 * the input's, the values may not). Anything else abort()s.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "segloss/io.h"
#include "segloss/png.h"

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_png: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static double value(const sl_array *a, int64_t i)
{
    return a->dtype == SL_DT_U16 ? ((const uint16_t *)a->data)[i] : ((const uint8_t *)a->data)[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[64], out[64], msg[512] = "";
    snprintf(in, sizeof in, "/tmp/fuzz_png_%ld.png", (long)getpid());
    snprintf(out, sizeof out, "/tmp/fuzz_png_%ld_out.png", (long)getpid());
    FILE *f = fopen(in, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);
    sl_array a;
    sl_status st = sl_png_read(in, &a, msg, sizeof msg);
    remove(in);
    if (st != SL_OK) {
        CHECK(st > SL_OK && st <= SL_EUNSUPPORTED);
        CHECK(a.data == NULL && a.ndim == 0);
        CHECK(msg[0] != 0 && strchr(msg, '\n') == NULL);
        return 0;
    }
    CHECK(a.data != NULL && a.ndim == 2 && a.shape[0] >= 1 && a.shape[1] >= 1);
    CHECK(a.dtype == SL_DT_U8 || a.dtype == SL_DT_U16);
    int64_t n = sl_array_count(&a);
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += value(&a, i); /* every pixel is readable */
    (void)acc;
    if (n <= (1 << 16)) {
        CHECK(sl_png_write(out, &a, msg, sizeof msg) == SL_OK);
        sl_array b;
        CHECK(sl_png_read(out, &b, msg, sizeof msg) == SL_OK);
        remove(out);
        CHECK(b.ndim == 2 && b.shape[0] == a.shape[0] && b.shape[1] == a.shape[1]);
        for (int64_t i = 0; i < n; i++) CHECK(value(&a, i) == value(&b, i));
        sl_array_free(&b);
    }
    sl_array_free(&a);
    return 0;
}
