/*
 * Instance matching and panoptic quality (Kirillov et al., "Panoptic
 * segmentation", CVPR 2019), with the matching rules and the smoothing of
 * MONAI's compute_panoptic_quality (monai/metrics/panoptic_quality.py).
 *
 * One pass over the voxels maps every id to a compact index (binary search
 * in the sorted distinct ids) and counts the overlap of every (target,
 * predicted) pair that shares a voxel in a hash table; only those pairs can
 * have IoU > 0. The matching then works on that sparse list: the unique
 * rule and the greedy rule directly, the Hungarian method on each connected
 * group of overlapping instances (pairs that share no voxel contribute
 * nothing to the total, so the optimum splits by group).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "families_internal.h"
#include "internal.h"

/* One overlapping pair: compact indices and the intersection size. */
typedef struct ipair {
    int64_t g, p, inter;
    double iou;
} ipair;

/* ---- distinct ids ------------------------------------------------------------ */

/* Sorted distinct non-zero ids of a map (*ids owned by the caller). */
static sl_status nonzero_ids(const sl_labelmap *m, int64_t n, int64_t **ids, int64_t *count, char *msg,
                             size_t msglen)
{
    int64_t total;
    sl_status st = sl_labels_unique(m, n, NULL, 0, &total, msg, msglen);
    if (st != SL_OK) return st;
    int64_t *all = sl_malloc(total > 0 ? total : 1, sizeof *all);
    if (!all) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory for %lld ids", (long long)total);
    st = sl_labels_unique(m, n, all, total, &total, msg, msglen);
    if (st != SL_OK) {
        free(all);
        return st;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < total; i++)
        if (all[i] != 0) all[k++] = all[i];
    *ids = all;
    *count = k;
    return SL_OK;
}

