/*
 * The boundary- and distance-based losses through the C API (the reference
 * values are checked in tests/ref/test_loss_{boundary,hausdorff_dt,dpce,
 * boundary_aware,blob}.py): results that do not depend on the thread count
 * (both job paths: jobs in parallel, and one job at a time with threaded
 * EDTs), opts.dist equal to the maps the loss computes, bad idc and dist
 * values, 1-D inputs, and specs that mix them with region losses (the
 * benchmark's specs). Runs under the sanitizers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/geometry.h"
#include "segloss/loss.h"
#include "test_util.h"

static const char *const specs[] = {
    "boundary",        "boundary(idc=[1,0])", "hausdorff_dt",   "hausdorff_dt(include_background=true,alpha=1.5)",
    "dpce(lambda=2)",  "boundary_aware",      "blob",           "blob(connectivity=face,include_background=true)",
    "0.5*gdice+0.5*boundary", "dice+hausdorff_dt", "dice+2*blob+dpce+boundary_aware"};
enum { NSPECS = sizeof specs / sizeof *specs };

/* Blobby labels: a few balls of classes 1..C-1 in a (D, H, W) volume. */
static void make_labels(int32_t *y, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t z = 0; z < D; z++)
            for (int64_t i = 0; i < H; i++)
                for (int64_t j = 0; j < W; j++) {
                    int32_t lab = 0;
                    for (int b = 0; b < 5; b++) {
                        double cz = (double)((b * 7 + n * 3) % D), ci = (double)((b * 5 + 2 + n) % H),
                               cj = (double)((b * 11 + 1) % W), r = 1.5 + (b % 3);
                        double d2 = (z - cz) * (z - cz) + (i - ci) * (i - ci) + (j - cj) * (j - cj);
                        if (d2 <= r * r) lab = (int32_t)(1 + b % (C > 1 ? C - 1 : 1));
                    }
                    y[((n * D + z) * H + i) * W + j] = C == 1 ? lab > 0 : lab;
                }
}

static void make_scores(float *x, int64_t total)
{
    uint32_t s = 12345;
    for (int64_t i = 0; i < total; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(((s >> 8) / 16777216.0) * 6.0 - 3.0);
    }
}

static sl_status run(const char *spec, const float *x, const sl_dims *d, const sl_target *t, const sl_forward_opts *o,
                     double *v, float *g, char *msg)
{
    sl_loss *L = NULL;
    sl_status st = sl_loss_create(spec, &L, msg, 256);
    if (st == SL_OK) st = sl_loss_forward(L, x, d, t, o, v, g, msg, 256);
    sl_loss_free(L);
    return st;
}

static void test_threads(int64_t N, int64_t C)
{
    const int64_t D = 9, H = 12, W = 13, S = D * H * W, total = N * C * S;
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 3, .spatial = {D, H, W}};
    float *x = malloc(total * sizeof(float)), *g1 = malloc(total * sizeof(float)), *g2 = malloc(total * sizeof(float));
    int32_t *y = malloc(N * S * sizeof(int32_t));
    make_scores(x, total);
    make_labels(y, N, C, D, H, W);
    sl_target t = {SL_TARGET_LABELS, y, NULL};
    for (int k = 0; k < NSPECS; k++) {
        if (C == 1 && strstr(specs[k], "idc")) continue;
        double v1 = NAN, v2 = NAN;
        char msg[256] = "";
        sl_forward_opts o = SL_FORWARD_OPTS_DEFAULT;
        o.spacing[0] = 2.0;
        o.threads = 1;
        sl_status st = run(specs[k], x, &d, &t, &o, &v1, g1, msg);
        CHECK(st == SL_OK && isfinite(v1), "%s (N=%lld C=%lld, 1 thread): %s", specs[k], (long long)N, (long long)C,
              msg);
        for (int th = 2; th <= 5; th += 3) { /* 2: jobs in parallel (N*C >= 2); 5: threaded EDTs one job at a time */
            o.threads = th;
            st = run(specs[k], x, &d, &t, &o, &v2, g2, msg);
            CHECK(st == SL_OK, "%s (%d threads): %s", specs[k], th, msg);
            CHECK(v1 == v2, "%s N=%lld C=%lld: value with 1 and %d threads %.17g vs %.17g", specs[k], (long long)N,
                  (long long)C, th, v1, v2);
            CHECK(!memcmp(g1, g2, total * sizeof(float)), "%s N=%lld C=%lld: gradients differ with 1 and %d threads",
                  specs[k], (long long)N, (long long)C, th);
        }
    }
    free(x);
    free(g1);
    free(g2);
    free(y);
}

