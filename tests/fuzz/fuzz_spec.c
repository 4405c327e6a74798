/*
 * Fuzz target for the loss spec parser and the key tables behind it.
 *
 * Any byte string must give either a loss (which then evaluates on a small
 * fixed input without crashing: it may still refuse, e.g. a weight list of
 * the wrong length) or an error status with a one-line message and a NULL
 * loss. Read as a schedule, it is stretched (sl_schedule_stretch): either an
 * error with a one-line message, or a text that parses as a schedule with
 * the same stages. Anything else abort()s.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/loss.h"
#include "segloss/schedule.h"

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_spec: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) return 0;
    char *spec = malloc(size + 1);
    if (!spec) return 0;
    memcpy(spec, data, size);
    spec[size] = 0;
    char msg[512] = "";
    static char stretched[16384];
    if (sl_schedule_stretch(spec, 3, stretched, sizeof stretched, msg, sizeof msg) == SL_OK) {
        sl_schedule *a = NULL, *b = NULL;
        CHECK(sl_schedule_create(spec, &a, msg, sizeof msg) == SL_OK);
        CHECK(sl_schedule_create(stretched, &b, msg, sizeof msg) == SL_OK);
        CHECK(sl_schedule_num_stages(a) == sl_schedule_num_stages(b));
        for (int i = 0; i < sl_schedule_num_stages(a); i++)
            CHECK(sl_schedule_stage_start(b, i) == 3 * sl_schedule_stage_start(a, i) &&
                  !strcmp(sl_schedule_stage_spec(a, i), sl_schedule_stage_spec(b, i)));
        sl_schedule_free(a);
        sl_schedule_free(b);
    } else {
        CHECK(msg[0] != 0 && strchr(msg, '\n') == NULL);
    }
    msg[0] = 0;
    sl_loss *L = (sl_loss *)&spec; /* must be reset to NULL on failure */
    sl_status st = sl_loss_create(spec, &L, msg, sizeof msg);
    if (st != SL_OK) {
        CHECK(L == NULL);
        CHECK(msg[0] != 0 && strchr(msg, '\n') == NULL);
        free(spec);
        return 0;
    }
    CHECK(L != NULL && sl_loss_num_terms(L) >= 1);
    for (int i = 0; i < sl_loss_num_terms(L); i++) {
        CHECK(sl_loss_term_name(L, i) != NULL);
        CHECK(sl_loss_term_weight(L, i) >= 0);
    }
    /* Evaluate on 2 x 3 x 5 x 6 logits with labels (binary channel too). */
    enum { N = 2, C = 3, H = 5, W = 6, S = H * W };
    float x[N * C * S], g[N * C * S];
    int32_t y[N * S];
    for (int i = 0; i < N * C * S; i++) x[i] = (float)((i * 37 % 23) - 11) / 4.0f;
    for (int i = 0; i < N * S; i++) y[i] = (i * 7 / 5) % C;
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 2, .spatial = {H, W}};
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y};
    double v;
    msg[0] = 0;
    /* one thread: an OpenMP team per execution cost more than the parse */
    sl_forward_opts fo = SL_FORWARD_OPTS_DEFAULT;
    fo.threads = 1;
    st = sl_loss_forward(L, x, &d, &t, &fo, &v, g, msg, sizeof msg);
    if (st == SL_OK) {
        CHECK(isfinite(v));
        for (int i = 0; i < N * C * S; i++) CHECK(isfinite(g[i]));
    } else {
        CHECK(msg[0] != 0 && strchr(msg, '\n') == NULL);
    }
    sl_loss_free(L);
    free(spec);
    return 0;
}
