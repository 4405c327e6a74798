/*
 * Focal loss (Lin, Goyal, Girshick, He, Dollár, "Focal Loss for Dense Object
 * Detection", ICCV 2017).
 *
 * Softmax (C > 1; activation=none on C > 1 channels takes probabilities):
 *     l = −(1/V) Σ_i Σ_c α_c (1 − p_ic)^γ g_ic log p_ic
 * V = number of valid voxels (label map: not ignore_index; soft target: N·S).
 * With γ = 0 and no α this is `ce` exactly (same denominator). α: a list of
 * C per-class weights, or a scalar α meaning [1 − α, α, ..., α] (background
 * 1 − α, as MONAI's FocalLoss(use_softmax=True) does). MONAI reduces with a
 * mean over (N, C, voxels), so its softmax focal loss is ours / C.
 *
 * Sigmoid (C = 1, or activation=sigmoid; activation=none on one channel),
 * matching torchvision.ops.sigmoid_focal_loss(reduction="mean") per channel:
 *     ce = −t log p − (1 − t) log(1 − p),  m = 1 − p_t = p(1 − t) + (1 − p)t
 *     l  = mean over (n, c, valid s) of α_t m^γ ce,  α_t = α t + (1 − α)(1 − t)
 * α: none (α_t = 1), a scalar (weight of the positives), or one per channel.
 * Soft targets t ∈ [0, 1] enter these formulas as they are (torchvision's).
 *
 * Gradients. Softmax: with u_c = p_c ∂l/∂p_c
 *     u_c = −α_c g_c [(1 − p_c)^γ − γ (1 − p_c)^(γ−1) p_c log p_c],
 *     ∂l/∂x_j = u_j − p_j Σ_c u_c,
 * written directly to dx, with 1 − p_c = −expm1(log p_c) from the stable
 * log-softmax, so nothing divides by p and (1 − p)^(γ−1) is exact near p = 1.
 * Sigmoid: ∂l/∂x = α_t [γ m^(γ−1) (1 − 2t) p(1 − p) ce + m^γ (p − t)], with
 * p = exp(log p) and 1 − p = exp(log(1 − p)) from the stable log-sigmoids.
 * activation=none writes ∂l/∂p through the framework.
 * A voxel mask m weights each voxel's term and replaces the voxel count V
 * by Σ m (Σ m_i l_i / Σ m_i).
 * Limits at m = 0 (or 1 − p = 0): m^(γ−1)·(factor vanishing like m) → 0 for
 * γ > 0; the code takes that limit instead of computing 0·∞.
 */
#include <stdlib.h>
#include "fused.h"
#include "term.h"

typedef struct {
    double loss;
    int64_t count;
} focal_part;

/* α per class/channel (1 when not given). Returns 0, or SL_ESHAPE on a bad length. */
sl_status sl_focal_alpha(const sl_params *pr, int64_t C, int softmax, double *a, int *has, char *msg, size_t msglen)
{
    const sl_list *al = &pr->alpha_list;
    *has = al->n > 0;
    for (int64_t c = 0; c < C; c++) a[c] = 1.0;
    if (!*has) return SL_OK;
    if (al->n == 1) {
        for (int64_t c = 0; c < C; c++) a[c] = softmax ? (c == 0 ? 1.0 - al->v[0] : al->v[0]) : al->v[0];
        return SL_OK;
    }
    if (al->n != C)
        return sl_errf(msg, msglen, SL_ESHAPE, "focal: alpha has %d values but the scores have C = %lld channels",
                       al->n, (long long)C);
    for (int64_t c = 0; c < C; c++) a[c] = al->v[c];
    return SL_OK;
}

/* q^(γ−1)·z where z vanishes like q at q = 0 (the limit is 0 for γ > 0). */
static inline double pow_m1(double q, double gamma, double z)
{
    return q > 0 ? pow(q, gamma - 1.0) * z : 0.0;
}

