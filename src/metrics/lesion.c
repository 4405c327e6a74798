/*
 * Lesion-wise detection: connected components of G (target lesions) and of
 * P (predicted lesions), matched through their voxel overlaps.
 *
 * For a target lesion g, let U(g) be the union of the predicted components
 * that touch it. Then |g ∩ U(g)| = |g ∩ P| (every predicted voxel inside g
 * belongs to a component touching g), so all the per-lesion numbers come
 * from the table of pairwise overlaps ov(g, p), gathered in one pass over
 * the voxels where both label images are non-zero:
 *   detected (overlap rule): max_p ov(g, p) >= min_overlap
 *   detected (IoU rule):     |g ∩ P| / (|g| + |U(g)| - |g ∩ P|) >= t
 *   per-lesion Dice:         2 |g ∩ P| / (|g| + |U(g)|)   (0 when missed)
 * and symmetrically a predicted component is matched (a true positive) when
 * it meets the same rule against the target components; unmatched ones are
 * the false positives. Lesion F1 = 2 TP / (2 TP + FP + FN) with TP counted
 * on targets and FP on predictions, as in lesion-wise challenge scoring
 * (e.g. MSSEG-2, autoPET): a prediction split in two pieces over one
 * lesion is one TP and no FP.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "metrics_internal.h"

/* Overlap table: (g, p) -> count, open addressing on the packed key. */
typedef struct pair_map {
    uint64_t *key; /* g << 32 | p, 0 = empty slot (labels start at 1) */
    int64_t *cnt;
    int64_t cap, n;
} pair_map;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static int pm_grow(pair_map *m)
{
    int64_t nc = m->cap ? m->cap * 2 : 256;
    uint64_t *nk = calloc((size_t)nc, sizeof(uint64_t));
    int64_t *nv = calloc((size_t)nc, sizeof(int64_t));
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return 0;
    }
    for (int64_t i = 0; i < m->cap; i++)
        if (m->key[i]) {
            uint64_t h = mix64(m->key[i]) & (uint64_t)(nc - 1);
            while (nk[h]) h = (h + 1) & (uint64_t)(nc - 1);
            nk[h] = m->key[i];
            nv[h] = m->cnt[i];
        }
    free(m->key);
    free(m->cnt);
    m->key = nk;
    m->cnt = nv;
    m->cap = nc;
    return 1;
}

static int pm_add(pair_map *m, uint64_t k)
{
    if (2 * (m->n + 1) > m->cap && !pm_grow(m)) return 0;
    uint64_t h = mix64(k) & (uint64_t)(m->cap - 1);
    while (m->key[h] && m->key[h] != k) h = (h + 1) & (uint64_t)(m->cap - 1);
    if (!m->key[h]) {
        m->key[h] = k;
        m->n++;
    }
    m->cnt[h]++;
    return 1;
}

static int matched(int64_t size, int64_t inter, int64_t union_size, int64_t maxov, const sl_metric_opts *o)
{
    if (o->lesion_match == SL_LESION_IOU) {
        int64_t den = size + union_size - inter;
        return den > 0 && (double)inter / (double)den >= o->lesion_iou;
    }
    return maxov >= o->lesion_min_overlap;
}

