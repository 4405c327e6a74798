/*
 * The fused kernels compiled for each instruction set (baseline, AVX2,
 * AVX-512; those this CPU has) give the same value and gradient bit for bit:
 * every loop is elementwise or sums in fixed lanes, and nothing is built
 * with -ffast-math. The float64 references (tests/ref) test whichever path
 * the machine picks; this test ties the other paths to it. Shapes with a
 * voxel count that is not a multiple of the block or lane width exercise
 * the remainder loops.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "loss/fused.h"
#include "segloss/loss.h"
#include "test_util.h"

static const char *isa_name[] = {"baseline", "avx2", "avx512"};

/* Value and gradient of spec on the given ISA cap. */
static int run(const char *spec, int isa, const sl_dims *d, const float *x, const sl_target *t, double *v, float *g)
{
    sl_force_isa(isa);
    sl_loss *L;
    char msg[256];
    CHECK(sl_loss_create(spec, &L, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
    sl_status st = sl_loss_forward(L, x, d, t, NULL, v, g, msg, sizeof msg);
    CHECK(st == SL_OK, "%s on %s: %s", spec, isa_name[isa], msg);
    sl_loss_free(L);
    sl_force_isa(-1);
    return st == SL_OK;
}

static int compared;

static void compare(const char *spec, const sl_dims *d, const float *x, const sl_target *t)
{
    int64_t total = d->n * d->c;
    for (int i = 0; i < d->spatial_ndim; i++) total *= d->spatial[i];
    float *g0 = malloc(sizeof(float) * total), *g1 = malloc(sizeof(float) * total);
    double v0, v1;
    int best = sl_isa();
    if (run(spec, SL_ISA_BASE, d, x, t, &v0, g0))
        for (int isa = SL_ISA_BASE + 1; isa <= best; isa++) {
            if (!run(spec, isa, d, x, t, &v1, g1)) continue;
            int64_t ndiff = 0;
            double dmax = 0;
            for (int64_t i = 0; i < total; i++)
                if (memcmp(&g0[i], &g1[i], sizeof(float)) != 0) ndiff++, dmax = fmax(dmax, fabs((double)g0[i] - g1[i]));
            CHECK(v0 == v1, "%s: value %s %.17g, baseline %.17g", spec, isa_name[isa], v1, v0);
            CHECK(ndiff == 0, "%s: %lld gradient elements differ between %s and baseline (max %.3g)", spec,
                  (long long)ndiff, isa_name[isa], dmax);
            compared++;
        }
    free(g0);
    free(g1);
}

int main(void)
{
    enum { N = 2, C = 4, D = 5, H = 17, W = 23 }; /* 1955 voxels: blocks of 256 and lanes of 16 leave remainders */
    const int64_t S = (int64_t)D * H * W;
    float *x = malloc(sizeof(float) * N * C * S), *soft = malloc(sizeof(float) * N * C * S);
    int32_t *y = malloc(sizeof(int32_t) * N * S), *yi = malloc(sizeof(int32_t) * N * S),
            *yb = malloc(sizeof(int32_t) * N * S);
    srand(5);
    for (int64_t i = 0; i < N * C * S; i++) x[i] = (float)(rand() / (double)RAND_MAX * 24 - 12);
    for (int64_t i = 0; i < N * S; i++) {
        y[i] = rand() % C;
        yi[i] = rand() % 7 == 0 ? 255 : y[i];
        yb[i] = rand() % 2;
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) {
            double z = 0, e[C];
            for (int c = 0; c < C; c++) z += e[c] = exp(rand() / (double)RAND_MAX * 3);
            for (int c = 0; c < C; c++) soft[(n * C + c) * S + s] = (float)(e[c] / z);
        }
    printf("instruction sets here: baseline up to %s\n", isa_name[sl_isa()]);
    sl_dims d3 = {.n = N, .c = C, .spatial_ndim = 3, .spatial = {D, H, W}};
    sl_dims d1 = {.n = N, .c = 1, .spatial_ndim = 3, .spatial = {D, H, W}};
    sl_target tl = {.kind = SL_TARGET_LABELS, .labels = y}, ti = {.kind = SL_TARGET_LABELS, .labels = yi},
              ts = {.kind = SL_TARGET_SOFT, .soft = soft}, tb = {.kind = SL_TARGET_LABELS, .labels = yb};
    const char *specs[] = {"dice+ce", "0.3*dice(batch=true,squared=true)+0.7*ce(weight=[1,2,3,4])", "tversky",
                           "gdice+wce", "ce(label_smoothing=0.1)+iou"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        compare(specs[i], &d3, x, &tl);
        compare(specs[i], &d3, x, &ts);
    }
    compare("dice(ignore_index=255)+ce(ignore_index=255)", &d3, x, &ti);
    compare("dice(ignore_index=0)+ce(ignore_index=0)", &d3, x, &tl);
    compare("dice+bce(pos_weight=3)", &d1, x, &tb);
    /* topk and ohem: their first pass on 2..8 classes in registers (fused_dce.c) */
    compare("topk", &d3, x, &tl);
    compare("topk(k=3,ignore_index=255)", &d3, x, &ti);
    compare("ohem(thresh=0.3)", &d3, x, &tl);
    compare("ohem(thresh=0.05,ignore_index=255)", &d3, x, &ti);
    compare("dice(activation=sigmoid)+bce(label_smoothing=0.1)", &d3, x, &ts);
    /* A NaN or Inf score is found by the first pass (the fused path has no pass of its
     * own for it) on every instruction set, dice+ce's and topk/ohem's: SL_ENONFINITE and no value. The gradient's
     * buffer is unspecified then (loss.h): pass 1 leaves the probabilities there. */
    {
        const int64_t total = N * C * S;
        float *g = malloc(sizeof(float) * total);
        for (int64_t i = 0; i < total; i++) g[i] = 0;
        const int64_t where[] = {0, total - 1, S + 300};
        const float bad[] = {NAN, INFINITY, -INFINITY};
        const char *nan_specs[] = {"dice+ce", "topk", "ohem"};
        for (int isa = SL_ISA_BASE; isa <= sl_isa(); isa++)
            for (int k = 0; k < 9; k++) {
                const char *spec = nan_specs[k / 3];
                float keep = x[where[k % 3]];
                x[where[k % 3]] = bad[k % 3];
                sl_force_isa(isa);
                sl_loss *L;
                char msg[256];
                double v = -1;
                CHECK(sl_loss_create(spec, &L, msg, sizeof msg) == SL_OK, "%s", msg);
                sl_status st = sl_loss_forward(L, x, &d3, &tl, NULL, &v, g, msg, sizeof msg);
                CHECK(st == SL_ENONFINITE && strstr(msg, "NaN or Inf"), "%s %s: %g at %lld gave status %d (%s)", spec,
                      isa_name[isa], (double)bad[k % 3], (long long)where[k % 3], (int)st, msg);
                CHECK(v == -1, "%s %s: a value (%g) written on an error", spec, isa_name[isa], v);
                sl_loss_free(L);
                sl_force_isa(-1);
                x[where[k % 3]] = keep;
            }
        free(g);
    }
    printf("%d comparisons against the baseline kernels\n", compared);
    free(x), free(soft), free(y), free(yi), free(yb);
    return test_report("fused kernels per instruction set");
}