static sl_status focal_softmax(const sl_term *t, const sl_ctx *cx, const double *alpha, double *value)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const double gamma = pr->gamma;
    const int none = cx->act == SL_ACT_NONE;
    focal_part *part = sl_calloc(N * nch, sizeof(focal_part));
    double *ubuf = sl_calloc((int64_t)cx->threads * C, sizeof(double));
    if (!part || !ubuf) {
        free(part);
        free(ubuf);
        return SL_ENOMEM;
    }
    double V = 0; /* Σ voxel weights */
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) V += sl_vw(cx, pr, n, s);
    if (V == 0) { /* everything ignored: 0 and no gradient, as ce */
        free(part);
        free(ubuf);
        *value = 0;
        return SL_OK;
    }
    const double k0 = cx->scale / V;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
#ifdef _OPENMP
            double *u = ubuf + (int64_t)omp_get_thread_num() * C;
#else
            double *u = ubuf;
#endif
            const float *lp = cx->logp + n * C * S, *p = cx->p + n * C * S;
            float *dx = cx->dx ? cx->dx + n * C * S : NULL, *dp = cx->dp ? cx->dp + n * C * S : NULL;
            double acc = 0;
            for (int64_t s = a; s < b; s++) {
                const double vw = sl_vw(cx, pr, n, s), k = vw * k0;
                if (vw == 0) continue;
                double U = 0;
                for (int64_t c = 0; c < C; c++) {
                    double w = alpha[c] * sl_g(cx, n, c, s);
                    u[c] = 0;
                    if (w == 0) continue;
                    double l = lp[c * S + s];
                    double pc = none ? (double)p[c * S + s] : exp(l);
                    double q = none ? 1.0 - (double)p[c * S + s] : -expm1(l);
                    double qg = pow(q, gamma);
                    acc -= vw * w * qg * l;
                    if (none) {
                        if (dp) {
                            double d = qg / pc - (gamma > 0 ? gamma * pow_m1(q, gamma, l) : 0.0);
                            dp[c * S + s] += (float)(-k * w * d);
                        }
                    } else {
                        u[c] = -w * (qg - (gamma > 0 ? gamma * pow_m1(q, gamma, pc * l) : 0.0));
                        U += u[c];
                    }
                }
                if (!none && dx)
                    for (int64_t c = 0; c < C; c++) dx[c * S + s] += (float)(k * (u[c] - (double)p[c * S + s] * U));
            }
            part[n * nch + ch].loss = acc;
        }
    double L = 0;
    for (int64_t i = 0; i < N * nch; i++) L += part[i].loss;
    free(part);
    free(ubuf);
    *value = L / V;
    return SL_OK;
}

