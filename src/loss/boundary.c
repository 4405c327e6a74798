/*
 * boundary — the boundary loss of Kervadec, Bouchtiba, Desrosiers, Granger,
 * Dolz & Ben Ayed, "Boundary loss for highly unbalanced segmentation",
 * MIDL 2019 (extended in Medical Image Analysis 67, 2021).
 * Matches LIVIAETS/boundary-loss: SurfaceLoss(idc) applied to the maps of
 * one_hot2dist(one-hot target, resolution=spacing).
 *
 *     value = mean over (sample n, class c in idc, voxel s) of p_{n,c,s} · φ_{n,c,s}
 *     d value / d p_{n,c,s} = φ_{n,c,s} / (N · |idc| · S)        (φ is a constant)
 *
 * φ_c is the signed distance map of the target's class c (geometry.h,
 * SL_EDT_SIGNED_KERVADEC): +(distance to the class) outside it,
 * −(EDT_inside − 1) inside, in mm with opts->spacing (the "− 1" is in mm, as
 * in the reference); a class absent from the sample (or filling it) has
 * φ ≡ 0. Soft targets are binarised at 0.5 for the maps.
 *
 * A voxel mask m makes it Σ m·p·φ / (|idc| · Σ m): the maps stay those of
 * the whole target.
 *
 * idc: the list of class indices the loss averages over; by default every
 * foreground class 1..C−1, or the single channel when C = 1.
 *
 * opts->dist (N, C, spatial...): precomputed maps, used as φ as they are
 * (any convention the caller likes: the loss is linear in φ); only the
 * channels in idc are read, and they must be finite.
 */
#include <stdlib.h>
#include "boundary_maps.h"

typedef struct {
    const sl_ctx *cx;
    const int64_t *idc;
    int64_t K, nch;
    double k0;    /* scale / (N·K·S): the gradient per unit of φ */
    double *part; /* [N·K·nch] partial sums of p·φ, added in order */
} bnd_jobs;

/*
 * Job j = (sample j / K, class idc[j % K]): builds φ (or takes the caller's)
 * and uses it at once — partial sums of p·φ per chunk and the gradient of
 * the (n, c) slice, which no other job touches — so no map outlives its job
 * and the memory in flight is one map per thread. scratch: the class mask
 * (S bytes, padded) and one float map.
 */
static sl_status bnd_job(void *user, int64_t j, int threads, void *scratch, char *msg, size_t msglen)
{
    const bnd_jobs *b = user;
    const sl_ctx *cx = b->cx;
    const int64_t S = cx->S, n = j / b->K, c = b->idc[j % b->K], nch = b->nch;
    const float *f = cx->opts->dist ? cx->opts->dist + (n * cx->C + c) * S : NULL;
    if (!f) {
        uint8_t *m = scratch;
        float *phi = (float *)((char *)scratch + ((S + 63) / 64) * 64);
        slb_target_mask(cx, n, c, m);
        sl_grid g = slb_grid(cx);
        sl_edt_opts o = {SL_EDT_SIGNED_KERVADEC, threads};
        sl_status st = sl_edt(m, SL_DT_U8, &g, &o, phi, SL_DT_F32, msg, msglen);
        if (st != SL_OK) return st;
        f = phi;
    }
    const float *p = cx->p + (n * cx->C + c) * S;
    float *dp = cx->dp ? cx->dp + (n * cx->C + c) * S : NULL;
    const double k0 = b->k0;
    const float *mw = cx->target->mask ? cx->target->mask + n * S : NULL;
    double *part = b->part + j * nch;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t a = ch * SL_CHUNK, e = a + SL_CHUNK < S ? a + SL_CHUNK : S;
        double acc = 0;
        if (mw) {
            for (int64_t s = a; s < e; s++) acc += (double)mw[s] * p[s] * f[s];
            if (dp)
                for (int64_t s = a; s < e; s++) dp[s] += (float)(k0 * mw[s] * f[s]);
        } else {
            for (int64_t s = a; s < e; s++) acc += (double)p[s] * f[s];
            if (dp)
                for (int64_t s = a; s < e; s++) dp[s] += (float)(k0 * f[s]);
        }
        part[ch] = acc;
    }
    return SL_OK;
}

