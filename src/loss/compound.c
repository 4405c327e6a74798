/*
 * Named compound losses: a per-voxel (focal-)weighted cross-entropy plus a
 * region term, in one term so that their parameters are tied as the papers
 * tie them.
 *
 * combo (Taghanaki et al. 2019, "Combo loss: Handling input and output
 * imbalance in multi-organ segmentation", CMIG 75):
 *     α · WCE + (1 − α) · dice loss
 *   binary (one sigmoid channel, or sigmoid channels each on its own):
 *     WCE = −mean over voxels (and channels) of β·g·log p + (1 − β)(1 − g)·log(1 − p)
 *   multi-class (softmax, or activation=none with C > 1): β on every
 *   foreground class, 1 − β on the background class 0,
 *     WCE = −mean over voxels of Σ_c w_c g_c log p_c,  w_0 = 1 − β, w_c = β,
 *   which for C = 2 is exactly the binary form on p_1 (p_0 = 1 − p_1). The
 *   mean divides by the number of voxels, not by Σ w (the paper's 1/N).
 *   The dice loss is `dice` with its region keys (per sample and class,
 *   include_background, batch, smoothing). The paper subtracts the Dice
 *   score; we add the Dice loss: the same gradient, and a loss ≥ 0.
 *   batch=true on one sigmoid channel gives the paper's single pooled Dice.
 *
 * unified_focal (Yeung et al. 2022, "Unified Focal loss: Generalising Dice
 * and cross entropy-based losses to handle class imbalanced medical image
 * segmentation", CMIG 95; reference code github.com/mlyg/unified-focal-loss):
 *     λ · L_focal + (1 − λ) · L_focal_tversky
 *   L_focal = mean over voxels of Σ_c  (1 − δ)(1 − p_0)^γ CE_0        background
 *                                    + δ (1 − p_c)^γ CE_c   symmetric  foreground
 *                                    + δ CE_c               asymmetric foreground
 *     with CE_c = −g_c log p_c;
 *   L_focal_tversky = mean over (sample, class) of
 *                 (1 − mTI_0)^(1−γ) symmetric, (1 − mTI_0) asymmetric  background
 *                 (1 − mTI_c)^(1−γ)                                     foreground
 *     with mTI_c = (tp + s_nr)/(tp + δ·fn + (1 − δ)·fp + s_dr).
 *   The reference code is binary (classes 0 and 1); for C > 1 every class
 *   c ≥ 1 is foreground (as the multi-class variants of the reference code
 *   do); one sigmoid channel (or each of several) is the binary problem
 *   (1 − p, p). The paper writes λ on the focal term; the reference code's
 *   `weight` multiplies the focal Tversky term instead — the same at the
 *   default λ = 0.5. The reference clips p to [1e-7, 1 − 1e-7] and smooths
 *   with 1e-7; we do neither clipping nor other smoothing than s_nr/s_dr.
 *
 * Gradients: the cross-entropy parts go straight to the logits where the
 * activation is softmax or sigmoid (no division by p), to dp for
 * activation=none; the region parts through region.c's coefficients.
 */
#include <stdlib.h>
#include "term.h"

/* ---- the per-voxel focal-weighted cross-entropy ----------------------------- */

/*
 * One class view (probability q, target h): a = −w·h·(1 − q)^e·log q,
 *   u  = q·da/dq = −w h (1−q)^e (1 − e·q·r)      (for the logit gradient)
 *   dq = da/dq   = −w h (1−q)^e (1/q − e·r)      (for activation=none)
 * with r = log q / (1 − q), whose limit at q = 1 is −1, so that neither
 * form has 0·∞ where p saturates. omq = 1 − q, computed accurately by the
 * caller (−expm1(log q) for softmax).
 */
static inline void fce(double w, double e, double h, double q, double logq, double omq, double *a, double *u,
                       double *dq)
{
    *a = *u = *dq = 0;
    if (h == 0 || w == 0) return;
    double f = e == 0 ? 1.0 : pow(omq > 0 ? omq : 0, e);
    double r = omq > 0 ? logq / omq : -1.0;
    *a = -w * h * f * logq;
    *u = -w * h * f * (1 - e * q * r);
    *dq = -w * h * f * (1 / q - e * r);
}

/*
 * Mean over valid voxels (× channels in the binary view) of the summed
 * class terms; adds scale·gradient to cx->dx (softmax/sigmoid) or cx->dp
 * (none). Multi-class: w[c], e[c] for c < C. Binary: w[0], e[0] for the
 * background view (1 − p), w[1], e[1] for the foreground p.
 */
