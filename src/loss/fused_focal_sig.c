/*
 * Focal loss, sigmoid form (torchvision's sigmoid_focal_loss, focal.c), in
 * one pass over the scores: every element (n, c, s) is its own binary
 * problem, so its term and its gradient need nothing global but the count
 * of valid voxels (known from the labels). Per element, from x alone:
 *     e = exp(−|x|), u = 1 + e, log1p(e) = log(u)·e/(u − 1) (e where u = 1),
 *     log p = −log1p(e) (x ≥ 0) or x − log1p(e); log(1 − p) likewise,
 *     p = 1/u or e/u, 1 − p = e/u or 1/u (no cancellation),
 * then focal.c's formulas: ce, m = 1 − p_t, α_t m^γ ce and the gradient
 * α_t [γ m^(γ−1) (1 − 2t) p (1 − p) ce + m^γ (p − t)]·weight/(V·C).
 * Label maps and soft targets; ignore_index. A voxel mask stays on the
 * plain path.
 *
 * The binary cross-entropy (bce; ce and wce under sigmoid) is the case
 * γ = 0 with its class weights and pos_weight as the two α_t coefficients:
 * w_c [pw·t·(−log p) + (1 − t)(−log(1 − p))] = α_t ce for a hard t, with
 * α_t = w_c·pw where t = 1 and w_c where t = 0; its gradient
 * w_c [(pw·t + 1 − t) p − pw·t] is then α_t (p − t). Soft targets come here
 * only without weights and pos_weight (α_t = 1: the forms agree for any t);
 * label smoothing stays on the two-pass path (fused.c).
 *
 * The exponential and log are sl_exp_nonpos and sl_log_pos (≤ 2 ulp): value
 * and gradient agree with the plain path to 1e-6 / 1e-5
 * (tests/unit/test_fused_focal.c), and the instruction sets give the same
 * bits. A NaN or infinite score makes the sum NaN (each element adds x − x);
 * only then does a scan choose the message (the gradient is unspecified on
 * failure, loss.h).
 *
 * smp's forms (focal.c's focal_smp: normalized=true and/or
 * reduced_threshold=r) with label maps: for a hard target 1 − pt is the m
 * above and pt = 1 − m exactly (p_t, computed without cancellation), so
 *     f = m^γ, or ((m/r)^γ where pt ≥ r, 1 below),
 *     df/dce = γ m^(γ−1)·pt, or γ (m/r)^(γ−1)·pt/r (0 below r),
 *     loss = Σ α_t f ce / (Fc·n),  Fc = max(Σ f, 1e-6) when normalized, else 1,
 *     d/dx = [α_t (df·ce + f)/Fc − [normalized, Σ f > 1e-6]·E·df/Fc²]·(p − t)/n.
 * Normalized needs Σ f and E = Σ α_t f ce before any gradient: a first pass
 * sums them, a second writes the gradient. Soft targets in smp's form (where
 * 1 − exp(−ce) is not m) stay on the plain path.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include "fastexp.h"
#include "fused.h"

extern const sl_term_class sl_loss_focal, sl_loss_bce, sl_loss_ce, sl_loss_wce;

#define FB 256
#define FLANES 16
#if defined(__GNUC__)
#define FS_INLINE __attribute__((always_inline)) inline
#else
#define FS_INLINE
#endif

typedef struct {
    const sl_ctx *cx;
    int32_t ignore;     /* INT32_MIN: none */
    const float *apos, *aneg; /* [C]: α_t = apos_c·t + aneg_c·(1 − t); NULL: α_t = 1 */
    float gamma, k;     /* k = weight / (V·C) */
    int igamma;         /* γ when an integer in [0, 8], else −1 (pow) */
    float *grad;
    int smp;            /* smp's form (label maps only) */
    float thr;          /* smp: reduced_threshold r, 0 = off */
    float inv_fc, kf;   /* smp: 1/Fc and E/Fc² (0 unless normalized with Σ f > 1e-6) */
} fsig_job;

/* The block's terms summed in FLANES fixed float lanes (element i in lane
 * i mod FLANES, in order), the lanes then added to *acc in order as
 * doubles: the same bits on every instruction set. */
static FS_INLINE void block_sum(const float *term, int64_t len, double *acc)
{
    float lane[FLANES] = {0};
    int64_t i = 0;
    for (; i + FLANES <= len; i += FLANES)
        for (int l = 0; l < FLANES; l++) lane[l] += term[i + l];
    for (int l = 0; i < len; i++, l++) lane[l] += term[i];
    for (int l = 0; l < FLANES; l++) *acc += (double)lane[l];
}

