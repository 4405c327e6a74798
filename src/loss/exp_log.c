/*
 * exp_log — the exponential logarithmic loss of Wong, Moradi, Tang &
 * Syeda-Mahmood, "3D segmentation with exponential logarithmic loss for
 * highly unbalanced object sizes", MICCAI 2018:
 *
 *     L       = w_dice · L_dice + w_ce · L_ce
 *     L_dice  = mean over included groups of (−ln D_g)^γ_dice,
 *               D_g = (2·tp + s_nr) / (Σp + Σg + s_dr)
 *     L_ce    = mean over voxels of Σ_c w_c g_c (−ln p_c)^γ_ce,
 *               w_c = (Σ_k f_k / f_c)^½,  f_k = Σ g_k over the batch
 *
 * Paper defaults: w_dice = 0.8, w_ce = 0.2, γ_dice = γ_ce = 0.3, and the
 * pseudocount ε = 1 in numerator and denominator (smooth_nr = smooth_dr = 1).
 * Groups are (sample, class), (class) with batch=true, as every region loss;
 * a class absent from the batch has f_c = 0 and weight 0. The cross term
 * needs a distribution per voxel: softmax, or activation=none with C > 1.
 *
 * Gradients. Dice part through the region coefficients (region.c):
 * d/dD (−ln D)^γ = −γ (−ln D)^(γ−1) / D. Cross part straight to the logits
 * (softmax): with u_c = −log p_c, d/dx_j u_c^γ = γ u_c^(γ−1) (p_j − [j = c]).
 * For γ < 1 both powers u^(γ−1) are unbounded at u = 0 (D = 1, p_c = 1):
 * the cross term's factor (p_j − [j = c]) vanishes like u there, so its
 * limit u^γ → 0 is taken (u = 0 contributes nothing); a perfect Dice group (−ln D = 0) gets gradient 0, the subgradient
 * of a minimum.
 */
#include <stdlib.h>
#include "term.h"

/* γ·u^(γ−1)·z where z vanishes like u at u = 0 (the limit is 0 for γ > 0). */
static inline double powm1(double u, double gamma, double z)
{
    return u > 0 ? gamma * pow(u, gamma - 1.0) * z : 0.0;
}

static sl_status exp_log_ce(const sl_ctx *cx, const sl_params *pr, double scale, double *value, char *msg,
                            size_t msglen)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const double gamma = pr->gamma_ce;
    double *w = sl_calloc(C + N * nch, sizeof(double));
    if (!w) return sl_errf(msg, msglen, SL_ENOMEM, "exp_log: out of memory");
    double *part = w + C, V = 0, F = 0;
    /* label frequencies f_c and Σ voxel weights over the batch */
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) {
            double vw = sl_vw(cx, pr, n, s);
            if (vw == 0) continue;
            V += vw;
            for (int64_t c = 0; c < C; c++) w[c] += vw * sl_g(cx, n, c, s);
        }
    for (int64_t c = 0; c < C; c++) F += w[c];
    for (int64_t c = 0; c < C; c++) w[c] = w[c] > 0 ? sqrt(F / w[c]) : 0.0;
    *value = 0;
    if (!(V > 0)) {
        free(w);
        return SL_OK;
    }
    const double k0 = scale / V;
    const int none = cx->act == SL_ACT_NONE;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            const float *lp = cx->logp + n * C * S, *p = cx->p + n * C * S;
            float *dx = cx->dx ? cx->dx + n * C * S : NULL, *dp = cx->dp ? cx->dp + n * C * S : NULL;
            double acc = 0;
            for (int64_t s = a; s < b; s++) {
                const double vw = sl_vw(cx, pr, n, s), k = vw * k0;
                if (vw == 0) continue;
                double U = 0, l = 0; /* U = Σ_c a_c γ u_c^(γ−1), for the softmax gradient */
                for (int64_t c = 0; c < C; c++) {
                    double ac = w[c] * sl_g(cx, n, c, s);
                    if (ac == 0) continue;
                    double u = -(double)lp[c * S + s];
                    if (u < 0) u = 0; /* log p rounds above 0 only by float error */
                    l += ac * pow(u, gamma);
                    if (none) {
                        if (dp) dp[c * S + s] += (float)(-k * powm1(u, gamma, ac) / p[c * S + s]);
                    } else {
                        U += powm1(u, gamma, ac);
                    }
                }
                /* dx_j = Σ_c b_c (p_j − [j = c]) = p_j·U − b_j, b_c = a_c γ u_c^(γ−1) */
                if (!none && dx && U != 0)
                    for (int64_t j = 0; j < C; j++) {
                        double aj = w[j] * sl_g(cx, n, j, s), uj = -(double)lp[j * S + s];
                        double bj = aj != 0 ? powm1(uj > 0 ? uj : 0, gamma, aj) : 0.0;
                        dx[j * S + s] += (float)(k * (U * p[j * S + s] - bj));
                    }
                acc += vw * l;
            }
            part[n * nch + ch] = acc;
        }
    *value = sl_sum_ordered(part, N * nch) / V;
    free(w);
    return SL_OK;
}

