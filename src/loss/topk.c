/*
 * Cross-entropy over the hardest voxels: topk and ohem.
 *
 * topk (Wu, Shen, van den Hengel, "Bridging Category-level and Instance-level
 * Semantic Image Segmentation", arXiv:1605.06885, 2016, "online bootstrapping";
 * matches nnU-Net's TopKLoss): the per-voxel cross-entropy ℓ_i, ranked over
 * the whole batch; the loss is the mean of the K largest,
 *     K = max(1, floor(k · V / 100)),  V = number of valid voxels.
 * nnU-Net computes int(num_voxels · k / 100) in double the same way; it keeps
 * ignored voxels in V (with ℓ = 0), we leave them out of the ranking and V.
 *
 * ohem (online hard example mining, the threshold form of Shrivastava et al.
 * 2016 as in Zhao et al.'s PSPNet training code and mmsegmentation's
 * OHEMPixelSampler): the mean of ℓ_i over the voxels whose true-class
 * probability is below `thresh`, p_true = exp(−ℓ_i) (p of the label for a
 * label map; Π_c p_c^{g_c} for a soft target). If fewer than
 *     K_min = floor(min_kept · V)
 * voxels pass, the K_min largest ℓ are taken instead (so ohem is never
 * smaller than topk(k = 100·min_kept) restricted to hard voxels). min_kept is
 * a fraction of the valid voxels in [0, 1], default 0.1 (mmsegmentation's
 * 100000 pixels of a 2 × 512 × 1024 batch is ≈ 0.095); 0 keeps only the
 * thresholded voxels, and when none pass the loss is 0 with no gradient.
 *
 * ℓ_i: softmax (C > 1): −Σ_c g_ic log p_ic (= −log p_{i,y} for labels), one
 * element per voxel. Sigmoid (C = 1 or activation=sigmoid): the binary CE
 * −t log p − (1 − t) log(1 − p) of each (channel, voxel), all ranked
 * together. activation=none takes probabilities.
 *
 * Ties: the elements ranked at the boundary with equal ℓ are taken in index
 * order (sample, [channel,] voxel — memory order), lowest index first. The
 * value does not depend on it; the gradient does, and is that of the
 * documented choice. Selection: a histogram of the top 16 bits of ℓ picks
 * the bucket holding the K-th largest value T, quickselect (3-way
 * partition, median of three, sort fallback past a depth limit) finds T
 * among that bucket's values; every ℓ > T is taken, then ℓ == T in index order.
 *
 * Voxel mask m: voxels with m = 0 leave the ranking and V (as ignored
 * ones); the others enter as m·ℓ: topk is the mean of the K largest m·ℓ,
 * ohem the mean of m·ℓ over the voxels whose p_true is below thresh (or the
 * K_min largest m·ℓ). A binary mask is exactly ignore_index on the same
 * voxels; ranking the weighted values keeps the loss continuous where two
 * of them swap places.
 *
 * Gradient: the mean is over a fixed set, so ∂/∂x is that of CE on the
 * selected voxels divided by K: (Σ_c g_c)·p − g for softmax, p − t for
 * sigmoid, written to dx; −g/p (and (1 − t)/(1 − p)) to dp for activation=none.
 */
#include <stdlib.h>
#include <string.h>
#include "term.h"

extern const sl_term_class sl_loss_ohem;

/* ---- selection ------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline void swap_d(double *a, double *b)
{
    double t = *a;
    *a = *b;
    *b = t;
}

/* Value of rank r (0-based, ascending) of a[0..n); reorders a. */
static double select_rank(double *a, int64_t n, int64_t r)
{
    int64_t lo = 0, hi = n; /* [lo, hi) contains rank r */
    int depth = 0;
    while (hi - lo > 16) {
        if (++depth > 64) { /* pathological pivots: finish by sorting */
            qsort(a + lo, (size_t)(hi - lo), sizeof *a, cmp_double);
            return a[r];
        }
        double x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi - 1];
        double piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        /* Dutch flag: [lo, lt) < piv, [lt, i) == piv, (gt, hi) > piv */
        int64_t lt = lo, i = lo, gt = hi - 1;
        while (i <= gt) {
            if (a[i] < piv) swap_d(&a[lt++], &a[i++]);
            else if (a[i] > piv) swap_d(&a[i], &a[gt--]);
            else i++;
        }
        if (r < lt) hi = lt;
        else if (r > gt) lo = gt + 1;
        else return piv;
    }
    qsort(a + lo, (size_t)(hi - lo), sizeof *a, cmp_double);
    return a[r];
}

/* ---- per-element cross-entropy ---------------------------------------------- */

typedef struct {
    int64_t M;      /* elements: N·S (softmax) or N·C·S (sigmoid) */
    int binary;     /* 1: one element per (n, c, s) */
    double *ce;     /* [M]; −1 for ignored elements */
    int64_t valid;  /* elements with ce >= 0 */
} ce_elems;