/* Elements [a, b) of channel c of sample n: returns Σ α_t f ce and adds
 * Σ f to *fsum (valid elements only; f = m^γ but in smp's reduced form). */
static FS_INLINE double fsig_body(const fsig_job *j, int64_t n, int64_t c, int64_t a, int64_t b, double *fsum)
{
    const sl_ctx *cx = j->cx;
    const int64_t C = cx->C, S = cx->S;
    const float *xc = cx->x + (n * C + c) * S;
    float *gc = j->grad ? j->grad + (n * C + c) * S : NULL;
    const int soft = cx->target->kind == SL_TARGET_SOFT, ig = j->igamma;
    const int32_t want = C == 1 ? 1 : (int32_t)c;
    const float ap = j->apos ? j->apos[c] : 1.0f, an = j->apos ? j->aneg[c] : 1.0f;
    float t[FB], w[FB], mg[FB], mg1[FB], term[FB], p[FB], q[FB], ce[FB], m[FB], at[FB];
    const float thr = j->thr, inv_thr = thr > 0 ? 1.0f / thr : 1.0f;
    double acc = 0, facc = 0;
    for (int64_t s0 = a; s0 < b; s0 += FB) {
        const int64_t len = b - s0 < FB ? b - s0 : FB;
        const float *x = xc + s0;
        if (soft) {
            memcpy(t, cx->target->soft + (n * C + c) * S + s0, sizeof(float) * (size_t)len);
            for (int64_t i = 0; i < len; i++) w[i] = 1.0f;
        } else {
            const int32_t *lab = cx->target->labels + n * S + s0;
            for (int64_t i = 0; i < len; i++) {
                t[i] = lab[i] == want ? 1.0f : 0.0f;
                w[i] = lab[i] != j->ignore ? 1.0f : 0.0f;
            }
        }
        if (ig == 0 && !j->smp && !(thr > 0)) { /* bce: γ = 0, the factor f = 1: one loop, the same bits */
            for (int64_t i = 0; i < len; i++) {
                const float v = x[i], e = sl_exp_nonpos(-fabsf(v)), u = 1.0f + e, r = 1.0f / u;
                const float L = sl_log1p_unit(e);
                const float lp = v >= 0 ? -L : v - L, l1 = v >= 0 ? -v - L : -L;
                const float wa = w[i] * (j->apos ? ap * t[i] + an * (1.0f - t[i]) : 1.0f);
                /* a NaN or infinite score makes ce NaN or ±Inf, and wa·ce NaN or infinite even
                 * where wa = 0: the sum tells it without the + (x − x) of the general loop */
                term[i] = wa * (-t[i] * lp - (1.0f - t[i]) * l1);
                p[i] = j->k * wa * ((v >= 0 ? r : e * r) - t[i]);
            }
            block_sum(term, len, &acc);
            if (gc) memcpy(gc + s0, p, sizeof(float) * (size_t)len);
            continue;
        }
        for (int64_t i = 0; i < len; i++) {
            const float v = x[i], e = sl_exp_nonpos(-fabsf(v)), u = 1.0f + e, r = 1.0f / u;
            const float L = sl_log1p_unit(e);
            const float lp = v >= 0 ? -L : v - L, l1 = v >= 0 ? -v - L : -L;
            p[i] = v >= 0 ? r : e * r;
            q[i] = v >= 0 ? e * r : r;
            ce[i] = -t[i] * lp - (1.0f - t[i]) * l1;
            m[i] = p[i] * (1.0f - t[i]) + q[i] * t[i];
        }
        /* α_t; without α it is 1 (t + (1 − t) need not round to 1 for a soft t).
         * The torchvision form folds it into w; smp's keeps it apart (Σ f has no α). */
        for (int64_t i = 0; i < len; i++) at[i] = j->apos ? ap * t[i] + an * (1.0f - t[i]) : 1.0f;
        if (!j->smp)
            for (int64_t i = 0; i < len; i++) w[i] *= at[i], at[i] = 1.0f;
        /* the base of the power: m, or m/r in smp's reduced form */
        float *bs = term;
        for (int64_t i = 0; i < len; i++) bs[i] = thr > 0 ? m[i] * inv_thr : m[i];
        sl_block_powers(bs, len, ig, (double)j->gamma, mg, mg1);
        if (thr > 0) /* pt = 1 − m < r: f = 1, constant */
            for (int64_t i = 0; i < len; i++) {
                const int below = 1.0f - m[i] < thr;
                mg[i] = below ? 1.0f : mg[i];
                mg1[i] = below ? 0.0f : mg1[i];
            }
        if (j->smp) {
            float fl[FLANES] = {0};
            int64_t i = 0;
            for (; i + FLANES <= len; i += FLANES)
                for (int l = 0; l < FLANES; l++) fl[l] += w[i + l] * mg[i + l];
            for (int l = 0; i < len; i++, l++) fl[l] += w[i] * mg[i];
            for (int l = 0; l < FLANES; l++) facc += (double)fl[l];
        }
        /* x − x is +0 for a finite score and NaN otherwise: the sum turns NaN exactly when a score is
         * not finite (an ignored voxel's too), and is unchanged by finite ones */
        for (int64_t i = 0; i < len; i++) term[i] = w[i] * at[i] * mg[i] * ce[i] + (x[i] - x[i]);
        block_sum(term, len, &acc);
        if (!gc) continue;
        int64_t i;
        const float kf = j->k, gam = j->gamma;
        if (j->smp) {
            /* df/dce = γ·mg1·pt (/r reduced); d/dx = n⁻¹ w [α_t (df ce + f)/Fc − kf df] (p − t) */
            const float gs = gam * inv_thr;
            for (i = 0; i < len; i++) {
                const float pt = p[i] * t[i] + q[i] * (1.0f - t[i]);
                const float df = ig != 0 ? gs * mg1[i] * pt : 0.0f;
                gc[s0 + i] = kf * w[i] * ((at[i] * (df * ce[i] + mg[i]) * j->inv_fc - j->kf * df) * (p[i] - t[i]));
            }
            continue;
        }
        for (i = 0; i < len; i++)
            gc[s0 + i] = kf * w[i] *
                         (mg[i] * (p[i] - t[i]) +
                          (ig != 0 ? gam * mg1[i] * ((1.0f - 2.0f * t[i]) * p[i] * q[i] * ce[i]) : 0.0f));
    }
    *fsum += facc;
    return acc;
}

