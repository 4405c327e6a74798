/*
 * The fused path: a whole spec in two passes over the scores.
 *
 * The plain path (loss.c) materialises p, log p and dL/dp as (N, C, S)
 * buffers and lets each term walk them: simple, general, and about fifteen
 * passes over memory. But most specs people train with — dice+ce, tversky,
 * gdice+ce, ... — are sums of
 *   - region losses, functions of per-group sums of p·g, p, g, p², g²
 *     (term classes with region_finalize), and
 *   - cross-entropy, a per-voxel function whose logit gradient is
 *     (A·p − a) / D with per-voxel coefficients a and a global denominator D.
 * For those, everything a gradient needs is known after one reduction pass,
 * so:
 *   pass 1: per voxel, softmax/sigmoid from the scores (kept in registers),
 *           accumulate the region sums and the CE numerators/denominators;
 *   finalize: each term turns the sums into its value and the coefficients
 *           d_tp, d_sp, d_sp2 per group (the same code as the plain path);
 *   pass 2: per voxel, recompute p, form dL/dp from the coefficients, apply
 *           the activation's Jacobian, add the CE logit gradient, write.
 * Memory traffic: the scores read twice (and the labels), the gradient
 * written once — the roofline the benchmark compares against.
 *
 * Both paths give the same numbers up to float rounding (the exponential
 * and the log of Σ exp here are sl_exp_nonpos and sl_log_pos, ≤ 2 ulp); tests/unit/test_fused.c checks every
 * eligible loss against the plain path, and SL_FORCE_PLAIN (an environment
 * variable read by the CLI and the tests, not by the library) forces the
 * plain path for comparisons.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include "fastexp.h"
#include "fused.h"
#include "fused_dce.h"
#include "reduce.h"

extern const sl_term_class sl_loss_ce, sl_loss_wce, sl_loss_bce, sl_loss_focal;

#define VB 256 /* voxels per inner block: the class loops run over VB contiguous voxels */
#if defined(__GNUC__)
#define SL_INLINE __attribute__((always_inline)) inline
#else
#define SL_INLINE
#endif

static int is_ce(const sl_term *t) { return t->cls == &sl_loss_ce || t->cls == &sl_loss_wce || t->cls == &sl_loss_bce; }

int sl_fused_eligible(const sl_term *terms, int nterms, int64_t C, int act)
{
    if (act != SL_ACT_SOFTMAX && act != SL_ACT_SIGMOID) return 0;
    for (int i = 0; i < nterms; i++) {
        const sl_term *t = &terms[i];
        if (!t->cls->region_finalize && !is_ce(t)) return 0;
        if (t->prm.soft_label) return 0; /* needs Σ|p − g|, which the fused pass does not sum */
        if (t->prm.pool_classes) return 0; /* sl_region_eval pools the classes; the fused pass does not */
        /* one valid-voxel mask for the whole pass */
        double a = t->prm.ignore_index, b = terms[0].prm.ignore_index;
        if (isnan(a) != isnan(b) || (!isnan(a) && a != b)) return 0;
        /* ce under sigmoid is the binary form; bce under softmax is refused earlier */
        if (is_ce(t) && t->cls != &sl_loss_bce && act == SL_ACT_SIGMOID && C > 1 && t->prm.label_smoothing != 0) return 0;
    }
    return 1;
}

/* Per-CE-term constants. */
typedef struct {
    double *w;          /* class weights [C] */
    double eps, pw, wsum, scale;
    int binary;
    double value, D, k; /* results: value, denominator, gradient factor weight/D */
} ce_term;

/* Probabilities of one block: p[c*VB + i] for voxels s0..s0+len of sample n.
 * Under softmax, when lsum is not NULL, also mx[i] (the largest score) and
 * lsum[i] = log Σ_c exp(x_c − mx): the log-probabilities are x − mx − lsum.
 * Every loop is elementwise over i, so vector width does not change any
 * result. */
static SL_INLINE void block_probs(const float *xn, int64_t C, int64_t S, int64_t s0, int64_t len, int act, float *p,
                                  float *mx, float *lsum)
{
    if (act == SL_ACT_SIGMOID) {
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < len; i++) {
                float v = xn[c * S + s0 + i];
                float e = sl_exp_nonpos(-fabsf(v));
                float q = 1.0f / (1.0f + e);
                p[c * VB + i] = v >= 0 ? q : e * q;
            }
        return;
    }
    float sum[VB];
    sl_block_expsum(xn, C, S, s0, len, VB, mx, sum, p); /* softmax has C >= 2 */
    if (lsum)
        for (int64_t i = 0; i < len; i++) lsum[i] = sl_log_pos(sum[i]); /* sum >= 1: the largest term is e^0 */
    for (int64_t i = 0; i < len; i++) sum[i] = 1.0f / sum[i];
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < len; i++) p[c * VB + i] *= sum[i];
}

/* Target of class c for the block into g[i] (labels: 1 where the label is
 * the class, for a single sigmoid channel where it is 1). */
static SL_INLINE void block_target(const sl_ctx *cx, int64_t n, int64_t s0, int64_t len, int64_t c, float *g)
{
    const int64_t S = cx->S;
    if (cx->target->kind == SL_TARGET_SOFT) {
        memcpy(g, cx->target->soft + (n * cx->C + c) * S + s0, (size_t)len * sizeof(float));
        return;
    }
    const int32_t *lab = cx->target->labels + n * S + s0;
    const int32_t want = cx->C == 1 ? 1 : (int32_t)c;
    for (int64_t i = 0; i < len; i++) g[i] = lab[i] == want ? 1.0f : 0.0f;
}

/* The valid mask of the block into v[i]: 0 at the common ignore_index. */
static SL_INLINE void block_valid(const sl_ctx *cx, const sl_params *pr, int64_t n, int64_t s0, int64_t len, float *v)
{
    if (isnan(pr->ignore_index) || cx->target->kind != SL_TARGET_LABELS) {
        for (int64_t i = 0; i < len; i++) v[i] = 1.0f;
        return;
    }
    const int32_t *lab = cx->target->labels + n * cx->S + s0;
    const int32_t ig = (int32_t)pr->ignore_index;
    for (int64_t i = 0; i < len; i++) v[i] = lab[i] != ig ? 1.0f : 0.0f;
}

/* CE coefficient a_c of voxel i (labels: y = label; soft: g from the block). */
static SL_INLINE double ce_coeff(const ce_term *ct, int64_t C, int64_t c, int32_t y, double g)
{
    if (ct->binary) return 0; /* unused */
    if (y >= 0) return ct->eps / (double)C * ct->w[c] + (c == y ? (1 - ct->eps) * ct->w[y] : 0.0);
    return ct->w[c] * ((1 - ct->eps) * g + ct->eps / (double)C);
}

