/*
 * Lesion-wise FROC as the CAMELYON16 challenge's evaluation computes it
 * (Evaluation_FROC.py, computeFROC and the sensitivities at fixed average
 * false positives per slide by numpy.interp). Definitions in
 * include/segloss/metrics.h; tests/ref/test_froc.py transcribes the
 * challenge's code.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "families_internal.h"
#include "internal.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* number of values of sorted v[0..n) that are >= t */
static int64_t count_ge(const double *v, int64_t n, double t)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] < t) lo = mid + 1;
        else hi = mid;
    }
    return n - lo;
}

sl_status sl_froc(const double *fp_scores, int64_t nfp, const double *lesion_scores, int64_t nlesions,
                  int64_t ncases, const double *fp_rates, int nrates, double *sensitivity, sl_froc_curve *curve)
{
    if ((nfp > 0 && !fp_scores) || nfp < 0 || !lesion_scores || nlesions < 1 || ncases < 1 || nrates < 0 ||
        (nrates > 0 && (!fp_rates || !sensitivity)))
        return SL_EINVAL;
    for (int64_t i = 0; i < nfp; i++)
        if (!isfinite(fp_scores[i])) return SL_ENONFINITE;
    for (int64_t i = 0; i < nlesions; i++)
        if (!isfinite(lesion_scores[i])) return SL_ENONFINITE;
    for (int k = 0; k < nrates; k++)
        if (!(fp_rates[k] >= 0) || !isfinite(fp_rates[k])) return SL_EINVAL;
    if (curve) *curve = (sl_froc_curve)SL_FROC_CURVE_EMPTY;
    double *fp = sl_malloc(nfp > 0 ? nfp : 1, sizeof *fp), *ls = sl_malloc(nlesions, sizeof *ls);
    double *all = sl_malloc(nfp + nlesions, sizeof *all);
    double *cf = sl_malloc(nfp + nlesions + 1, sizeof *cf), *cs = sl_malloc(nfp + nlesions + 1, sizeof *cs);
    double *ct = sl_malloc(nfp + nlesions + 1, sizeof *ct);
    sl_status st = SL_OK;
    if (!fp || !ls || !all || !cf || !cs || !ct) {
        st = SL_ENOMEM;
        goto done;
    }
    if (nfp) memcpy(fp, fp_scores, (size_t)nfp * sizeof *fp);
    memcpy(ls, lesion_scores, (size_t)nlesions * sizeof *ls);
    qsort(fp, (size_t)nfp, sizeof *fp, cmp_double);
    qsort(ls, (size_t)nlesions, sizeof *ls, cmp_double);
    memcpy(all, fp, (size_t)nfp * sizeof *all);
    memcpy(all + nfp, ls, (size_t)nlesions * sizeof *all);
    qsort(all, (size_t)(nfp + nlesions), sizeof *all, cmp_double);
    /* the distinct values but the smallest, increasing: the challenge's
     * sorted(set(FPs + TPs))[1:] */
    int64_t n = 0;
    for (int64_t i = 1; i < nfp + nlesions; i++) {
        if (all[i] == all[i - 1]) continue;
        double t = all[i];
        cf[n] = (double)count_ge(fp, nfp, t) / (double)ncases;
        cs[n] = (double)count_ge(ls, nlesions, t) / (double)nlesions;
        ct[n++] = t;
    }
    cf[n] = 0.0, cs[n] = 0.0, ct[n++] = INFINITY;
    /* numpy.interp(x, FP[::-1], sens[::-1]): the abscissae xs[j] = cf[n-1-j]
     * increase from the closing point 0; at or beyond the last, its value;
     * otherwise the segment j with xs[j] <= x < xs[j+1] (the last of equal
     * abscissae), evaluated as numpy does: slope * (x - xs[j]) + ys[j] */
    for (int k = 0; k < nrates; k++) {
        double x = fp_rates[k];
        if (x >= cf[0]) {
            sensitivity[k] = cs[0];
            continue;
        }
        int64_t lo = 0, hi = n;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (cf[n - 1 - mid] <= x) lo = mid + 1;
            else hi = mid;
        }
        int64_t j = lo - 1; /* >= 0: xs[0] = 0 <= x */
        double x0 = cf[n - 1 - j], y0 = cs[n - 1 - j], x1 = cf[n - 2 - j], y1 = cs[n - 2 - j];
        double slope = (y1 - y0) / (x1 - x0);
        sensitivity[k] = slope * (x - x0) + y0;
    }
    if (curve) {
        curve->n = n;
        curve->fp_per_case = cf;
        curve->sensitivity = cs;
        curve->threshold = ct;
        cf = cs = ct = NULL;
    }
