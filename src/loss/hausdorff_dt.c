/*
 * hausdorff_dt — the distance-transform Hausdorff loss of Karimi &
 * Salcudean, "Reducing the Hausdorff distance in medical image segmentation
 * with convolutional neural networks", IEEE TMI 39(2), 2020 (arXiv 2019).
 * Matches MONAI HausdorffDTLoss (reduction="mean", batch=False) with its
 * distance_field, which we reproduce exactly:
 *
 *     value = mean over (sample n, included class c, voxel s) of
 *             (p − g)² · (d_p^α + d_g^α)
 *     d value / d p = 2 (p − g) (d_p^α + d_g^α) / (N · K · S)    (maps are constants)
 *
 * d_p is the distance field of the prediction mask p > 0.5, d_g of the target
 * mask g > 0.5 (a label map: label == c): every voxel gets its Euclidean
 * distance (mm, opts->spacing; between voxel centres) to the nearest voxel
 * on the other side — MONAI's edt(fg) + edt(bg). A mask that is all
 * background or all foreground has no boundary and gives d ≡ 0 (MONAI skips
 * those). No gradient flows through the maps (they are piecewise constant
 * in p). With a soft target, (p − g)² uses the soft g and only the map is
 * binarised.
 *
 * A voxel mask m makes it Σ m (p − g)² (d_p^α + d_g^α) / (K · Σ m); the
 * distance fields stay those of the whole prediction and target.
 *
 * include_background=false (the default, as MONAI) drops class 0 when C > 1;
 * a single sigmoid channel is always included. MONAI takes the mean per
 * (sample, class) and then over them: with equal voxel counts that is the
 * mean over everything, which is what we compute.
 */
#include <stdlib.h>
#include "boundary_maps.h"

typedef struct {
    const sl_ctx *cx;
    int64_t first, K, nch;
    double alpha;
    double k0;    /* 2 · scale / (N·K·S) */
    double *part; /* [N·K·nch] partial sums, added in order */
} hd_jobs;

static inline double powa(double d, double alpha)
{
    if (alpha == 2) return d * d;
    if (alpha == 1) return d;
    return pow(d, alpha);
}

/* Unsigned distance field of mask m (count = its foreground voxels) into d;
 * 0 everywhere without a boundary. */
static sl_status field(const uint8_t *m, int64_t count, const sl_grid *g, int threads, float *d, char *msg,
                       size_t msglen)
{
    const int64_t S = sl_grid_voxels(g);
    if (count == 0 || count == S) {
        for (int64_t s = 0; s < S; s++) d[s] = 0;
        return SL_OK;
    }
    sl_edt_opts o = {SL_EDT_SIGNED, threads};
    return sl_edt(m, SL_DT_U8, g, &o, d, SL_DT_F32, msg, msglen);
}

/*
 * Job j = (sample j / K, class first + j % K): both maps, then at once the
 * partial sums and the gradient of the (n, c) slice (no other job touches
 * it), so the maps live only in the job's scratch: the mask (S bytes,
 * padded) and two float maps.
 */
static sl_status hd_job(void *user, int64_t j, int threads, void *scratch, char *msg, size_t msglen)
{
    const hd_jobs *h = user;
    const sl_ctx *cx = h->cx;
    const int64_t S = cx->S, n = j / h->K, c = h->first + j % h->K, nch = h->nch;
    uint8_t *m = scratch;
    float *dg = (float *)((char *)scratch + ((S + 63) / 64) * 64), *dpm = dg + S;
    sl_grid g = slb_grid(cx);
    int64_t count = slb_target_mask(cx, n, c, m);
    sl_status st = field(m, count, &g, threads, dg, msg, msglen);
    if (st != SL_OK) return st;
    const float *p = cx->p + (n * cx->C + c) * S;
    count = 0;
    for (int64_t s = 0; s < S; s++) count += (m[s] = p[s] > 0.5f);
    st = field(m, count, &g, threads, dpm, msg, msglen);
    if (st != SL_OK) return st;
    float *dp = cx->dp ? cx->dp + (n * cx->C + c) * S : NULL;
    double *part = h->part + j * nch;
    const double alpha = h->alpha, k0 = h->k0;
    const float *mw = cx->target->mask ? cx->target->mask + n * S : NULL;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t a = ch * SL_CHUNK, e = a + SL_CHUNK < S ? a + SL_CHUNK : S;
        double acc = 0;
        for (int64_t s = a; s < e; s++) {
            /* the signed maps are negative inside: |d| */
            double w = powa(fabsf(dpm[s]), alpha) + powa(fabsf(dg[s]), alpha);
            if (mw) w *= mw[s];
            if (w == 0) continue;
            double err = (double)p[s] - sl_g(cx, n, c, s);
            acc += err * err * w;
            if (dp) dp[s] += (float)(k0 * err * w);
        }
        part[ch] = acc;
    }
    return SL_OK;
}