/* opts.dist with the maps the loss computes (sl_edt, Kervadec mode) gives the same numbers. */
static void test_dist(void)
{
    const int64_t N = 2, C = 3, D = 6, H = 10, W = 11, S = D * H * W, total = N * C * S;
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 3, .spatial = {D, H, W}};
    float *x = malloc(total * sizeof(float)), *g1 = malloc(total * sizeof(float)), *g2 = malloc(total * sizeof(float));
    float *dist = malloc(total * sizeof(float));
    int32_t *y = malloc(N * S * sizeof(int32_t));
    uint8_t *m = malloc(S);
    make_scores(x, total);
    make_labels(y, N, C, D, H, W);
    sl_grid grid = {3, {D, H, W}, {2.5, 0.8, 1.0}};
    sl_edt_opts eo = {SL_EDT_SIGNED_KERVADEC, 1};
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            for (int64_t s = 0; s < S; s++) m[s] = y[n * S + s] == c;
            CHECK(sl_edt(m, SL_DT_U8, &grid, &eo, dist + (n * C + c) * S, SL_DT_F32, NULL, 0) == SL_OK, "edt");
        }
    sl_target t = {SL_TARGET_LABELS, y, NULL};
    sl_forward_opts o = SL_FORWARD_OPTS_DEFAULT;
    for (int a = 0; a < 3; a++) o.spacing[a] = grid.spacing[a];
    double v1 = NAN, v2 = NAN;
    char msg[256] = "";
    CHECK(run("boundary", x, &d, &t, &o, &v1, g1, msg) == SL_OK, "boundary: %s", msg);
    o.dist = dist;
    CHECK(run("boundary", x, &d, &t, &o, &v2, g2, msg) == SL_OK, "boundary with dist: %s", msg);
    CHECK(v1 == v2, "boundary: dist value %.17g vs %.17g", v2, v1);
    CHECK(!memcmp(g1, g2, total * sizeof(float)), "boundary: dist gradient differs");

    /* Only the idc channels of dist are read: NaN in class 0 is fine, in class 1 an error. */
    dist[5] = NAN; /* sample 0, class 0 */
    CHECK(run("boundary", x, &d, &t, &o, &v2, g2, msg) == SL_OK, "boundary: NaN in an unused channel: %s", msg);
    dist[S + 5] = INFINITY; /* sample 0, class 1 */
    sl_status st = run("boundary", x, &d, &t, &o, &v2, g2, msg);
    CHECK(st == SL_ENONFINITE && strstr(msg, "class 1"), "boundary: Inf in dist: %d %s", st, msg);
    CHECK(run("boundary(idc=[0])", x, &d, &t, &o, &v2, g2, msg) == SL_ENONFINITE, "boundary idc=[0] with NaN: %s",
          msg);

    /* idc out of range for these scores */
    o.dist = NULL;
    st = run("boundary(idc=[3])", x, &d, &t, &o, &v2, g2, msg);
    CHECK(st == SL_ESHAPE && strstr(msg, "idc"), "boundary idc=[3] with C=3: %d %s", st, msg);
    free(x);
    free(g1);
    free(g2);
    free(dist);
    free(y);
    free(m);
}

/* 1-D and 2-D inputs and soft targets run and give finite numbers. */
static void test_shapes(void)
{
    const int64_t N = 2, C = 2, W = 40, total = N * C * W;
    float x[2 * 2 * 40], g[2 * 2 * 40], soft[2 * 2 * 40];
    int32_t y[2 * 40];
    make_scores(x, total);
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < W; s++) {
            y[n * W + s] = (s / 7 + n) % 2;
            soft[(n * C + 1) * W + s] = y[n * W + s] ? 0.8f : 0.3f;
            soft[(n * C + 0) * W + s] = 1 - soft[(n * C + 1) * W + s];
        }
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 1, .spatial = {W}};
    sl_target t = {SL_TARGET_LABELS, y, NULL}, ts = {SL_TARGET_SOFT, NULL, soft};
    for (int k = 0; k < NSPECS; k++) {
        char msg[256] = "";
        double v = NAN;
        sl_status st = run(specs[k], x, &d, &t, NULL, &v, g, msg);
        CHECK(st == SL_OK && isfinite(v), "%s on 1-D labels: %s", specs[k], msg);
        st = run(specs[k], x, &d, &ts, NULL, &v, g, msg);
        CHECK(st == SL_OK && isfinite(v), "%s on 1-D soft targets: %s", specs[k], msg);
        st = run(specs[k], x, &d, &t, NULL, &v, NULL, msg);
        CHECK(st == SL_OK && isfinite(v), "%s without a gradient: %s", specs[k], msg);
    }
}

/* Labels that another term ignores (outside [0, C)) are no class for these
 * losses: no out-of-bounds access, finite results (ASan checks the former). */
static void test_foreign_labels(void)
{
    const int64_t N = 2, D = 5, H = 9, W = 10, S = D * H * W;
    for (int64_t C = 1; C <= 3; C += 2) {
        const int64_t total = N * C * S;
        float *x = malloc(total * sizeof(float)), *g = malloc(total * sizeof(float));
        int32_t *y = malloc(N * S * sizeof(int32_t));
        make_scores(x, total);
        make_labels(y, N, C, D, H, W);
        for (int64_t i = 0; i < N * S; i += 7) y[i] = 9;
        sl_dims d = {.n = N, .c = C, .spatial_ndim = 3, .spatial = {D, H, W}};
        sl_target t = {SL_TARGET_LABELS, y, NULL};
        char msg[256] = "";
        double v = NAN;
        sl_status st = run("0*dice(ignore_index=9)+boundary+hausdorff_dt+dpce+boundary_aware+blob", x, &d, &t, NULL, &v,
                           g, msg);
        CHECK(st == SL_OK && isfinite(v), "C=%lld with labels ignored by another term: %s", (long long)C, msg);
        free(x);
        free(g);
        free(y);
    }
}

int main(void)
{
    test_threads(2, 3);
    test_threads(1, 1);
    test_threads(2, 2);
    test_dist();
    test_shapes();
    test_foreign_labels();
    return test_report("test_loss_boundary");
}