static sl_status focal_ce(const sl_ctx *cx, const sl_params *pr, int binary, const double *w, const double *e,
                          double scale, double *value)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    double valid = 0; /* Σ voxel weights (the valid voxels without a mask) */
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) valid += sl_vw(cx, pr, n, s);
    const double count = valid * (binary ? (double)C : 1.0);
    *value = 0;
    if (count == 0) return SL_OK; /* every voxel ignored: 0, no gradient */
    double *part = sl_calloc(N * nch, sizeof(double));
    if (!part) return SL_ENOMEM;
    const double k0 = scale / count;
    const int logits = cx->act == SL_ACT_SOFTMAX || cx->act == SL_ACT_SIGMOID;
    float *dx = logits ? cx->dx : NULL, *dp = logits ? NULL : cx->dp;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            const int64_t a0 = ch * SL_CHUNK, b0 = a0 + SL_CHUNK < S ? a0 + SL_CHUNK : S;
            double acc = 0;
            for (int64_t s = a0; s < b0; s++) {
                const double vw = sl_vw(cx, pr, n, s), k = vw * k0;
                if (vw == 0) continue;
                double av = 0;
                if (binary) {
                    for (int64_t c = 0; c < C; c++) {
                        const int64_t i = (n * C + c) * S + s;
                        double p = cx->p[i], g = sl_g(cx, n, c, s);
                        double a1, u1, d1, a0v, u0, d0;
                        fce(w[1], e[1], g, p, cx->logp[i], 1 - p, &a1, &u1, &d1);
                        fce(w[0], e[0], 1 - g, 1 - p, cx->log1mp[i], p, &a0v, &u0, &d0);
                        av += a1 + a0v;
                        /* q1 = σ(x), q0 = 1 − σ(x): d/dx = u1·q0 − u0·q1 */
                        if (dx) dx[i] += (float)(k * (u1 * (1 - p) - u0 * p));
                        else if (dp) dp[i] += (float)(k * (d1 - d0));
                    }
                } else {
                    double usum = 0;
                    for (int64_t c = 0; c < C; c++) {
                        const int64_t i = (n * C + c) * S + s;
                        double q = cx->p[i], lq = cx->logp[i], g = sl_g(cx, n, c, s);
                        double omq = cx->act == SL_ACT_SOFTMAX ? -expm1(lq) : 1 - q;
                        double a, uc, d;
                        fce(w[c], e[c], g, q, lq, omq, &a, &uc, &d);
                        av += a;
                        usum += uc;
                        if (dp) dp[i] += (float)(k * d);
                    }
                    /* softmax: dx_j = u_j − p_j Σ_c u_c (u recomputed: no per-voxel buffer of C) */
                    if (dx)
                        for (int64_t c = 0; c < C; c++) {
                            const int64_t i = (n * C + c) * S + s;
                            double lq = cx->logp[i], a, uc, d;
                            fce(w[c], e[c], sl_g(cx, n, c, s), cx->p[i], lq, -expm1(lq), &a, &uc, &d);
                            dx[i] += (float)(k * (uc - cx->p[i] * usum));
                        }
                }
                acc += vw * av;
            }
            part[n * nch + ch] = acc;
        }
    double L = 0;
    for (int64_t i = 0; i < N * nch; i++) L += part[i];
    free(part);
    *value = L / count;
    return SL_OK;
}

/* Binary view: sigmoid channels, or one channel of probabilities. */
static int binary_view(const sl_ctx *cx) { return cx->act == SL_ACT_SIGMOID || (cx->act == SL_ACT_NONE && cx->C == 1); }

/* ---- combo ------------------------------------------------------------------- */

