/*
 * boundary_aware — boundary-aware cross-entropy after Kim & Lee 2021
 * (docs/losses-boundary.md): voxels near a target boundary weigh p_boundary,
 * the others p_inner, and the weighted CE is normalised by the sum of the
 * weights:
 *
 *     w_s   = p_boundary if d_s <= width · min(spacing), else p_inner
 *     value = Σ_s w_s · CE_s / Σ_s w_s
 *
 * d_s is the distance (mm, opts->spacing; between voxel centres) from voxel
 * s to the nearest voxel of another target label, so the band covers
 * `width` voxels on each side of every boundary (along the finest axis;
 * with anisotropic spacing the band is that physical distance, fewer voxels
 * deep along the coarse axes). A sample with one label has no boundary: all
 * its voxels are inner. If every weight is 0 (p_inner = 0 and no boundary
 * anywhere) the value is 0 with no gradient.
 *
 * CE forms and targets as dpce (boundary_maps.c): softmax CE with one map
 * per sample from the label map (soft target: argmax), or per-channel binary
 * CE with one map per channel from g > 0.5.
 */
#include <stdlib.h>
#include "boundary_maps.h"

typedef struct {
    const sl_ctx *cx;
    int64_t K;
    double band, pb, pi;
    float *w;
} ba_jobs;

static sl_status ba_map(void *user, int64_t j, int threads, void *scratch, char *msg, size_t msglen)
{
    const ba_jobs *J = user;
    const sl_ctx *cx = J->cx;
    const int64_t S = cx->S;
    float *w = J->w + j * S;
    sl_grid g = slb_grid(cx);
    slb_hard_labels(cx, j / J->K, slb_binary_form(cx) ? j % J->K : -1, scratch);
    sl_status st;
    slb_label_distance(scratch, &g, threads, w, &st); /* +inf everywhere without a boundary */
    if (st != SL_OK) return sl_errf(msg, msglen, st, "boundary_aware: distance transform failed: %s", sl_strerror(st));
    const float pb = (float)J->pb, pi = (float)J->pi;
    for (int64_t s = 0; s < S; s++) w[s] = w[s] <= J->band ? pb : pi;
    return SL_OK;
}

static sl_status eval_ba(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const int64_t N = cx->N, S = cx->S, K = slb_binary_form(cx) ? cx->C : 1;
    double smin = cx->opts->spacing[0];
    for (int a = 1; a < cx->dims.spatial_ndim; a++) smin = cx->opts->spacing[a] < smin ? cx->opts->spacing[a] : smin;
    /* a hair above width·smin so that distances rounded in float32 stay in the band */
    ba_jobs J = {cx, K, t->prm.width * smin * (1 + 1e-6), t->prm.p_boundary, t->prm.p_inner,
                 sl_malloc(N * K * S, sizeof(float))};
    if (!J.w) return sl_errf(msg, msglen, SL_ENOMEM, "boundary_aware: out of memory for %lld maps", (long long)(N * K));
    sl_status st = slb_run_jobs(N * K, cx->threads, (size_t)S * sizeof(int32_t), ba_map, &J, msg, msglen);
    if (st == SL_OK) {
        st = slb_weighted_ce(cx, J.w, 1, value);
        if (st != SL_OK) sl_errf(msg, msglen, st, "boundary_aware: out of memory");
    }
    free(J.w);
    return st;
}

static sl_status ba_validate(const sl_params *p, char *msg, size_t msglen)
{
    if (p->p_boundary == 0 && p->p_inner == 0)
        return sl_errf(msg, msglen, SL_EINVAL, "boundary_aware: p_boundary and p_inner cannot both be 0");
    return SL_OK;
}

static const sl_key ba_keys[] = {
    SL_KEY_ACTIVATION,
    {"width", SL_KEY_INT, SL_P(width), 2, 1, 10000, NULL,
     "half-width of the boundary band in voxels (of the finest axis: width·min(spacing) mm)"},
    {"p_boundary", SL_KEY_NUMBER, SL_P(p_boundary), 2, 0, 1e6, NULL, "weight of voxels in the band"},
    {"p_inner", SL_KEY_NUMBER, SL_P(p_inner), 1, 0, 1e6, NULL, "weight of the other voxels"},
    SL_KEY_END};

const sl_term_class sl_loss_boundary_aware = {
    {"boundary_aware", "boundary", "CE weighted p_boundary within width voxels of a target boundary, p_inner elsewhere",
     "Kim & Lee 2021; normalised by the sum of the weights (p_boundary = p_inner gives ce)"},
    ba_keys, SL_NEEDS_LOGP | SL_TAKES_MASK, ba_validate, eval_ba, NULL};
