/*
 * Post-processing chosen on the validation split (nnU-Net's
 * determine_postprocessing, per class, plus a minimum component size).
 *
 * Components are fully connected (8 in 2-D, 26 in 3-D), as nnU-Net v2's
 * remove_all_but_largest_component (acvl_utils: skimage.measure.label with
 * connectivity None). "The largest" is every component of the largest size
 * (nnU-Net keeps all on ties). Removed voxels become background (0).
 *
 * The choice, for each foreground class c, with D(rule) = the mean over the
 * validation cases of c's Dice (1 when prediction and target are both
 * empty):
 *   1. keep the largest component if D improves (nnU-Net v2's per-class
 *      rule: pp Dice > baseline Dice; a tie is not kept);
 *   2. otherwise, minimum sizes S = s + 1 for every distinct size s of c's
 *      predicted validation components (each S removes the components of
 *      at most s voxels): the S of the highest D (ties: the smallest S) is
 *      kept if D improves.
 * nnU-Net's first step, keep the largest component of all foreground
 * classes together, is not made: per class only.
 * Removing a component of c changes no other class's Dice, so classes are
 * chosen independently. The Dice of any rule comes from per-component
 * counts (size, voxels inside the target), without relabelling.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/geometry.h"
#include "train_internal.h"

static sl_status pp_check(const sl_postprocess *pp, char *msg, size_t msglen)
{
    if (!pp || pp->num_classes < 2 || pp->num_classes > SL_DATA_MAX_CLASSES)
        return sl_errf(msg, msglen, SL_EINVAL, "postprocess: the rule needs 2 to %d classes", SL_DATA_MAX_CLASSES);
    for (int c = 0; c < pp->num_classes; c++)
        if (pp->min_size[c] < 0) return sl_errf(msg, msglen, SL_EINVAL, "postprocess: class %d: negative min_size", c);
    return SL_OK;
}

/* Removes from labels (grid) the components of class c that the rule
 * drops. lab/msk are scratch of the grid's size. */
static sl_status apply_class(int32_t *labels, const sl_grid *g, int64_t N, int c, int keep_largest, int64_t min_size,
                             int32_t *lab, uint8_t *msk, char *msg, size_t msglen)
{
    for (int64_t i = 0; i < N; i++) msk[i] = labels[i] == c;
    sl_components cc = SL_COMPONENTS_EMPTY;
    sl_status st = sl_components_label(msk, g, 0 /* full */, lab, &cc, msg, msglen);
    if (st != SL_OK) return st;
    int64_t big = 0; /* the largest size (every component of it stays) */
    for (int64_t k = 0; k < cc.count; k++) big = cc.size[k] > big ? cc.size[k] : big;
    for (int64_t i = 0; i < N; i++) {
        if (!lab[i]) continue;
        const int64_t k = lab[i] - 1;
        if ((keep_largest && cc.size[k] < big) || cc.size[k] < min_size) labels[i] = 0;
    }
    sl_components_free(&cc);
    return SL_OK;
}

sl_status sl_postprocess_apply(const sl_postprocess *pp, int32_t *labels, const sl_grid *grid, char *msg, size_t msglen)
{
    sl_status st = pp_check(pp, msg, msglen);
    if (st != SL_OK) return st;
    if (!labels || !grid || (grid->ndim != 2 && grid->ndim != 3))
        return sl_errf(msg, msglen, SL_EINVAL, "postprocess: needs 2-D or 3-D labels");
    int64_t N = 1;
    for (int a = 0; a < grid->ndim; a++) N *= grid->shape[a];
    int32_t *lab = sl_malloc(N, sizeof *lab);
    uint8_t *msk = sl_malloc(N, 1);
    if (!lab || !msk) st = sl_errf(msg, msglen, SL_ENOMEM, "postprocess: out of memory");
    for (int c = 1; c < pp->num_classes && st == SL_OK; c++)
        if (pp->keep_largest[c] || pp->min_size[c] > 0)
            st = apply_class(labels, grid, N, c, pp->keep_largest[c], pp->min_size[c], lab, msk, msg, msglen);
    free(lab);
    free(msk);
    return st;
}

/* ------------------------------------------------------------------ choice */

/* One class over the validation cases: the components of each case. */
typedef struct cls_stats {
    int64_t ncases;
    int64_t *first;  /* [ncases + 1]: case i's components are first[i] .. first[i+1]-1 */
    int64_t *size;   /* voxels of each component */
    int64_t *tp;     /* of those, inside the target */
    int64_t *gt;     /* [ncases] target voxels of the class */
} cls_stats;

