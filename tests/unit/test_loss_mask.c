/*
 * Issue 16's loss options through the C API, so that the sanitizers see them
 * (the float64 PyTorch comparisons are tests/ref/test_loss_{mask,soft_label,
 * pool_classes,exp_log,focal_smp,ce_exact,cldice_iters}.py):
 *   - a binary voxel mask gives what ignore_index gives on the same voxels
 *     (value and gradient), for every loss that takes a mask;
 *   - a mask of ones is no mask; bad masks are refused with their codes;
 *   - soft_label at p = g gives 0; pool_classes, auto_iters, exp_log,
 *     log_hausdorff_dt, smp's focal forms and activation=none on exact 0/1
 *     probabilities run and give finite values and gradients.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/loss.h"
#include "test_util.h"

enum { N = 2, C = 3, H = 12, W = 13, S = H * W, T = N * C * S };

static unsigned rng_state = 12345u;
static double urand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (rng_state >> 8) / 16777216.0;
}

/* value and gradient; returns the status */
static sl_status run(const char *spec, const float *x, int c, const sl_target *t, double *v, float *g)
{
    sl_loss *L = NULL;
    char msg[256];
    sl_status st = sl_loss_create(spec, &L, msg, sizeof msg);
    CHECK(st == SL_OK, "create %s: %s", spec, msg);
    if (st != SL_OK) return st;
    sl_dims d = {.n = N, .c = c, .spatial_ndim = 2, .spatial = {H, W}};
    st = sl_loss_forward(L, x, &d, t, NULL, v, g, msg, sizeof msg);
    sl_loss_free(L);
    return st;
}

static double maxdiff(const float *a, const float *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static int all_finite(const float *a, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(a[i])) return 0;
    return 1;
}

