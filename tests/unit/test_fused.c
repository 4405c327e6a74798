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
                                  "0.5*dice(batch=true,ignore_index=255)+wce(ignore_index=255)"};
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
    printf("max relative gradient difference fused vs plain: %.3g\n", max_grad_diff);
    free(x), free(soft), free(y), free(yb);
    return test_report("fused vs plain");
}