static sl_status elems_compute(const sl_ctx *cx, const sl_params *pr, int binary, ce_elems *e)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S;
    e->binary = binary;
    e->M = binary ? N * C * S : N * S;
    e->ce = sl_malloc(e->M, sizeof(double));
    if (!e->ce) return SL_ENOMEM;
    const int64_t per = binary ? C : 1, nch = sl_nchunks(S);
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            for (int64_t c = 0; c < per; c++) {
                double *out = e->ce + (n * per + c) * S;
                for (int64_t s = a; s < b; s++) {
                    const double vw = sl_vw(cx, pr, n, s);
                    if (vw == 0) { /* ignored, or mask weight 0 */
                        out[s] = -1;
                        continue;
                    }
                    double l = 0;
                    if (binary) {
                        int64_t off = (n * C + c) * S + s;
                        double t = sl_g(cx, n, c, s);
                        l = (t > 0 ? -t * cx->logp[off] : 0.0) + (t < 1 ? -(1 - t) * cx->log1mp[off] : 0.0);
                    } else if (cx->target->kind == SL_TARGET_LABELS) {
                        l = -(double)cx->logp[(n * C + cx->target->labels[n * S + s]) * S + s];
                    } else {
                        for (int64_t k = 0; k < C; k++) {
                            double g = sl_g(cx, n, k, s);
                            if (g > 0) l -= g * cx->logp[(n * C + k) * S + s];
                        }
                    }
                    out[s] = vw * l; /* ranked and averaged weighted */
                }
            }
        }
    e->valid = 0;
    for (int64_t i = 0; i < e->M; i++) e->valid += e->ce[i] >= 0;
    return SL_OK;
}

/* Top 16 bits of a non-negative double: monotone in the value (−0 taken as +0). */
static inline unsigned hkey(double v)
{
    uint64_t u;
    v += 0.0; /* −0 → +0 */
    memcpy(&u, &v, sizeof u);
    return (unsigned)(u >> 48);
}

/* Marks in sel[M] the K elements of largest ce (ties in index order).
 * The K-th largest value T: a histogram of the top 16 bits of the valid
 * values finds the bucket holding that rank, and quickselect runs on that
 * bucket's values only (a copy of one bucket instead of all of them). */
static sl_status select_top(const ce_elems *e, int64_t K, unsigned char *sel)
{
    int64_t *hist = sl_calloc(65536, sizeof(int64_t));
    if (!hist) return SL_ENOMEM;
    for (int64_t i = 0; i < e->M; i++)
        if (e->ce[i] >= 0) hist[hkey(e->ce[i])]++;
    int64_t r = e->valid - K, below = 0; /* ascending rank of T */
    unsigned bk = 0;
    while (below + hist[bk] <= r) below += hist[bk++];
    double *tmp = sl_malloc(hist[bk], sizeof(double));
    if (!tmp) {
        free(hist);
        return SL_ENOMEM;
    }
    int64_t m = 0;
    for (int64_t i = 0; i < e->M; i++)
        if (e->ce[i] >= 0 && hkey(e->ce[i]) == bk) tmp[m++] = e->ce[i];
    double T = select_rank(tmp, m, r - below); /* the K-th largest */
    free(tmp);
    free(hist);
    int64_t above = 0;
    for (int64_t i = 0; i < e->M; i++) above += e->ce[i] > T;
    int64_t ties = K - above; /* how many elements equal to T to take */
    for (int64_t i = 0; i < e->M; i++) {
        int take = e->ce[i] > T;
        if (!take && e->ce[i] == T && ties > 0) {
            take = 1;
            ties--;
        }
        sel[i] = (unsigned char)take;
    }
    return SL_OK;
}

/* Mean of ce over the selected elements (chunked, ordered sum) and the
 * gradient; with a voxel mask the elements are m·ce. */
static double selected_mean(const sl_ctx *cx, const ce_elems *e, const unsigned char *sel, int64_t K, double *part)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S), per = e->binary ? C : 1;
    const float *mw = cx->target->mask;
    const double k0 = cx->scale / (double)K;
    const int none = cx->act == SL_ACT_NONE;
    const int labels = cx->target->kind == SL_TARGET_LABELS;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            double acc = 0;
            for (int64_t c = 0; c < per; c++) {
                const int64_t base = (n * per + c) * S;
                for (int64_t s = a; s < b; s++) {
                    if (!sel[base + s]) continue;
                    const double vw = mw ? (double)mw[n * S + s] : 1.0, k = vw * k0;
                    acc += e->ce[base + s]; /* already m·ℓ */
                    if (e->binary) {
                        int64_t off = (n * C + c) * S + s;
                        double t = sl_g(cx, n, c, s), p = cx->p[off];
                        if (none && cx->dp)
                            cx->dp[off] += (float)(k * ((t > 0 ? -t / p : 0.0) + (t < 1 ? (1 - t) / (1 - p) : 0.0)));
                        else if (!none && cx->dx)
                            cx->dx[off] += (float)(k * (p - t));
                        continue;
                    }
                    const float *p = cx->p + n * C * S;
                    if (none) {
                        if (!cx->dp) continue;
                        float *dp = cx->dp + n * C * S;
                        for (int64_t j = 0; j < C; j++) {
                            double g = sl_g(cx, n, j, s);
                            if (g > 0) dp[j * S + s] += (float)(-k * g / p[j * S + s]);
                        }
                    } else if (cx->dx) {
                        float *dx = cx->dx + n * C * S;
                        double A = 1;
                        if (!labels) {
                            A = 0;
                            for (int64_t j = 0; j < C; j++) A += sl_g(cx, n, j, s);
                        }
                        for (int64_t j = 0; j < C; j++)
                            dx[j * S + s] += (float)(k * (A * p[j * S + s] - sl_g(cx, n, j, s)));
                    }
                }
            }
            part[n * nch + ch] = acc;
        }
    return sl_sum_ordered(part, N * nch) / (double)K;
}

