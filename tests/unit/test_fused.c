/*
 * The fused two-pass path against the plain path (materialised p) on every
 * kind of spec that can be fused: single and summed terms, weights, batch
 * pooling, label smoothing, soft targets, ignore_index, sigmoid and softmax,
 * 2-D and 3-D. Tolerances: value 1e-6 relative, gradient 1e-5 of its max.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fastexp.h"
#include "segloss/loss.h"
#include "test_util.h"

static double max_grad_diff;

static void compare(const char *spec, const sl_dims *d, const float *x, const sl_target *t)
{
    int64_t total = d->n * d->c;
    for (int i = 0; i < d->spatial_ndim; i++) total *= d->spatial[i];
    float *g1 = malloc(sizeof(float) * total), *g2 = malloc(sizeof(float) * total);
    sl_loss *L;
    char msg[256];
    CHECK(sl_loss_create(spec, &L, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
    double v1, v2;
    sl_status s1 = sl_loss_forward(L, x, d, t, NULL, &v1, g1, msg, sizeof msg);
    CHECK(s1 == SL_OK, "%s fused: %s", spec, msg);
    double tv1 = sl_loss_term_value(L, 0);
    sl_loss_set_fused(L, 0);
    sl_status s2 = sl_loss_forward(L, x, d, t, NULL, &v2, g2, msg, sizeof msg);
    CHECK(s2 == SL_OK, "%s plain: %s", spec, msg);
    if (s1 == SL_OK && s2 == SL_OK) {
        CHECK(fabs(v1 - v2) <= 1e-6 * fabs(v2) + 1e-9, "%s: value fused %.10g plain %.10g", spec, v1, v2);
        CHECK(fabs(tv1 - sl_loss_term_value(L, 0)) <= 1e-6 * fabs(tv1) + 1e-9, "%s: first term value", spec);
        double gmax = 0, dmax = 0;
        for (int64_t i = 0; i < total; i++) {
            gmax = fmax(gmax, fabs(g2[i]));
            dmax = fmax(dmax, fabs((double)g1[i] - g2[i]));
        }
        CHECK(dmax <= 1e-5 * gmax + 1e-12, "%s: gradient differs by %.3g (max |g| %.3g)", spec, dmax, gmax);
        if (gmax > 0) max_grad_diff = fmax(max_grad_diff, dmax / gmax);
    }
    sl_loss_free(L);
    free(g1);
    free(g2);
}

/*
 * topk and ohem (fused_hard.c) against the plain path, on 1 and 2 threads
 * (same bits), against the masked plain path with a mask of ones, and
 * under reduction=none. Same tolerances as compare().
 */
static double max_hard_diff;