/* Index of id in the sorted ids[0..k), which holds it. */
static int64_t id_index(const int64_t *ids, int64_t k, int64_t id)
{
    int64_t lo = 0, hi = k - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* ---- pair counting: open addressing on key = g * np + p + 1 (0 = empty) ---- */

typedef struct pair_table {
    uint64_t *key;
    int64_t *count;
    int64_t cap, used;
} pair_table;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static int table_init(pair_table *t, int64_t cap)
{
    t->cap = cap;
    t->used = 0;
    t->key = sl_calloc(cap, sizeof *t->key);
    t->count = sl_calloc(cap, sizeof *t->count);
    return t->key && t->count;
}

static void table_free(pair_table *t)
{
    free(t->key);
    free(t->count);
    t->key = NULL;
    t->count = NULL;
}

static int table_add(pair_table *t, uint64_t key);

static int table_grow(pair_table *t)
{
    pair_table big;
    if (!table_init(&big, t->cap * 2)) {
        table_free(&big);
        return 0;
    }
    for (int64_t i = 0; i < t->cap; i++)
        if (t->key[i]) {
            uint64_t h = mix(t->key[i]) & (uint64_t)(big.cap - 1);
            while (big.key[h]) h = (h + 1) & (uint64_t)(big.cap - 1);
            big.key[h] = t->key[i];
            big.count[h] = t->count[i];
            big.used++;
        }
    table_free(t);
    *t = big;
    return 1;
}

static int table_add(pair_table *t, uint64_t key)
{
    uint64_t h = mix(key) & (uint64_t)(t->cap - 1);
    while (t->key[h] && t->key[h] != key) h = (h + 1) & (uint64_t)(t->cap - 1);
    if (!t->key[h]) {
        if (2 * (t->used + 1) > t->cap) {
            if (!table_grow(t)) return 0;
            return table_add(t, key);
        }
        t->key[h] = key;
        t->used++;
    }
    t->count[h]++;
    return 1;
}

/* ---- the Hungarian method (minimum cost, rows <= columns) ------------------------ */

/* a: rows x cols cost matrix (row-major), rows <= cols; assign[r] = column
 * of row r. The classic O(rows^2 cols) potentials method (Kuhn 1955,
 * Munkres 1957, in the shortest-augmenting-path form of Jonker–Volgenant). */
static int hungarian(const double *a, int64_t rows, int64_t cols, int64_t *assign)
{
    double *u = sl_calloc(rows + 1, sizeof *u), *v = sl_calloc(cols + 1, sizeof *v);
    double *minv = sl_malloc(cols + 1, sizeof *minv);
    int64_t *p = sl_calloc(cols + 1, sizeof *p), *way = sl_calloc(cols + 1, sizeof *way);
    unsigned char *used = sl_malloc(cols + 1, 1);
    int ok = u && v && minv && p && way && used;
    for (int64_t i = 1; ok && i <= rows; i++) {
        p[0] = i;
        int64_t j0 = 0;
        for (int64_t j = 0; j <= cols; j++) minv[j] = INFINITY, used[j] = 0;
        do {
            used[j0] = 1;
            int64_t i0 = p[j0], j1 = 0;
            double delta = INFINITY;
            for (int64_t j = 1; j <= cols; j++)
                if (!used[j]) {
                    double cur = a[(i0 - 1) * cols + (j - 1)] - u[i0] - v[j];
                    if (cur < minv[j]) minv[j] = cur, way[j] = j0;
                    if (minv[j] < delta) delta = minv[j], j1 = j;
                }
            for (int64_t j = 0; j <= cols; j++)
                if (used[j]) u[p[j]] += delta, v[j] -= delta;
                else minv[j] -= delta;
            j0 = j1;
        } while (p[j0] != 0);
        do {
            int64_t j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    if (ok)
        for (int64_t j = 1; j <= cols; j++)
            if (p[j]) assign[p[j] - 1] = j - 1;
    free(u);
    free(v);
    free(minv);
    free(p);
    free(way);
    free(used);
    return ok;
}

static int64_t uf_find(int64_t *parent, int64_t x)
{
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
}

/* Maximal total IoU assignment, group by group; sets take[k] for the
 * chosen pairs (before the threshold). */
static sl_status match_hungarian(const ipair *pr, int64_t npair, int64_t ng, int64_t np_, unsigned char *take)
{
    int64_t *parent = sl_malloc(ng + np_, sizeof *parent);
    int64_t *order = sl_malloc(npair > 0 ? npair : 1, sizeof *order);
    int64_t *gl = sl_malloc(ng + np_, sizeof *gl); /* local index of a node in its group */
    if (!parent || !order || !gl) {
        free(parent);
        free(order);
        free(gl);
        return SL_ENOMEM;
    }
    for (int64_t i = 0; i < ng + np_; i++) parent[i] = i, gl[i] = -1;
    for (int64_t k = 0; k < npair; k++) {
        int64_t a = uf_find(parent, pr[k].g), b = uf_find(parent, ng + pr[k].p);
        if (a != b) parent[a] = b;
    }
    /* pairs ordered by group root (counting sort by root) */
    int64_t *start = sl_calloc(ng + np_ + 1, sizeof *start);
    if (!start) {
        free(parent);
        free(order);
        free(gl);
        return SL_ENOMEM;
    }
    for (int64_t k = 0; k < npair; k++) start[uf_find(parent, pr[k].g) + 1]++;
    for (int64_t r = 0; r < ng + np_; r++) start[r + 1] += start[r];
    int64_t *fill = sl_malloc(ng + np_ + 1, sizeof *fill);
    if (!fill) {
        free(parent);
        free(order);
        free(gl);
        free(start);
        return SL_ENOMEM;
    }
    memcpy(fill, start, (size_t)(ng + np_ + 1) * sizeof *fill);
    for (int64_t k = 0; k < npair; k++) order[fill[uf_find(parent, pr[k].g)]++] = k;
    free(fill);
    sl_status st = SL_OK;
    for (int64_t r = 0; r < ng + np_ && st == SL_OK; r++) {
        int64_t s = start[r], e = start[r + 1];
        if (s == e) continue;
        /* local numbering of the group's targets (rows) and predictions */
        int64_t nr = 0, nc = 0;
        for (int64_t q = s; q < e; q++) {
            const ipair *x = &pr[order[q]];
            if (gl[x->g] < 0) gl[x->g] = nr++;
            if (gl[ng + x->p] < 0) gl[ng + x->p] = nc++;
        }
        int flip = nr > nc; /* the method wants rows <= columns */
        int64_t R = flip ? nc : nr, Cn = flip ? nr : nc;
        double *cost = sl_calloc(R * Cn, sizeof *cost);
        int64_t *as = sl_malloc(R, sizeof *as);
        if (cost && as)
            for (int64_t q = s; q < e; q++) {
                const ipair *x = &pr[order[q]];
                int64_t row = flip ? gl[ng + x->p] : gl[x->g], col = flip ? gl[x->g] : gl[ng + x->p];
                cost[row * Cn + col] = -x->iou; /* minimal cost = maximal IoU */
            }
        if (!cost || !as || !hungarian(cost, R, Cn, as)) st = SL_ENOMEM;
        if (st == SL_OK)
            for (int64_t q = s; q < e; q++) {
                const ipair *x = &pr[order[q]];
                int64_t row = flip ? gl[ng + x->p] : gl[x->g], col = flip ? gl[x->g] : gl[ng + x->p];
                if (as[row] == col) take[order[q]] = 1;
            }
        free(cost);
        free(as);
    }
    free(parent);
    free(order);
    free(gl);
    free(start);
    return st;
}

/* ---- the evaluation -------------------------------------------------------------- */

static int cmp_greedy(const void *a, const void *b)
{
    const ipair *x = a, *y = b;
    if (x->iou != y->iou) return x->iou > y->iou ? -1 : 1;
    if (x->g != y->g) return x->g < y->g ? -1 : 1;
    return (x->p > y->p) - (x->p < y->p);
}

static int cmp_by_target(const void *a, const void *b)
{
    const ipair *x = a, *y = b;
    if (x->g != y->g) return x->g < y->g ? -1 : 1;
    return (x->p > y->p) - (x->p < y->p);
}

static sl_status opts_check(const sl_instance_opts *o, char *msg, size_t msglen)
{
    if (o->match != SL_INST_MONAI && o->match != SL_INST_GREEDY && o->match != SL_INST_HUNGARIAN)
        return sl_errf(msg, msglen, SL_EINVAL, "unknown instance matching %d", (int)o->match);
    if (!(o->iou_threshold >= 0.0 && o->iou_threshold <= 1.0))
        return sl_errf(msg, msglen, SL_EINVAL, "iou_threshold must be in [0, 1] (got %g)", o->iou_threshold);
    if (!(o->smooth >= 0.0) || !isfinite(o->smooth))
        return sl_errf(msg, msglen, SL_EINVAL, "smooth must be finite and >= 0 (got %g)", o->smooth);
    return SL_OK;
}

sl_status sl_instances_eval(const sl_labelmap *pred, const sl_labelmap *gt, int64_t n,
                            const sl_instance_opts *opts, sl_instance_result *out,
                            sl_instance_pairs *pairs, char *msg, size_t msglen)
{
    sl_instance_opts o = SL_INSTANCE_OPTS_DEFAULT;
    if (opts) o = *opts;
    if (!pred || !gt || !pred->data || !gt->data || !out || n < 1)
        return sl_errf(msg, msglen, SL_EINVAL, "instances: pred, gt, out and n >= 1 are required");
    if (!slm_dtype_ok(pred->dtype) || !slm_dtype_ok(gt->dtype))
        return sl_errf(msg, msglen, SL_EDTYPE, "instances: unknown dtype");
    sl_status st = opts_check(&o, msg, msglen);
    if (st != SL_OK) return st;
    if (pairs) *pairs = (sl_instance_pairs)SL_INSTANCE_PAIRS_EMPTY;

    int64_t *gid = NULL, *pid = NULL, ng = 0, np_ = 0;
    st = nonzero_ids(gt, n, &gid, &ng, msg, msglen);
    if (st == SL_OK) st = nonzero_ids(pred, n, &pid, &np_, msg, msglen);
    if (st != SL_OK) {
        free(gid);
        free(pid);
        return st;
    }
    int64_t *gsize = sl_calloc(ng + 1, sizeof *gsize), *psize = sl_calloc(np_ + 1, sizeof *psize);
    pair_table tab = {NULL, NULL, 0, 0};
    ipair *pr = NULL;
    unsigned char *take = NULL;
    int64_t npair = 0;
    if (!gsize || !psize || !table_init(&tab, 1024)) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "instances: out of memory");
        goto done;
    }
    /* one pass: sizes and pair overlaps (ids were validated by
     * sl_labels_unique, so every value reads as an integer) */
    for (int64_t i = 0; i < n; i++) {
        int64_t a, b;
        slm_label_at(gt, i, &a);
        slm_label_at(pred, i, &b);
        int64_t gi = a ? id_index(gid, ng, a) : -1, pi = b ? id_index(pid, np_, b) : -1;
        if (gi >= 0) gsize[gi]++;
        if (pi >= 0) psize[pi]++;
        if (gi >= 0 && pi >= 0 && !table_add(&tab, (uint64_t)gi * (uint64_t)np_ + (uint64_t)pi + 1u)) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "instances: out of memory for the overlap table");
            goto done;
        }
    }
    pr = sl_malloc(tab.used > 0 ? tab.used : 1, sizeof *pr);
    take = sl_calloc(tab.used > 0 ? tab.used : 1, 1);
    if (!pr || !take) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "instances: out of memory");
        goto done;
    }
    for (int64_t h = 0; h < tab.cap; h++)
        if (tab.key[h]) {
            uint64_t k = tab.key[h] - 1u;
            ipair *x = &pr[npair++];
            x->g = (int64_t)(k / (uint64_t)np_);
            x->p = (int64_t)(k % (uint64_t)np_);
            x->inter = tab.count[h];
            x->iou = (double)x->inter / (double)(gsize[x->g] + psize[x->p] - x->inter);
        }
    /* a fixed order independent of the hash layout */
    qsort(pr, (size_t)npair, sizeof *pr, cmp_by_target);

    const double t = o.iou_threshold;
    sl_instance_match m = o.match;
    if (m == SL_INST_MONAI) m = t >= 0.5 ? SL_INST_MONAI : SL_INST_HUNGARIAN;
    if (m == SL_INST_MONAI) {
        /* above 0.5 a target and a prediction overlap by more than half of
         * their union, so each has at most one such partner */
        for (int64_t k = 0; k < npair; k++) take[k] = pr[k].iou > t;
    } else if (m == SL_INST_GREEDY) {
        ipair *sorted = sl_malloc(npair > 0 ? npair : 1, sizeof *sorted);
        unsigned char *gu = sl_calloc(ng + 1, 1), *pu = sl_calloc(np_ + 1, 1);
        if (!sorted || !gu || !pu) {
            free(sorted);
            free(gu);
            free(pu);
            st = sl_errf(msg, msglen, SL_ENOMEM, "instances: out of memory");
            goto done;
        }
        memcpy(sorted, pr, (size_t)npair * sizeof *pr);
        qsort(sorted, (size_t)npair, sizeof *sorted, cmp_greedy);
        /* take pairs by decreasing IoU while both ends are free; mark each
         * in pr (sorted by target, then prediction) found by its two ends */
        for (int64_t k = 0; k < npair && sorted[k].iou > t; k++)
            if (!gu[sorted[k].g] && !pu[sorted[k].p]) {
                gu[sorted[k].g] = pu[sorted[k].p] = 1;
                const ipair *hit = bsearch(&sorted[k], pr, (size_t)npair, sizeof *pr, cmp_by_target);
                take[hit - pr] = 1;
            }
        free(sorted);
        free(gu);
        free(pu);
    } else {
        st = match_hungarian(pr, npair, ng, np_, take);
        if (st != SL_OK) {
            st = sl_errf(msg, msglen, st, "instances: out of memory in the assignment");
            goto done;
        }
        for (int64_t k = 0; k < npair; k++) take[k] = take[k] && pr[k].iou > t;
    }

    memset(out, 0, sizeof *out);
    out->n_gt = ng;
    out->n_pred = np_;
    for (int64_t k = 0; k < npair; k++)
        if (take[k]) {
            out->tp++;
            out->iou_sum += pr[k].iou;
        }
    out->fp = np_ - out->tp;
    out->fn = ng - out->tp;
    {
        const double tp = (double)out->tp, half = 0.5 * (double)out->fp + 0.5 * (double)out->fn;
        out->sq = out->iou_sum / (tp + o.smooth);
        out->rq = tp / (tp + half + o.smooth);
        out->pq = out->iou_sum / (tp + half + o.smooth);
        /* 0 / 0 (nothing on either side, smooth = 0) is 0, as with smoothing */
        if (isnan(out->sq)) out->sq = 0.0;
        if (isnan(out->rq)) out->rq = 0.0;
        if (isnan(out->pq)) out->pq = 0.0;
    }
    if (pairs && out->tp > 0) {
        pairs->gt_id = sl_malloc(out->tp, sizeof *pairs->gt_id);
        pairs->pred_id = sl_malloc(out->tp, sizeof *pairs->pred_id);
        pairs->iou = sl_malloc(out->tp, sizeof *pairs->iou);
        if (!pairs->gt_id || !pairs->pred_id || !pairs->iou) {
            sl_instance_pairs_free(pairs);
            st = sl_errf(msg, msglen, SL_ENOMEM, "instances: out of memory for the pairs");
            goto done;
        }
        for (int64_t k = 0; k < npair; k++)
            if (take[k]) {
                pairs->gt_id[pairs->n] = gid[pr[k].g];
                pairs->pred_id[pairs->n] = pid[pr[k].p];
                pairs->iou[pairs->n++] = pr[k].iou;
            }
    }