typedef double (*fsig_fn)(const fsig_job *, int64_t, int64_t, int64_t, int64_t, double *);
static double fsig_base(const fsig_job *j, int64_t n, int64_t c, int64_t a, int64_t b, double *fsum)
{
    return fsig_body(j, n, c, a, b, fsum);
}
#if SL_X86
SL_T_AVX2 static double fsig_avx2(const fsig_job *j, int64_t n, int64_t c, int64_t a, int64_t b,
                                                         double *fsum)
{
    return fsig_body(j, n, c, a, b, fsum);
}
SL_T_AVX512 static double fsig_avx512(const fsig_job *j, int64_t n, int64_t c, int64_t a, int64_t b, double *fsum)
{
    return fsig_body(j, n, c, a, b, fsum);
}
#endif

static int is_bce(const sl_term *t) { return t->cls == &sl_loss_bce || t->cls == &sl_loss_ce || t->cls == &sl_loss_wce; }

int sl_fused_focal_sig_eligible(const sl_term *terms, int nterms, const sl_target *tg, int act)
{
    if (nterms != 1 || act != SL_ACT_SIGMOID || tg->mask) return 0;
    const sl_params *pr = &terms[0].prm;
    if (is_bce(&terms[0])) /* soft targets only where α_t = 1 */
        return pr->label_smoothing == 0 &&
               (tg->kind == SL_TARGET_LABELS ||
                (pr->weight_mode == SL_WEIGHT_NONE && (terms[0].cls != &sl_loss_bce || pr->pos_weight == 1)));
    if (terms[0].cls != &sl_loss_focal) return 0;
    const int smp = pr->normalized || pr->reduced_threshold > 0;
    return !smp || tg->kind == SL_TARGET_LABELS;
}

/* One (sample·channel row, chunk): its partial sum into part. */
typedef struct fsig_run {
    const fsig_job *j;
    fsig_fn fn;
    double *part, *fpart; /* Σ α_t f ce and Σ f per (row, chunk) */
    int64_t C, nch;
} fsig_run;

static void fsig_chunk(void *arg, int64_t row, int64_t ch, int64_t lo, int64_t hi, void *scratch, int thread)
{
    const fsig_run *r = arg;
    const int64_t q = row * r->nch + ch;
    (void)scratch, (void)thread;
    r->fpart[q] = 0;
    r->part[q] = r->fn(r->j, row / r->C, row % r->C, lo, hi, &r->fpart[q]);
}

