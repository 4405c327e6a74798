/*
 * Issue 16's second round through the C API, so that the sanitizers see it
 * (the float64 PyTorch comparisons are tests/ref/test_loss_mask_more.py and
 * tests/ref/test_loss_reduction_none.py):
 *   - masks on dpce, boundary_aware, lovasz, blob, ssim, edge_dice,
 *     hausdorff_er, cldice: a mask of ones is no mask, a weight map runs and
 *     changes the value, lovasz's binary mask is its ignore_index;
 *   - reduction=none: the matrix's shape, the mean of its included entries is
 *     the ordinary value, the gradient of Σ u·M against a central difference
 *     of Σ u·M, the default upstream is all ones, and the refusals.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/loss.h"
#include "test_util.h"

enum { N = 2, C = 3, H = 11, W = 12, S = H * W, T = N * C * S };

static unsigned rng_state = 4242u;
static double urand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (rng_state >> 8) / 16777216.0;
}

static const sl_dims dims = {.n = N, .c = C, .spatial_ndim = 2, .spatial = {H, W}};

static sl_status run(const char *spec, const float *x, const sl_target *t, double *v, float *g)
{
    sl_loss *L = NULL;
    char msg[256];
    sl_status st = sl_loss_create(spec, &L, msg, sizeof msg);
    CHECK(st == SL_OK, "create %s: %s", spec, msg);
    if (st != SL_OK) return st;
    st = sl_loss_forward(L, x, &dims, t, NULL, v, g, msg, sizeof msg);
    CHECK(st == SL_OK, "%s: %s", spec, msg);
    sl_loss_free(L);
    return st;
}

/* reduction=none: values (N·K), K, status */
static sl_status run_none(const char *spec, const float *x, const sl_target *t, const double *up, double *vals,
                          int64_t *K, float *g, char *msg)
{
    sl_loss *L = NULL;
    sl_status st = sl_loss_create(spec, &L, msg, 256);
    if (st != SL_OK) return st;
    st = sl_loss_none_columns(L, &dims, K, msg, 256);
    if (st == SL_OK) st = sl_loss_forward_none(L, x, &dims, t, NULL, vals, up, g, msg, 256);
    sl_loss_free(L);
    return st;
}