/* ---- the two losses -------------------------------------------------------------- */

/* Mask weight of element i (only called for elements with m > 0). */
static double mask_at(const sl_ctx *cx, int binary, int64_t i)
{
    if (!cx->target->mask) return 1.0;
    const int64_t S = cx->S, per = binary ? cx->C : 1;
    return cx->target->mask[(i / (per * S)) * S + i % S];
}

static sl_status eval_hard(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    const int is_ohem = t->cls == &sl_loss_ohem;
    const int binary = cx->act == SL_ACT_SIGMOID || (cx->act == SL_ACT_NONE && cx->C == 1);
    const char *name = t->cls->info.name;
    ce_elems e = {0};
    *value = 0;
    if (elems_compute(cx, pr, binary, &e) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", name);
    if (e.valid == 0) { /* every voxel ignored: 0, no gradient (as ce) */
        free(e.ce);
        return SL_OK;
    }
    unsigned char *sel = sl_calloc(e.M, 1);
    double *part = sl_calloc(cx->N * sl_nchunks(cx->S), sizeof(double));
    sl_status st = sel && part ? SL_OK : SL_ENOMEM;
    int64_t K = 0;
    if (st == SL_OK && !is_ohem) {
        K = (int64_t)floor((double)e.valid * pr->k / 100.0);
        if (K < 1) K = 1;
        st = select_top(&e, K, sel);
    } else if (st == SL_OK) {
        /* p_true = exp(−ℓ) < thresh ⇔ ℓ > −log(thresh), up to rounding: outside a
         * margin of 1e-9 relative around that bound (far beyond the ulp errors of
         * exp and log) the comparison decides; inside it exp is evaluated as before,
         * so the set is exactly the one exp alone gives. */
        const double L0 = pr->thresh > 0 ? -log(pr->thresh) : INFINITY, dl = 1e-9 * (1 + fabs(L0));
        int64_t hard = 0;
#pragma omp parallel for num_threads(cx->threads) schedule(static) reduction(+ : hard)
        for (int64_t i = 0; i < e.M; i++) {
            if (e.ce[i] < 0) continue;
            const double l = cx->target->mask ? e.ce[i] / mask_at(cx, binary, i) : e.ce[i];
            const int h = l > L0 + dl ? 1 : l < L0 - dl ? 0 : exp(-l) < pr->thresh;
            sel[i] = (unsigned char)h;
            hard += h;
        }
        int64_t kmin = (int64_t)floor((double)e.valid * pr->min_kept);
        K = hard;
        if (hard < kmin) {
            K = kmin;
            st = select_top(&e, K, sel);
        }
    }
    if (st == SL_OK && K > 0) *value = selected_mean(cx, &e, sel, K, part);
    free(sel);
    free(part);
    free(e.ce);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "%s: out of memory", name);
    return SL_OK;
}

static sl_status topk_validate(const sl_params *p, char *msg, size_t msglen)
{
    if (!(p->k > 0)) return sl_errf(msg, msglen, SL_EINVAL, "topk: k=%g must be in (0, 100] (percent of voxels)", p->k);
    return SL_OK;
}

static const sl_key topk_keys[] = {
    SL_KEY_ACTIVATION,
    {"k", SL_KEY_NUMBER, SL_P(k), 10, 0, 100, NULL, "percent of the valid voxels kept (the largest CE), at least 1"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"},
    SL_KEY_END};

const sl_term_class sl_loss_topk = {
    {"topk", "distribution", "cross-entropy over the k % voxels with the largest CE (whole batch)",
     "Wu et al. 2016 (online bootstrapping); matches nnU-Net TopKLoss (ignored voxels left out)"},
    topk_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, topk_validate, eval_hard, NULL};

static const sl_key ohem_keys[] = {
    SL_KEY_ACTIVATION,
    {"thresh", SL_KEY_NUMBER, SL_P(thresh), 0.7, 0, 1, NULL, "voxels whose true-class probability is below it are kept"},
    {"min_kept", SL_KEY_NUMBER, SL_P(min_kept), 0.1, 0, 1, NULL,
     "fraction of the valid voxels kept at least (the hardest); 0 = threshold only"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"},
    SL_KEY_END};

const sl_term_class sl_loss_ohem = {
    {"ohem", "distribution", "cross-entropy over voxels with true-class p < thresh, at least min_kept of them",
     "Shrivastava et al. 2016 (OHEM), threshold form of PSPNet / mmsegmentation OHEMPixelSampler"},
    ohem_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, NULL, eval_hard, NULL};