done:
    free(fp);
    free(ls);
    free(all);
    free(cf);
    free(cs);
    free(ct);
    return st;
}

void sl_froc_curve_free(sl_froc_curve *c)
{
    if (!c) return;
    free(c->fp_per_case);
    free(c->sensitivity);
    free(c->threshold);
    *c = (sl_froc_curve)SL_FROC_CURVE_EMPTY;
}

static int grow(double **a, int64_t *cap, int64_t need)
{
    if (need <= *cap) return 1;
    int64_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    double *g = realloc(*a, (size_t)nc * sizeof *g);
    if (!g) return 0;
    *a = g;
    *cap = nc;
    return 1;
}

sl_status sl_froc_case(const float *prob, const uint8_t *gt, const sl_grid *grid, double cand_threshold,
                       int connectivity, double **fp_scores, int64_t *nfp, int64_t *nfp_cap,
                       double **lesion_scores, int64_t *nles, int64_t *nles_cap, char *msg, size_t msglen)
{
    if (!prob || !gt || !grid || !fp_scores || !nfp || !nfp_cap || !lesion_scores || !nles || !nles_cap)
        return sl_errf(msg, msglen, SL_EINVAL, "froc: NULL argument");
    if (grid->ndim < 1 || grid->ndim > SL_MAX_SPATIAL) return sl_errf(msg, msglen, SL_ESHAPE, "froc: invalid grid");
    int64_t n = 1;
    for (int a = 0; a < grid->ndim; a++)
        if (grid->shape[a] < 1 || sl_mul_size(n, grid->shape[a], &n) != SL_OK)
            return sl_errf(msg, msglen, SL_ESHAPE, "froc: invalid grid");
    uint8_t *cand = sl_malloc(n, 1);
    int32_t *lc = sl_malloc(n, sizeof *lc), *lg = sl_malloc(n, sizeof *lg);
    sl_components kc = SL_COMPONENTS_EMPTY, kg = SL_COMPONENTS_EMPTY;
    double *best = NULL, *lesion = NULL;
    uint8_t *hit = NULL;
    sl_status st = SL_OK;
    if (!cand || !lc || !lg) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "froc: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) cand[i] = prob[i] >= cand_threshold;
    if ((st = sl_components_label(cand, grid, connectivity, lc, &kc, msg, msglen)) != SL_OK) goto done;
    if ((st = sl_components_label(gt, grid, connectivity, lg, &kg, msg, msglen)) != SL_OK) goto done;
    best = sl_calloc(kc.count + 1, sizeof *best);
    lesion = sl_calloc(kg.count + 1, sizeof *lesion);
    hit = sl_calloc(kc.count + 1, 1);
    if (!best || !lesion || !hit) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "froc: out of memory");
        goto done;
    }
    /* each candidate's score: its highest probability */
    for (int64_t i = 0; i < n; i++)
        if (lc[i] > 0 && prob[i] > best[lc[i] - 1]) best[lc[i] - 1] = prob[i];
    /* hits: a shared voxel; a lesion keeps the best score among its hits */
    for (int64_t i = 0; i < n; i++)
        if (lc[i] > 0 && lg[i] > 0) {
            hit[lc[i] - 1] = 1;
            double s = best[lc[i] - 1];
            if (s > lesion[lg[i] - 1]) lesion[lg[i] - 1] = s;
        }
    int64_t nf = 0;
    for (int64_t k = 0; k < kc.count; k++) nf += !hit[k];
    if (!grow(fp_scores, nfp_cap, *nfp + nf) || !grow(lesion_scores, nles_cap, *nles + kg.count)) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "froc: out of memory");
        goto done;
    }
    for (int64_t k = 0; k < kc.count; k++)
        if (!hit[k]) (*fp_scores)[(*nfp)++] = best[k];
    for (int64_t k = 0; k < kg.count; k++) (*lesion_scores)[(*nles)++] = lesion[k];
done:
    free(cand);
    free(lc);
    free(lg);
    free(best);
    free(lesion);
    free(hit);
    sl_components_free(&kc);
    sl_components_free(&kg);
    return st;
}
