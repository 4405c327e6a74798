/*
 * topk / ohem selection (topk.c: a histogram of the top bits, then
 * quickselect on one bucket) against the full sort it replaces, kept here as
 * the reference: the per-voxel CE ranked by a stable sort (decreasing, ties
 * by index — sample, voxel — lowest first), the K first taken. Inputs are
 * probabilities (activation=none), so the reference reproduces the
 * library's ℓ = −(double)(float)log p bit for bit, and the gradient is
 * ∂/∂p = −1/(K p_y) at the selected voxels. Cases: a grid of probabilities
 * (many ties, the boundary inside a run of equal values), all equal, k = 100
 * (all), a tiny k (K = 1), random values; ohem with thresh = 0 (nothing
 * passes, min_kept decides) with ties. Tolerance: value 1e-12 relative,
 * gradient 1e-6 of its max (float storage).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/loss.h"
#include "test_util.h"

typedef struct {
    double l;
    int64_t i;
} item;

static int cmp_item(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static void check(const char *name, const char *spec, double frac, const float *p, const int32_t *y, int64_t N,
                  int64_t C, int64_t S)
{
    const int64_t M = N * S, T = N * C * S;
    item *it = malloc(sizeof(item) * M);
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) {
            float lp = (float)log((double)p[(n * C + y[n * S + s]) * S + s]);
            it[n * S + s].l = -(double)lp;
            it[n * S + s].i = n * S + s;
        }
    qsort(it, (size_t)M, sizeof *it, cmp_item);
    int64_t K = (int64_t)floor((double)M * frac);
    if (K < 1) K = 1;
    double ref = 0, *gr = calloc((size_t)T, sizeof(double));
    for (int64_t r = 0; r < K; r++) {
        int64_t i = it[r].i, n = i / S, s = i % S, off = (n * C + y[i]) * S + s;
        ref += it[r].l;
        gr[off] = -1.0 / (double)K / p[off];
    }
    ref /= (double)K;
    sl_loss *L;
    char msg[256];
    CHECK(sl_loss_create(spec, &L, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 1, .spatial = {S}};
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y};
    float *g = malloc(sizeof(float) * T);
    double v = NAN;
    CHECK(sl_loss_forward(L, p, &d, &t, NULL, &v, g, msg, sizeof msg) == SL_OK, "%s: %s", name, msg);
    CHECK(fabs(v - ref) <= 1e-12 * fabs(ref) + 1e-15, "%s: value %.17g, reference %.17g", name, v, ref);
    double gmax = 0, dmax = 0;
    for (int64_t i = 0; i < T; i++) {
        gmax = fmax(gmax, fabs(gr[i]));
        dmax = fmax(dmax, fabs(g[i] - gr[i]));
    }
    CHECK(dmax <= 1e-6 * gmax, "%s: gradient differs by %.3g (max %.3g): another set selected", name, dmax, gmax);
    printf("%-28s K = %lld: value diff %.2g, gradient diff %.2g of max\n", name, (long long)K, fabs(v - ref),
           gmax > 0 ? dmax / gmax : 0.0);
    sl_loss_free(L);
    free(g);
    free(gr);
    free(it);
}

/* ohem's threshold form: the set {exp(−ℓ) < thresh}, exactly as exp decides it. */
static void check_thresh(const char *name, double thresh, const float *p, const int32_t *y, int64_t N, int64_t C,
                         int64_t S)
{
    const int64_t T = N * C * S;
    double ref = 0, *gr = calloc((size_t)T, sizeof(double));
    int64_t K = 0;
    for (int64_t pass = 0; pass < 2; pass++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                int64_t off = (n * C + y[n * S + s]) * S + s;
                double l = -(double)(float)log((double)p[off]);
                if (!(exp(-l) < thresh)) continue;
                if (pass == 0) K++, ref += l;
                else gr[off] = -1.0 / (double)K / p[off];
            }
    ref = K ? ref / (double)K : 0;
    char spec[128];
    snprintf(spec, sizeof spec, "ohem(activation=none,min_kept=0,thresh=%.17g)", thresh);
    sl_loss *L;
    char msg[256];
    CHECK(sl_loss_create(spec, &L, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 1, .spatial = {S}};
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y};
    float *g = malloc(sizeof(float) * T);
    double v = NAN;
    CHECK(sl_loss_forward(L, p, &d, &t, NULL, &v, g, msg, sizeof msg) == SL_OK, "%s: %s", name, msg);
    CHECK(fabs(v - ref) <= 1e-12 * fabs(ref) + 1e-15, "%s: value %.17g, reference %.17g", name, v, ref);
    double gmax = 0, dmax = 0;
    for (int64_t i = 0; i < T; i++) {
        gmax = fmax(gmax, fabs(gr[i]));
        dmax = fmax(dmax, fabs(g[i] - gr[i]));
    }
    CHECK(dmax <= 1e-6 * gmax + 1e-300, "%s: gradient differs by %.3g (max %.3g): another set", name, dmax, gmax);
    printf("%-28s %lld hard: value diff %.2g\n", name, (long long)K, fabs(v - ref));
    sl_loss_free(L);
    free(g);
    free(gr);
}

