/*
 * Cross-entropy: ce, wce (inverse-frequency weights by default) and bce.
 *
 * Softmax (C > 1), matching PyTorch's F.cross_entropy(..., reduction="mean"):
 *   label map:  l = (1−ε)·NLL_w + (ε/C)·Σ_i Σ_c w_c (−log p_ic) / Σ_i w_{y_i}
 *               NLL_w = Σ_i w_{y_i} (−log p_{i,y_i}) / Σ_i w_{y_i}
 *               (ignored voxels excluded from both sums)
 *   soft target: l = Σ_i Σ_c w_c g'_ic (−log p_ic) / (N·S),  g' = (1−ε)g + ε/C
 * Both are Σ_i Σ_c a_ic (−log p_ic) / D with per-voxel coefficients a and a
 * denominator D, whose logit gradient is (A_i p_ic − a_ic) / D, A_i = Σ_c a_ic:
 * no division by p, so it stays exact where p underflows.
 *
 * Sigmoid (C = 1, or activation=sigmoid), matching
 * F.binary_cross_entropy_with_logits(..., weight=w_c, pos_weight=pw):
 *   l = mean over (n, c, valid s) of w_c·[−pw·g log p − (1−g) log(1−p)]
 *   dl/dx = w_c·[(pw·g + 1 − g)·p − pw·g] / count
 * Label smoothing for sigmoid moves targets to g(1−ε) + ε/2.
 *
 * A voxel mask m (sl_target.mask) weights every voxel's term and the
 * denominator: Σ_i m_i w_{y_i} l_i / Σ_i m_i w_{y_i} (softmax, labels),
 * Σ m_i l_i / Σ m_i (soft), Σ m_i w_c l_ic / (C Σ m_i) (sigmoid).
 *
 * activation=none takes probabilities: the same values, with the gradient
 * with respect to p (−a/p), through the framework's dp. A class whose
 * coefficient a is 0 contributes nothing (0·log 0 = 0), so exact 0/1
 * probabilities work where the target allows them. The binary form is then
 * PyTorch's F.binary_cross_entropy: logs clamped at −100 (p = 0 against a
 * positive costs 100, not ∞) and the gradient (a0·p − a1·(1 − p)) /
 * max(p(1 − p), 1e-12). The multi-class form has no clamp (PyTorch's
 * nll_loss(log p) has none either): p = 0 for a class with a > 0 is an
 * infinite loss, refused with SL_ENONFINITE.
 */
#include <stdlib.h>
#include "term.h"

extern const sl_term_class sl_loss_bce;

/* Sum of per-chunk partials kept in order for determinism. */
typedef struct {
    double loss, denom;
} ce_part;

static sl_status ce_softmax(const sl_term *t, const sl_ctx *cx, const double *w, double *value)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const double eps = pr->label_smoothing;
    const int soft = cx->target->kind == SL_TARGET_SOFT;
    ce_part *part = sl_calloc(N * nch, sizeof(ce_part));
    if (!part) return SL_ENOMEM;

    /* Denominator first (it only needs the target), so that one pass can
     * write the loss and the gradient together. */
    double D;
    if (soft && !cx->target->mask) {
        D = (double)(N * S);
    } else {
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
        for (int64_t n = 0; n < N; n++)
            for (int64_t ch = 0; ch < nch; ch++) {
                int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
                double d = 0;
                for (int64_t s = a; s < b; s++) {
                    double vw = sl_vw(cx, pr, n, s);
                    if (vw != 0) d += soft ? vw : vw * w[cx->target->labels[n * S + s]];
                }
                part[n * nch + ch].denom = d;
            }
        D = 0;
        for (int64_t i = 0; i < N * nch; i++) D += part[i].denom;
    }
    if (!(D > 0)) {
        /* Every voxel ignored (or all weight on absent classes): PyTorch
         * returns nan here; we return 0 and no gradient, documented. */
        free(part);
        *value = 0;
        return SL_OK;
    }
    double wsum = 0;
    for (int64_t c = 0; c < C; c++) wsum += w[c];
    const double k0 = cx->scale / D;