static sl_status focal_sigmoid(const sl_term *t, const sl_ctx *cx, const double *alpha, int has_alpha, double *value)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const double gamma = pr->gamma;
    const int none = cx->act == SL_ACT_NONE;
    focal_part *part = sl_calloc(N * nch, sizeof(focal_part));
    if (!part) return SL_ENOMEM;
    double V = 0; /* Σ voxel weights */
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) V += sl_vw(cx, pr, n, s);
    const double count = V * (double)C;
    if (count == 0) {
        free(part);
        *value = 0;
        return SL_OK;
    }
    const double k0 = cx->scale / count;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            double acc = 0;
            for (int64_t c = 0; c < C; c++) {
                const int64_t off = (n * C + c) * S;
                for (int64_t s = a; s < b; s++) {
                    const double vw = sl_vw(cx, pr, n, s), k = vw * k0;
                    if (vw == 0) continue;
                    double tg = sl_g(cx, n, c, s);
                    double lp = cx->logp[off + s], l1 = cx->log1mp[off + s];
                    double p = none ? (double)cx->p[off + s] : exp(lp);
                    double q = none ? 1.0 - (double)cx->p[off + s] : exp(l1); /* 1 − p */
                    double ce = (tg > 0 ? -tg * lp : 0.0) + (tg < 1 ? -(1 - tg) * l1 : 0.0);
                    double m = p * (1 - tg) + q * tg;
                    double at = has_alpha ? alpha[c] * tg + (1 - alpha[c]) * (1 - tg) : 1.0;
                    double mg = pow(m, gamma);
                    acc += vw * at * mg * ce;
                    if (none) {
                        if (cx->dp) {
                            double dce = (tg > 0 ? -tg / p : 0.0) + (tg < 1 ? (1 - tg) / q : 0.0);
                            double d = mg * dce + (gamma > 0 ? gamma * pow_m1(m, gamma, (1 - 2 * tg) * ce) : 0.0);
                            cx->dp[off + s] += (float)(k * at * d);
                        }
                    } else if (cx->dx) {
                        /* ce vanishes with m for hard targets, so m^(γ−1)·ce has the limit 0 */
                        double d = mg * (p - tg) + (gamma > 0 ? gamma * pow_m1(m, gamma, (1 - 2 * tg) * p * q * ce) : 0.0);
                        cx->dx[off + s] += (float)(k * at * d);
                    }
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

/*
 * segmentation_models_pytorch's focal_loss_with_logits (reduction="mean")
 * with normalized=true and/or reduced_threshold=r > 0, per element
 * (n, c, s) of the sigmoid channels:
 *     ce = BCE(p, t),  pt = exp(−ce),
 *     f  = (1 − pt)^γ;  reduced: f = ((1 − pt)/r)^γ where pt ≥ r, 1 where pt < r
 *     e  = α_t · f · ce
 *     loss = Σ e / n,  normalized: Σ e / (max(Σ f, 1e-6) · n)
 * n the number of elements (Σ of the voxel weights × C with a mask or
 * ignore_index). For hard targets 1 − pt = 1 − p_t is the m of the plain
 * form; for soft targets smp's 1 − exp(−ce) differs from it, and this path
 * follows smp. As in smp, Σ f is part of the function (its gradient flows);
 * the reduced f is constant where pt < r.
 */
typedef struct {
    double e, f;
} smp_part;

static inline void smp_elem(double t, double lp, double l1, double gamma, double thr, double *ce, double *f, double *df)
{
    *ce = (t > 0 ? -t * lp : 0.0) + (t < 1 ? -(1 - t) * l1 : 0.0);
    double pt = exp(-*ce), q = -expm1(-*ce); /* q = 1 − pt, exact for small ce */
    if (thr > 0) {
        if (pt < thr) {
            *f = 1, *df = 0;
            return;
        }
        q /= thr;
        *f = pow(q, gamma);
        *df = q > 0 ? gamma * pow(q, gamma - 1) * pt / thr : (gamma == 1 ? pt / thr : 0.0); /* df/dce */
        return;
    }
    *f = pow(q, gamma);
    *df = q > 0 ? gamma * pow(q, gamma - 1) * pt : (gamma == 1 ? pt : 0.0);
}

static sl_status focal_smp(const sl_term *t, const sl_ctx *cx, const double *alpha, int has_alpha, double *value)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const double gamma = pr->gamma, thr = pr->reduced_threshold;
    const int none = cx->act == SL_ACT_NONE;
    smp_part *part = sl_calloc(N * nch, sizeof(smp_part));
    if (!part) return SL_ENOMEM;
    double V = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) V += sl_vw(cx, pr, n, s);
    const double count = V * (double)C;
    if (count == 0) {
        free(part);
        *value = 0;
        return SL_OK;
    }
    /* pass 1: Σ m·e and Σ m·f */
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            double se = 0, sf = 0;
            for (int64_t c = 0; c < C; c++) {
                const int64_t off = (n * C + c) * S;
                for (int64_t s = a; s < b; s++) {
                    const double vw = sl_vw(cx, pr, n, s);
                    if (vw == 0) continue;
                    double tg = sl_g(cx, n, c, s), ce, f, df;
                    smp_elem(tg, cx->logp[off + s], cx->log1mp[off + s], gamma, thr, &ce, &f, &df);
                    double at = has_alpha ? alpha[c] * tg + (1 - alpha[c]) * (1 - tg) : 1.0;
                    se += vw * at * f * ce;
                    sf += vw * f;
                }
            }
            part[n * nch + ch].e = se;
            part[n * nch + ch].f = sf;
        }
    double E = 0, F = 0;
    for (int64_t i = 0; i < N * nch; i++) E += part[i].e, F += part[i].f;
    free(part);
    const int norm = pr->normalized;
    const double Fc = norm ? (F > 1e-6 ? F : 1e-6) : 1.0;
    *value = E / (Fc * count);
    float *dx = none ? NULL : cx->dx, *dp = none ? cx->dp : NULL;
    if (!dx && !dp) return SL_OK;
    /* pass 2: d/dce_i = m·[α_t(f'·ce + f)/Fc − [norm, F > 1e-6]·E·f'/Fc²] / count */
    const double k = cx->scale / count, kf = norm && F > 1e-6 ? E / (Fc * Fc) : 0.0;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            for (int64_t c = 0; c < C; c++) {
                const int64_t off = (n * C + c) * S;
                for (int64_t s = a; s < b; s++) {
                    const double vw = sl_vw(cx, pr, n, s);
                    if (vw == 0) continue;
                    double tg = sl_g(cx, n, c, s), ce, f, df;
                    smp_elem(tg, cx->logp[off + s], cx->log1mp[off + s], gamma, thr, &ce, &f, &df);
                    double at = has_alpha ? alpha[c] * tg + (1 - alpha[c]) * (1 - tg) : 1.0;
                    double dce = vw * k * (at * (df * ce + f) / Fc - kf * df);
                    double p = cx->p[off + s];
                    if (dx) dx[off + s] += (float)(dce * (p - tg)); /* dce/dx = p − t */
                    else dp[off + s] += (float)(dce * ((tg > 0 ? -tg / p : 0.0) + (tg < 1 ? (1 - tg) / (1 - p) : 0.0)));
                }
            }
        }
    return SL_OK;
}