int main(void)
{
    static float x[T], g1[T], g2[T], mask[N * S], ones[N * S], soft[T], x1[N * S];
    static int32_t y[N * S], yi[N * S], y1[N * S];
    for (int i = 0; i < T; i++) x[i] = (float)(4 * urand() - 2);
    /* blobby labels: a disk of class 1 and a band of class 2 per sample */
    for (int n = 0; n < N; n++)
        for (int r = 0; r < H; r++)
            for (int q = 0; q < W; q++) {
                int s = n * S + r * W + q;
                y[s] = (r - 5 - n) * (r - 5 - n) + (q - 6) * (q - 6) <= 9 ? 1 : (q > 9 ? 2 : 0);
                mask[s] = urand() < 0.7 ? 1.0f : 0.0f;
                ones[s] = 1.0f;
                yi[s] = mask[s] > 0 ? y[s] : 9;
                y1[s] = y[s] == 1;
                x1[s] = (float)(4 * urand() - 2);
            }
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y}, tm = t, ti = {.kind = SL_TARGET_LABELS, .labels = yi};
    tm.mask = mask;

    static const char *const pairs[][2] = {
        {"dice", "dice(ignore_index=9)"},
        {"iou(soft_label=true)", "iou(soft_label=true,ignore_index=9)"},
        {"tversky(pool_classes=true)", "tversky(pool_classes=true,ignore_index=9)"},
        {"ce", "ce(ignore_index=9)"},
        {"focal", "focal(ignore_index=9)"},
        {"sensspec", "sensspec(ignore_index=9)"},
        {"gwdice", "gwdice(ignore_index=9)"},
        {"combo", "combo(ignore_index=9)"},
        {"unified_focal", "unified_focal(ignore_index=9)"},
        {"exp_log", "exp_log(ignore_index=9)"},
        {"mcc+gdice", "mcc(ignore_index=9)+gdice(ignore_index=9)"},
        {"topk+ohem", "topk(ignore_index=9)+ohem(ignore_index=9)"},
    };
    for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) {
        double a = NAN, b = NAN;
        sl_status s1 = run(pairs[k][0], x, C, &tm, &a, g1), s2 = run(pairs[k][1], x, C, &ti, &b, g2);
        CHECK(s1 == SL_OK && s2 == SL_OK, "%s runs (%d, %d)", pairs[k][0], (int)s1, (int)s2);
        CHECK_NEAR(a, b, 1e-6 * fmax(1, fabs(b)), pairs[k][0]);
        CHECK(maxdiff(g1, g2, T) < 1e-6, "%s: binary mask gradient == ignore_index gradient (%g)", pairs[k][0],
              maxdiff(g1, g2, T));
    }
    /* boundary family with a weight map: finite; with ones == without */
    for (int i = 0; i < N * S; i++) mask[i] = (float)(2 * urand());
    static const char *const bnd[] = {"boundary", "hausdorff_dt", "log_hausdorff_dt", "dice+ce", "topk(k=20)"};
    for (size_t k = 0; k < sizeof bnd / sizeof *bnd; k++) {
        double a = NAN, b = NAN, c = NAN;
        sl_target to = t;
        to.mask = ones;
        CHECK(run(bnd[k], x, C, &tm, &a, g1) == SL_OK && isfinite(a) && all_finite(g1, T), "%s weighted", bnd[k]);
        CHECK(run(bnd[k], x, C, &to, &b, g1) == SL_OK, "%s ones", bnd[k]);
        CHECK(run(bnd[k], x, C, &t, &c, g2) == SL_OK, "%s plain", bnd[k]);
        CHECK_NEAR(b, c, 1e-6 * fmax(1, fabs(c)), bnd[k]);
        CHECK(maxdiff(g1, g2, T) < 1e-6, "%s: mask of ones == no mask (%g)", bnd[k], maxdiff(g1, g2, T));
    }
    /* bad masks */
    double v;
    mask[5] = -1;
    CHECK(run("dice", x, C, &tm, &v, g1) == SL_ERANGE, "negative weight -> SL_ERANGE");
    mask[5] = NAN;
    CHECK(run("dice", x, C, &tm, &v, g1) == SL_ENONFINITE, "NaN weight -> SL_ENONFINITE");
    mask[5] = 1;
    /* every loss of the catalogue takes a mask since issue 16's second round */
    CHECK(run("lovasz", x, C, &tm, &v, g1) == SL_OK && isfinite(v), "lovasz takes a mask");

    /* soft_label: p = g is a perfect score */
    for (int n = 0; n < N; n++)
        for (int s = 0; s < S; s++) {
            double a = urand() + 0.05, b = urand() + 0.05, c = urand() + 0.05, z = a + b + c;
            soft[(n * C + 0) * S + s] = (float)(a / z);
            soft[(n * C + 1) * S + s] = (float)(b / z);
            soft[(n * C + 2) * S + s] = (float)(1 - a / z - b / z);
        }
    sl_target ts = {.kind = SL_TARGET_SOFT, .soft = soft};
    static const char *const sl[] = {"dice(activation=none,soft_label=true)", "iou(activation=none,soft_label=true)",
                                     "tversky(activation=none,soft_label=true)",
                                     "focal_tversky(activation=none,soft_label=true,pool_classes=true)"};
    for (size_t k = 0; k < sizeof sl / sizeof *sl; k++) {
        CHECK(run(sl[k], soft, C, &ts, &v, g1) == SL_OK, "%s runs", sl[k]);
        CHECK(fabs(v) < 1e-6, "%s at p = g: %g", sl[k], v);
    }
    /* the other new options: finite values and gradients */
    sl_target t1 = {.kind = SL_TARGET_LABELS, .labels = y1};
    static const char *const one[] = {"focal(normalized=true)", "focal(reduced_threshold=0.5,alpha=0.25)",
                                      "focal(normalized=true,reduced_threshold=0.3)", "cldice(auto_iters=true)",
                                      "asym(pool_classes=true)+logcosh_dice(pool_classes=true,batch=true)"};
    for (size_t k = 0; k < sizeof one / sizeof *one; k++)
        CHECK(run(one[k], x1, 1, &t1, &v, g1) == SL_OK && isfinite(v) && all_finite(g1, N * S), "%s", one[k]);
    /* activation=none on exact 0/1 probabilities: 0·log 0 = 0 */
    for (int i = 0; i < N * S; i++) x1[i] = (float)y1[i];
    CHECK(run("bce(activation=none)", x1, 1, &t1, &v, g1) == SL_OK && v == 0 && all_finite(g1, N * S),
          "bce on exact probabilities equal to the target: 0 (%g)", v);
    for (int i = 0; i < N * S; i++) x1[i] = 1.0f - (float)y1[i];
    CHECK(run("bce(activation=none)", x1, 1, &t1, &v, g1) == SL_OK && fabs(v - 100) < 1e-9,
          "bce with every probability wrong: the clamped log gives 100 (%g)", v);
    return test_report("loss masks, soft labels, pooled classes, new variants");
}