static sl_status eval_exp_log(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    if (cx->C < 2 || cx->act == SL_ACT_SIGMOID)
        return sl_errf(msg, msglen, SL_EINVAL,
                       "exp_log: needs a distribution per voxel (softmax with C > 1, or activation=none with C > 1)");
    double ce = 0;
    sl_status st = exp_log_ce(cx, pr, cx->scale * pr->w_ce, &ce, msg, msglen);
    if (st != SL_OK) return st;

    sl_region r;
    if (sl_region_compute(cx, pr, 0, &r) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "exp_log: out of memory");
    double *lg = sl_calloc(2 * r.G, sizeof(double));
    if (!lg) {
        sl_region_free(&r);
        return sl_errf(msg, msglen, SL_ENOMEM, "exp_log: out of memory");
    }
    double *dl = lg + r.G, dice = 0;
    const double gamma = pr->gamma_dice;
    for (int64_t g = 0; g < r.G; g++) {
        double D = (2 * r.tp[g] + pr->smooth_nr) / (r.sp[g] + r.sg[g] + pr->smooth_dr);
        double u = D < 1 ? -log(D) : 0.0;
        lg[g] = pow(u, gamma);
    }
    /* the mean over included groups, unweighted (the paper's E_i) */
    sl_params plain = *pr;
    plain.weight_mode = SL_WEIGHT_NONE;
    st = sl_region_mean(cx, &plain, &r, lg, dl, &dice, msg, msglen);
    if (st == SL_OK && cx->dp) {
        for (int64_t g = 0; g < r.G; g++) {
            double num = 2 * r.tp[g] + pr->smooth_nr, den = r.sp[g] + r.sg[g] + pr->smooth_dr;
            double D = num / den, u = D < 1 ? -log(D) : 0.0;
            if (dl[g] == 0 || u == 0) continue;
            double dD = -pr->w_dice * dl[g] * gamma * pow(u, gamma - 1.0) / D; /* d(w·mean)/dD */
            r.d_tp[g] = dD * 2 / den;
            r.d_sp[g] = -dD * num / (den * den);
        }
        sl_region_backprop(cx, pr, &r);
    }
    free(lg);
    sl_region_free(&r);
    if (st == SL_OK) *value = pr->w_dice * dice + pr->w_ce * ce;
    return st;
}

static sl_status validate_exp_log(const sl_params *p, char *msg, size_t msglen)
{
    if (!(p->smooth_dr > 0))
        return sl_errf(msg, msglen, SL_EINVAL, "exp_log: smooth_dr must be > 0 (an empty group would give log 0/0)");
    if (p->smooth_nr > p->smooth_dr)
        return sl_errf(msg, msglen, SL_EINVAL, "exp_log: smooth_nr=%g > smooth_dr=%g would make Dice > 1", p->smooth_nr,
                       p->smooth_dr);
    return SL_OK;
}

static const sl_key exp_log_keys[] = {
    SL_KEY_ACTIVATION,
    {"include_background", SL_KEY_BOOL, SL_P(include_background), 1, 0, 1, NULL,
     "false drops class 0 from the Dice mean (C > 1)"},
    {"batch", SL_KEY_BOOL, SL_P(batch), 0, 0, 1, NULL, "pool the Dice sums over the batch"},
    {"smooth_nr", SL_KEY_NUMBER, SL_P(smooth_nr), 1, 0, 1e6, NULL, "ε added to the Dice numerator (paper: 1)"},
    {"smooth_dr", SL_KEY_NUMBER, SL_P(smooth_dr), 1, 0, 1e6, NULL, "ε added to the Dice denominator (paper: 1)"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"},
    {"gamma_dice", SL_KEY_NUMBER, SL_P(gamma_dice), 0.3, 0, 10, NULL, "exponent of −ln Dice"},
    {"gamma_ce", SL_KEY_NUMBER, SL_P(gamma_ce), 0.3, 0, 10, NULL, "exponent of −ln p"},
    {"w_dice", SL_KEY_NUMBER, SL_P(w_dice), 0.8, 0, 1e3, NULL, "weight of the Dice term"},
    {"w_ce", SL_KEY_NUMBER, SL_P(w_ce), 0.2, 0, 1e3, NULL, "weight of the cross-entropy term"},
    SL_KEY_END};

const sl_term_class sl_loss_exp_log = {
    {"exp_log", "compound", "w_dice·mean (−ln Dice)^γd + w_ce·mean w_l (−ln p_l)^γc, w_l = (Σf/f_l)^½",
     "Wong et al. 2018 (MICCAI), exponential logarithmic loss, the paper's defaults"},
    exp_log_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, validate_exp_log, eval_exp_log, NULL, NULL};