static sl_status gather(const int32_t *pred, const int32_t *target, int64_t ncases, const sl_grid *g, int64_t N, int c,
                        cls_stats *s, int32_t *lab, uint8_t *msk, char *msg, size_t msglen)
{
    int64_t cap = 64, m = 0;
    s->ncases = ncases;
    s->first = sl_malloc(ncases + 1, sizeof *s->first);
    s->gt = sl_malloc(ncases, sizeof *s->gt);
    s->size = sl_malloc(cap, sizeof *s->size);
    s->tp = sl_malloc(cap, sizeof *s->tp);
    if (!s->first || !s->gt || !s->size || !s->tp) return sl_errf(msg, msglen, SL_ENOMEM, "postprocess: out of memory");
    for (int64_t i = 0; i < ncases; i++) {
        const int32_t *p = pred + i * N, *t = target + i * N;
        for (int64_t v = 0; v < N; v++) msk[v] = p[v] == c;
        sl_components cc = SL_COMPONENTS_EMPTY;
        sl_status st = sl_components_label(msk, g, 0 /* full */, lab, &cc, msg, msglen);
        if (st != SL_OK) return st;
        if (m + cc.count > cap) {
            while (m + cc.count > cap) cap *= 2;
            int64_t *a = realloc(s->size, (size_t)cap * sizeof *a);
            if (a) s->size = a;
            int64_t *b = a ? realloc(s->tp, (size_t)cap * sizeof *b) : NULL;
            if (b) s->tp = b;
            if (!a || !b) {
                sl_components_free(&cc);
                return sl_errf(msg, msglen, SL_ENOMEM, "postprocess: out of memory");
            }
        }
        s->first[i] = m;
        for (int64_t k = 0; k < cc.count; k++) s->size[m + k] = cc.size[k], s->tp[m + k] = 0;
        s->gt[i] = 0;
        for (int64_t v = 0; v < N; v++) {
            s->gt[i] += t[v] == c;
            if (lab[v] && t[v] == c) s->tp[m + lab[v] - 1]++;
        }
        m += cc.count;
        sl_components_free(&cc);
    }
    s->first[ncases] = m;
    return SL_OK;
}

/* Mean Dice of the class under (keep_largest, min_size). */
static double mean_dice(const cls_stats *s, int keep_largest, int64_t min_size)
{
    double sum = 0.0;
    for (int64_t i = 0; i < s->ncases; i++) {
        int64_t big = 0, tp = 0, P = 0;
        for (int64_t k = s->first[i]; k < s->first[i + 1]; k++) big = s->size[k] > big ? s->size[k] : big;
        for (int64_t k = s->first[i]; k < s->first[i + 1]; k++) {
            if ((keep_largest && s->size[k] < big) || s->size[k] < min_size) continue;
            tp += s->tp[k];
            P += s->size[k];
        }
        sum += P + s->gt[i] > 0 ? 2.0 * (double)tp / (double)(P + s->gt[i]) : 1.0;
    }
    return s->ncases > 0 ? sum / (double)s->ncases : NAN;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Steps 1 and 2 of the file's comment for one class. */
static sl_status choose_class(const cls_stats *s, sl_postprocess *out, int c)
{
    double base = mean_dice(s, 0, 0);
    out->dice_before[c] = base;
    double d = mean_dice(s, 1, 0);
    if (d > base) {
        out->keep_largest[c] = 1;
        out->dice_after[c] = d;
        return SL_OK;
    }
    const int64_t m = s->first[s->ncases];
    int64_t *sz = sl_malloc(m > 0 ? m : 1, sizeof *sz);
    if (!sz) return SL_ENOMEM;
    memcpy(sz, s->size, (size_t)m * sizeof *sz);
    qsort(sz, (size_t)m, sizeof *sz, cmp_i64);
    double best = -1.0;
    int64_t bestS = 0;
    for (int64_t k = 0; k < m; k++) {
        if (k > 0 && sz[k] == sz[k - 1]) continue;
        d = mean_dice(s, 0, sz[k] + 1);
        if (d > best) best = d, bestS = sz[k] + 1;
    }
    free(sz);
    if (bestS > 0 && best > base) {
        out->min_size[c] = bestS;
        base = best;
    }
    out->dice_after[c] = base;
    return SL_OK;
}

sl_status sl_postprocess_choose(const int32_t *pred, const int32_t *target, int64_t ncases, const sl_grid *grid,
                                int num_classes, sl_postprocess *out, char *msg, size_t msglen)
{
    if (!pred || !target || !grid || !out || ncases < 1 || (grid->ndim != 2 && grid->ndim != 3))
        return sl_errf(msg, msglen, SL_EINVAL, "postprocess: needs 2-D or 3-D validation cases (at least one)");
    if (num_classes < 2 || num_classes > SL_DATA_MAX_CLASSES)
        return sl_errf(msg, msglen, SL_EINVAL, "postprocess: %d classes (2 to %d)", num_classes, SL_DATA_MAX_CLASSES);
    memset(out, 0, sizeof *out);
    out->num_classes = num_classes;
    out->dice_before[0] = out->dice_after[0] = NAN;
    int64_t N = 1;
    for (int a = 0; a < grid->ndim; a++) N *= grid->shape[a];
    int32_t *lab = sl_malloc(N, sizeof *lab);
    uint8_t *msk = sl_malloc(N, 1);
    sl_status st = lab && msk ? SL_OK : sl_errf(msg, msglen, SL_ENOMEM, "postprocess: out of memory");
    for (int c = 1; c < num_classes && st == SL_OK; c++) {
        cls_stats s = {0};
        st = gather(pred, target, ncases, grid, N, c, &s, lab, msk, msg, msglen);
        if (st == SL_OK && (st = choose_class(&s, out, c)) != SL_OK) sl_errf(msg, msglen, st, "postprocess: out of memory");
        free(s.first);
        free(s.size);
        free(s.tp);
        free(s.gt);
    }
    free(lab);
    free(msk);
    return st;
}
