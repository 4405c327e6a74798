/*
 * dpce — distance-map penalised cross-entropy of Caliva, Iriondo, Martinez,
 * Majumdar & Pedoia, "Distance map loss penalty term for semantic
 * segmentation", MIDL 2019 (extended abstract). No reference implementation
 * is published with it; this follows the paper's form, CE weighted per voxel
 * by (1 + Φ), with Φ = λ·D as docs/losses-boundary.md defines it:
 *
 *     w_s   = 1 + λ · D_s,   D_s = 1 − d_s / d_max
 *     value = Σ_s w_s · CE_s / (number of terms)          (λ = 0 is `ce` exactly)
 *
 * d_s is the distance (mm, opts->spacing; between voxel centres) from voxel
 * s to the nearest voxel of another target label — so voxels on either side
 * of a boundary have d = one voxel spacing and D close to 1, the deepest
 * voxel has D = 0 — and d_max its largest value in the sample. A sample
 * with a single label has no boundary: D ≡ 0 there. The maps are computed
 * from the target only, without gradient.
 *
 * Multi-class form (softmax; activation=none with C > 1): CE_s = −Σ_c g_c
 * log p_c as PyTorch cross_entropy, averaged over the N·S voxels; the map
 * comes from the label map (a soft target: its argmax). Binary form
 * (sigmoid; activation=none with C = 1): per-channel binary CE averaged over
 * N·C·S terms, one map per channel from g > 0.5. See boundary_maps.c.
 */
#include <stdlib.h>
#include "boundary_maps.h"

typedef struct {
    const sl_ctx *cx;
    int64_t K; /* maps per sample: 1 (multi-class) or C (binary form) */
    double lambda;
    float *w;
} dpce_jobs;

static sl_status dpce_map(void *user, int64_t j, int threads, void *scratch, char *msg, size_t msglen)
{
    const dpce_jobs *J = user;
    const sl_ctx *cx = J->cx;
    const int64_t S = cx->S;
    float *w = J->w + j * S;
    sl_grid g = slb_grid(cx);
    slb_hard_labels(cx, j / J->K, slb_binary_form(cx) ? j % J->K : -1, scratch);
    sl_status st;
    if (!slb_label_distance(scratch, &g, threads, w, &st)) {
        for (int64_t s = 0; s < S; s++) w[s] = 1;
        return SL_OK;
    }
    if (st != SL_OK) return sl_errf(msg, msglen, st, "dpce: distance transform failed: %s", sl_strerror(st));
    float dmax = 0;
    for (int64_t s = 0; s < S; s++) dmax = w[s] > dmax ? w[s] : dmax;
    for (int64_t s = 0; s < S; s++) w[s] = (float)(1 + J->lambda * (1 - (double)w[s] / dmax));
    return SL_OK;
}

static sl_status eval_dpce(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const int64_t N = cx->N, S = cx->S, K = slb_binary_form(cx) ? cx->C : 1;
    dpce_jobs J = {cx, K, t->prm.lambda, sl_malloc(N * K * S, sizeof(float))};
    if (!J.w) return sl_errf(msg, msglen, SL_ENOMEM, "dpce: out of memory for %lld distance maps", (long long)(N * K));
    sl_status st = slb_run_jobs(N * K, cx->threads, (size_t)S * sizeof(int32_t), dpce_map, &J, msg, msglen);
    if (st == SL_OK) {
        st = slb_weighted_ce(cx, J.w, 0, value);
        if (st != SL_OK) sl_errf(msg, msglen, st, "dpce: out of memory");
    }
    free(J.w);
    return st;
}

static const sl_key dpce_keys[] = {
    SL_KEY_ACTIVATION,
    {"lambda", SL_KEY_NUMBER, SL_P(lambda), 1, 0, 1e6, NULL, "weight of the distance penalty: w = 1 + λ(1 − d/d_max)"},
    SL_KEY_END};

const sl_term_class sl_loss_dpce = {
    {"dpce", "distribution", "cross-entropy weighted per voxel by 1 + λ(1 − d/d_max), d = distance to the target boundary",
     "Caliva et al. 2019 (MIDL); lambda=0 equals ce / PyTorch cross_entropy"},
    dpce_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, NULL, eval_dpce, NULL};
