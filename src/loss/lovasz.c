/*
 * Lovász losses (Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: A
 * tractable surrogate for the optimization of the intersection-over-union
 * measure in neural networks", CVPR 2018; matches the authors' reference
 * implementation lovasz_losses.py: lovasz_softmax and lovasz_hinge).
 *
 * The Lovász extension of the Jaccard loss of one class over a set of P
 * voxels with errors e_i and foreground g_i: sort the errors in decreasing
 * order (permutation π), then
 *     I_k = Σg − Σ_{j≤k} g_π(j),   U_k = Σg + Σ_{j≤k} (1 − g_π(j)),
 *     J_k = 1 − I_k / U_k,   δ_1 = J_1, δ_k = J_k − J_{k−1},
 *     loss = Σ_k f(e_π(k)) δ_k.
 * The δ depend only on the order, so the loss is piecewise linear in the
 * errors and its gradient is ∂loss/∂e_i = f'(e_i) δ_rank(i) — exact, not a
 * subgradient approximation, away from ties of the errors.
 *
 * lovasz-softmax (softmax, C > 1; activation=none takes probabilities, any C):
 *     e_i = |g_ic − p_ic|, f = identity; mean over the classes present in the
 *     group (Σg_c > 0; classes=all: every class). No class present: 0.
 *     ∂e/∂p = sign(p − g) (0 where p = g, as autograd's abs).
 * lovasz hinge (sigmoid: C = 1 by default, or activation=sigmoid, each
 *     channel one binary problem on its logits): s = 2g − 1,
 *     e_i = 1 − x_i s_i, f = relu; ∂/∂x = −s δ where e > 0. Mean over
 *     channels; `classes` does not apply (background errors count).
 * Groups: the whole batch flattened (per_image=false, as the reference's
 * default), or each image on its own, then the mean over the N images
 * (per_image=true; an image with nothing present or all ignored adds 0).
 * ignore_index voxels are removed before sorting. A voxel mask m
 * (sl_target.mask) weights the set counts: I_k = Σ m·g − Σ_{j≤k} m·g_π(j),
 * U_k = Σ m·g + Σ_{j≤k} m·(1 − g_π(j)) (the Lovász extension of the
 * weighted Jaccard loss: weight w acts as w copies of the voxel, 0 removes
 * it; the order is that of the unweighted errors). Soft targets enter with
 * g ∈ [0, 1] in the same formulas (an extension; the paper has labels).
 * Ties of errors: broken by index (sample, voxel), lowest first, as a stable
 * sort does; the value does not depend on it.
 *
 * Sorting: a stable LSD radix sort on the 64-bit keys of the double errors
 * (passes whose byte is constant are skipped), O(P) per class; classes and
 * images run in parallel, each with its own slot, combined in order.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "term.h"

enum { LV_PRESENT = 0, LV_ALL = 1 };

/* Order-preserving map of a double to uint64, then inverted: ascending on
 * the result is descending on the doubles. */
static inline uint64_t desc_key(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    u = (u >> 63) ? ~u : (u | 0x8000000000000000ull);
    return ~u;
}

/* Sorts idx[0..n) stably by key (ascending); kb and ib are scratch of size
 * n. Passes swap the buffers, so it returns the array that holds the result. */
static int64_t *radix_sort(uint64_t *key, int64_t *idx, uint64_t *kb, int64_t *ib, int64_t n)
{
    if (n <= 32) { /* insertion sort, stable */
        for (int64_t i = 1; i < n; i++) {
            uint64_t k = key[i];
            int64_t v = idx[i], j = i;
            for (; j > 0 && key[j - 1] > k; j--) {
                key[j] = key[j - 1];
                idx[j] = idx[j - 1];
            }
            key[j] = k;
            idx[j] = v;
        }
        return idx;
    }
    int64_t cnt[256];
    for (int shift = 0; shift < 64; shift += 8) {
        memset(cnt, 0, sizeof cnt);
        for (int64_t i = 0; i < n; i++) cnt[(key[i] >> shift) & 255]++;
        if (cnt[(key[0] >> shift) & 255] == n) continue; /* byte constant: the pass changes nothing */
        int64_t sum = 0;
        for (int b = 0; b < 256; b++) {
            int64_t c = cnt[b];
            cnt[b] = sum;
            sum += c;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t d = cnt[(key[i] >> shift) & 255]++;
            kb[d] = key[i];
            ib[d] = idx[i];
        }
        uint64_t *tk = key;
        key = kb;
        kb = tk;
        int64_t *ti = idx;
        idx = ib;
        ib = ti;
    }
    return idx;
}

