/*
 * Fuzz target for sl_crf_params_parse (segloss predict --crf-params).
 *
 * Any byte string must give either parameters that sl_crf accepts (run on
 * a fixed 4x5 image, at most 3 iterations, so a run stays fast; a width
 * too small for the lattice may still give SL_ERANGE) or SL_EINVAL with a
 * one-line message and the parameters untouched. Anything else abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/crf.h"

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz_crfparams: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    sl_crf_params p = SL_CRF_PARAMS_DEFAULT, before = p;
    char msg[512] = "";
    sl_status st = sl_crf_params_parse(text, &p, msg, sizeof msg);
    free(text);
    if (st != SL_OK) {
        CHECK(st == SL_EINVAL);
        CHECK(msg[0] != 0 && strchr(msg, '\n') == NULL);
        CHECK(memcmp(&p, &before, sizeof p) == 0);
        return 0;
    }
    if (p.iterations > 3) p.iterations = 3;
    p.threads = 1;
    float img[20], P[40], Q[40];
    for (int i = 0; i < 20; i++) {
        img[i] = (float)(i % 5) * 0.3f;
        P[i] = (i % 3) ? 0.7f : 0.2f;
        P[20 + i] = 1.0f - P[i];
    }
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = 2;
    g.shape[0] = 4, g.shape[1] = 5;
    st = sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg);
    CHECK(st == SL_OK || st == SL_ERANGE);
    if (st == SL_OK)
        for (int i = 0; i < 40; i++) CHECK(Q[i] >= 0.0f && Q[i] <= 1.0f);
    return 0;
}