sl_status sl_fused_focal_sig(sl_term *t, const sl_ctx *cx, double *value, float *grad, char *msg, size_t msglen)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const sl_params *pr = &t->prm;
    const char *name = t->cls->info.name;
    const int bce = is_bce(t);
    double *alpha = sl_calloc(C, sizeof(double));
    float *af = sl_calloc(2 * C, sizeof(float)); /* apos, then aneg */
    double *part = sl_calloc(N * C * nch, sizeof(double)), *fpart = sl_calloc(N * C * nch, sizeof(double));
    sl_status st = alpha && af && part && fpart ? SL_OK : sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", name);
    int has = 0;
    if (st == SL_OK && bce) { /* α_t from the class weights and pos_weight */
        const double pw = t->cls == &sl_loss_bce ? pr->pos_weight : 1.0;
        st = sl_class_weights(cx, pr, alpha, msg, msglen);
        for (int64_t c = 0; st == SL_OK && c < C; c++) {
            af[c] = (float)(alpha[c] * pw), af[C + c] = (float)alpha[c];
            has |= af[c] != 1.0f || af[C + c] != 1.0f;
        }
    } else if (st == SL_OK) {
        st = sl_focal_alpha(pr, C, 0, alpha, &has, msg, msglen);
        for (int64_t c = 0; c < C; c++) af[c] = (float)alpha[c], af[C + c] = 1.0f - af[c];
    }
    if (st != SL_OK) goto done;
    const int smp = !bce && (pr->normalized || pr->reduced_threshold > 0);
    fsig_job j = {.cx = cx, .ignore = INT32_MIN, .apos = has ? af : NULL, .aneg = has ? af + C : NULL,
                  .gamma = bce ? 0.0f : (float)pr->gamma, .grad = grad, .smp = smp,
                  .thr = smp ? (float)pr->reduced_threshold : 0.0f, .inv_fc = 1.0f, .kf = 0.0f};
    int64_t V = N * S;
    if (!isnan(pr->ignore_index) && cx->target->kind == SL_TARGET_LABELS) {
        const int32_t ig = (int32_t)pr->ignore_index, *lab = cx->target->labels;
        int64_t bad = 0;
#pragma omp parallel for num_threads(cx->threads) schedule(static) reduction(+ : bad)
        for (int64_t i = 0; i < N * S; i++) bad += lab[i] == ig;
        V -= bad;
        j.ignore = ig;
    }
    if (V == 0) { /* everything ignored: 0 and no gradient, as the plain path (which checks the scores first) */
        if (!sl_all_finite(cx->x, N * C * S, cx->threads)) {
            st = sl_errf(msg, msglen, SL_ENONFINITE, "loss: the scores contain NaN or Inf");
            goto done;
        }
        if (grad) memset(grad, 0, sizeof(float) * (size_t)(N * C * S));
        t->last_value = 0;
        *value = 0;
        goto done;
    }
    const double count = (double)V * (double)C, g = j.gamma;
    j.k = (float)(t->weight / count);
    j.igamma = g == floor(g) && g <= 8 ? (int)g : -1;
    fsig_fn fn = fsig_base;
#if SL_X86
    switch (sl_isa()) {
    case SL_ISA_AVX512: fn = fsig_avx512; break;
    case SL_ISA_AVX2: fn = fsig_avx2; break;
    default: break;
    }
#endif
    /* the (sample, channel) pairs are the loop's samples: N·C rows of S voxels */
    fsig_run run = {&j, fn, part, fpart, C, nch};
    double Fc = 1.0;
    const int normalized = smp && pr->normalized;
    if (normalized) { /* Σ f first (no gradient), then the gradient with it */
        j.grad = NULL;
        sl_for_chunks(N * C, S, cx->threads, 0, fsig_chunk, &run); /* no scratch: cannot fail */
        const double E = sl_sum_ordered(part, N * C * nch), F = sl_sum_ordered(fpart, N * C * nch);
        Fc = F > 1e-6 ? F : 1e-6;
        j.inv_fc = (float)(1.0 / Fc);
        j.kf = F > 1e-6 ? (float)(E / (Fc * Fc)) : 0.0f;
        j.grad = grad;
    }
    if (!normalized || grad) sl_for_chunks(N * C, S, cx->threads, 0, fsig_chunk, &run);
    const double val = sl_sum_ordered(part, N * C * nch) / (Fc * count);
    if (!isfinite(val)) { /* NaN or Inf scores make it NaN (fsig_body); the gradient is unspecified then (loss.h) */
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
    free(af);
    free(part);
    free(fpart);
    return st;
}
