/*
 * Generalized Wasserstein Dice loss (Fidon et al. 2017, "Generalised
 * Wasserstein Dice Score for Imbalanced Multi-class Segmentation using
 * Holistic Convolutional Networks", BrainLes).
 *
 * M is a K×K distance between classes (row = target class l, column =
 * predicted class k; default 0 on the diagonal, 1 elsewhere), class 0 the
 * background. Per voxel i, with q_i the predicted distribution and h_i the
 * target distribution (one-hot for a label map):
 *     δ_i = Σ_l Σ_k M[l][k] h_il q_ik      (Wasserstein distance to a one-hot
 *                                          target; the expected cost otherwise)
 *     a_i = Σ_l α_l h_il,  α_l = M[l][0]   (distance of the true class to the
 *                                          background: the background itself
 *                                          never counts as a true positive)
 * and per sample (or for the pooled batch with batch=true):
 *     TP = Σ_i a_i (1 − δ_i),  AE = Σ_i δ_i  (generalised true positives and
 *                                             all errors)
 *     GWD = (2·TP + s_nr) / (2·TP + AE + s_dr),  loss = 1 − GWD,
 * averaged over samples. This is the paper's score (eq. 9, α from M, as in
 * the authors' NiftyNet code); MONAI's GeneralizedWassersteinDiceLoss with
 * weighting_mode="default" sets α = 1 for every foreground class instead,
 * which is the same whenever M[l][0] = 1 for l ≥ 1 (the default M). MONAI
 * divides M by its maximum; we require entries in [0, 1] instead.
 *
 * q must be a distribution per voxel: softmax (or activation=none with
 * C > 1); a single sigmoid channel p stands for the two classes
 * (background 1 − p, foreground p), with a 2×2 M.
 *
 * Gradient: dL/dq_ik = m_ik (dL/dAE − a_i dL/dTP), m_ik = Σ_l M[l][k] h_il,
 * in a second pass (the first computes TP and AE); for the sigmoid channel
 * dL/dp = dL/dq_1 − dL/dq_0. Deterministic: per-chunk partials added in order.
 */
#include <stdlib.h>
#include <string.h>
#include "term.h"

#define GW_KMAX 16 /* SL_LIST_MAX = 256 numbers: a 16×16 matrix */

/* The K×K matrix in use: the given one, or 0 on the diagonal and 1 elsewhere. */
static void gw_matrix(const sl_params *pr, int64_t K, double *M)
{
    for (int64_t l = 0; l < K; l++)
        for (int64_t k = 0; k < K; k++) M[l * K + k] = pr->matrix.n ? pr->matrix.v[l * K + k] : (double)(l != k);
}

/* Target distribution h[l] of voxel (n, s) over K classes (K = 2 for one
 * sigmoid channel). */
static inline void gw_target(const sl_ctx *cx, int64_t K, int64_t n, int64_t s, double *h)
{
    if (cx->C == 1) {
        double g = sl_g(cx, n, 0, s);
        h[0] = 1 - g;
        h[1] = g;
        return;
    }
    for (int64_t l = 0; l < K; l++) h[l] = sl_g(cx, n, l, s);
}

static inline void gw_probs(const sl_ctx *cx, int64_t K, int64_t n, int64_t s, double *q)
{
    if (cx->C == 1) {
        double p = cx->p[n * cx->S + s];
        q[0] = 1 - p;
        q[1] = p;
        return;
    }
    for (int64_t k = 0; k < K; k++) q[k] = cx->p[(n * cx->C + k) * cx->S + s];
}