/* The common cross-entropy: softmax, hard labels, no smoothing. Its value is
 * Σ w_y·(−log p_y) / Σ w_y and its logit gradient k·w_y·(p − g). */
static int ce_common(const ce_term *ct, int soft) { return !ct->binary && !soft && ct->eps == 0; }

/* What both passes need, shared read-only by the threads. */
typedef struct {
    const sl_ctx *cx;
    const sl_params *pr0; /* the common ignore_index */
    const ce_term *ce;
    int nce;
    const double *K;      /* pass 2: weighted d_tp, d_sp, d_sp2 per (n, c) */
    const float *kc;      /* pass 2: Σ over the common CE terms of k·w_c, per class */
    int any_common;       /* some CE term is ce_common */
    float *grad;
} fused_job;

/* Sums over a block run in sixteen float lanes (lane = index mod 16, so at
 * most VB/16 = 16 terms per lane), then the lanes are added in order into
 * double accumulators: a fixed association that vectorises (a running
 * double sum cannot, without -ffast-math), gives the same bits at every
 * vector width, and keeps float rounding to 16-term sums. */
#define LANES 16

/* Pass 1 over voxels [a, b) of sample n: adds the region sums (6 per class)
 * and the CE numerator/denominator pairs to acc. p is C*VB floats of scratch. */
static SL_INLINE void pass1_body(const fused_job *j, int64_t n, int64_t a, int64_t b, float *p, double *acc)
{
    const sl_ctx *cx = j->cx;
    const ce_term *ce = j->ce;
    const int nce = j->nce, act = cx->act, soft = cx->target->kind == SL_TARGET_SOFT;
    const int64_t C = cx->C, S = cx->S;
    const float *xn = cx->x + n * C * S;
    const int any_common = j->any_common;
    float g[VB], v[VB], mx[VB], lsum[VB], xy[VB], wy[VB], dn[VB];
    for (int64_t s0 = a; s0 < b; s0 += VB) {
        const int64_t len = b - s0 < VB ? b - s0 : VB;
        const int need_lse = nce > 0 && act == SL_ACT_SOFTMAX;
        block_probs(xn, C, S, s0, len, act, p, mx, need_lse ? lsum : NULL);
        /* NaN or Inf anywhere in the block (the data are in cache now) */
        int bad = 0;
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < len; i++) bad |= !(fabsf(xn[c * S + s0 + i]) <= FLT_MAX);
        acc[6 * C + 2 * nce] += bad;
        block_valid(cx, j->pr0, n, s0, len, v);
        /* the valid count: the same for every class */
        float cnt[LANES] = {0};
        double cntb = 0;
        int64_t i = 0;
        for (; i + LANES <= len; i += LANES)
            for (int l = 0; l < LANES; l++) cnt[l] += v[i + l];
        for (int l = 0; i < len; i++, l++) cnt[l] += v[i];
        for (int l = 0; l < LANES; l++) cntb += cnt[l];
        if (any_common)
            for (i = 0; i < len; i++) xy[i] = 0;
        for (int64_t c = 0; c < C; c++) {
            block_target(cx, n, s0, len, c, g);
            const float *pc = p + c * VB, *xc = xn + c * S + s0;
            /* Hard labels with a 0/1 valid mask make g·v 0 or 1, so Σ(g·v)² = Σ g·v. */
            float tp[LANES] = {0}, sp[LANES] = {0}, sg[LANES] = {0}, sp2[LANES] = {0}, sg2[LANES] = {0};
            for (i = 0; i + LANES <= len; i += LANES)
                for (int l = 0; l < LANES; l++) {
                    float pv = pc[i + l] * v[i + l], gv = g[i + l] * v[i + l];
                    tp[l] += pv * gv;
                    sp[l] += pv;
                    sg[l] += gv;
                    sp2[l] += pv * pv;
                }
            for (int l = 0; i < len; i++, l++) {
                float pv = pc[i] * v[i], gv = g[i] * v[i];
                tp[l] += pv * gv, sp[l] += pv, sg[l] += gv, sp2[l] += pv * pv;
            }
            if (soft) {
                for (i = 0; i + LANES <= len; i += LANES)
                    for (int l = 0; l < LANES; l++) {
                        float gv = g[i + l] * v[i + l];
                        sg2[l] += gv * gv;
                    }
                for (int l = 0; i < len; i++, l++) sg2[l] += (g[i] * v[i]) * (g[i] * v[i]);
            }
            double *o = acc + 6 * c, o4 = 0, o2 = 0;
            for (int l = 0; l < LANES; l++) {
                o[0] += tp[l], o[1] += sp[l], o[3] += sp2[l];
                o2 += sg[l], o4 += sg2[l];
            }
            o[2] += o2;
            o[4] += soft ? o4 : o2;
            o[5] += cntb;
            /* the score of the true class, for −log p_y = lsum + mx − x_y */
            if (any_common)
                for (i = 0; i < len; i++) xy[i] += g[i] != 0 ? xc[i] : 0.0f; /* one class matches: exact */
        }
        /* cross-entropy numerators (Σ a·(−log p)) and denominators */
        for (int k = 0; k < nce; k++) {
            const ce_term *ct = &ce[k];
            double num = 0, den = 0;
            if (ce_common(ct, soft)) {
                const int32_t *lab = cx->target->labels + n * S + s0;
                /* w_y by selection over the classes (vectorises; a gather does not everywhere) */
                for (i = 0; i < len; i++) wy[i] = 0;
                for (int64_t c = 0; c < C; c++) {
                    const int32_t cc = (int32_t)c;
                    const float wc = (float)ct->w[c];
                    for (i = 0; i < len; i++) wy[i] += lab[i] == cc ? wc : 0.0f; /* one class matches: exact */
                }
                float nu[LANES] = {0}, de[LANES] = {0};
                for (i = 0; i + LANES <= len; i += LANES)
                    for (int l = 0; l < LANES; l++) {
                        const float w = wy[i + l] * v[i + l];
                        nu[l] += w * (lsum[i + l] + (mx[i + l] - xy[i + l]));
                        de[l] += w;
                    }
                for (int l = 0; i < len; i++, l++) {
                    const float w = wy[i] * v[i];
                    nu[l] += w * (lsum[i] + (mx[i] - xy[i]));
                    de[l] += w;
                }
                for (int l = 0; l < LANES; l++) num += (double)nu[l], den += (double)de[l];
            }
            if (ct->binary) {
                /* Σ over valid voxels and channels of w_c [pw·g'·softplus(−x) + (1 − g')·softplus(x)],
                 * g' = g(1 − ε) + ε/2: −log σ(x) = softplus(−x), −log(1 − σ(x)) = softplus(x) = softplus(−x) + x */
                const float e1 = (float)(1 - ct->eps), e2 = (float)(ct->eps / 2), pw = (float)ct->pw;
                float nu[LANES] = {0};
                for (int64_t c = 0; c < C; c++) {
                    block_target(cx, n, s0, len, c, g);
                    const float *xc = xn + c * S + s0, wc = (float)ct->w[c];
                    for (i = 0; i < len; i++) {
                        const float xv = xc[i], gg = g[i] * e1 + e2;
                        const float spn = (xv < 0.0f ? -xv : 0.0f) + sl_log1p_unit(sl_exp_nonpos(-fabsf(xv)));
                        wy[i] = v[i] * wc * (pw * gg * spn + (1.0f - gg) * (spn + xv));
                    }
                    for (i = 0; i + LANES <= len; i += LANES)
                        for (int l = 0; l < LANES; l++) nu[l] += wy[i + l];
                    for (int l = 0; i < len; i++, l++) nu[l] += wy[i];
                }
                for (int l = 0; l < LANES; l++) num += (double)nu[l];
                den = cntb * (double)C;
            }
            if (!ct->binary && !ce_common(ct, soft)) {
                /* label smoothing or soft targets: Σ_c a_c (−log p_c), a_c = w_c ((1 − ε) g_c + ε/C) (labels:
                 * g one-hot), over Σ w_y (labels) or the voxel count (soft) */
                const float e1 = (float)(1 - ct->eps), eC = (float)(ct->eps / (double)C);
                for (i = 0; i < len; i++) wy[i] = 0, dn[i] = 0;
                for (int64_t c = 0; c < C; c++) {
                    block_target(cx, n, s0, len, c, g);
                    const float *xc = xn + c * S + s0, wc = (float)ct->w[c];
                    for (i = 0; i < len; i++) {
                        wy[i] += wc * (e1 * g[i] + eC) * (lsum[i] + (mx[i] - xc[i]));
                        dn[i] += wc * g[i];
                    }
                }
                float nu[LANES] = {0}, de[LANES] = {0};
                for (i = 0; i + LANES <= len; i += LANES)
                    for (int l = 0; l < LANES; l++) {
                        nu[l] += v[i + l] * wy[i + l];
                        de[l] += v[i + l] * (soft ? 1.0f : dn[i + l]);
                    }
                for (int l = 0; i < len; i++, l++) {
                    nu[l] += v[i] * wy[i];
                    de[l] += v[i] * (soft ? 1.0f : dn[i]);
                }
                for (int l = 0; l < LANES; l++) num += (double)nu[l], den += (double)de[l];
            }
            acc[6 * C + 2 * k] += num;
            acc[6 * C + 2 * k + 1] += den;
        }
    }
}