static sl_status eval_focal(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const int softmax = cx->act == SL_ACT_SOFTMAX || (cx->act == SL_ACT_NONE && cx->C > 1);
    double *alpha = sl_calloc(cx->C, sizeof(double));
    if (!alpha) return sl_errf(msg, msglen, SL_ENOMEM, "focal: out of memory");
    int has = 0;
    sl_status st = sl_focal_alpha(&t->prm, cx->C, softmax, alpha, &has, msg, msglen);
    const int smp = t->prm.normalized || t->prm.reduced_threshold > 0;
    if (st == SL_OK && smp && softmax)
        st = sl_errf(msg, msglen, SL_EINVAL,
                     "focal: normalized and reduced_threshold are smp's sigmoid forms (activation=sigmoid, or one channel)");
    else if (st == SL_OK) {
        st = softmax ? focal_softmax(t, cx, alpha, value)
                     : smp ? focal_smp(t, cx, alpha, has, value) : focal_sigmoid(t, cx, alpha, has, value);
        if (st == SL_ENOMEM) sl_errf(msg, msglen, st, "focal: out of memory");
    }
    free(alpha);
    return st;
}

static sl_status focal_validate(const sl_params *p, char *msg, size_t msglen)
{
    if (p->alpha_list.n == 1 && p->alpha_list.v[0] > 1)
        return sl_errf(msg, msglen, SL_EINVAL,
                       "focal: a scalar alpha=%g must be in [0, 1] (weight of the positives; give a list for per-class weights)",
                       p->alpha_list.v[0]);
    return SL_OK;
}

static const sl_key focal_keys[] = {
    SL_KEY_ACTIVATION,
    {"gamma", SL_KEY_NUMBER, SL_P(gamma), 2, 0, 100, NULL, "focusing exponent; 0 gives cross-entropy"},
    {"alpha", SL_KEY_NUMBER_OR_LIST, SL_P(alpha_list), 0, 0, 1e6, NULL,
     "none; a scalar in [0,1] (sigmoid: weight of positives; softmax: [1-a,a,...,a]) or one weight per class"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"},
    {"normalized", SL_KEY_BOOL, SL_P(normalized), 0, 0, 1, NULL,
     "sigmoid: divide by Σ (1 − pt)^γ (smp focal_loss_with_logits normalized=True)"},
    {"reduced_threshold", SL_KEY_NUMBER, SL_P(reduced_threshold), 0, 0, 1, NULL,
     "sigmoid: smp's reduced focal loss, ((1 − pt)/r)^γ where pt >= r, 1 below; 0 = off"},
    SL_KEY_END};

const sl_term_class sl_loss_focal = {
    {"focal", "distribution", "focal loss −α(1−p)^γ log p (softmax; sigmoid per channel)",
     "Lin et al. 2017; sigmoid matches torchvision sigmoid_focal_loss (mean); MONAI softmax FocalLoss = ours / C"},
    focal_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, focal_validate, eval_focal, NULL};