#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            double acc = 0;
            const float *lp = cx->logp + n * C * S, *p = cx->p + n * C * S;
            float *dx = cx->dx ? cx->dx + n * C * S : NULL, *dp = cx->dp ? cx->dp + n * C * S : NULL;
            for (int64_t s = a; s < b; s++) {
                const double vw = sl_vw(cx, pr, n, s);
                if (vw == 0) continue;
                const double k = vw * k0;
                double l = 0;
                if (!soft) {
                    int32_t y = cx->target->labels[n * S + s];
                    /* a_c = (1−ε) w_y [c = y] + (ε/C) w_c,  A = (1−ε) w_y + (ε/C) Σ w */
                    double ay = (1 - eps) * w[y], A = ay + eps / (double)C * wsum;
                    l -= ay * lp[y * S + s];
                    if (eps > 0)
                        for (int64_t c = 0; c < C; c++) l -= eps / (double)C * w[c] * lp[c * S + s];
                    if (cx->act == SL_ACT_SOFTMAX && dx) {
                        for (int64_t c = 0; c < C; c++) {
                            double ac = eps / (double)C * w[c] + (c == y ? ay : 0.0);
                            dx[c * S + s] += (float)(k * (A * p[c * S + s] - ac));
                        }
                    } else if (dp) {
                        for (int64_t c = 0; c < C; c++) {
                            double ac = eps / (double)C * w[c] + (c == y ? ay : 0.0);
                            if (ac != 0) dp[c * S + s] += (float)(-k * ac / p[c * S + s]);
                        }
                    }
                } else {
                    double A = 0;
                    for (int64_t c = 0; c < C; c++) {
                        double g = (1 - eps) * sl_g(cx, n, c, s) + eps / (double)C;
                        double ac = w[c] * g;
                        A += ac;
                        if (ac != 0) l -= ac * lp[c * S + s]; /* 0·log 0 = 0 with activation=none */
                    }
                    for (int64_t c = 0; c < C; c++) {
                        double g = (1 - eps) * sl_g(cx, n, c, s) + eps / (double)C;
                        double ac = w[c] * g;
                        if (cx->act == SL_ACT_SOFTMAX && dx) dx[c * S + s] += (float)(k * (A * p[c * S + s] - ac));
                        else if (dp && ac != 0) dp[c * S + s] += (float)(-k * ac / p[c * S + s]);
                    }
                }
                acc += vw * l;
            }
            part[n * nch + ch].loss = acc;
        }
    double L = 0;
    for (int64_t i = 0; i < N * nch; i++) L += part[i].loss;
    free(part);
    *value = L / D;
    return SL_OK;
}

static sl_status ce_sigmoid(const sl_term *t, const sl_ctx *cx, const double *w, double pos_weight, double *value)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const double eps = pr->label_smoothing;
    ce_part *part = sl_calloc(N * nch, sizeof(ce_part));
    if (!part) return SL_ENOMEM;
    double valid = 0; /* Σ voxel weights: the number of valid voxels without a mask */
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) valid += sl_vw(cx, pr, n, s);
    const double count = valid * (double)C;
    if (count == 0) {
        free(part);
        *value = 0;
        return SL_OK;
    }
    const double k = cx->scale / count;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            double acc = 0;
            for (int64_t c = 0; c < C; c++) {
                const int64_t off = (n * C + c) * S;
                for (int64_t s = a; s < b; s++) {
                    const double vw = sl_vw(cx, pr, n, s);
                    if (vw == 0) continue;
                    double g = sl_g(cx, n, c, s) * (1 - eps) + eps / 2;
                    double p = cx->p[off + s], wc = vw * w[c];
                    if (cx->act == SL_ACT_SIGMOID) {
                        acc -= wc * (pos_weight * g * cx->logp[off + s] + (1 - g) * cx->log1mp[off + s]);
                        if (cx->dx)
                            cx->dx[off + s] += (float)(k * wc * ((pos_weight * g + 1 - g) * p - pos_weight * g));
                        continue;
                    }
                    /* Probabilities given (activation=none): PyTorch's F.binary_cross_entropy.
                     * A term whose target weight is 0 is 0 (0·log 0 = 0), the logs are
                     * clamped at −100 so that p = 0 or 1 against the other label costs 100,
                     * and the gradient divides by max(p(1 − p), 1e-12) as PyTorch's does. */
                    double a1 = pos_weight * g, a0 = 1 - g;
                    if (a1 > 0) acc -= wc * a1 * fmax(cx->logp[off + s], -100.0);
                    if (a0 > 0) acc -= wc * a0 * fmax(cx->log1mp[off + s], -100.0);
                    if (cx->dp) cx->dp[off + s] += (float)(k * wc * (a0 * p - a1 * (1 - p)) / fmax(p * (1 - p), 1e-12));
                }
            }
            part[n * nch + ch].loss = acc;
        }
    double L = 0;
    for (int64_t i = 0; i < N * nch; i++) L += part[i].loss;
    free(part);
    *value = L / count;
    return SL_OK;
}

