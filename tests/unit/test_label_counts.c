/*
 * The class counts of a label map (region.c: label_counts, one pass with a
 * vector of counters per class for C <= 8, a pass per class above) against
 * the generic loop that a voxel mask of ones takes (a sum of ones per
 * class): through wce(weight=inverse), whose weights 1/count move by a
 * percent or more when a count is off by one voxel here, so value and
 * gradient agree to 1e-5 only when every count does. C = 1 (sigmoid, label
 * 1 counted) to 10, ignore_index none, a class or outside [0, C), and
 * lengths that leave remainders of 16-label vectors and of 4096-label
 * blocks.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "segloss/loss.h"
#include "test_util.h"

static unsigned rng_state = 777u;
static unsigned urand(unsigned n)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (rng_state >> 8) % n;
}

/* value and gradient of spec; returns 0 on an error (reported) */
static int run(const char *spec, const float *x, const sl_dims *d, const sl_target *t, double *v, float *g)
{
    sl_loss *L = NULL;
    char msg[256];
    sl_status st = sl_loss_create(spec, &L, msg, sizeof msg);
    if (st == SL_OK) st = sl_loss_forward(L, x, d, t, NULL, v, g, msg, sizeof msg);
    sl_loss_free(L);
    CHECK(st == SL_OK, "%s: %s", spec, msg);
    return st == SL_OK;
}

static void compare(int C, int64_t S, int ig)
{
    const int N = 2;
    const int64_t T = (int64_t)N * C * S;
    float *x = malloc(sizeof(float) * (size_t)T), *g1 = malloc(sizeof(float) * (size_t)T),
          *g2 = malloc(sizeof(float) * (size_t)T), *ones = malloc(sizeof(float) * (size_t)(N * S));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)(N * S));
    const int K = C == 1 ? 2 : C; /* one sigmoid channel: labels 0 and 1 */
    for (int64_t i = 0; i < T; i++) x[i] = (float)urand(4000) / 1000.0f - 2.0f;
    for (int64_t i = 0; i < N * S; i++) {
        /* skewed: class 0 most often, so the weights differ; the ignored label on a tenth */
        const unsigned u = urand(100);
        y[i] = u < 10 && ig >= 0 ? ig : (int32_t)(u < 50 ? 0 : urand((unsigned)K));
        ones[i] = 1.0f;
    }
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y}, tm = t;
    tm.mask = ones;
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 1, .spatial = {S}};
    char spec[128];
    snprintf(spec, sizeof spec, "wce(weight=inverse%s%s)", C == 1 ? ",activation=sigmoid" : "",
             ig >= 0 ? (ig == 255 ? ",ignore_index=255" : ",ignore_index=1") : "");
    double v1 = 0, v2 = 0;
    if (run(spec, x, &d, &t, &v1, g1) && run(spec, x, &d, &tm, &v2, g2)) {
        double gd = 0, gm = 0;
        for (int64_t i = 0; i < T; i++) gd = fmax(gd, fabs((double)g1[i] - g2[i])), gm = fmax(gm, fabs((double)g2[i]));
        const double vd = fabs(v1 - v2) / fmax(fabs(v2), 1e-30), rg = gd / fmax(gm, 1e-30);
        printf("C=%2d S=%5lld %-44s value rel diff %.2e, grad rel diff %.2e\n", C, (long long)S, spec, vd, rg);
        CHECK(vd <= 1e-5 && rg <= 1e-5, "%s, C=%d, S=%lld: labels' counts against the mask's: value %.9g vs %.9g, "
              "gradient off by %.3g of its largest", spec, C, (long long)S, v1, v2, rg);
    }
    free(x), free(g1), free(g2), free(ones), free(y);
}

int main(void)
{
    const int64_t lengths[] = {1, 15, 16, 37, 4096, 4096 * 2 + 21};
    for (int C = 1; C <= 10; C++)
        for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
            compare(C, lengths[k], -1);  /* no ignore_index */
            compare(C, lengths[k], 255); /* an ignore label outside the classes */
            if (C >= 2) compare(C, lengths[k], 1); /* a class's own label ignored */
        }
    return test_report("label_counts");
}