done:
    free(gid);
    free(pid);
    free(gsize);
    free(psize);
    table_free(&tab);
    free(pr);
    free(take);
    return st;
}

sl_status sl_instances_eval_label(const sl_labelmap *pred, const sl_labelmap *gt, const sl_grid *grid,
                                  int64_t label, int connectivity, const sl_instance_opts *opts,
                                  sl_instance_result *out, char *msg, size_t msglen)
{
    if (!pred || !gt || !grid || !out) return sl_errf(msg, msglen, SL_EINVAL, "instances: NULL argument");
    if (grid->ndim < 1 || grid->ndim > SL_MAX_SPATIAL) return sl_errf(msg, msglen, SL_ESHAPE, "instances: invalid grid");
    int64_t n = 1;
    for (int a = 0; a < grid->ndim; a++)
        if (grid->shape[a] < 1 || sl_mul_size(n, grid->shape[a], &n) != SL_OK)
            return sl_errf(msg, msglen, SL_ESHAPE, "instances: invalid grid");
    uint8_t *mp = sl_malloc(n, 1), *mg = sl_malloc(n, 1);
    int32_t *lp = sl_malloc(n, sizeof *lp), *lg = sl_malloc(n, sizeof *lg);
    sl_status st = SL_OK;
    if (!mp || !mg || !lp || !lg) st = sl_errf(msg, msglen, SL_ENOMEM, "instances: out of memory");
    if (st == SL_OK) st = sl_mask_from_labels(pred, n, label, mp, NULL);
    if (st == SL_OK) st = sl_mask_from_labels(gt, n, label, mg, NULL);
    if (st != SL_OK && st != SL_ENOMEM) st = sl_errf(msg, msglen, st, "instances: bad label map");
    if (st == SL_OK) st = sl_components_label(mp, grid, connectivity, lp, NULL, msg, msglen);
    if (st == SL_OK) st = sl_components_label(mg, grid, connectivity, lg, NULL, msg, msglen);
    if (st == SL_OK) {
        sl_labelmap ip = {lp, SL_DT_I32}, ig = {lg, SL_DT_I32};
        st = sl_instances_eval(&ip, &ig, n, opts, out, NULL, msg, msglen);
    }
    free(mp);
    free(mg);
    free(lp);
    free(lg);
    return st;
}

void sl_instance_pairs_free(sl_instance_pairs *p)
{
    if (!p) return;
    free(p->gt_id);
    free(p->pred_id);
    free(p->iou);
    *p = (sl_instance_pairs)SL_INSTANCE_PAIRS_EMPTY;
}

const char *sl_instance_match_name(sl_instance_match m)
{
    switch (m) {
    case SL_INST_MONAI: return "monai";
    case SL_INST_GREEDY: return "greedy";
    case SL_INST_HUNGARIAN: return "hungarian";
    }
    return "unknown";
}

sl_status sl_instance_match_parse(const char *name, sl_instance_match *out)
{
    if (!name || !out) return SL_EINVAL;
    static const sl_instance_match all[] = {SL_INST_MONAI, SL_INST_GREEDY, SL_INST_HUNGARIAN};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, sl_instance_match_name(all[i])) == 0) {
            *out = all[i];
            return SL_OK;
        }
    return SL_EUNKNOWN;
}
