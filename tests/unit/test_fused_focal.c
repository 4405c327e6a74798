/*
 * The one-pass focal kernel (fused.c, softmax with hard labels; ce and wce
 * as γ = 0, and with label smoothing in a body of their own) against the plain path (focal.c and ce.c on materialised p and
 * log p): γ integer and not, α scalar and per class, class weights, ignore_index, a term weight, 2-D and 3-D, confident
 * scores (p_y → 1, where q = 1 − p_y must not cancel), every instruction set
 * (the same bits), the gradient alone and the value alone, and NaN or
 * infinite scores (refused, naming them; the gradient is unspecified then,
 * loss.h); the sigmoid form, smp's normalized and reduced forms and the
 * binary cross-entropy on the same kernel (bce, ce/wce under sigmoid)
 * included, and the softmax form with soft targets. Tolerances as
 * tests/unit/test_fused.c:
 * value 1e-6 relative, gradient 1e-5 of its max.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "loss/fused.h"
#include "segloss/loss.h"
#include "test_util.h"

static double max_grad_diff, max_val_diff;

static void compare(const char *spec, const sl_dims *d, const float *x, const sl_target *t)
{
    int64_t total = d->n * d->c;
    for (int i = 0; i < d->spatial_ndim; i++) total *= d->spatial[i];
    float *g1 = malloc(sizeof(float) * total), *g2 = malloc(sizeof(float) * total);
    float *g3 = malloc(sizeof(float) * total);
    sl_loss *L;
    char msg[256];
    CHECK(sl_loss_create(spec, &L, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
    double v1, v2, v3;
    CHECK(sl_loss_forward(L, x, d, t, NULL, &v1, g1, msg, sizeof msg) == SL_OK, "%s fused: %s", spec, msg);
    double tv1 = sl_loss_term_value(L, 0);
    /* every instruction set gives the same bits */
    for (int isa = SL_ISA_BASE; isa <= sl_isa(); isa++) {
        sl_force_isa(isa);
        CHECK(sl_loss_forward(L, x, d, t, NULL, &v3, g3, msg, sizeof msg) == SL_OK, "%s isa %d: %s", spec, isa, msg);
        CHECK(v3 == v1 && memcmp(g3, g1, sizeof(float) * total) == 0, "%s: isa %d differs from the best", spec, isa);
    }
    sl_force_isa(-1);
    /* value only */
    CHECK(sl_loss_forward(L, x, d, t, NULL, &v3, NULL, msg, sizeof msg) == SL_OK && v3 == v1, "%s: value alone", spec);
    sl_loss_set_fused(L, 0);
    CHECK(sl_loss_forward(L, x, d, t, NULL, &v2, g2, msg, sizeof msg) == SL_OK, "%s plain: %s", spec, msg);
    CHECK(fabs(v1 - v2) <= 1e-6 * fabs(v2) + 1e-9, "%s: value fused %.10g plain %.10g", spec, v1, v2);
    CHECK(fabs(tv1 - sl_loss_term_value(L, 0)) <= 1e-6 * fabs(tv1) + 1e-9, "%s: term value", spec);
    max_val_diff = fmax(max_val_diff, fabs(v1 - v2) / fmax(fabs(v2), 1e-30));
    double gmax = 0, dmax = 0;
    for (int64_t i = 0; i < total; i++) {
        gmax = fmax(gmax, fabs(g2[i]));
        dmax = fmax(dmax, fabs((double)g1[i] - g2[i]));
    }
    CHECK(gmax > 0, "%s: zero gradient", spec);
    CHECK(dmax <= 1e-5 * gmax + 1e-12, "%s: gradient differs by %.3g (max |g| %.3g)", spec, dmax, gmax);
    if (gmax > 0) max_grad_diff = fmax(max_grad_diff, dmax / gmax);
    sl_loss_free(L);
    free(g1);
    free(g2);
    free(g3);
}