/* Pass 2 over voxels [a, b) of sample n: writes the gradient. p is 3*C*VB
 * floats of scratch. */
static SL_INLINE void pass2_body(const fused_job *j, int64_t n, int64_t a, int64_t b, float *p)
{
    const sl_ctx *cx = j->cx;
    const ce_term *ce = j->ce;
    const double *K = j->K;
    const int nce = j->nce, act = cx->act, soft = cx->target->kind == SL_TARGET_SOFT;
    const int64_t N = cx->N, C = cx->C, S = cx->S;
    float v[VB], kw[VB], mx[VB];
    float *dp = p + C * VB, *g = p + 2 * C * VB;
    const float *xn = cx->x + n * C * S;
    float *gn = j->grad + n * C * S;
    const float *kc = j->kc;
    for (int64_t s0 = a; s0 < b; s0 += VB) {
        const int64_t len = b - s0 < VB ? b - s0 : VB;
        block_probs(xn, C, S, s0, len, act, p, mx, NULL);
        block_valid(cx, j->pr0, n, s0, len, v);
        /* dL/dp from the region coefficients; the targets are kept per class */
        for (int64_t c = 0; c < C; c++) {
            float *gc = g + c * VB;
            block_target(cx, n, s0, len, c, gc);
            const float ktp = (float)K[n * C + c], ksp = (float)K[N * C + n * C + c],
                        ksp2 = (float)(2 * K[2 * N * C + n * C + c]);
            const float *pc = p + c * VB;
            float *dc = dp + c * VB;
            for (int64_t i = 0; i < len; i++) dc[i] = v[i] * (ktp * gc[i] + ksp + ksp2 * pc[i]);
        }
        /* The common cross-entropy has the logit gradient k·w_y·(p − g): its
         * per-voxel factor kw is folded into the activation step so that the
         * gradient is stored once. w_y by selection over the classes. */
        for (int64_t i = 0; i < len; i++) kw[i] = 0;
        if (j->any_common) {
            const int32_t *lab = cx->target->labels + n * S + s0;
            for (int64_t c = 0; c < C; c++) {
                const int32_t cc = (int32_t)c;
                const float kcc = kc[c];
                for (int64_t i = 0; i < len; i++) kw[i] += lab[i] == cc ? kcc : 0.0f; /* one class matches: exact */
            }
            for (int64_t i = 0; i < len; i++) kw[i] *= v[i];
        }
        /* through the activation */
        if (act == SL_ACT_SOFTMAX) {
            float dot[VB];
            for (int64_t i = 0; i < len; i++) dot[i] = 0;
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < len; i++) dot[i] += p[c * VB + i] * dp[c * VB + i];
            for (int64_t c = 0; c < C; c++) {
                const float *pc = p + c * VB, *dc = dp + c * VB, *gc = g + c * VB;
                float *out = gn + c * S + s0;
                for (int64_t i = 0; i < len; i++) out[i] = pc[i] * (dc[i] - dot[i]) + kw[i] * (pc[i] - gc[i]);
            }
        } else {
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < len; i++)
                    gn[c * S + s0 + i] = dp[c * VB + i] * p[c * VB + i] * (1.0f - p[c * VB + i]);
        }
        /* the other cross-entropy forms */
        for (int k = 0; k < nce; k++) {
            const ce_term *ct = &ce[k];
            if (ct->k == 0 || ce_common(ct, soft)) continue;
            if (!ct->binary) {
                /* smoothing or soft targets: k (A p_c − a_c), a_c = w_c ((1 − ε) g_c + ε/C), A = Σ_c a_c */
                const float e1 = (float)(1 - ct->eps), eC = (float)(ct->eps / (double)C), kf = (float)ct->k;
                for (int64_t i = 0; i < len; i++) kw[i] = 0;
                for (int64_t c = 0; c < C; c++) {
                    const float *gcl = g + c * VB, wc = (float)ct->w[c];
                    for (int64_t i = 0; i < len; i++) kw[i] += wc * (e1 * gcl[i] + eC);
                }
                for (int64_t c = 0; c < C; c++) {
                    const float *gcl = g + c * VB, *pc = p + c * VB, wc = (float)ct->w[c];
                    float *gc = gn + c * S + s0;
                    for (int64_t i = 0; i < len; i++) gc[i] += v[i] * kf * (kw[i] * pc[i] - wc * (e1 * gcl[i] + eC));
                }
                continue;
            }
            for (int64_t c = 0; c < C; c++) {
                const float *gcl = g + c * VB;
                const float *pc = p + c * VB;
                float *gc = gn + c * S + s0;
                if (ct->binary) {
                    const double kw1 = ct->k * ct->w[c];
                    for (int64_t i = 0; i < len; i++) {
                        double gg = gcl[i] * (1 - ct->eps) + ct->eps / 2;
                        gc[i] += (float)(v[i] * kw1 * ((ct->pw * gg + 1 - gg) * pc[i] - ct->pw * gg));
                    }
                } else {
                    for (int64_t i = 0; i < len; i++) {
                        if (v[i] == 0) continue;
                        const int64_t s = s0 + i;
                        int32_t y = soft ? -1 : cx->target->labels[n * S + s];
                        double A = 0;
                        if (soft)
                            for (int64_t q = 0; q < C; q++) A += ce_coeff(ct, C, q, -1, sl_g(cx, n, q, s));
                        else
                            A = (1 - ct->eps) * ct->w[y] + ct->eps / (double)C * ct->wsum;
                        double ac = ce_coeff(ct, C, c, y, gcl[i]);
                        gc[i] += (float)(ct->k * (A * pc[i] - ac));
                    }
                }
            }
        }
    }
}