/* m[k] = Σ_l M[l][k] h[l] and a = Σ_l α_l h[l]; a label map takes a row. */
static inline double gw_row(const sl_ctx *cx, const double *M, int64_t K, int64_t n, int64_t s, double *m)
{
    if (cx->target->kind == SL_TARGET_LABELS) {
        int32_t y = cx->target->labels[n * cx->S + s];
        if (cx->C == 1) y = y == 1;
        memcpy(m, M + y * K, (size_t)K * sizeof(double));
        return M[y * K];
    }
    double h[GW_KMAX], a = 0;
    gw_target(cx, K, n, s, h);
    for (int64_t k = 0; k < K; k++) m[k] = 0;
    for (int64_t l = 0; l < K; l++) {
        if (h[l] == 0) continue;
        a += M[l * K] * h[l];
        for (int64_t k = 0; k < K; k++) m[k] += M[l * K + k] * h[l];
    }
    return a;
}

static sl_status eval_gwdice(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S, K = C == 1 ? 2 : C, nch = sl_nchunks(S);
    if (cx->act == SL_ACT_SIGMOID && C > 1)
        return sl_errf(msg, msglen, SL_EINVAL,
                       "gwdice: needs one distribution over the classes per voxel: softmax (or activation=none) "
                       "with C > 1, or a single sigmoid channel; C = %lld sigmoid channels are independent",
                       (long long)C);
    if (K > GW_KMAX)
        return sl_errf(msg, msglen, SL_ESHAPE, "gwdice: at most %d classes (the matrix M has at most 256 numbers)",
                       GW_KMAX);
    if (pr->matrix.n && pr->matrix.n != K * K)
        return sl_errf(msg, msglen, SL_ESHAPE, "gwdice: M has %d numbers but %lld classes need %lld×%lld = %lld%s",
                       pr->matrix.n, (long long)K, (long long)K, (long long)K, (long long)(K * K),
                       C == 1 ? " (one sigmoid channel is two classes: background, foreground)" : "");
    double M[GW_KMAX * GW_KMAX];
    gw_matrix(pr, K, M);
    const int weighted = sl_weighted(cx, pr);

    /* pass 1: TP and AE per (sample, chunk) */
    double *part = sl_calloc(2 * N * nch, sizeof(double));
    const int64_t G = pr->batch ? 1 : N;
    double *grp = sl_calloc(4 * G, sizeof(double)); /* TP, AE, cT, cE per group */
    if (!part || !grp) {
        free(part);
        free(grp);
        return sl_errf(msg, msglen, SL_ENOMEM, "gwdice: out of memory");
    }
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            const int64_t a0 = ch * SL_CHUNK, b0 = a0 + SL_CHUNK < S ? a0 + SL_CHUNK : S;
            double tp = 0, ae = 0, m[GW_KMAX], q[GW_KMAX];
            for (int64_t s = a0; s < b0; s++) {
                double w = 1;
                if (weighted && (w = sl_vw(cx, pr, n, s)) == 0) continue;
                double a = gw_row(cx, M, K, n, s, m);
                gw_probs(cx, K, n, s, q);
                double d = 0;
                for (int64_t k = 0; k < K; k++) d += m[k] * q[k];
                tp += w * a * (1 - d);
                ae += w * d;
            }
            part[2 * (n * nch + ch)] = tp;
            part[2 * (n * nch + ch) + 1] = ae;
        }
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t gi = pr->batch ? 0 : n;
            grp[4 * gi] += part[2 * (n * nch + ch)];
            grp[4 * gi + 1] += part[2 * (n * nch + ch) + 1];
        }
    free(part);

    double total = 0;
    for (int64_t gi = 0; gi < G; gi++) {
        double TP = grp[4 * gi], AE = grp[4 * gi + 1];
        double A = 2 * TP + pr->smooth_nr, B = 2 * TP + AE + pr->smooth_dr;
        if (!(B > 0)) continue; /* 0/0: no foreground, no error, no smoothing: perfect */
        total += 1 - A / B;
        grp[4 * gi + 2] = -2 * (B - A) / (B * B) / (double)G; /* dL/dTP */
        grp[4 * gi + 3] = A / (B * B) / (double)G;           /* dL/dAE */
    }
    *value = total / (double)G;

    /* pass 2: dL/dq = m (dL/dAE − a dL/dTP) */
    if (cx->dp) {
        const double scale = cx->scale;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
        for (int64_t n = 0; n < N; n++)
            for (int64_t ch = 0; ch < nch; ch++) {
                const int64_t a0 = ch * SL_CHUNK, b0 = a0 + SL_CHUNK < S ? a0 + SL_CHUNK : S;
                const int64_t gi = pr->batch ? 0 : n;
                const double cT = grp[4 * gi + 2], cE = grp[4 * gi + 3];
                double m[GW_KMAX];
                for (int64_t s = a0; s < b0; s++) {
                    double w = 1;
                    if (weighted && (w = sl_vw(cx, pr, n, s)) == 0) continue;
                    double a = gw_row(cx, M, K, n, s, m);
                    double f = w * scale * (cE - a * cT);
                    if (C == 1) cx->dp[n * S + s] += (float)(f * (m[1] - m[0]));
                    else
                        for (int64_t k = 0; k < K; k++) cx->dp[(n * C + k) * S + s] += (float)(f * m[k]);
                }
            }
    }
    free(grp);
    return SL_OK;
}