/* idc resolved against C into idc[0..*K). */
static sl_status resolve_idc(const sl_term *t, const sl_ctx *cx, int64_t *idc, int64_t *K, char *msg, size_t msglen)
{
    const sl_list *l = &t->prm.alpha_list; /* the idc list lives in this field */
    const int64_t C = cx->C;
    if (l->n == 0) {
        *K = 0;
        if (C == 1) idc[(*K)++] = 0;
        for (int64_t c = 1; c < C; c++) idc[(*K)++] = c;
        return SL_OK;
    }
    for (int i = 0; i < l->n; i++) {
        if (l->v[i] >= (double)C)
            return sl_errf(msg, msglen, SL_ESHAPE, "%s: idc lists class %g but the scores have %lld channel%s",
                           t->cls->info.name, l->v[i], (long long)C, C == 1 ? "" : "s");
        idc[i] = (int64_t)l->v[i];
    }
    *K = l->n;
    return SL_OK;
}

static sl_status eval_boundary(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    int64_t *idc = sl_calloc(C > SL_LIST_MAX ? C : SL_LIST_MAX, sizeof(int64_t));
    if (!idc) return sl_errf(msg, msglen, SL_ENOMEM, "boundary: out of memory");
    int64_t K = 0;
    sl_status st = resolve_idc(t, cx, idc, &K, msg, msglen);
    const float *dist = cx->opts->dist;
    for (int64_t n = 0; st == SL_OK && dist && n < N; n++) /* the caller's maps: only the idc channels are read */
        for (int64_t k = 0; st == SL_OK && k < K; k++)
            if (!sl_all_finite(dist + (n * C + idc[k]) * S, S, cx->threads))
                st = sl_errf(msg, msglen, SL_ENONFINITE,
                             "boundary: the distance maps (--dist) contain NaN or Inf in sample %lld, class %lld",
                             (long long)n, (long long)idc[k]);
    const double total = sl_mask_total(cx);
    if (st == SL_OK && !(total > 0)) { /* a mask of zeros: nothing counts, as ce */
        free(idc);
        *value = 0;
        return SL_OK;
    }
    double *part = st == SL_OK ? sl_calloc(N * K * nch, sizeof(double)) : NULL;
    if (st == SL_OK && !part) st = sl_errf(msg, msglen, SL_ENOMEM, "boundary: out of memory");
    if (st == SL_OK) {
        /* the mean over voxels: N·S voxels, or Σ m with a mask */
        const double inv = 1.0 / ((double)K * total);
        bnd_jobs jobs = {cx, idc, K, nch, cx->scale * inv, part};
        size_t scratch = dist ? 0 : (size_t)((S + 63) / 64) * 64 + (size_t)S * sizeof(float);
        st = slb_run_jobs(N * K, cx->threads, scratch, bnd_job, &jobs, msg, msglen);
        if (st == SL_OK) *value = sl_sum_ordered(part, N * K * nch) * inv;
    }
    free(part);
    free(idc);
    return st;
}

static sl_status validate_boundary(const sl_params *p, char *msg, size_t msglen)
{
    const sl_list *l = &p->alpha_list;
    for (int i = 0; i < l->n; i++) {
        if (l->v[i] != floor(l->v[i]))
            return sl_errf(msg, msglen, SL_EINVAL, "boundary: idc entries are class indices, got %g", l->v[i]);
        for (int k = 0; k < i; k++)
            if (l->v[k] == l->v[i])
                return sl_errf(msg, msglen, SL_EINVAL, "boundary: idc lists class %g twice", l->v[i]);
    }
    return SL_OK;
}

static const sl_key boundary_keys[] = {
    SL_KEY_ACTIVATION,
    {"idc", SL_KEY_LIST, SL_P(alpha_list), 0, 0, 1e6, NULL,
     "class indices averaged over [c0,c1,...]; default: every foreground class (1..C-1; the channel when C = 1)"},
    SL_KEY_END};

const sl_term_class sl_loss_boundary = {
    {"boundary", "boundary", "mean of p·φ, φ = signed distance map of the target (negative inside)",
     "Kervadec et al. 2019 (MIDL); matches LIVIAETS/boundary-loss SurfaceLoss with one_hot2dist(resolution=spacing)"},
    boundary_keys, SL_TAKES_MASK, validate_boundary, eval_boundary, NULL};