/*
 * The chunk kernels, compiled once per instruction set from the bodies above
 * (the helpers are always_inline, so each copy is vectorised for its own
 * target) and picked at run time: AVX-512 (F, BW, DQ, VL), AVX2, or the
 * baseline. No -ffast-math anywhere and every sum has a fixed association
 * (elementwise loops, eight explicit double lanes), so all three give the
 * same bits; tests/unit/test_fused_isa.c checks that.
 */
typedef void (*pass1_fn)(const fused_job *, int64_t, int64_t, int64_t, float *, double *);
typedef void (*pass2_fn)(const fused_job *, int64_t, int64_t, int64_t, float *);

static void pass1_base(const fused_job *j, int64_t n, int64_t a, int64_t b, float *p, double *acc)
{
    pass1_body(j, n, a, b, p, acc);
}
static void pass2_base(const fused_job *j, int64_t n, int64_t a, int64_t b, float *p) { pass2_body(j, n, a, b, p); }

#if SL_X86
SL_T_AVX2 static void pass1_avx2(const fused_job *j, int64_t n, int64_t a, int64_t b, float *p, double *acc)
{
    pass1_body(j, n, a, b, p, acc);
}
SL_T_AVX2 static void pass2_avx2(const fused_job *j, int64_t n, int64_t a, int64_t b, float *p)
{
    pass2_body(j, n, a, b, p);
}
SL_T_AVX512 static void pass1_avx512(const fused_job *j, int64_t n, int64_t a, int64_t b, float *p, double *acc)
{
    pass1_body(j, n, a, b, p, acc);
}
SL_T_AVX512 static void pass2_avx512(const fused_job *j, int64_t n, int64_t a, int64_t b, float *p)
{
    pass2_body(j, n, a, b, p);
}
#endif

/* The two passes over one (sample, chunk): fused_dce.c's kernels when they
 * apply, else the generic ones with their scratch rows. */
typedef struct pass_run {
    const fused_job *job;
    const sl_dce_job *dj;
    pass1_fn pass1;
    pass2_fn pass2;
    sl_dce_pass1_fn dce1;
    sl_dce_pass2_fn dce2;
    double *part;
    int64_t nch, NS;
} pass_run;

static void pass1_chunk(void *arg, int64_t n, int64_t ch, int64_t lo, int64_t hi, void *scratch, int thread)
{
    const pass_run *r = arg;
    double *acc = r->part + (n * r->nch + ch) * r->NS;
    (void)thread;
    if (r->dce1) r->dce1(r->dj, n, lo, hi, acc);
    else r->pass1(r->job, n, lo, hi, scratch, acc);
}

static void pass2_chunk(void *arg, int64_t n, int64_t ch, int64_t lo, int64_t hi, void *scratch, int thread)
{
    const pass_run *r = arg;
    (void)ch, (void)thread;
    if (r->dce2) r->dce2(r->dj, n, lo, hi);
    else r->pass2(r->job, n, lo, hi, scratch);
}

sl_status sl_fused_forward(sl_term *terms, int nterms, const sl_ctx *cx, double *value, float *grad, char *msg,
                           size_t msglen)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const int act = cx->act;
    const sl_params *pr0 = &terms[0].prm; /* ignore_index shared by all terms (eligibility) */
    sl_status st = SL_OK;
    double total = 0;

    int nce = 0;
    for (int i = 0; i < nterms; i++) nce += is_ce(&terms[i]);
    ce_term *ce = calloc((size_t)(nce ? nce : 1), sizeof *ce);
    double *wbuf = sl_calloc((nce ? nce : 1) * C, sizeof(double));
    /* per chunk: region sums per class, CE numerator/denominator per term, and the count
     * of blocks holding a non-finite score */
    const int64_t NS = 6 * C + 2 * nce + 1;
    double *part = sl_calloc(N * nch * NS, sizeof(double));
    double *K = sl_calloc(3 * N * C, sizeof(double)); /* combined d_tp, d_sp, d_sp2 per (n, c), weighted */
    float *kc = sl_calloc(C, sizeof(float));
    if (!ce || !wbuf || !part || !K || !kc) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
        goto done;
    }
    for (int i = 0, k = 0; i < nterms; i++) {
        if (!is_ce(&terms[i])) continue;
        ce_term *ct = &ce[k];
        ct->w = wbuf + k * C;
        st = sl_class_weights(cx, &terms[i].prm, ct->w, msg, msglen);
        if (st != SL_OK) goto done;
        ct->eps = terms[i].prm.label_smoothing;
        ct->pw = terms[i].cls == &sl_loss_bce ? terms[i].prm.pos_weight : 1.0;
        ct->binary = act == SL_ACT_SIGMOID;
        ct->scale = terms[i].weight;
        for (int64_t c = 0; c < C; c++) ct->wsum += ct->w[c];
        k++;
    }

    /* ---- pass 1: sums ---- */
    const int soft = cx->target->kind == SL_TARGET_SOFT;
    fused_job job = {.cx = cx, .pr0 = pr0, .ce = ce, .nce = nce, .K = K, .grad = grad};
    for (int k = 0; k < nce; k++) job.any_common |= ce_common(&ce[k], soft);
    pass1_fn pass1 = pass1_base;
    pass2_fn pass2 = pass2_base;