sl_status slm_lesions(const uint8_t *pm, const uint8_t *gm, const slm_crop *c, const sl_metric_opts *o,
                      sl_lesion_report *rep)
{
    const slg_vol *v = &c->vol;
    int conn = slg_conn3(v->ndim, o->connectivity);
    int32_t *lp = sl_malloc(v->count, sizeof(int32_t)), *lg = sl_malloc(v->count, sizeof(int32_t));
    int64_t npred = 0, ngt = 0, *szp = NULL, *szg = NULL;
    int64_t *g_inter = NULL, *g_max = NULL, *g_union = NULL, *p_inter = NULL, *p_max = NULL, *p_union = NULL;
    pair_map map = {NULL, NULL, 0, 0};
    sl_status st = SL_ENOMEM;
    if (!lp || !lg) goto done;
    st = slg_components(pm, v, conn, lp, &npred, &szp, NULL);
    if (st != SL_OK) goto done;
    st = slg_components(gm, v, conn, lg, &ngt, &szg, NULL);
    if (st != SL_OK) goto done;
    st = SL_ENOMEM;
    for (int64_t i = 0; i < v->count; i++)
        if (lp[i] && lg[i] && !pm_add(&map, (uint64_t)lg[i] << 32 | (uint64_t)lp[i])) goto done;
    g_inter = calloc((size_t)ngt + 1, sizeof(int64_t));
    g_max = calloc((size_t)ngt + 1, sizeof(int64_t));
    g_union = calloc((size_t)ngt + 1, sizeof(int64_t));
    p_inter = calloc((size_t)npred + 1, sizeof(int64_t));
    p_max = calloc((size_t)npred + 1, sizeof(int64_t));
    p_union = calloc((size_t)npred + 1, sizeof(int64_t));
    if (!g_inter || !g_max || !g_union || !p_inter || !p_max || !p_union) goto done;
    for (int64_t i = 0; i < map.cap; i++) {
        if (!map.key[i]) continue;
        int64_t g = (int64_t)(map.key[i] >> 32) - 1, p = (int64_t)(map.key[i] & 0xffffffffu) - 1, k = map.cnt[i];
        g_inter[g] += k;
        g_union[g] += szp[p];
        if (k > g_max[g]) g_max[g] = k;
        p_inter[p] += k;
        p_union[p] += szg[g];
        if (k > p_max[p]) p_max[p] = k;
    }
    rep->n_gt = ngt;
    rep->n_pred = npred;
    rep->gt_size = malloc(((size_t)ngt + 1) * sizeof(int64_t));
    rep->gt_detected = malloc((size_t)ngt + 1);
    rep->gt_dice = malloc(((size_t)ngt + 1) * sizeof(double));
    rep->pred_size = malloc(((size_t)npred + 1) * sizeof(int64_t));
    rep->pred_matched = malloc((size_t)npred + 1);
    if (!rep->gt_size || !rep->gt_detected || !rep->gt_dice || !rep->pred_size || !rep->pred_matched) goto done;
    int64_t tp = 0, pm_ok = 0;
    double dsum = 0.0;
    for (int64_t g = 0; g < ngt; g++) {
        rep->gt_size[g] = szg[g];
        rep->gt_detected[g] = (uint8_t)matched(szg[g], g_inter[g], g_union[g], g_max[g], o);
        rep->gt_dice[g] = 2.0 * (double)g_inter[g] / (double)(szg[g] + g_union[g]);
        tp += rep->gt_detected[g];
        dsum += rep->gt_dice[g];
    }
    for (int64_t p = 0; p < npred; p++) {
        rep->pred_size[p] = szp[p];
        rep->pred_matched[p] = (uint8_t)matched(szp[p], p_inter[p], p_union[p], p_max[p], o);
        pm_ok += rep->pred_matched[p];
    }
    rep->tp = tp;
    rep->fn = ngt - tp;
    rep->fp = npred - pm_ok;
    /* empty-side rules of docs/metrics.md: both empty = 1, one empty = 0 */
    rep->precision = npred ? (double)pm_ok / (double)npred : (ngt ? 0.0 : 1.0);
    rep->recall = ngt ? (double)tp / (double)ngt : (npred ? 0.0 : 1.0);
    int64_t den = 2 * tp + rep->fp + rep->fn;
    rep->f1 = den ? 2.0 * (double)tp / (double)den : 1.0;
    rep->mean_dice = ngt ? dsum / (double)ngt : (npred ? 0.0 : 1.0);
    st = SL_OK;
done:
    free(lp);
    free(lg);
    free(szp);
    free(szg);
    free(g_inter);
    free(g_max);
    free(g_union);
    free(p_inter);
    free(p_max);
    free(p_union);
    free(map.key);
    free(map.cnt);
    if (st != SL_OK) sl_lesion_report_free(rep);
    return st;
}

void sl_lesion_report_free(sl_lesion_report *r)
{
    if (!r) return;
    free(r->gt_size);
    free(r->gt_detected);
    free(r->gt_dice);
    free(r->pred_size);
    free(r->pred_matched);
    memset(r, 0, sizeof *r);
}