static sl_status eval_combo(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    const int64_t C = cx->C;
    const int binary = binary_view(cx);
    double *w = sl_calloc(2 * (C > 2 ? C : 2), sizeof(double));
    if (!w) return sl_errf(msg, msglen, SL_ENOMEM, "combo: out of memory");
    double *e = w + (C > 2 ? C : 2); /* zeros: plain cross-entropy */
    if (binary) {
        w[0] = 1 - pr->beta;
        w[1] = pr->beta;
    } else {
        w[0] = 1 - pr->beta;
        for (int64_t c = 1; c < C; c++) w[c] = pr->beta;
    }
    double ce = 0;
    sl_status st = focal_ce(cx, pr, binary, w, e, cx->scale * pr->alpha, &ce);
    free(w);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "combo: out of memory");

    /* the dice loss, as dice.c */
    sl_region r;
    if (sl_region_compute(cx, pr, 0, &r) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "combo: out of memory");
    double *lg = sl_calloc(2 * r.G, sizeof(double));
    if (!lg) {
        sl_region_free(&r);
        return sl_errf(msg, msglen, SL_ENOMEM, "combo: out of memory");
    }
    double *dl = lg + r.G, dice = 0;
    for (int64_t g = 0; g < r.G; g++) {
        double num = 2 * r.tp[g] + pr->smooth_nr, den = r.sp[g] + r.sg[g] + pr->smooth_dr;
        lg[g] = 1 - (den > 0 ? num / den : 1.0);
    }
    st = sl_region_mean(cx, pr, &r, lg, dl, &dice, msg, msglen);
    if (st == SL_OK && cx->dp) {
        for (int64_t g = 0; g < r.G; g++) {
            double num = 2 * r.tp[g] + pr->smooth_nr, den = r.sp[g] + r.sg[g] + pr->smooth_dr;
            if (!(den > 0) || dl[g] == 0) continue;
            r.d_tp[g] = -dl[g] * 2 / den;
            r.d_sp[g] = dl[g] * num / (den * den);
        }
        sl_ctx c2 = *cx;
        c2.scale = cx->scale * (1 - pr->alpha);
        sl_region_backprop(&c2, pr, &r);
    }
    free(lg);
    sl_region_free(&r);
    if (st == SL_OK) *value = pr->alpha * ce + (1 - pr->alpha) * dice;
    return st;
}

static const sl_key combo_keys[] = {
    SL_KEY_ACTIVATION,
    {"include_background", SL_KEY_BOOL, SL_P(include_background), 1, 0, 1, NULL,
     "false drops class 0 from the Dice average (C > 1)"},
    {"batch", SL_KEY_BOOL, SL_P(batch), 0, 0, 1, NULL, "pool the Dice sums over the batch"},
    {"smooth_nr", SL_KEY_NUMBER, SL_P(smooth_nr), 1e-5, 0, 1e6, NULL, "added to the Dice numerator"},
    {"smooth_dr", SL_KEY_NUMBER, SL_P(smooth_dr), 1e-5, 0, 1e6, NULL, "added to the Dice denominator"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"},
    {"alpha", SL_KEY_NUMBER, SL_P(alpha), 0.5, 0, 1, NULL, "weight of the weighted CE; 1 − alpha weighs the dice loss"},
    {"beta", SL_KEY_NUMBER, SL_P(beta), 0.5, 0, 1, NULL,
     "CE weight of the positives (foreground classes); 1 − beta weighs the background"},
    SL_KEY_END};

const sl_term_class sl_loss_combo = {
    {"combo", "compound", "α·weighted CE (β on the foreground) + (1 − α)·dice loss",
     "Taghanaki et al. 2019 (Combo loss, CMIG); the dice part is MONAI DiceLoss, the paper's −Dice becomes 1 − Dice"},
    combo_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, NULL, eval_combo, NULL, NULL};

/* ---- unified_focal -------------------------------------------------------------- */

enum { UF_SYMMETRIC = 0, UF_ASYMMETRIC = 1 };

/* One modified Tversky term (1 − mTI)^ε from (T, Fp, Fn); writes its value
 * and d/dT, d/dFp, d/dFn. */
static double uf_tversky(const sl_params *pr, double T, double Fp, double Fn, double eps, double *dT, double *dFp,
                         double *dFn)
{
    const double dl = pr->delta;
    double num = T + pr->smooth_nr, den = T + dl * Fn + (1 - dl) * Fp + pr->smooth_dr;
    *dT = *dFp = *dFn = 0;
    if (!(den > 0)) return 0; /* 0/0: perfect, mTI = 1 */
    double m = num / den, q = 1 - m;
    if (q < 0) q = 0; /* rounding (validate keeps smooth_nr <= smooth_dr) */
    double f = eps == 0 ? 1.0 : pow(q, eps);
    double df = eps == 0 ? 0.0 : eps == 1 ? -1.0 : q > 0 ? -eps * f / q : 0.0; /* d f / d mTI */
    *dT = df * (1 / den - num / (den * den));
    *dFn = df * (-num * dl / (den * den));
    *dFp = df * (-num * (1 - dl) / (den * den));
    return f;
}

static sl_status eval_unified(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    const int64_t C = cx->C;
    const int binary = binary_view(cx), sym = pr->mode == UF_SYMMETRIC;
    const double lam = pr->lambda, dl = pr->delta, gam = pr->gamma;

    /* focal part */
    double *w = sl_calloc(2 * (C > 2 ? C : 2), sizeof(double));
    if (!w) return sl_errf(msg, msglen, SL_ENOMEM, "unified_focal: out of memory");
    double *e = w + (C > 2 ? C : 2);
    int64_t nc = binary ? 2 : C;
    w[0] = 1 - dl;
    e[0] = gam;
    for (int64_t c = 1; c < nc; c++) {
        w[c] = dl;
        e[c] = sym ? gam : 0;
    }
    double focal = 0;
    sl_status st = focal_ce(cx, pr, binary, w, e, cx->scale * lam, &focal);
    free(w);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "unified_focal: out of memory");

    /* focal Tversky part, from the region sums */
    sl_region r;
    if (sl_region_compute(cx, pr, 0, &r) != SL_OK)
        return sl_errf(msg, msglen, SL_ENOMEM, "unified_focal: out of memory");
    const double e_bg = sym ? 1 - gam : 1, e_fg = 1 - gam;
    const int64_t nsamp = r.pooled ? 1 : cx->N;
    const double nterms = (double)(nsamp * C * (binary ? 2 : 1));
    double ftl = 0;
    for (int64_t g = 0; g < r.G; g++) {
        const int64_t c = g % C;
        double tp = r.tp[g], sp = r.sp[g], sg = r.sg[g], dT, dFp, dFn;
        if (binary) {
            /* foreground view p: T = tp, Fp = Σp − tp, Fn = Σg − tp */
            ftl += uf_tversky(pr, tp, sp - tp, sg - tp, e_fg, &dT, &dFp, &dFn);
            double dtp = dT - dFp - dFn, dsp = dFp;
            /* background view 1 − p: T = cnt − Σp − Σg + tp, Fp = Σg − tp, Fn = Σp − tp */
            ftl += uf_tversky(pr, r.cnt[g] - sp - sg + tp, sg - tp, sp - tp, e_bg, &dT, &dFp, &dFn);
            dtp += dT - dFp - dFn;
            dsp += -dT + dFn;
            r.d_tp[g] = dtp / nterms;
            r.d_sp[g] = dsp / nterms;
        } else {
            ftl += uf_tversky(pr, tp, sp - tp, sg - tp, c == 0 ? e_bg : e_fg, &dT, &dFp, &dFn);
            r.d_tp[g] = (dT - dFp - dFn) / nterms;
            r.d_sp[g] = dFp / nterms;
        }
    }
    ftl /= nterms;
    if (cx->dp) {
        sl_ctx c2 = *cx;
        c2.scale = cx->scale * (1 - lam);
        sl_region_backprop(&c2, pr, &r);
    }
    sl_region_free(&r);
    *value = lam * focal + (1 - lam) * ftl;
    return SL_OK;
}