#if SL_X86
    switch (sl_isa()) {
    case SL_ISA_AVX512: pass1 = pass1_avx512, pass2 = pass2_avx512; break;
    case SL_ISA_AVX2: pass1 = pass1_avx2, pass2 = pass2_avx2; break;
    default: break;
    }
#endif
    /* softmax, int32 labels, C = 2..8, at most one CE of the common form: fused_dce.c's kernels */
    sl_dce_pass1_fn dce1 = NULL;
    sl_dce_pass2_fn dce2 = NULL;
    float dce_w[8];
    sl_dce_job dj = {.x = cx->x, .labels = cx->target->labels, .N = N, .C = C, .S = S, .nce = nce, .wc = dce_w,
                     .ignore = isnan(pr0->ignore_index) ? -1 : (int32_t)pr0->ignore_index, .K = K, .kc = kc,
                     .grad = grad};
    for (int i = 0; i < nterms; i++) dj.sp2 |= terms[i].prm.squared;
    if (act == SL_ACT_SOFTMAX && !soft && nce <= 1 && (nce == 0 || ce_common(&ce[0], soft)) &&
        sl_dce_kernels(C, sl_isa(), &dce1, &dce2))
        for (int64_t c = 0; c < C; c++) dce_w[c] = nce ? (float)ce[0].w[c] : 0.0f;
    pass_run run = {&job, &dj, pass1, pass2, dce1, dce2, part, nch, NS};
    if (sl_for_chunks(N, S, cx->threads, dce1 ? 0 : sizeof(float) * (size_t)(C * VB), pass1_chunk, &run) != SL_OK) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
        goto done;
    }

    /* The scores' finiteness, checked here rather than in a pass of its own (the caller
     * leaves it to pass 1): nothing has been written yet. */
    for (int64_t q = 0; q < N * nch; q++)
        if (part[q * NS + NS - 1] != 0) {
            st = sl_errf(msg, msglen, SL_ENONFINITE, "loss: the scores contain NaN or Inf");
            goto done;
        }

    /* ---- finalize: ordered combination, then each term's value and coefficients ---- */
    double *sums = sl_calloc(N * NS, sizeof(double)); /* per sample, chunk order */
    if (!sums) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
        goto done;
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++)
            for (int64_t j = 0; j < NS; j++) sums[n * NS + j] += part[(n * nch + ch) * NS + j];
    /* With a sum reducer (reduce.c): gsum = Σ_n sums over all ranks, share = n_local / n_global. */
    double *gsum = NULL, share = 1;
    if (cx->red) st = sl_reducer_sums(cx->red, terms, nterms, cx, sums, NS, K, &gsum, &share, msg, msglen);
    for (int i = 0, k = 0; i < nterms && st == SL_OK; i++) {
        sl_term *t = &terms[i];
        double val = 0;
        if (gsum && cx->red->pre[i]) { /* a per-sample term reduce.c has finalised */
            total += t->weight * t->last_value;
            continue;
        }
        if (is_ce(t)) {
            ce_term *ct = &ce[k++];
            double num = 0, den = 0;
            for (int64_t n = 0; n < N; n++) {
                num += sums[n * NS + 6 * C + 2 * (k - 1)];
                den += sums[n * NS + 6 * C + 2 * (k - 1) + 1];
            }
            if (gsum) num = gsum[6 * C + 2 * (k - 1)], den = gsum[6 * C + 2 * (k - 1) + 1];
            ct->D = den;
            val = den > 0 ? num / den : 0;
            ct->k = den > 0 ? ct->scale / den : 0;
        } else {
            sl_region r;
            int pooled = t->prm.batch;
            if (sl_region_alloc(&r, pooled ? C : N * C, pooled) != SL_OK) {
                st = sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
                break;
            }
            for (int64_t n = 0; n < (gsum && pooled ? 1 : N); n++)
                for (int64_t c = 0; c < C; c++) {
                    const double *o = gsum && pooled ? gsum + 6 * c : sums + n * NS + 6 * c;
                    int64_t gi = pooled ? c : n * C + c;
                    r.tp[gi] += o[0], r.sp[gi] += o[1], r.sg[gi] += o[2];
                    r.sp2[gi] += o[3], r.sg2[gi] += o[4], r.cnt[gi] += o[5];
                }
            sl_ctx tcx = *cx;
            tcx.scale = t->weight;
            st = t->cls->region_finalize(t, &tcx, &r, &val, msg, msglen);
            const double kw = t->weight * (pooled ? 1.0 : share); /* a mean over samples: this rank's share */
            if (!pooled) val *= share;
            if (st == SL_OK)
                for (int64_t n = 0; n < N; n++)
                    for (int64_t c = 0; c < C; c++) {
                        int64_t gi = pooled ? c : n * C + c;
                        K[0 * N * C + n * C + c] += kw * r.d_tp[gi];
                        K[1 * N * C + n * C + c] += kw * r.d_sp[gi];
                        K[2 * N * C + n * C + c] += kw * r.d_sp2[gi];
                    }
            sl_region_free(&r);
        }
        if (st != SL_OK) break;
        if (!isfinite(val)) {
            st = sl_errf(msg, msglen, SL_ENONFINITE, "%s: the loss is not finite (%g)", t->cls->info.name, val);
            break;
        }
        t->last_value = val;
        total += t->weight * val;
    }
    if (st == SL_OK && cx->red) st = sl_reducer_values(cx->red, terms, nterms, &total, msg, msglen);
    free(gsum);
    free(sums);
    if (st != SL_OK || !grad) goto done;

    /* ---- pass 2: gradient (every element written; no need to clear grad) ---- */
    for (int64_t c = 0; c < C; c++) {
        double kcs = 0;
        for (int k = 0; k < nce; k++)
            if (ce_common(&ce[k], soft)) kcs += ce[k].k * ce[k].w[c];
        kc[c] = (float)kcs;
    }
    job.kc = kc;
    if (sl_for_chunks(N, S, cx->threads, dce2 ? 0 : sizeof(float) * (size_t)(3 * C * VB), pass2_chunk, &run) != SL_OK)
        st = sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