static sl_status eval_hd(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const int64_t first = (!t->prm.include_background && C > 1) ? 1 : 0, K = C - first;
    const double total = sl_mask_total(cx); /* N·S voxels, or Σ m with a mask */
    if (!(total > 0)) { /* a mask of zeros: nothing counts, as ce */
        *value = 0;
        return SL_OK;
    }
    const double inv = 1.0 / ((double)K * total);
    hd_jobs h = {cx, first, K, nch, t->prm.alpha, 2 * cx->scale * inv, sl_calloc(N * K * nch, sizeof(double))};
    if (!h.part) return sl_errf(msg, msglen, SL_ENOMEM, "hausdorff_dt: out of memory");
    size_t scratch = (size_t)((S + 63) / 64) * 64 + 2 * (size_t)S * sizeof(float);
    sl_status st = slb_run_jobs(N * K, cx->threads, scratch, hd_job, &h, msg, msglen);
    if (st == SL_OK) *value = sl_sum_ordered(h.part, N * K * nch) * inv;
    free(h.part);
    return st;
}

static const sl_key hd_keys[] = {
    SL_KEY_ACTIVATION,
    {"alpha", SL_KEY_NUMBER, SL_P(alpha), 2, 0, 16, NULL, "exponent of the distances"},
    {"include_background", SL_KEY_BOOL, SL_P(include_background), 0, 0, 1, NULL,
     "false drops class 0 (C > 1), as MONAI's default"},
    SL_KEY_END};

const sl_term_class sl_loss_hausdorff_dt = {
    {"hausdorff_dt", "boundary", "mean of (p − g)² (d_p^α + d_g^α), d = distance fields of p > 0.5 and g",
     "Karimi & Salcudean 2019 (IEEE TMI 2020); matches MONAI HausdorffDTLoss (distance_field, reduction=mean)"},
    hd_keys, SL_TAKES_MASK, NULL, eval_hd, NULL};

/*
 * log_hausdorff_dt — MONAI LogHausdorffDTLoss: log(L + 1) with L the
 * hausdorff_dt value above (same maps, keys and mask), d/dp = (dL/dp)/(L + 1).
 * The maps are computed once: L's gradient goes to a scratch buffer first
 * and is added scaled once L is known.
 */
static sl_status eval_log_hd(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const int64_t total = cx->N * cx->C * cx->S;
    float *tmp = NULL;
    sl_ctx c2 = *cx;
    c2.scale = 1.0;
    c2.dp = NULL;
    if (cx->dp) {
        tmp = sl_calloc(total, sizeof(float));
        if (!tmp) return sl_errf(msg, msglen, SL_ENOMEM, "log_hausdorff_dt: out of memory");
        c2.dp = tmp;
    }
    double L = 0;
    sl_status st = eval_hd(t, &c2, &L, msg, msglen);
    if (st == SL_OK) {
        *value = log1p(L);
        if (cx->dp) {
            const double k = cx->scale / (1.0 + L);
#pragma omp parallel for num_threads(cx->threads) schedule(static)
            for (int64_t i = 0; i < total; i++) cx->dp[i] += (float)(k * tmp[i]);
        }
    }
    free(tmp);
    return st;
}

const sl_term_class sl_loss_log_hausdorff_dt = {
    {"log_hausdorff_dt", "boundary", "log(1 + hausdorff_dt): the distance-transform Hausdorff loss, log-scaled",
     "MONAI LogHausdorffDTLoss (log(HausdorffDTLoss + 1))"},
    hd_keys, SL_TAKES_MASK, NULL, eval_log_hd, NULL};
