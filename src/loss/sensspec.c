/*
 * Sensitivity–specificity loss (Brosch, Yoo, Tang, Li, Traboulsee, Tam,
 * "Deep Convolutional Encoder Networks for Multiple Sclerosis Lesion
 * Segmentation", MICCAI 2015, eq. for E = r·sens + (1 − r)·spec).
 *
 * Per group (sample × class, or class with batch=true), over valid voxels:
 *     sens = Σ (g − p)² g / (Σ g + s_dr)
 *     spec = Σ (g − p)² (1 − g) / (Σ (1 − g) + s_dr)
 *     loss_g = r·sens + (1 − r)·spec,  r = 0.05 by default (the paper's
 *     choice: errors on the rare lesion voxels weigh ~20× through the
 *     normalisation, r then trades them against the background's)
 * then the mean over groups (region.c: weights, include_background).
 * The paper writes the sums normalised by Σg and Σ(1 − g); smooth_dr
 * (1e-5) in both denominators keeps an empty class (Σg = 0) finite: its
 * sensitivity term is 0/s_dr = 0, and its specificity term is the mean of
 * p² over the voxels, which pushes p down. No numerator smoothing: it would
 * add a constant r·s_nr/s_dr to every empty class.
 *
 * With soft targets, Σ(g − p)² g needs Σg³, Σg²p and Σg p², so the loss
 * has its own sums instead of the shared tp/Σp ones. Its gradient is
 *     ∂loss_g/∂p_i = −2 (g_i − p_i) [r g_i/(Σg + s_dr) + (1 − r)(1 − g_i)/(Σ(1 − g) + s_dr)].
 * Sums per (sample, chunk, class) are combined in a fixed order, so the
 * result does not depend on the thread count.
 */
#include <stdlib.h>
#include "term.h"

#define NS 4 /* Σ(g−p)²g, Σ(g−p)²(1−g), Σg, cnt */

static sl_status eval_sensspec(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const int64_t G = pr->batch ? C : N * C;
    const double r = pr->r, sd = pr->smooth_dr;
    double *sums = sl_calloc(G * NS + 2 * G, sizeof(double));
    double *part = sl_calloc(N * nch * C * NS, sizeof(double));
    if (!sums || !part) {
        free(sums);
        free(part);
        return sl_errf(msg, msglen, SL_ENOMEM, "sensspec: out of memory");
    }
    double *lg = sums + G * NS, *dl = lg + G;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            for (int64_t c = 0; c < C; c++) {
                const float *p = cx->p + (n * C + c) * S;
                double se = 0, sp = 0, sg = 0, cnt = 0;
                for (int64_t s = a; s < b; s++) {
                    const double w = sl_vw(cx, pr, n, s);
                    if (w == 0) continue;
                    double g = sl_g(cx, n, c, s), d = g - (double)p[s], d2 = w * d * d;
                    se += d2 * g;
                    sp += d2 * (1 - g);
                    sg += w * g;
                    cnt += w;
                }
                double *o = part + ((n * nch + ch) * C + c) * NS;
                o[0] = se, o[1] = sp, o[2] = sg, o[3] = cnt;
            }
        }
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++)
            for (int64_t c = 0; c < C; c++) {
                const double *o = part + ((n * nch + ch) * C + c) * NS;
                double *q = sums + (pr->batch ? c : n * C + c) * NS;
                for (int k = 0; k < NS; k++) q[k] += o[k];
            }
    free(part);
    for (int64_t g = 0; g < G; g++) {
        const double *q = sums + g * NS;
        double dpos = q[2] + sd, dneg = q[3] - q[2] + sd; /* 0 only with smooth_dr = 0: then the sum is 0 too */
        lg[g] = (dpos > 0 ? r * q[0] / dpos : 0.0) + (dneg > 0 ? (1 - r) * q[1] / dneg : 0.0);
    }
    sl_region reg = {.G = G, .pooled = pr->batch}; /* sl_region_mean reads only G and pooled */
    sl_status st = sl_region_mean(cx, pr, &reg, lg, dl, value, msg, msglen);
    if (st == SL_OK && cx->dp) {
        const double scale = cx->scale;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
        for (int64_t n = 0; n < N; n++)
            for (int64_t ch = 0; ch < nch; ch++) {
                int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
                for (int64_t c = 0; c < C; c++) {
                    int64_t g = pr->batch ? c : n * C + c;
                    if (dl[g] == 0) continue;
                    const double *q = sums + g * NS;
                    const double dpos = q[2] + sd, dneg = q[3] - q[2] + sd;
                    const double kp = dpos > 0 ? -2 * scale * dl[g] * r / dpos : 0.0;
                    const double kn = dneg > 0 ? -2 * scale * dl[g] * (1 - r) / dneg : 0.0;
                    const float *p = cx->p + (n * C + c) * S;
                    float *dp = cx->dp + (n * C + c) * S;
                    for (int64_t s = a; s < b; s++) {
                        const double w = sl_vw(cx, pr, n, s);
                        if (w == 0) continue;
                        double gv = sl_g(cx, n, c, s);
                        dp[s] += (float)(w * (gv - (double)p[s]) * (kp * gv + kn * (1 - gv)));
                    }
                }
            }
    }
    free(sums);
    return st;
}

static const sl_key sensspec_keys[] = {
    SL_KEY_ACTIVATION,
    {"include_background", SL_KEY_BOOL, SL_P(include_background), 1, 0, 1, NULL,
     "false drops class 0 from the average (C > 1)"},
    {"batch", SL_KEY_BOOL, SL_P(batch), 0, 0, 1, NULL, "pool the sums over the batch"},
    {"smooth_dr", SL_KEY_NUMBER, SL_P(smooth_dr), 1e-5, 0, 1e6, NULL, "added to both denominators"},
    {"weight", SL_KEY_WEIGHT, SL_P(weight), 0, 0, 1e6, NULL, "class weights [w0,...] or inverse|median"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"},
    {"r", SL_KEY_NUMBER, SL_P(r), 0.05, 0, 1, NULL, "weight of the sensitivity term"},
    SL_KEY_END};

const sl_term_class sl_loss_sensspec = {
    {"sensspec", "region", "r·Σ(g−p)²g/Σg + (1−r)·Σ(g−p)²(1−g)/Σ(1−g) per (sample, class)",
     "Brosch et al. 2015 (MICCAI), r = 0.05"},
    sensspec_keys, SL_TAKES_MASK | SL_PER_CLASS, NULL, eval_sensspec, NULL};