done:
    free(ce);
    free(wbuf);
    free(part);
    free(K);
    free(kc);
    if (st == SL_OK) *value = total;
    return st;
}

/*
 * Focal loss, softmax with hard labels: one pass over the scores. With
 * integer γ (0..8) and 2..8 classes, sl_fused_focal runs fused_dce.c's
 * kernel of the same formulas (16 voxels in registers; 0.67x the time of
 * focal_body); focal_body takes the rest.
 *
 * With labels only the true class y carries a term, and the plain path's
 * gradient (focal.c) collapses to
 *     u = −α_y [q^γ − γ q^(γ−1) p_y log p_y],  q = 1 − p_y,
 *     ∂l/∂x_c = k · u · ([c = y] − p_c),        k = weight / V,
 * with V the valid voxel count, known from the labels alone. So one pass
 * computes p (in registers, as pass 1 above), the voxel's term and writes
 * the gradient: the scores read once, the gradient written once. A NaN or
 * Inf score makes the sum NaN on the way (the gradient is unspecified on
 * failure, loss.h), and only then does a scan tell it from a loss that
 * overflowed: no second read of the scores on the way. q is Σ_{c≠y} p_c, not 1 − p_y: no cancellation as p_y → 1,
 * where the plain path uses −expm1(log p_y) for the same reason.
 * γ: integers up to 8 by multiplication (vectorised), others by pow().
 *
 * The cross-entropy (ce, wce; softmax, labels; smoothing in ce_smooth_body
 * below; both only beyond 8 classes: fused_dce.c's kernel takes 2..8)
 * is the case γ = 0 with α_c its class weights and k = weight / D, D = Σ_valid w_y (the
 * class counts times the weights): value Σ w_y (−log p_y) / D, gradient
 * k·w_y·(p − onehot), ce.c's formulas, in one pass instead of two.
 */
typedef struct {
    const sl_ctx *cx;
    const sl_params *pr;
    const float *alpha; /* [C] */
    double gamma, k;    /* k = weight / V */
    int igamma;         /* γ when it is an integer in [0, 8], else −1 */
    float *grad;
    double eps;         /* ce's label smoothing (ce_smooth_body) */
} focal_job;

static SL_INLINE double focal_body(const focal_job *j, int64_t n, int64_t a, int64_t b, float *p)
{
    const sl_ctx *cx = j->cx;
    const int64_t C = cx->C, S = cx->S;
    const float *xn = cx->x + n * C * S;
    float *gn = j->grad ? j->grad + n * C * S : NULL;
    const float kf = (float)j->k, gam = (float)j->gamma;
    const int ig = j->igamma;
    float v[VB], mx[VB], lsum[VB], xy[VB], py[VB], q[VB], w[VB], qg[VB], qg1[VB], u[VB];
    double acc = 0;
    for (int64_t s0 = a; s0 < b; s0 += VB) {
        const int64_t len = b - s0 < VB ? b - s0 : VB;
        const int32_t *lab = cx->target->labels + n * S + s0;
        block_probs(xn, C, S, s0, len, SL_ACT_SOFTMAX, p, mx, lsum);
        block_valid(cx, j->pr, n, s0, len, v);
        for (int64_t i = 0; i < len; i++) xy[i] = py[i] = q[i] = w[i] = 0;
        for (int64_t c = 0; c < C; c++) { /* selection over the classes: one matches, exact */
            const int32_t cc = (int32_t)c;
            const float ac = j->alpha[c], *pc = p + c * VB, *xc = xn + c * S + s0;
            for (int64_t i = 0; i < len; i++) {
                const int m = lab[i] == cc;
                xy[i] += m ? xc[i] : 0.0f;
                py[i] += m ? pc[i] : 0.0f;
                q[i] += m ? 0.0f : pc[i];
                w[i] += m ? ac : 0.0f;
            }
        }
        for (int64_t i = 0; i < len; i++) {
            w[i] *= v[i];
            xy[i] = xy[i] - mx[i] - lsum[i]; /* log p_y */
            xy[i] = xy[i] < 0 ? xy[i] : 0.0f;
        }
        sl_block_powers(q, len, ig, j->gamma, qg, qg1);
        /* the voxel terms −w q^γ log p_y in sixteen float lanes, then in order into a double; with
         * x − x over the block's scores, +0 for finite ones and NaN otherwise: the sum turns NaN exactly
         * when a score is not finite, and finite ones leave it unchanged */
        for (int64_t c = 0; c < C; c++) {
            const float *xc = xn + c * S + s0;
            for (int64_t i = 0; i < len; i++) u[i] = c == 0 ? xc[i] - xc[i] : u[i] + (xc[i] - xc[i]);
        }
        float lane[LANES] = {0};
        int64_t i = 0;
        for (; i + LANES <= len; i += LANES)
            for (int l = 0; l < LANES; l++) lane[l] += u[i + l] - w[i + l] * qg[i + l] * xy[i + l];
        for (int l = 0; i < len; i++, l++) lane[l] += u[i] - w[i] * qg[i] * xy[i];
        for (int l = 0; l < LANES; l++) acc += (double)lane[l];
        if (!gn) continue;
        for (i = 0; i < len; i++) u[i] = -kf * w[i] * (qg[i] - (ig != 0 ? gam * qg1[i] * py[i] * xy[i] : 0.0f));
        for (int64_t c = 0; c < C; c++) {
            const int32_t cc = (int32_t)c;
            const float *pc = p + c * VB;
            float *out = gn + c * S + s0;
            for (i = 0; i < len; i++) out[i] = u[i] * ((lab[i] == cc ? 1.0f : 0.0f) - pc[i]);
        }
    }
    return acc;
}

/*
 * Soft targets (softmax): every class carries a term, so with
 *     u_c = −α_c g_c [q_c^γ − γ q_c^(γ−1) p_c log p_c],  q_c = 1 − p_c,
 * the logit gradient is k (u_j − p_j Σ_c u_c) (focal.c's formulas), still one
 * pass. q_c is the sum of the other classes' p, from prefix and suffix sums
 * (no cancellation as p_c → 1, O(C) per voxel). p is 2·C·VB floats of
 * scratch: the probabilities, then the suffix sums, overwritten by u.
 */