static sl_status validate_unified(const sl_params *p, char *msg, size_t msglen)
{
    if (p->smooth_nr > p->smooth_dr)
        return sl_errf(msg, msglen, SL_EINVAL,
                       "unified_focal: smooth_nr=%g > smooth_dr=%g would make 1 − mTI negative", p->smooth_nr,
                       p->smooth_dr);
    return SL_OK;
}

static const sl_key unified_keys[] = {
    SL_KEY_ACTIVATION,
    {"batch", SL_KEY_BOOL, SL_P(batch), 0, 0, 1, NULL, "pool the Tversky sums over the batch"},
    {"smooth_nr", SL_KEY_NUMBER, SL_P(smooth_nr), 1e-5, 0, 1e6, NULL, "added to the mTI numerator"},
    {"smooth_dr", SL_KEY_NUMBER, SL_P(smooth_dr), 1e-5, 0, 1e6, NULL, "added to the mTI denominator"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"},
    {"variant", SL_KEY_ENUM, SL_P(mode), UF_ASYMMETRIC, 0, 0, "symmetric|asymmetric",
     "asymmetric: focal modulation only suppresses the background, only enhances the foreground"},
    {"lambda", SL_KEY_NUMBER, SL_P(lambda), 0.5, 0, 1, NULL, "weight of the focal term; 1 − lambda: focal Tversky"},
    {"delta", SL_KEY_NUMBER, SL_P(delta), 0.6, 0, 1, NULL,
     "foreground weight in the focal term, false-negative weight in mTI"},
    {"gamma", SL_KEY_NUMBER, SL_P(gamma), 0.5, 0, 1, NULL, "focal exponent γ; the Tversky exponent is 1 − γ"},
    SL_KEY_END};

const sl_term_class sl_loss_unified_focal = {
    {"unified_focal", "compound", "λ·modified focal + (1 − λ)·modified focal Tversky, symmetric or asymmetric",
     "Yeung et al. 2022 (Unified Focal loss, CMIG); matches the authors' reference code (mlyg/unified-focal-loss) "
     "without its clipping and 1e-7 smoothing"},
    unified_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, validate_unified, eval_unified, NULL, NULL};