int main(void)
{
    enum { N = 2, C = 3, S = 5003 };
    float *p = malloc(sizeof(float) * N * C * S);
    int32_t *y = malloc(sizeof(int32_t) * N * S);
    srand(9);
    for (int64_t i = 0; i < N * S; i++) y[i] = rand() % C;
    /* a grid of 16 values: every ℓ shared by ~1/16 of the voxels */
    for (int64_t i = 0; i < N * C * S; i++) p[i] = (float)(1 + rand() % 16) / 16.0f;
    check("grid, k=10", "topk(activation=none)", 0.10, p, y, N, C, S);
    check("grid, k=33.3", "topk(activation=none,k=33.3)", 0.333, p, y, N, C, S);
    check("grid, k=100 (all)", "topk(activation=none,k=100)", 1.0, p, y, N, C, S);
    check("grid, K=1", "topk(activation=none,k=0.001)", 0.00001, p, y, N, C, S);
    /* thresholds on the grid: exp(−ℓ) lands on either side of thresh by rounding */
    check_thresh("ohem thresh=0.5 (on grid)", 0.5, p, y, N, C, S);
    check_thresh("ohem thresh=0.3125 (on grid)", 0.3125, p, y, N, C, S);
    check_thresh("ohem thresh=1", 1.0, p, y, N, C, S);
    check_thresh("ohem thresh=exp(-ℓ) of 11/16", exp((double)(float)log(11.0 / 16.0)), p, y, N, C, S);
    check("ohem thresh=0, min_kept", "ohem(activation=none,thresh=0,min_kept=0.2)", 0.2, p, y, N, C, S);
    for (int64_t i = 0; i < N * C * S; i++) p[i] = 0.375f;
    check("all equal, k=10", "topk(activation=none)", 0.10, p, y, N, C, S);
    check("all equal, K=1", "topk(activation=none,k=0.001)", 0.00001, p, y, N, C, S);
    for (int64_t i = 0; i < N * C * S; i++) p[i] = (float)((rand() + 1.0) / ((double)RAND_MAX + 2.0));
    check("random, k=10", "topk(activation=none)", 0.10, p, y, N, C, S);
    check("random, K=1", "topk(activation=none,k=0.001)", 0.00001, p, y, N, C, S);
    check("random, ohem min_kept", "ohem(activation=none,thresh=0,min_kept=0.5)", 0.5, p, y, N, C, S);
    /* p = 1 on some voxels: ℓ = −0.0 and +0 must rank equal */
    for (int64_t i = 0; i < N * C * S; i++) p[i] = rand() % 3 ? 1.0f : 0.5f;
    check("zeros, k=80", "topk(activation=none,k=80)", 0.80, p, y, N, C, S);
    free(p);
    free(y);
    return test_report("topk_select");
}