static SL_INLINE double focal_soft_body(const focal_job *j, int64_t n, int64_t a, int64_t b, float *p)
{
    const sl_ctx *cx = j->cx;
    const int64_t C = cx->C, S = cx->S;
    const float *xn = cx->x + n * C * S, *gsn = cx->target->soft + n * C * S;
    float *gn = j->grad ? j->grad + n * C * S : NULL, *sf = p + C * VB;
    const float kf = (float)j->k, gam = (float)j->gamma;
    const int ig = j->igamma;
    float mx[VB], lsum[VB], pre[VB], usum[VB], t[VB], q[VB], lp[VB], qg[VB], qg1[VB];
    double acc = 0;
    for (int64_t s0 = a; s0 < b; s0 += VB) {
        const int64_t len = b - s0 < VB ? b - s0 : VB;
        block_probs(xn, C, S, s0, len, SL_ACT_SOFTMAX, p, mx, lsum);
        for (int64_t i = 0; i < len; i++) sf[(C - 1) * VB + i] = 0, pre[i] = 0, usum[i] = 0;
        for (int64_t c = C - 2; c >= 0; c--)
            for (int64_t i = 0; i < len; i++) sf[c * VB + i] = sf[(c + 1) * VB + i] + p[(c + 1) * VB + i];
        float lane[LANES] = {0};
        for (int64_t c = 0; c < C; c++) {
            const float *xc = xn + c * S + s0, *g = gsn + c * S + s0, *pc = p + c * VB, ac = j->alpha[c];
            float *u = sf + c * VB; /* q_c = pre + suffix, then u_c in its place */
            for (int64_t i = 0; i < len; i++) {
                const float lpr = xc[i] - mx[i] - lsum[i];
                q[i] = pre[i] + u[i], lp[i] = lpr < 0 ? lpr : 0.0f;
                pre[i] += pc[i];
            }
            sl_block_powers(q, len, ig, j->gamma, qg, qg1);
            for (int64_t i = 0; i < len; i++) {
                const float w = ac * g[i];
                t[i] = w * qg[i] * lp[i] + (xc[i] - xc[i]); /* + 0, or NaN for a score that is not finite */
                u[i] = -w * (qg[i] - (ig != 0 ? gam * qg1[i] * pc[i] * lp[i] : 0.0f));
                usum[i] += u[i];
            }
            int64_t i = 0;
            for (; i + LANES <= len; i += LANES)
                for (int l = 0; l < LANES; l++) lane[l] -= t[i + l];
            for (int l = 0; i < len; i++, l++) lane[l] -= t[i];
        }
        for (int l = 0; l < LANES; l++) acc += (double)lane[l];
        if (!gn) continue;
        for (int64_t c = 0; c < C; c++) {
            const float *pc = p + c * VB, *u = sf + c * VB;
            float *out = gn + c * S + s0;
            for (int64_t i = 0; i < len; i++) out[i] = kf * (u[i] - pc[i] * usum[i]);
        }
    }
    return acc;
}

/*
 * ce/wce with label smoothing ε on a label map, one pass: per valid voxel
 * a_c = w_c ((1 − ε)[c = y] + ε/C), the term Σ_c a_c (−log p_c) and the
 * gradient k (A p_c − a_c), A = Σ_c a_c, k = weight / Σ w_y (ce.c's
 * formulas; alpha holds the class weights).
 */
static SL_INLINE double ce_smooth_body(const focal_job *j, int64_t n, int64_t a, int64_t b, float *p)
{
    const sl_ctx *cx = j->cx;
    const int64_t C = cx->C, S = cx->S;
    const float *xn = cx->x + n * C * S;
    float *gn = j->grad ? j->grad + n * C * S : NULL;
    const float kf = (float)j->k, e1 = (float)(1 - j->eps), eC = (float)(j->eps / (double)C);
    float v[VB], mx[VB], lsum[VB], A[VB], t[VB];
    double acc = 0;
    for (int64_t s0 = a; s0 < b; s0 += VB) {
        const int64_t len = b - s0 < VB ? b - s0 : VB;
        const int32_t *lab = cx->target->labels + n * S + s0;
        block_probs(xn, C, S, s0, len, SL_ACT_SOFTMAX, p, mx, lsum);
        block_valid(cx, j->pr, n, s0, len, v);
        for (int64_t i = 0; i < len; i++) A[i] = 0, t[i] = 0;
        for (int64_t c = 0; c < C; c++) {
            const int32_t cc = (int32_t)c;
            const float wc = j->alpha[c], *xc = xn + c * S + s0;
            for (int64_t i = 0; i < len; i++) {
                const float ac = wc * ((lab[i] == cc ? e1 : 0.0f) + eC);
                A[i] += ac;
                t[i] += ac * (lsum[i] + (mx[i] - xc[i])) + (xc[i] - xc[i]); /* + 0, or NaN for a bad score */
            }
        }
        float lane[LANES] = {0};
        int64_t i = 0;
        for (; i + LANES <= len; i += LANES)
            for (int l = 0; l < LANES; l++) lane[l] += v[i + l] * t[i + l];
        for (int l = 0; i < len; i++, l++) lane[l] += v[i] * t[i];
        for (int l = 0; l < LANES; l++) acc += (double)lane[l];
        if (!gn) continue;
        for (int64_t c = 0; c < C; c++) {
            const int32_t cc = (int32_t)c;
            const float wc = j->alpha[c], *pc = p + c * VB;
            float *out = gn + c * S + s0;
            for (i = 0; i < len; i++) out[i] = v[i] * kf * (A[i] * pc[i] - wc * ((lab[i] == cc ? e1 : 0.0f) + eC));
        }
    }
    return acc;
}

typedef double (*focal_fn)(const focal_job *, int64_t, int64_t, int64_t, float *);
/* Each one-pass body compiled for the baseline, AVX2 and AVX-512 (name_base, name_avx2, name_avx512). */
#define FOCAL_COPY(name, isa, ATTR)                                                                    \
    ATTR static double name##_##isa(const focal_job *j, int64_t n, int64_t a, int64_t b, float *p)    \
    {                                                                                                  \
        return name##_body(j, n, a, b, p);                                                             \
    }
#if SL_X86
#define FOCAL_COPIES(name)                                                                             \
    FOCAL_COPY(name, base, )                                                                           \
    FOCAL_COPY(name, avx2, SL_T_AVX2)                                                                  \
    FOCAL_COPY(name, avx512, SL_T_AVX512)
#else
#define FOCAL_COPIES(name) FOCAL_COPY(name, base, )
#endif
FOCAL_COPIES(focal)
FOCAL_COPIES(focal_soft)
FOCAL_COPIES(ce_smooth)