static sl_status validate_gwdice(const sl_params *p, char *msg, size_t msglen)
{
    if (!p->matrix.n) return SL_OK;
    int n = p->matrix.n, K = 0;
    while ((K + 1) * (K + 1) <= n) K++;
    if (K * K != n || K < 2)
        return sl_errf(msg, msglen, SL_EINVAL, "gwdice: M has %d numbers, not a K×K matrix with K >= 2", n);
    const double *M = p->matrix.v;
    double off = 0;
    for (int l = 0; l < K; l++)
        for (int k = 0; k < K; k++) {
            if (l == k && M[l * K + k] != 0)
                return sl_errf(msg, msglen, SL_EINVAL, "gwdice: M[%d][%d]=%g must be 0 (a distance)", l, k,
                               M[l * K + k]);
            if (M[l * K + k] != M[k * K + l])
                return sl_errf(msg, msglen, SL_EINVAL, "gwdice: M is not symmetric (M[%d][%d]=%g, M[%d][%d]=%g)", l, k,
                               M[l * K + k], k, l, M[k * K + l]);
            off += M[l * K + k];
        }
    double bg = 0;
    for (int l = 1; l < K; l++) bg += M[l * K];
    if (!(off > 0)) return sl_errf(msg, msglen, SL_EINVAL, "gwdice: M is all zeros (the loss would be constant)");
    if (!(bg > 0))
        return sl_errf(msg, msglen, SL_EINVAL,
                       "gwdice: column 0 of M (each class's distance to the background) is all zeros, so no voxel "
                       "counts as a true positive");
    return SL_OK;
}

static const sl_key gwdice_keys[] = {
    SL_KEY_ACTIVATION,
    {"batch", SL_KEY_BOOL, SL_P(batch), 0, 0, 1, NULL, "one score for the pooled batch"},
    {"smooth_nr", SL_KEY_NUMBER, SL_P(smooth_nr), 1e-5, 0, 1e6, NULL, "added to the numerator"},
    {"smooth_dr", SL_KEY_NUMBER, SL_P(smooth_dr), 1e-5, 0, 1e6, NULL, "added to the denominator"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"},
    {"M", SL_KEY_LIST, SL_P(matrix), 0, 0, 1, NULL,
     "class distance matrix, K×K numbers in [0, 1] row by row (row = target class), symmetric, 0 on the "
     "diagonal; default 0 on the diagonal and 1 elsewhere"},
    SL_KEY_END};

const sl_term_class sl_loss_gwdice = {
    {"gwdice", "region", "generalized Wasserstein Dice loss with a class distance matrix M",
     "Fidon et al. 2017 (α_l = M[l][0], as the authors' NiftyNet code); equals MONAI "
     "GeneralizedWassersteinDiceLoss(weighting_mode=\"default\") when M[l][0] = 1 for every foreground class"},
    gwdice_keys, SL_TAKES_MASK, validate_gwdice, eval_gwdice, NULL, NULL};