/* Positions 0..n) ordered by decreasing e, ties by position. */
static int64_t *sort_desc(const double *e, int64_t n, uint64_t *key, int64_t *idx, uint64_t *kb, int64_t *ib)
{
    for (int64_t i = 0; i < n; i++) {
        key[i] = desc_key(e[i]);
        idx[i] = i;
    }
    return radix_sort(key, idx, kb, ib, n);
}

/*
 * Hard targets (g ∈ {0, 1}) need less. The error is a monotone function of
 * one float per voxel within each of the two sets: e = 1 − p (g = 1) falls
 * as p rises, e = p (g = 0) rises with it (hinge: 1 − x and 1 + x). So each
 * set is sorted on 32-bit keys of that float (four 8-bit passes of 8 bytes
 * per element instead of eight of 16), the runs that rounding makes equal
 * in e (1 − p for p < 2^−29, say) are put back in index order, and the two
 * lists are merged on e's 64-bit key, ties by index: the same permutation
 * as the stable sort of all errors above.
 */
static inline uint32_t asc_key32(float v) /* order-preserving float → uint32 */
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u >> 31) ? ~u : (u | 0x80000000u);
}

/* Stable LSD radix sort of idx[0..n) by key (ascending), in place; kb, ib
 * scratch, free again on return. */