static sl_status eval_ce(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    double *w = sl_calloc(cx->C, sizeof(double));
    if (!w) return SL_ENOMEM;
    sl_status st = sl_class_weights(cx, &t->prm, w, msg, msglen);
    if (st == SL_OK) {
        /* Softmax and "none" on C > 1 are the multi-class form; sigmoid and
         * "none" on one channel the binary form. */
        int is_bce = t->cls == &sl_loss_bce;
        int binary = is_bce || cx->act == SL_ACT_SIGMOID || (cx->act == SL_ACT_NONE && cx->C == 1);
        double pw = is_bce ? t->prm.pos_weight : 1.0;
        st = binary ? ce_sigmoid(t, cx, w, pw, value) : ce_softmax(t, cx, w, value);
        if (st == SL_ENOMEM) sl_errf(msg, msglen, st, "%s: out of memory", t->cls->info.name);
    }
    free(w);
    return st;
}

#define CE_KEYS(weight_default)                                                                        \
    SL_KEY_ACTIVATION,                                                                                 \
    {"weight", SL_KEY_WEIGHT, SL_P(weight), weight_default, 0, 1e6, NULL, "class weights [w0,...] or inverse|median"}, \
    {"label_smoothing", SL_KEY_NUMBER, SL_P(label_smoothing), 0, 0, 1, NULL, "ε of PyTorch's label_smoothing"}, \
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"}

static const sl_key ce_keys[] = {CE_KEYS(SL_WEIGHT_NONE), SL_KEY_END};

const sl_term_class sl_loss_ce = {
    {"ce", "distribution", "cross-entropy (softmax; binary CE for one sigmoid channel)",
     "PyTorch F.cross_entropy (weight, label_smoothing, ignore_index)"},
    ce_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, NULL, eval_ce, NULL};

/* wce: the same loss with inverse-frequency weights unless weights are given. */
static const sl_key wce_keys[] = {CE_KEYS(SL_WEIGHT_INVERSE), SL_KEY_END};

const sl_term_class sl_loss_wce = {
    {"wce", "distribution", "weighted cross-entropy, inverse class frequency weights by default",
     "Ronneberger et al. 2015; Ben Naceur et al. 2020"},
    wce_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, NULL, eval_ce, NULL};

static const sl_key bce_keys[] = {
    {"activation", SL_KEY_ENUM, SL_P(activation), SL_ACT_SIGMOID, 0, 0, "auto|softmax|sigmoid|none",
     "sigmoid per channel; none: inputs are probabilities"},
    {"weight", SL_KEY_WEIGHT, SL_P(weight), 0, 0, 1e6, NULL, "per-channel weights [w0,...]"},
    {"pos_weight", SL_KEY_NUMBER, SL_P(pos_weight), 1, 0, 1e6, NULL, "weight of the positive term"},
    {"label_smoothing", SL_KEY_NUMBER, SL_P(label_smoothing), 0, 0, 1, NULL, "targets to g(1−ε)+ε/2"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"},
    SL_KEY_END};

static sl_status eval_bce(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    if (cx->act == SL_ACT_SOFTMAX)
        return sl_errf(msg, msglen, SL_EINVAL, "bce: needs activation=sigmoid or none (softmax is ce)");
    return eval_ce(t, cx, value, msg, msglen);
}

static sl_status bce_validate(const sl_params *p, char *msg, size_t msglen)
{
    if (p->activation == SL_ACT_SOFTMAX)
        return sl_errf(msg, msglen, SL_EINVAL, "bce: activation=softmax is not binary (use ce)");
    return SL_OK;
}

const sl_term_class sl_loss_bce = {
    {"bce", "distribution", "binary cross-entropy with logits, per channel (multi-label)",
     "PyTorch F.binary_cross_entropy_with_logits (weight, pos_weight)"},
    bce_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, bce_validate, eval_bce, NULL};