static void compare_hard(const char *spec, const sl_dims *d, const float *x, const sl_target *t)
{
    int64_t S = 1;
    for (int i = 0; i < d->spatial_ndim; i++) S *= d->spatial[i];
    const int64_t total = d->n * d->c * S;
    float *g1 = malloc(sizeof(float) * total), *g2 = malloc(sizeof(float) * total);
    float *g3 = malloc(sizeof(float) * total), *ones = malloc(sizeof(float) * d->n * S);
    for (int64_t i = 0; i < d->n * S; i++) ones[i] = 1.0f;
    sl_target tm = *t;
    tm.mask = ones;
    sl_loss *L;
    char msg[256];
    CHECK(sl_loss_create(spec, &L, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
    sl_forward_opts o1 = SL_FORWARD_OPTS_DEFAULT, o2 = SL_FORWARD_OPTS_DEFAULT;
    o1.threads = 1, o2.threads = 2;
    double v1 = 0, v2 = 0, v3 = 0, vm = 0;
    CHECK(sl_loss_forward(L, x, d, t, &o2, &v1, g1, msg, sizeof msg) == SL_OK, "%s fused: %s", spec, msg);
    CHECK(sl_loss_forward(L, x, d, t, &o1, &v3, g3, msg, sizeof msg) == SL_OK, "%s fused 1 thread: %s", spec, msg);
    CHECK(v3 == v1 && memcmp(g1, g3, sizeof(float) * total) == 0, "%s: 1 and 2 threads differ", spec);
    CHECK(sl_loss_forward(L, x, d, t, &o2, &v3, NULL, msg, sizeof msg) == SL_OK && v3 == v1, "%s: value alone", spec);
    /* reduction=none, fused: per-sample values */
    double *pv1 = malloc(sizeof(double) * d->n), *pv2 = malloc(sizeof(double) * d->n);
    CHECK(sl_loss_forward_none(L, x, d, t, &o2, pv1, NULL, g3, msg, sizeof msg) == SL_OK, "%s none: %s", spec, msg);
    CHECK(sl_loss_forward(L, x, d, &tm, &o2, &vm, g2, msg, sizeof msg) == SL_OK, "%s mask: %s", spec, msg);
    double dm = 0, gmax = 0;
    for (int64_t i = 0; i < total; i++) dm = fmax(dm, fabs((double)g1[i] - g2[i])), gmax = fmax(gmax, fabs(g2[i]));
    CHECK(fabs(v1 - vm) <= 1e-6 * fabs(vm) + 1e-9 && dm <= 1e-5 * gmax + 1e-12,
          "%s: fused %.10g vs mask of ones %.10g, gradient by %.3g", spec, v1, vm, dm);
    sl_loss_set_fused(L, 0);
    CHECK(sl_loss_forward(L, x, d, t, &o2, &v2, g2, msg, sizeof msg) == SL_OK, "%s plain: %s", spec, msg);
    CHECK(fabs(v1 - v2) <= 1e-6 * fabs(v2) + 1e-9, "%s: value fused %.10g plain %.10g", spec, v1, v2);
    double dmax = 0;
    gmax = 0;
    for (int64_t i = 0; i < total; i++) dmax = fmax(dmax, fabs((double)g1[i] - g2[i])), gmax = fmax(gmax, fabs(g2[i]));
    CHECK(gmax > 0 || v2 == 0, "%s: zero gradient", spec);
    CHECK(dmax <= 1e-5 * gmax + 1e-12, "%s: gradient differs by %.3g (max |g| %.3g)", spec, dmax, gmax);
    if (gmax > 0) max_hard_diff = fmax(max_hard_diff, dmax / gmax);
    CHECK(sl_loss_forward_none(L, x, d, t, &o2, pv2, NULL, g2, msg, sizeof msg) == SL_OK, "%s none plain", spec);
    dmax = gmax = 0;
    for (int64_t i = 0; i < total; i++) dmax = fmax(dmax, fabs((double)g3[i] - g2[i])), gmax = fmax(gmax, fabs(g2[i]));
    for (int64_t n = 0; n < d->n; n++)
        CHECK(fabs(pv1[n] - pv2[n]) <= 1e-6 * fabs(pv2[n]) + 1e-9, "%s none: sample %lld %.10g vs %.10g", spec,
              (long long)n, pv1[n], pv2[n]);
    CHECK(dmax <= 1e-5 * gmax + 1e-12, "%s none: gradient differs by %.3g", spec, dmax);
    sl_loss_free(L);
    free(g1), free(g2), free(g3), free(ones), free(pv1), free(pv2);
}

/*
 * topk's gradient bit for bit against the softmax written out here with the
 * library's exp (fastexp.h) in the kernel's order: w·(e_c·(1/Σe) − [y = c]),
 * w = (float)(1/K), for the selected voxels, 0 elsewhere; k from 5 to 90 %.
 */
static void hard_bits(const sl_dims *d, const float *x, const int32_t *y)
{
    const int64_t N = d->n, C = d->c, S = (int64_t)d->spatial[0] * d->spatial[1] * d->spatial[2];
    float *g = malloc(sizeof(float) * N * C * S);
    const double ks[] = {5, 10, 60, 90};
    for (size_t q = 0; q < sizeof ks / sizeof *ks; q++) {
        char spec[64], msg[256];
        snprintf(spec, sizeof spec, "topk(k=%g)", ks[q]);
        sl_loss *L = NULL;
        double v;
        sl_target t = {.kind = SL_TARGET_LABELS, .labels = y};
        CHECK(sl_loss_create(spec, &L, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
        CHECK(sl_loss_forward(L, x, d, &t, NULL, &v, g, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
        sl_loss_free(L);
        const int64_t K = (int64_t)floor((double)(N * S) * ks[q] / 100.0);
        const float w = (float)(1.0 / (double)K);
        int64_t selected = 0, differ = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                const float *xs = x + n * C * S + s;
                float *gs = g + n * C * S + s;
                int sel = 0;
                for (int64_t c = 0; c < C; c++) sel |= gs[c * S] != 0;
                selected += sel;
                if (!sel) continue;
                float mx = xs[S] > xs[0] ? xs[S] : xs[0], e[8], sum = 0;
                for (int64_t c = 2; c < C; c++) mx = xs[c * S] > mx ? xs[c * S] : mx;
                for (int64_t c = 0; c < C; c++) sum += e[c] = sl_exp_nonpos(xs[c * S] - mx);
                const float r = 1.0f / sum;
                for (int64_t c = 0; c < C; c++) {
                    const float want = w * (e[c] * r - (y[n * S + s] == c ? 1.0f : 0.0f));
                    differ += memcmp(&want, &gs[c * S], sizeof want) != 0;
                }
            }
        printf("  %s: %lld of %lld voxels selected (K = %lld), %lld gradient values differ in their bits from the "
               "written-out softmax\n", spec, (long long)selected, (long long)(N * S), (long long)K, (long long)differ);
        CHECK(selected == K, "%s: %lld voxels selected, K = %lld", spec, (long long)selected, (long long)K);
        CHECK(differ == 0, "%s: %lld gradient values differ from the written-out softmax", spec, (long long)differ);
    }
    free(g);
}

static void hard_specs(const sl_dims *d3, const sl_dims *d2, const float *x, int64_t S3, int C)
{
    const int N = (int)d3->n;
    int32_t *y = malloc(sizeof(int32_t) * N * S3), *yi = malloc(sizeof(int32_t) * N * S3);
    float *xt = malloc(sizeof(float) * N * C * S3);
    for (int64_t i = 0; i < N * S3; i++) {
        y[i] = rand() % C;
        yi[i] = rand() % 8 == 0 ? 255 : y[i];
    }
    /* exact ties: every voxel a copy of one of 5 prototypes (logits and label) */
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S3; s++) {
            int64_t q = (s * 7 + n) % 5;
            for (int c = 0; c < C; c++) xt[(n * C + c) * S3 + s] = x[(n * C + c) * S3 + q];
        }
    int32_t *yt = malloc(sizeof(int32_t) * N * S3);
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S3; s++) yt[n * S3 + s] = y[n * S3 + (s * 7 + n) % 5];
    sl_target tl = {.kind = SL_TARGET_LABELS, .labels = y}, ti = {.kind = SL_TARGET_LABELS, .labels = yi},
              tt = {.kind = SL_TARGET_LABELS, .labels = yt};
    const char *specs[] = {"topk", "topk(k=37)", "topk(k=100)", "topk(k=0.01)", "0.5*topk(k=5)", "ohem",
                           "ohem(thresh=0.05)", "ohem(thresh=0.05,min_kept=0)", "ohem(thresh=0.9,min_kept=0.5)",
                           "ohem(thresh=1)", "ohem(thresh=0,min_kept=0.2)"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        compare_hard(specs[i], d3, x, &tl);
        compare_hard(specs[i], d2, x, &tl);
        compare_hard(specs[i], d3, xt, &tt);
    }
    const char *ig[] = {"topk(ignore_index=255)", "ohem(ignore_index=255,thresh=0.3)",
                        "ohem(ignore_index=255,thresh=0.01,min_kept=0.15)"};
    for (size_t i = 0; i < sizeof ig / sizeof *ig; i++) compare_hard(ig[i], d3, x, &ti);
    printf("topk/ohem fused vs plain: max relative gradient difference %.3g\n", max_hard_diff);
    free(y), free(yi), free(xt), free(yt);
}

int main(void)
{
    enum { N = 2, C = 4, D = 6, H = 33, W = 41 };
    const int64_t S3 = (int64_t)D * H * W;
    float *x = malloc(sizeof(float) * N * C * S3), *soft = malloc(sizeof(float) * N * C * S3);
    int32_t *y = malloc(sizeof(int32_t) * N * S3), *yb = malloc(sizeof(int32_t) * N * S3);
    srand(11);
    for (int64_t i = 0; i < N * C * S3; i++) x[i] = (float)(rand() / (double)RAND_MAX * 10 - 5);
    for (int64_t i = 0; i < N * S3; i++) {
        y[i] = rand() % C;
        yb[i] = rand() % 2;
        if (rand() % 10 == 0) y[i] = 255; /* for the ignore_index specs */
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S3; s++) {
            double z = 0, e[C];
            for (int c = 0; c < C; c++) z += e[c] = exp(rand() / (double)RAND_MAX * 3);
            for (int c = 0; c < C; c++) soft[(n * C + c) * S3 + s] = (float)(e[c] / z);
        }
    sl_dims d3 = {.n = N, .c = C, .spatial_ndim = 3, .spatial = {D, H, W}};
    sl_dims d2 = {.n = N, .c = C, .spatial_ndim = 2, .spatial = {H * 2, W * 3}};
    sl_dims d1 = {.n = N, .c = 1, .spatial_ndim = 3, .spatial = {D, H, W}};
    sl_target tl = {.kind = SL_TARGET_LABELS, .labels = y}, ts = {.kind = SL_TARGET_SOFT, .soft = soft},
              tb = {.kind = SL_TARGET_LABELS, .labels = yb};

    const char *ignore_specs[] = {"dice(ignore_index=255)+ce(ignore_index=255)",
                                  "ce(ignore_index=255,weight=inverse)",
                                  "0.5*dice(batch=true,ignore_index=255)+wce(ignore_index=255)",
                                  "ce(ignore_index=255,label_smoothing=0.1,weight=[1,2,3,4])"};
    for (size_t i = 0; i < sizeof ignore_specs / sizeof *ignore_specs; i++) compare(ignore_specs[i], &d3, x, &tl);
    for (int64_t i = 0; i < N * S3; i++)
        if (y[i] == 255) y[i] = 1;
    const char *specs[] = {"dice", "ce", "dice+ce", "0.3*dice(batch=true,squared=true)+0.7*ce(weight=[1,2,3,4])",
                           "ce(label_smoothing=0.1)", "dice(include_background=false,log=true)+wce",
                           "ce(weight=median,label_smoothing=0.2)+dice(weight=[1,1,2,2])"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        compare(specs[i], &d3, x, &tl);
        compare(specs[i], &d2, x, &tl);
        compare(specs[i], &d3, x, &ts);
    }
    const char *sig_specs[] = {"dice+bce", "bce(pos_weight=3)", "dice(squared=true)+ce"};
    for (size_t i = 0; i < sizeof sig_specs / sizeof *sig_specs; i++) compare(sig_specs[i], &d1, x, &tb);
    compare("dice(activation=sigmoid)+bce", &d3, x, &tl);
    compare("dice(activation=sigmoid)+bce(weight=[1,2,3,4],label_smoothing=0.1)", &d3, x, &ts);
    hard_specs(&d3, &d2, x, S3, C);
    hard_bits(&d3, x, y);
    { /* 10 classes: topk and ohem's generic first pass (2..8 take fused_dce.c's) */
        enum { C10 = 10 };
        float *x10 = malloc(sizeof(float) * N * C10 * S3);
        for (int64_t i = 0; i < N * C10 * S3; i++) x10[i] = (float)(rand() / (double)RAND_MAX * 10 - 5);
        sl_dims d10 = {.n = N, .c = C10, .spatial_ndim = 3, .spatial = {D, H, W}};
        sl_dims d10_2 = {.n = N, .c = C10, .spatial_ndim = 2, .spatial = {H * 2, W * 3}};
        hard_specs(&d10, &d10_2, x10, S3, C10);
        free(x10);
    }
    printf("max relative gradient difference fused vs plain: %.3g\n", max_grad_diff);
    free(x), free(soft), free(y), free(yb);
    return test_report("fused vs plain");
}
