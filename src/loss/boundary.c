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
    int64_t K;
    float *phi; /* (N, K, S) */
} bnd_jobs;

/* Job j = (sample j / K, class idc[j % K]): scratch is the class mask. */
static sl_status bnd_map(void *user, int64_t j, int threads, void *scratch, char *msg, size_t msglen)
{
    const bnd_jobs *b = user;
    const sl_ctx *cx = b->cx;
    uint8_t *m = scratch;
    int64_t n = j / b->K, c = b->idc[j % b->K];
    slb_target_mask(cx, n, c, m);
    sl_grid g = slb_grid(cx);
    sl_edt_opts o = {SL_EDT_SIGNED_KERVADEC, threads};
    return sl_edt(m, SL_DT_U8, &g, &o, b->phi + j * cx->S, SL_DT_F32, msg, msglen);
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

typedef struct {
    double v;
} bnd_part;

static sl_status eval_boundary(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    int64_t *idc = sl_calloc(C > SL_LIST_MAX ? C : SL_LIST_MAX, sizeof(int64_t));
    if (!idc) return sl_errf(msg, msglen, SL_ENOMEM, "boundary: out of memory");
    int64_t K = 0;
    sl_status st = resolve_idc(t, cx, idc, &K, msg, msglen);
    if (st != SL_OK) {
        free(idc);
        return st;
    }
    const float *dist = cx->opts->dist;
    float *phi = NULL;
    if (dist) {
        /* the caller's maps: only the channels in idc are read */
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++)
                if (!sl_all_finite(dist + (n * C + idc[k]) * S, S, cx->threads)) {
                    long long bad = (long long)idc[k];
                    free(idc);
                    return sl_errf(msg, msglen, SL_ENONFINITE,
                                   "boundary: the distance maps (--dist) contain NaN or Inf in sample %lld, class %lld",
                                   (long long)n, bad);
                }
    } else {
        phi = sl_malloc(N * K * S, sizeof(float));
        if (!phi) {
            free(idc);
            return sl_errf(msg, msglen, SL_ENOMEM, "boundary: out of memory for %lld distance maps", (long long)(N * K));
        }
        bnd_jobs jobs = {cx, idc, K, phi};
        st = slb_run_jobs(N * K, cx->threads, (size_t)S, bnd_map, &jobs, msg, msglen);
        if (st != SL_OK) {
            free(phi);
            free(idc);
            return st;
        }
    }
    bnd_part *part = sl_calloc(N * K * nch, sizeof(bnd_part));
    if (!part) {
        free(phi);
        free(idc);
        return sl_errf(msg, msglen, SL_ENOMEM, "boundary: out of memory");
    }
    const double inv = 1.0 / ((double)N * (double)K * (double)S), k0 = cx->scale * inv;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t j = 0; j < N * K; j++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            int64_t n = j / K, c = idc[j % K];
            const float *f = dist ? dist + (n * C + c) * S : phi + j * S;
            const float *p = cx->p + (n * C + c) * S;
            float *dp = cx->dp ? cx->dp + (n * C + c) * S : NULL;
            double acc = 0;
            for (int64_t s = a; s < b; s++) acc += (double)p[s] * f[s];
            if (dp)
                for (int64_t s = a; s < b; s++) dp[s] += (float)(k0 * f[s]);
            part[j * nch + ch].v = acc;
        }
    double sum = 0;
    for (int64_t i = 0; i < N * K * nch; i++) sum += part[i].v;
    free(part);
    free(phi);
    free(idc);
    *value = sum * inv;
    return SL_OK;
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
    boundary_keys, 0, validate_boundary, eval_boundary, NULL};