static void radix_sort32(uint32_t *key, int32_t *idx, uint32_t *kb, int32_t *ib, int64_t n)
{
    uint32_t *const key0 = key;
    int32_t *const idx0 = idx;
    int64_t cnt[4][256];
    memset(cnt, 0, sizeof cnt);
    for (int64_t i = 0; i < n; i++) /* all four histograms in one read */
        for (int d = 0; d < 4; d++) cnt[d][(key[i] >> (8 * d)) & 255]++;
    for (int d = 0; d < 4 && n > 0; d++) {
        int64_t *c = cnt[d];
        const int shift = 8 * d;
        if (c[(key[0] >> shift) & 255] == n) continue; /* byte constant: the pass changes nothing */
        int64_t sum = 0;
        for (int b = 0; b < 256; b++) {
            int64_t t = c[b];
            c[b] = sum;
            sum += t;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t q = c[(key[i] >> shift) & 255]++;
            kb[q] = key[i];
            ib[q] = idx[i];
        }
        uint32_t *tk = key;
        key = kb;
        kb = tk;
        int32_t *ti = idx;
        idx = ib;
        ib = ti;
    }
    if (key != key0) { /* an odd number of passes (some skipped): back in place */
        memcpy(key0, key, sizeof *key * (size_t)n);
        memcpy(idx0, idx, sizeof *idx * (size_t)n);
    }
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Puts the runs of equal error key ek of a sorted list o in index order. */
static void fix_runs(const uint64_t *ek, int32_t *o, int64_t n)
{
    for (int64_t a = 0; a < n;) {
        int64_t b = a + 1;
        while (b < n && ek[b] == ek[a]) b++;
        if (b - a > 1) qsort(o + a, (size_t)(b - a), sizeof *o, cmp_i32);
        a = b;
    }
}

/* The order of sort_desc for g ∈ {0, 1}: v[i] is p (or the logit x for the
 * hinge), e[i] the error. Writes the order to out; scratch as sort_desc's. */
static void sort_desc_hard(const double *e, const double *g, const float *v, int64_t n, int64_t *out, uint64_t *key,
                           uint64_t *kb, int64_t *ib)
{
    uint32_t *ka = (uint32_t *)key, *kx = (uint32_t *)kb;
    int32_t *ia = (int32_t *)ib, *ix = (int32_t *)ib + n;
    int64_t nf = 0;
    for (int64_t i = 0; i < n; i++) nf += g[i] != 0;
    int64_t f = 0, b = nf; /* foreground first: e falls as v rises (key ascending); background: key of −v order */
    for (int64_t i = 0; i < n; i++) {
        uint32_t k = asc_key32(v[i]);
        if (g[i] != 0) ka[f] = k, ia[f++] = (int32_t)i;
        else ka[b] = ~k, ia[b++] = (int32_t)i;
    }
    int32_t *fo = ia, *bo = ia + nf;
    radix_sort32(ka, ia, kx, ix, nf);
    radix_sort32(ka + nf, ia + nf, kx + nf, ix + nf, n - nf);
    /* the errors' keys in sorted order (one gather), over the key buffers no longer needed */
    uint64_t *ef = key, *eb = key + nf;
    for (int64_t q = 0; q < nf; q++) ef[q] = desc_key(e[fo[q]]);
    for (int64_t q = 0; q < n - nf; q++) eb[q] = desc_key(e[bo[q]]);
    fix_runs(ef, fo, nf);
    fix_runs(eb, bo, n - nf);
    int64_t i = 0, j = 0, k = 0;
    while (i < nf && j < n - nf) {
        const int first = ef[i] < eb[j] || (ef[i] == eb[j] && fo[i] < bo[j]);
        out[k++] = first ? fo[i++] : bo[j++];
    }
    while (i < nf) out[k++] = fo[i++];
    while (j < n - nf) out[k++] = bo[j++];
}

/* What the cumulative pass reads of voxel i, in one place: it visits the
 * voxels in error order, so each is one random access, not five. */
typedef struct {
    double wg, wn; /* w·g, w·(1 − g) */
    double f, de;  /* f(e), ∂e/∂input */
    int64_t pos;   /* element (n, c, s) */
} lv_el;

typedef struct {
    int64_t n0, n1; /* samples [n0, n1) of this group */
    int64_t c;      /* class / channel */
    double value;   /* the class's Lovász loss */
    int counted;    /* 1 when it enters the mean (present, or classes=all, or hinge) */
} lv_job;

/* One (group, class): gathers the valid voxels, sorts, computes the class's
 * loss and, when gbuf is given, writes ∂(class loss)/∂(input) at each of its
 * voxels to gbuf (scaled by the mean's weights once the counts are known). */
/* Scratch of one thread, reused by its jobs (fresh pages cost more than the sort). */
typedef struct {
    double *e, *g;
    lv_el *el;
    uint64_t *key, *kb;
    int64_t *idx, *ib;
    float *v; /* p (hinge: x) of each voxel, for sort_desc_hard */
} lv_scratch;

static int lv_scratch_alloc(lv_scratch *z, int64_t cap)
{
    z->e = sl_malloc(cap, sizeof(double)), z->g = sl_malloc(cap, sizeof(double));
    z->el = sl_malloc(cap, sizeof(lv_el));
    z->key = sl_malloc(cap, sizeof(uint64_t)), z->kb = sl_malloc(cap, sizeof(uint64_t));
    z->idx = sl_malloc(cap, sizeof(int64_t)), z->ib = sl_malloc(cap, sizeof(int64_t));
    z->v = sl_malloc(cap, sizeof(float));
    return z->e && z->g && z->el && z->key && z->kb && z->idx && z->ib && z->v;
}

static void lv_scratch_free(lv_scratch *z)
{
    free(z->e);
    free(z->g);
    free(z->el);
    free(z->key);
    free(z->kb);
    free(z->idx);
    free(z->ib);
    free(z->v);
}

static sl_status lv_run(const sl_ctx *cx, const sl_params *pr, int hinge, lv_job *jb, double *gbuf, int64_t cap,
                        const lv_scratch *z)
{
    const int64_t C = cx->C, S = cx->S;
    const int64_t c = jb->c;
    int64_t P = 0;
    double *e = z->e, *g = z->g;
    lv_el *el = z->el;
    uint64_t *key = z->key, *kb = z->kb;
    int64_t *idx = z->idx, *ib = z->ib;
    float *v = z->v;
    sl_status st = SL_OK;
    int hard = cap < INT32_MAX; /* every g is 0 or 1 (32-bit indices suffice) */
    if (st == SL_OK) {
        double gs = 0;
        for (int64_t n = jb->n0; n < jb->n1; n++)
            for (int64_t s = 0; s < S; s++) {
                double wv = sl_vw(cx, pr, n, s);
                if (wv == 0) continue;
                int64_t off = (n * C + c) * S + s;
                double gv = sl_g(cx, n, c, s);
                const double ev = hinge ? 1.0 - (double)cx->x[off] * (2 * gv - 1) : fabs(gv - (double)cx->p[off]);
                const double pv = cx->p ? cx->p[off] : 0.0;
                e[P] = ev;
                g[P] = gv;
                v[P] = hinge ? cx->x[off] : cx->p[off];
                hard &= gv == 0 || gv == 1;
                el[P].wg = wv * gv;
                el[P].wn = wv * (1 - gv);
                el[P].f = hinge ? (ev > 0 ? ev : 0) : ev;
                el[P].de = hinge ? (ev > 0 ? -(2 * gv - 1) : 0.0) : pv > gv ? 1.0 : pv < gv ? -1.0 : 0.0;
                el[P].pos = off;
                gs += wv * gv;
                P++;
            }
        jb->counted = hinge || pr->mode == LV_ALL || gs > 0;
        jb->value = 0;
        if (P > 0 && jb->counted) {
            const int64_t *order = idx;
            if (hard) sort_desc_hard(e, g, v, P, idx, key, kb, ib);
            else order = sort_desc(e, P, key, idx, kb, ib);
            double cum_g = 0, cum_ng = 0, Jprev = 0, val = 0;
            for (int64_t k = 0; k < P; k++) {
                const lv_el *q = &el[order[k]];
                cum_g += q->wg;
                cum_ng += q->wn;
                /* U > 0: with gs = 0 every g is 0 and the first step adds w > 0 to cum_ng */
                double U = gs + cum_ng, J = 1 - (gs - cum_g) / U;
                double d = J - Jprev;
                Jprev = J;
                val += q->f * d;
                if (gbuf) gbuf[q->pos] = q->de * d;
            }
            jb->value = val;
        }
    }
    return st;
}

/*
 * Label maps without a voxel mask (the usual case) need neither the errors
 * nor the weights per voxel: within the foreground of a class e = 1 − v and
 * within its background e = v (hinge: 1 + v), v the probability (hinge: the
 * logit), and every weight is 1. So each set is sorted once on 32-bit keys
 * of v carrying 32-bit voxel ids (16 bytes a voxel of scratch, not 92), the
 * errors are decoded from the sorted keys, the two lists are merged in error
 * order (ties by id, as the stable sort of lv_run) and the cumulative pass
 * writes weight·δ straight into the gradient at each voxel: no per-element
 * records, no double gradient buffer. The mean's weights are known first
 * from the label counts. Same permutation and arithmetic as lv_run: the
 * same bits.
 */
typedef struct {
    uint32_t *ka, *kx;
    int32_t *ia, *ix;
    int64_t *fill; /* per block, its next free (id, value) pair in ix, kx */
} lv_hscratch;

/* The cumulative pass visits voxels in error order: adding each one's
 * gradient there is a random read-modify-write in a buffer of tens of MiB,
 * a cache miss per voxel (60 % of the kernel's time). It appends
 * (id, value) to the block of 2^LV_BLOCK ids the voxel falls in instead,
 * in the sort's scratch arrays ix and kx (free again once sorted)
 * (64 sequential streams for 4 M voxels), and each block is added after,
 * within a 256 KiB window of the gradient that stays in cache. Each voxel
 * is added once per class: the order of the additions changes no bits. */
#define LV_BLOCK 16

static inline float key_to_float(uint32_t k) /* inverse of asc_key32 */
{
    uint32_t u = (k >> 31) ? (k & 0x7fffffffu) : ~k;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* The error of a sorted key: foreground 1 − v; background (key ~asc_key32(v)) v, hinge 1 + v. */
static inline double lv_err(uint32_t k, int bg, int hinge)
{
    if (!bg) return 1.0 - (double)key_to_float(k);
    const double v = key_to_float(~k);
    return hinge ? 1.0 + v : v;
}

/* Runs of equal error whose ids are not ascending (distinct v, equal rounded e) put in id order. */
static void fix_runs_hard(const uint32_t *key, int32_t *o, int64_t n, int bg, int hinge)
{
    for (int64_t a = 0; a < n;) {
        const double ea = lv_err(key[a], bg, hinge);
        int64_t b = a + 1;
        int sorted = 1;
        for (; b < n && lv_err(key[b], bg, hinge) == ea; b++) sorted &= o[b - 1] < o[b];
        if (!sorted) qsort(o + a, (size_t)(b - a), sizeof *o, cmp_i32);
        a = b;
    }
}

/* One (group, class) with nf foreground voxels of P valid ones; adds k·∂/∂input to out (may be NULL). */
static void lv_hard_run(const sl_ctx *cx, int32_t ig, int hinge, lv_job *jb, int64_t nf, int64_t P, double k,
                        float *out, const lv_hscratch *z)
{
    const int64_t C = cx->C, S = cx->S, c = jb->c, n0 = jb->n0;
    const int32_t want = C == 1 ? 1 : (int32_t)c;
    const float *src = hinge ? cx->x : cx->p;
    jb->value = 0;
    if (!jb->counted || P == 0) return;
    int64_t f = 0, b = nf;
    for (int64_t n = n0; n < jb->n1; n++) {
        const int32_t *lab = cx->target->labels + n * S;
        const float *v = src + (n * C + c) * S;
        const int32_t base = (int32_t)((n - n0) * S);
        for (int64_t s = 0; s < S; s++) {
            if (lab[s] == ig) continue;
            /* which list by masks, not a branch (the labels are unpredictable; GCC
             * turns the ?: form into one): foreground key kk at f, else ~kk at b */
            const int fg = lab[s] == want;
            const int64_t at = b + ((f - b) & -(int64_t)fg);
            z->ka[at] = asc_key32(v[s]) ^ ~(uint32_t)-fg, z->ia[at] = base + (int32_t)s;
            f += fg, b += !fg;
        }
    }
    const uint32_t *fk = z->ka, *bk = z->ka + nf;
    int32_t *fo = z->ia, *bo = z->ia + nf;
    radix_sort32(z->ka, z->ia, z->kx, z->ix, nf);
    radix_sort32(z->ka + nf, z->ia + nf, z->kx + nf, z->ix + nf, P - nf);
    fix_runs_hard(fk, fo, nf, 0, hinge);
    fix_runs_hard(bk, bo, P - nf, 1, hinge);
    const int64_t nb = P - nf, nblk = (((jb->n1 - n0) * S - 1) >> LV_BLOCK) + 1;
    const double gs = (double)nf, invS = 1.0 / (double)S;
    double cum_g = 0, cum_ng = 0, Jprev = 0, val = 0;
    int64_t *fill = z->fill; /* block b's next slot; it starts at the block's first id, as no more can fall in it */
    for (int64_t blk = 0; blk < nblk; blk++) fill[blk] = blk << LV_BLOCK;
    /* one voxel of the merged order: foreground or not, its error, its id */
#define LV_STEP(fg, e, id)                                                                                         \
    do {                                                                                                           \
        cum_g += (fg), cum_ng += !(fg);                                                                            \
        const double U = gs + cum_ng, J = 1 - (gs - cum_g) / U, d = J - Jprev;                                    \
        Jprev = J;                                                                                                 \
        val += ((e) > 0 ? (e) : 0) * d; /* softmax: e >= 0 */                                                     \
        if (out && (e) > 0) { /* ∂e/∂input: −1 on the foreground, +1 on the background, 0 at e = 0 */          \
            const int64_t at = fill[(id) >> LV_BLOCK]++;                                                           \
            const float gv = (float)(k * ((fg) ? -d : d));                                                         \
            z->ix[at] = (id);                                                                                      \
            memcpy(&z->kx[at], &gv, sizeof gv);                                                                    \
        }                                                                                                          \
    } while (0)
    int64_t i = 0, j = 0;
    while (i < nf && j < nb) { /* the larger error first, ties by id */
        const double ef = lv_err(fk[i], 0, hinge), eb = lv_err(bk[j], 1, hinge);
        const int fg = ef > eb || (ef == eb && fo[i] < bo[j]);
        const double e = fg ? ef : eb;
        const int32_t id = fg ? fo[i] : bo[j];
        i += fg, j += !fg;
        LV_STEP(fg, e, id);
    }
    for (; i < nf; i++) LV_STEP(1, lv_err(fk[i], 0, hinge), fo[i]);
    for (; j < nb; j++) LV_STEP(0, lv_err(bk[j], 1, hinge), bo[j]);
#undef LV_STEP
    jb->value = val;
    for (int64_t blk = 0; out && blk < nblk; blk++)
        for (int64_t at = blk << LV_BLOCK; at < fill[blk]; at++) {
            const int32_t id = z->ix[at];
            float gv;
            memcpy(&gv, &z->kx[at], sizeof gv);
            int64_t q = (int64_t)((double)id * invS); /* the sample within the group, without a division */
            if (q * S > id) q--;
            else if ((q + 1) * S <= id) q++;
            out[((n0 + q) * C + c) * S + (id - q * S)] += gv;
        }
}

static sl_status eval_lovasz_hard(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S;
    const int hinge = cx->act == SL_ACT_SIGMOID;
    const int64_t ngroups = pr->per_image ? N : 1, njobs = ngroups * C, gs = pr->per_image ? 1 : N;
    const int32_t ig = isnan(pr->ignore_index) ? INT32_MIN : (int32_t)pr->ignore_index;
    float *out = hinge ? cx->dx : cx->dp;
    lv_job *jobs = sl_calloc(njobs, sizeof(lv_job));
    int64_t *cnt = sl_calloc(ngroups * (C + 1), sizeof(int64_t)); /* per group: foreground per class, valid */
    double *kg = sl_calloc(ngroups, sizeof(double));
    if (!jobs || !cnt || !kg) {
        free(jobs), free(cnt), free(kg);
        return sl_errf(msg, msglen, SL_ENOMEM, "lovasz: out of memory");
    }
#pragma omp parallel for num_threads(cx->threads) schedule(static)
    for (int64_t grp = 0; grp < ngroups; grp++) {
        int64_t *h = cnt + grp * (C + 1);
        for (int64_t n = grp * gs; n < (grp + 1) * gs; n++) {
            const int32_t *lab = cx->target->labels + n * S;
            for (int64_t s = 0; s < S; s++) {
                if (lab[s] == ig) continue;
                h[C]++;
                if (C == 1) h[0] += lab[s] == 1;
                else if (lab[s] >= 0 && lab[s] < C) h[lab[s]]++;
            }
        }
    }
    for (int64_t grp = 0; grp < ngroups; grp++) {
        int64_t m = 0;
        for (int64_t c = 0; c < C; c++) {
            lv_job *jb = &jobs[grp * C + c];
            jb->c = c, jb->n0 = grp * gs, jb->n1 = (grp + 1) * gs;
            jb->counted = hinge || pr->mode == LV_ALL || cnt[grp * (C + 1) + c] > 0;
            m += jb->counted;
        }
        kg[grp] = m ? cx->scale / (double)m / (double)ngroups : 0;
    }
    /* per thread: four arrays of one slot per id (rounded up to whole blocks) and the block pointers */
    const int64_t nblk = ((gs * S - 1) >> LV_BLOCK) + 1, cap = nblk << LV_BLOCK;
    const size_t per = (size_t)cap * 16 + (size_t)nblk * sizeof(int64_t);
    char *scr = (size_t)cx->threads <= SIZE_MAX / per ? sl_term_scratch(t, per * (size_t)cx->threads) : NULL;
    if (!scr) {
        free(jobs), free(cnt), free(kg);
        return sl_errf(msg, msglen, SL_ENOMEM, "lovasz: out of memory");
    }
#pragma omp parallel num_threads(cx->threads)
    {
#ifdef _OPENMP
        char *mine = scr + per * (size_t)omp_get_thread_num();
#else
        char *mine = scr;
#endif
        lv_hscratch z = {(uint32_t *)mine, (uint32_t *)(mine + 4 * cap), (int32_t *)(mine + 8 * cap),
                         (int32_t *)(mine + 12 * cap), (int64_t *)(mine + 16 * cap)};
#pragma omp for schedule(dynamic, 1)
        for (int64_t j = 0; j < njobs; j++) {
            const int64_t grp = j / C, *h = cnt + grp * (C + 1);
            lv_hard_run(cx, ig, hinge, &jobs[j], h[j % C], h[C], kg[grp], out, &z);
        }
    }
    double total = 0;
    for (int64_t grp = 0; grp < ngroups; grp++) {
        int64_t m = 0;
        double sum = 0;
        for (int64_t c = 0; c < C; c++)
            if (jobs[grp * C + c].counted) m++, sum += jobs[grp * C + c].value;
        if (m) total += sum / (double)m / (double)ngroups;
    }
    free(jobs), free(cnt), free(kg);
    *value = total;
    return SL_OK;
}

static sl_status eval_lovasz(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    if (cx->target->kind == SL_TARGET_LABELS && !cx->target->mask &&
        (t->prm.per_image ? 1 : cx->N) * cx->S < INT32_MAX)
        return eval_lovasz_hard(t, cx, value, msg, msglen);
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S;
    const int hinge = cx->act == SL_ACT_SIGMOID;
    const int64_t ngroups = pr->per_image ? N : 1, njobs = ngroups * C;
    const int64_t cap = (pr->per_image ? 1 : N) * S;
    const int want_grad = hinge ? cx->dx != NULL : cx->dp != NULL;
    lv_job *jobs = sl_calloc(njobs, sizeof(lv_job));
    /* per-element coefficient d(class loss)/d(input), scaled once the counts are known */
    double *gbuf = want_grad ? sl_calloc(N * C * S, sizeof(double)) : NULL;
    if (!jobs || (want_grad && !gbuf)) {
        free(jobs);
        free(gbuf);
        return sl_errf(msg, msglen, SL_ENOMEM, "lovasz: out of memory");
    }
    for (int64_t j = 0; j < njobs; j++) {
        int64_t grp = j / C;
        jobs[j].c = j % C;
        jobs[j].n0 = pr->per_image ? grp : 0;
        jobs[j].n1 = pr->per_image ? grp + 1 : N;
    }
    int failed = 0;
#pragma omp parallel num_threads(cx->threads) reduction(| : failed)
    {
        lv_scratch z;
        const int ok = lv_scratch_alloc(&z, cap);
        failed |= !ok;
#pragma omp for schedule(dynamic, 1)
        for (int64_t j = 0; j < njobs; j++)
            if (ok) failed |= lv_run(cx, pr, hinge, &jobs[j], gbuf, cap, &z) != SL_OK;
        lv_scratch_free(&z);
    }
    if (failed) {
        free(jobs);
        free(gbuf);
        return sl_errf(msg, msglen, SL_ENOMEM, "lovasz: out of memory");
    }
    /* mean over counted classes within a group, then over groups */
    double total = 0;
    for (int64_t grp = 0; grp < ngroups; grp++) {
        int64_t m = 0;
        double sum = 0;
        for (int64_t c = 0; c < C; c++) {
            const lv_job *jb = &jobs[grp * C + c];
            if (!jb->counted) continue;
            m++;
            sum += jb->value;
        }
        if (m == 0) continue;
        total += sum / (double)m / (double)ngroups;
        if (!want_grad) continue;
        const double k = cx->scale / (double)m / (double)ngroups;
        float *out = hinge ? cx->dx : cx->dp;
        for (int64_t c = 0; c < C; c++) {
            if (!jobs[grp * C + c].counted) continue;
            for (int64_t n = jobs[grp * C + c].n0; n < jobs[grp * C + c].n1; n++) {
                const int64_t off = (n * C + c) * S;
                for (int64_t s = 0; s < S; s++) out[off + s] += (float)(k * gbuf[off + s]);
            }
        }
    }
    free(jobs);
    free(gbuf);
    *value = total;
    return SL_OK;
}

static const sl_key lovasz_keys[] = {
    SL_KEY_ACTIVATION,
    {"per_image", SL_KEY_BOOL, SL_P(per_image), 0, 0, 1, NULL, "the loss of each image, then the mean over images"},
    {"classes", SL_KEY_ENUM, SL_P(mode), LV_PRESENT, 0, 0, "present|all",
     "softmax: average over the classes present in the target, or all"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"},
    SL_KEY_END};

const sl_term_class sl_loss_lovasz = {
    {"lovasz", "region", "Lovász-softmax (C > 1) / Lovász hinge (one sigmoid channel): convex IoU surrogate",
     "Berman et al. 2018; matches the authors' lovasz_losses.py (lovasz_softmax, lovasz_hinge)"},
    lovasz_keys, SL_TAKES_MASK, NULL, eval_lovasz, NULL};