int main(void)
{
    enum { N = 2, C = 4, D = 6, H = 33, W = 41 };
    const int64_t S3 = (int64_t)D * H * W, T = N * C * S3;
    float *x = malloc(sizeof(float) * T), *xc = malloc(sizeof(float) * T);
    int32_t *y = malloc(sizeof(int32_t) * N * S3), *yi = malloc(sizeof(int32_t) * N * S3);
    srand(17);
    for (int64_t i = 0; i < T; i++) x[i] = (float)(rand() / (double)RAND_MAX * 10 - 5);
    for (int64_t i = 0; i < N * S3; i++) {
        y[i] = rand() % C;
        yi[i] = rand() % 10 == 0 ? 255 : y[i];
    }
    /* confident and correct on most voxels: p_y within 1e-6 of 1 */
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S3; s++)
            for (int64_t c = 0; c < C; c++)
                xc[(n * C + c) * S3 + s] = x[(n * C + c) * S3 + s] + (c == y[n * S3 + s] && s % 7 ? 14.0f : 0.0f);
    sl_dims d3 = {.n = N, .c = C, .spatial_ndim = 3, .spatial = {D, H, W}};
    sl_dims d2 = {.n = N, .c = C, .spatial_ndim = 2, .spatial = {H * 2, W * 3}};
    sl_target tl = {.kind = SL_TARGET_LABELS, .labels = y}, ti = {.kind = SL_TARGET_LABELS, .labels = yi};
    const char *specs[] = {"focal", "focal(gamma=0)", "focal(gamma=1)", "focal(gamma=3)", "focal(gamma=2.5)",
                           "focal(gamma=0.5)", "focal(alpha=0.25)", "focal(alpha=[0.1,0.2,0.3,0.4],gamma=1.5)",
                           "0.3*focal(gamma=2)", "focal(gamma=0,alpha=[0.1,0.2,0.3,0.4])"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        compare(specs[i], &d3, x, &tl);
        compare(specs[i], &d2, x, &tl);
        compare(specs[i], &d3, xc, &tl);
    }
    compare("focal(ignore_index=255)", &d3, x, &ti);
    /* the cross-entropy on the same kernel: γ = 0, α the class weights, the mean over Σ w_y */
    const char *ce[] = {"ce", "wce", "ce(weight=[0.5,1,2,0])", "wce(weight=median)", "0.6*ce(weight=[1,2,3,4])",
                        "ce(label_smoothing=0.1)", "wce(label_smoothing=0.3)",
                        "0.5*ce(label_smoothing=0.2,weight=[1,2,3,4])"};
    for (size_t i = 0; i < sizeof ce / sizeof *ce; i++) {
        compare(ce[i], &d3, x, &tl);
        compare(ce[i], &d3, xc, &tl);
    }
    compare("wce(ignore_index=255)", &d3, x, &ti);
    compare("ce(ignore_index=255,label_smoothing=0.1,weight=[1,2,3,4])", &d3, x, &ti);
    compare("ce(ignore_index=2,weight=[1,2,3,4])", &d3, x, &tl); /* an ignored label that is a class */
    compare("ce(ignore_index=255)", &d3, x, &ti); /* unweighted: the valid count without class counts */
    compare("ce(ignore_index=1)", &d3, x, &tl);
    compare("0.4*ce(ignore_index=3)", &d2, xc, &tl);
    /* Without smoothing, ce and wce on 2..8 classes take fused_dce.c's register kernel at
     * γ = 0 (log Σexp as logs of products; so do the specs above); with more classes
     * this file's generic body. */
    {
        enum { C10 = 10 };
        float *x10 = malloc(sizeof(float) * N * C10 * S3);
        int32_t *y10 = malloc(sizeof(int32_t) * N * S3);
        for (int64_t i = 0; i < N * C10 * S3; i++) x10[i] = (float)(rand() / (double)RAND_MAX * 10 - 5);
        for (int64_t i = 0; i < N * S3; i++) y10[i] = rand() % 10 == 0 ? 255 : rand() % C10;
        sl_dims d10 = {.n = N, .c = C10, .spatial_ndim = 3, .spatial = {D, H, W}};
        sl_target t10 = {.kind = SL_TARGET_LABELS, .labels = y10};
        compare("ce(ignore_index=255)", &d10, x10, &t10);
        compare("wce(ignore_index=255)", &d10, x10, &t10);
        compare("0.5*ce(ignore_index=255,weight=[1,2,3,4,5,6,7,8,9,10])", &d10, x10, &t10);
        free(x10), free(y10);
    }
    /* the sigmoid form (fused_focal_sig.c): C channels, one channel, soft targets */
    {
        sl_dims d1 = {.n = N, .c = 1, .spatial_ndim = 3, .spatial = {D, H, W}};
        int32_t *yb = malloc(sizeof(int32_t) * N * S3);
        float *soft = malloc(sizeof(float) * T);
        for (int64_t i = 0; i < N * S3; i++) yb[i] = rand() % 2;
        for (int64_t i = 0; i < T; i++) soft[i] = (float)(rand() / (double)RAND_MAX);
        sl_target tb = {.kind = SL_TARGET_LABELS, .labels = yb}, ts = {.kind = SL_TARGET_SOFT, .soft = soft};
        const char *sig[] = {"focal(activation=sigmoid)", "focal(activation=sigmoid,gamma=0)",
                             "focal(activation=sigmoid,gamma=1,alpha=0.25)", "focal(activation=sigmoid,gamma=2.5)",
                             "0.4*focal(activation=sigmoid,alpha=[0.1,0.2,0.3,0.4],gamma=3)"};
        for (size_t i = 0; i < sizeof sig / sizeof *sig; i++) {
            compare(sig[i], &d3, x, &tl);
            compare(sig[i], &d3, xc, &tl);
            compare(sig[i], &d3, x, &ts);
        }
        compare("focal(activation=sigmoid,ignore_index=255,alpha=0.3)", &d3, x, &ti);
        /* the softmax form with soft targets: u_c per class, the gradient u_j − p_j Σ u_c */
        const char *sm[] = {"focal", "focal(gamma=0)", "focal(gamma=1,alpha=0.25)", "focal(gamma=3)",
                            "focal(gamma=2.5,alpha=[0.1,0.2,0.3,0.4])", "0.3*focal(gamma=0.5)"};
        for (size_t i = 0; i < sizeof sm / sizeof *sm; i++) {
            compare(sm[i], &d3, x, &ts);
            compare(sm[i], &d3, xc, &ts);
            compare(sm[i], &d2, x, &ts);
        }
        /* the binary cross-entropy as γ = 0 with α_t from its weights and pos_weight */
        const char *bce[] = {"bce", "bce(pos_weight=2.5)", "bce(weight=[0.5,1,2,3])",
                             "0.7*bce(pos_weight=0.5,weight=[1,2,3,4])", "ce(activation=sigmoid)",
                             "wce(activation=sigmoid)", "bce(weight=inverse,pos_weight=3)"};
        for (size_t i = 0; i < sizeof bce / sizeof *bce; i++) {
            compare(bce[i], &d3, x, &tl);
            compare(bce[i], &d3, xc, &tl);
            compare(bce[i], &d3, x, &ts); /* soft: this kernel without weights, else the two-pass path */
        }
        compare("bce(pos_weight=2,weight=[1,2,3,4],ignore_index=255)", &d3, x, &ti);
        compare("bce", &d1, x, &tb);
        compare("bce(pos_weight=4)", &d1, xc, &tb);
        /* smp's normalized and reduced forms (label maps: fused; soft targets: plain both times) */
        const char *smp[] = {"focal(activation=sigmoid,normalized=true)",
                             "focal(activation=sigmoid,reduced_threshold=0.5)",
                             "focal(activation=sigmoid,normalized=true,reduced_threshold=0.3,gamma=3)",
                             "focal(activation=sigmoid,normalized=true,alpha=0.25,gamma=1)",
                             "0.5*focal(activation=sigmoid,normalized=true,gamma=2.5)",
                             "focal(activation=sigmoid,reduced_threshold=0.5,gamma=0.5,alpha=[0.1,0.2,0.3,0.4])"};
        for (size_t i = 0; i < sizeof smp / sizeof *smp; i++) {
            compare(smp[i], &d3, x, &tl);
            compare(smp[i], &d3, xc, &tl);
            compare(smp[i], &d3, x, &ts);
        }
        compare("focal(activation=sigmoid,normalized=true,ignore_index=255)", &d3, x, &ti);
        compare("focal(normalized=true,reduced_threshold=0.4)", &d1, x, &tb);
        compare("focal", &d1, x, &tb);
        compare("focal(gamma=0.5,alpha=0.6)", &d1, xc, &tb);
        free(yb);
        free(soft);
    }
    compare("focal(ignore_index=255,alpha=0.25,gamma=0.5)", &d3, x, &ti);

    /* NaN and ±Inf scores are refused by every one-pass kernel, the value and the gradient alone too, at
     * an element whose target is 1 (where +Inf alone would give a finite term: p = 1, log p = 0) and at
     * an ignored voxel */
    {
        const char *one[] = {"focal", "ce", "ce(label_smoothing=0.1)", "focal(activation=sigmoid)", "bce",
                             "bce(pos_weight=2)",
                             "focal(activation=sigmoid,normalized=true)", "focal(ignore_index=255)",
                             "bce(ignore_index=255)"};
        const float bad[] = {NAN, INFINITY, -INFINITY};
        const int64_t at = T / 2, n = at / (C * S3), c = at / S3 % C, s = at % S3;
        float *g = malloc(sizeof(float) * T);
        y[n * S3 + s] = (int32_t)c;
        int64_t ignored = 0; /* a voxel that yi ignores, for the ignore_index spec */
        while (yi[ignored] != 255) ignored++;
        for (size_t k = 0; k < sizeof one / sizeof *one; k++)
            for (size_t b = 0; b < 3; b++) {
                const int ign = strstr(one[k], "ignore") != NULL;
                const int64_t where = ign ? ignored / S3 * C * S3 + ignored % S3 : at;
                sl_loss *L;
                char msg[256];
                CHECK(sl_loss_create(one[k], &L, msg, sizeof msg) == SL_OK, "create %s", one[k]);
                const float keep = x[where];
                x[where] = bad[b];
                double v = 42;
                CHECK(sl_loss_forward(L, x, &d3, ign ? &ti : &tl, NULL, &v, g, msg, sizeof msg) == SL_ENONFINITE,
                      "%s: score %g refused", one[k], (double)bad[b]);
                CHECK(strstr(msg, "NaN or Inf") != NULL, "%s: the message names it: %s", one[k], msg);
                CHECK(sl_loss_forward(L, x, &d3, ign ? &ti : &tl, NULL, &v, NULL, msg, sizeof msg) == SL_ENONFINITE,
                      "%s: score %g refused (value alone)", one[k], (double)bad[b]);
                x[where] = keep;
                sl_loss_free(L);
            }
        free(g);
    }
    printf("fused focal vs plain: max value rel diff %.3g, max gradient diff %.3g of max |g| (tol 1e-6, 1e-5)\n",
           max_val_diff, max_grad_diff);
    free(x);
    free(xc);
    free(y);
    free(yi);
    return test_report("fused_focal");
}