static double maxdiff(const float *a, const float *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double maxabs(const float *a, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

int main(void)
{
    static float x[T], g1[T], g2[T], xp[T], xm[T], mask[N * S], ones[N * S];
    static int32_t y[N * S], yi[N * S];
    static double vals[N * C], vp[N * C], vm[N * C], up[N * C];
    for (int i = 0; i < T; i++) x[i] = (float)(4 * urand() - 2);
    /* blobby labels: two disks of class 1 and a band of class 2 per sample */
    for (int n = 0; n < N; n++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                int lab = 0;
                if ((i - 3) * (i - 3) + (j - 3) * (j - 3) <= 4 + n) lab = 1;
                if ((i - 7) * (i - 7) + (j - 8) * (j - 8) <= 3) lab = 1;
                if (i >= 9) lab = 2;
                y[n * S + i * W + j] = lab;
            }
    for (int i = 0; i < N * S; i++) {
        ones[i] = 1;
        mask[i] = urand() < 0.2 ? 0.0f : (float)(0.2 + 2.8 * urand());
    }
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y};
    sl_target to = t, tm = t;
    to.mask = ones;
    tm.mask = mask;

    /* masks: ones == none, a weight map changes the value and stays finite */
    const char *specs[] = {"dpce", "boundary_aware", "lovasz", "lovasz(per_image=true)", "blob", "ssim(window=3)",
                           "ssim(window=5,padding=zero)", "edge_dice", "hausdorff_er(erosions=3)", "cldice",
                           "0.3*blob+0.7*focal"};
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        double a, b, c;
        if (run(specs[k], x, &to, &a, g1) != SL_OK || run(specs[k], x, &t, &b, g2) != SL_OK) continue;
        CHECK_NEAR(a, b, 1e-6 * fmax(1, fabs(b)), specs[k]);
        CHECK(maxdiff(g1, g2, T) <= 1e-6 * fmax(1, maxabs(g2, T)), "%s: mask of ones == no mask (%g)", specs[k],
              maxdiff(g1, g2, T));
        if (run(specs[k], x, &tm, &c, g1) != SL_OK) continue;
        CHECK(isfinite(c) && fabs(c - b) > 1e-9, "%s: a weight map changes the value (%g vs %g)", specs[k], c, b);
        for (int i = 0; i < T; i++)
            if (!isfinite(g1[i])) {
                CHECK(0, "%s: non-finite gradient", specs[k]);
                break;
            }
    }
    /* lovasz: a binary mask is ignore_index on the same voxels */
    for (int i = 0; i < N * S; i++) {
        mask[i] = mask[i] > 0 ? 1.0f : 0.0f;
        yi[i] = mask[i] > 0 ? y[i] : 9;
    }
    {
        sl_target ti = {.kind = SL_TARGET_LABELS, .labels = yi};
        double a, b;
        if (run("lovasz", x, &tm, &a, g1) == SL_OK && run("lovasz(ignore_index=9)", x, &ti, &b, g2) == SL_OK) {
            CHECK_NEAR(a, b, 1e-9, "lovasz binary mask == ignore_index");
            CHECK(maxdiff(g1, g2, T) < 1e-7, "lovasz binary mask == ignore_index gradient (%g)", maxdiff(g1, g2, T));
        }
    }

    /* reduction=none */
    struct {
        const char *spec;
        int64_t K, first; /* columns, first included column */
    } cases[] = {{"dice", C, 0}, {"dice(include_background=false)", C, 1}, {"0.5*iou+2*tversky", C, 0},
                 {"ssim(window=3)", C, 0}, {"hausdorff_er(erosions=2)", C, 0}, {"edge_dice", C, 0},
                 {"cldice", C, 0}, {"mcc", C, 0}, {"sensspec", C, 0}, {"dice+ce", 1, 0}, {"lovasz(per_image=true)", 1, 0},
                 {"blob", 1, 0}, {"focal", 1, 0}, {"dice(pool_classes=true)", 1, 0}};
    /* (lovasz with per_image=false ranks the whole batch: its per-sample values are per_image=true's) */
    char msg[256];
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const char *spec = cases[k].spec;
        int64_t K = 0;
        if (run_none(spec, x, &t, NULL, vals, &K, g1, msg) != SL_OK) {
            CHECK(0, "%s none: %s", spec, msg);
            continue;
        }
        CHECK(K == cases[k].K, "%s: %lld columns, expected %lld", spec, (long long)K, (long long)cases[k].K);
        double v, mean = 0;
        if (run(spec, x, &t, &v, g2) != SL_OK) continue;
        int64_t cnt = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = cases[k].first; c < K; c++, cnt++) mean += vals[n * K + c];
        /* equal voxel counts per sample: the mean of M is the ordinary value, and the
         * default upstream (ones) gives cnt times the ordinary gradient */
        CHECK_NEAR(mean / (double)cnt, v, 1e-6 * fmax(1, fabs(v)), spec);
        for (int i = 0; i < T; i++) g2[i] *= (float)cnt;
        CHECK(maxdiff(g1, g2, T) <= 1e-5 * fmax(1, maxabs(g2, T)), "%s: gradient of Σ M (%g)", spec,
              maxdiff(g1, g2, T));
        /* a random upstream: the gradient of Σ u·M against a central difference */
        for (int64_t i = 0; i < N * K; i++) up[i] = 2 * urand() - 1;
        if (run_none(spec, x, &t, up, vals, &K, g1, msg) != SL_OK) continue;
        const double h = strstr(spec, "lovasz") || strstr(spec, "hausdorff") || strstr(spec, "cldice") ? 1e-4 : 1e-2;
        double an = 0;
        for (int i = 0; i < T; i++) {
            double d = urand() - 0.5;
            xp[i] = (float)(x[i] + h * d);
            xm[i] = (float)(x[i] - h * d);
            an += g1[i] * ((double)xp[i] - xm[i]);
        }
        an /= 2 * h;
        if (run_none(spec, xp, &t, NULL, vp, &K, NULL, msg) != SL_OK ||
            run_none(spec, xm, &t, NULL, vm, &K, NULL, msg) != SL_OK)
            continue;
        double lp = 0, lm = 0;
        for (int64_t i = 0; i < N * K; i++) lp += up[i] * vp[i], lm += up[i] * vm[i];
        double fd = (lp - lm) / (2 * h);
        CHECK(fabs(fd - an) <= 2e-2 * fabs(an) + 2e-6 * fmax(fabs(lp), 1e-3) / h, "%s: Σ u·M finite difference %g vs %g",
              spec, fd, an);
    }
    /* refusals */
    int64_t K;
    CHECK(run_none("dice(batch=true)", x, &t, NULL, vals, &K, g1, msg) == SL_EINVAL && strstr(msg, "batch=true"),
          "batch=true refused: %s", msg);
    CHECK(run_none("adaptive_dice", x, &t, NULL, vals, &K, g1, msg) == SL_EINVAL && strstr(msg, "stateful"),
          "a stateful loss refused: %s", msg);
    for (int i = 0; i < N * C; i++) up[i] = 1;
    up[3] = NAN;
    CHECK(run_none("dice", x, &t, up, vals, &K, g1, msg) == SL_ENONFINITE, "NaN upstream refused: %s", msg);
    y[S + 5] = 7;
    CHECK(run_none("dice", x, &t, NULL, vals, &K, g1, msg) == SL_ERANGE && strstr(msg, "index"),
          "a bad label: %s", msg);
    return test_report("loss masks (second round) and reduction=none");
}