int sl_fused_focal_eligible(const sl_term *terms, int nterms, const sl_target *tg, int act, int64_t C)
{
    if (nterms != 1 || act != SL_ACT_SOFTMAX || tg->mask) return 0;
    const sl_params *pr = &terms[0].prm;
    /* ce and wce on labels: the one-pass kernel below (fused_dce.c's at γ = 0 on 2..8
     * classes, smoothed or not: log Σexp as logs of products, no logarithm per voxel;
     * 2x4x128^3: 6.2 ms in an A/B against 7.4 ms for fused_dce.c's two passes, which
     * write the probabilities and read them back). */
    if (terms[0].cls == &sl_loss_ce || terms[0].cls == &sl_loss_wce) return tg->kind == SL_TARGET_LABELS;
    return terms[0].cls == &sl_loss_focal && !pr->normalized && !(pr->reduced_threshold > 0);
}

/* One (sample, chunk) of the focal kernel: its partial sum into part. */
typedef struct focal_run {
    const focal_job *job;
    focal_fn fn;
    double *part;
    int64_t nch;
    const sl_dce_focal_job *job16;
    sl_dce_focal_fn fn16; /* fused_dce.c's kernel, when it takes the job */
} focal_run;

static void focal_chunk(void *arg, int64_t n, int64_t ch, int64_t lo, int64_t hi, void *scratch, int thread)
{
    const focal_run *r = arg;
    (void)thread;
    r->part[n * r->nch + ch] = r->fn16 ? r->fn16(r->job16, n, lo, hi) : r->fn(r->job, n, lo, hi, scratch);
}

sl_status sl_fused_focal(sl_term *t, const sl_ctx *cx, double *value, float *grad, char *msg, size_t msglen)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const sl_params *pr = &t->prm;
    const char *name = t->cls->info.name;
    const int ce = t->cls != &sl_loss_focal; /* ce, wce: γ = 0, α = the class weights, D = Σ w_y */
    double *alpha = sl_calloc(C, sizeof(double)), *freq = sl_calloc(C, sizeof(double));
    float *af = sl_calloc(C, sizeof(float));
    double *part = sl_calloc(N * nch, sizeof(double));
    sl_status st = alpha && freq && af && part ? SL_OK : sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", name);
    int has = 0;
    if (st == SL_OK && ce) st = sl_class_weights(cx, pr, alpha, msg, msglen);
    else if (st == SL_OK) st = sl_focal_alpha(pr, C, 1, alpha, &has, msg, msglen);
    if (st != SL_OK) goto done;
    for (int64_t c = 0; c < C; c++) af[c] = (float)alpha[c];
    double D = (double)(N * S); /* the denominator: valid voxels (focal), Σ_valid w_y (ce) */
    if (ce && pr->weight_mode != SL_WEIGHT_NONE) { /* the class counts give Σ_c w_c·count_c */
        double total = 0;
        if (sl_class_counts(cx, pr, freq, &total) != SL_OK) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", name);
            goto done;
        }
        D = 0;
        for (int64_t c = 0; c < C; c++) D += alpha[c] * freq[c];
    } else if (!isnan(pr->ignore_index)) { /* the valid voxels (Σ_c 1·count_c for the unweighted CE, exactly);
                                            * label maps: the framework refuses ignore_index with soft targets */
        const int32_t ig = (int32_t)pr->ignore_index, *lab = cx->target->labels;
        int64_t bad = 0;
#pragma omp parallel for num_threads(cx->threads) schedule(static) reduction(+ : bad)
        for (int64_t i = 0; i < N * S; i++) bad += lab[i] == ig;
        D -= (double)bad;
    }
    if (!(D > 0)) { /* everything ignored (or all weight on absent classes): 0 and no gradient, as the plain
                      * path, which checks the scores first */
        if (!sl_all_finite(cx->x, N * C * S, cx->threads)) {
            st = sl_errf(msg, msglen, SL_ENONFINITE, "loss: the scores contain NaN or Inf");
            goto done;
        }
        if (grad) memset(grad, 0, sizeof(float) * (size_t)(N * C * S));
        t->last_value = 0;
        *value = 0;
        goto done;
    }
    const double gamma = ce ? 0.0 : pr->gamma;
    focal_job job = {.cx = cx, .pr = pr, .alpha = af, .gamma = gamma, .k = t->weight / D,
                     .igamma = gamma == floor(gamma) && gamma <= 8 ? (int)gamma : -1, .grad = grad};
    const int soft = cx->target->kind == SL_TARGET_SOFT, smooth = ce && pr->label_smoothing > 0;
    job.eps = smooth ? pr->label_smoothing : 0.0;
    /* [body][instruction set]: labels, soft targets, ce with smoothing × baseline, AVX2, AVX-512 */
#if SL_X86
    static const focal_fn fns[3][3] = {{focal_base, focal_avx2, focal_avx512},
                                       {focal_soft_base, focal_soft_avx2, focal_soft_avx512},
                                       {ce_smooth_base, ce_smooth_avx2, ce_smooth_avx512}};
    const int isa = sl_isa() == SL_ISA_AVX512 ? 2 : sl_isa() == SL_ISA_AVX2 ? 1 : 0;
#else
    static const focal_fn fns[3][1] = {{focal_base}, {focal_soft_base}, {ce_smooth_base}};
    const int isa = 0;
#endif
    const focal_fn fn = fns[smooth ? 2 : soft ? 1 : 0][isa];
    /* hard labels, integer γ, 2..8 classes: fused_dce.c's kernel, 16 voxels in registers */
    sl_dce_focal_job fj = {.x = cx->x, .labels = cx->target->labels, .N = N, .C = C, .S = S,
                           .ignore = isnan(pr->ignore_index) ? -1 : (int32_t)pr->ignore_index, .alpha = af,
                           .k = (float)job.k, .gamma = (float)gamma, .igamma = job.igamma, .grad = grad,
                           .eps = (float)job.eps};
    focal_run run = {&job, fn, part, nch, &fj, NULL};
    if (!soft && job.igamma >= 0) run.fn16 = sl_dce_focal_kernel(C, sl_isa());
    if (sl_for_chunks(N, S, cx->threads, run.fn16 ? 0 : sizeof(float) * (size_t)(2 * C * VB), focal_chunk, &run) !=
        SL_OK) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    double val = sl_sum_ordered(part, N * nch) / D;
    if (!isfinite(val)) { /* NaN or Inf scores make it NaN (focal_body); the gradient is unspecified then (loss.h) */
        if (!sl_all_finite(cx->x, N * C * S, cx->threads))
            st = sl_errf(msg, msglen, SL_ENONFINITE, "loss: the scores contain NaN or Inf");
        else
            st = sl_errf(msg, msglen, SL_ENONFINITE, "%s: the loss is not finite (%g)", name, val);
        goto done;
    }
    t->last_value = val;
    *value = t->weight * val;
done:
    free(alpha);
    free(freq);
    free(af);
    free(part);
    return st;
}
