/*
 * Probabilities: calibration (ECE, MCE, class-wise ECE), Brier score, NLL,
 * and the ranking metrics AUROC and average precision per class.
 *
 * References: Guo et al., "On calibration of modern neural networks", ICML
 * 2017 (top-label ECE with equal-width bins (lo, hi]); Kull et al., "Beyond
 * temperature scaling", NeurIPS 2019 (class-wise ECE); Brier, Monthly
 * Weather Review 1950; scikit-learn's brier_score_loss, roc_auc_score and
 * average_precision_score (the definitions reproduced, tests/ref/test_prob.py).
 *
 * One pass over the voxels validates and accumulates everything but the
 * ranking metrics, in fixed chunks whose partials are added in chunk order,
 * so any thread count gives the same bits. AUROC and AP need the scores
 * sorted: two radix sorts per class (all scores, and the positives' scores),
 * then one sweep over the distinct scores from the highest down.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "families_internal.h"
#include "internal.h"

#define PROB_CHUNK 65536
#define NLL_EPS 1e-15

/* ---- ranking: AUROC and AP ------------------------------------------------- */

/* A float32 as a uint32 whose unsigned order is the float order (-0 = +0). */
static uint32_t float_key(float f)
{
    if (f == 0.0f) f = 0.0f;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

sl_status sl_auroc_ap(const float *score, const uint8_t *y, int64_t n, double *auroc, double *ap)
{
    if (!score || !y || n < 1) return SL_EINVAL;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(score[i])) return SL_ENONFINITE;
    int64_t npos = 0;
    for (int64_t i = 0; i < n; i++) npos += y[i] != 0;
    uint32_t *all = sl_malloc(n, sizeof *all), *tmp = sl_malloc(n, sizeof *tmp);
    uint32_t *pos = npos ? sl_malloc(npos, sizeof *pos) : NULL;
    if (!all || !tmp || (npos && !pos)) {
        free(all);
        free(tmp);
        free(pos);
        return SL_ENOMEM;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        all[i] = float_key(score[i]);
        if (y[i]) pos[k++] = all[i];
    }
    slm_radix_sort_u32(all, tmp, n);
    if (npos) slm_radix_sort_u32(pos, tmp, npos);
    const int64_t nneg = n - npos;
    /* Sweep the distinct scores from the highest: each is one threshold of
     * scikit-learn's curves. tp, fp: voxels scored at or above it. The ROC
     * area adds the trapezoid between consecutive points (a tied group is
     * one diagonal step, i.e. half credit for its pairs); AP adds the
     * recall step times the precision at the new point. */
    double area = 0.0, apsum = 0.0;
    int64_t tp = 0, fp = 0, i = n - 1, j = npos - 1;
    while (i >= 0) {
        uint32_t v = all[i];
        int64_t cnt = 0, p = 0;
        while (i >= 0 && all[i] == v) {
            i--;
            cnt++;
        }
        while (j >= 0 && pos[j] == v) {
            j--;
            p++;
        }
        int64_t tp_prev = tp, fp_prev = fp;
        tp += p;
        fp += cnt - p;
        area += (double)(fp - fp_prev) * (double)(tp + tp_prev) / 2.0;
        if (p > 0) apsum += ((double)p / (double)npos) * ((double)tp / (double)(tp + fp));
    }
    free(all);
    free(tmp);
    free(pos);
    if (auroc) *auroc = (npos == 0 || nneg == 0) ? NAN : area / ((double)npos * (double)nneg);
    if (ap) *ap = npos == 0 ? NAN : apsum;
    return SL_OK;
}

/* ---- the calibration pass ------------------------------------------------------ */

/* Bin of a probability v in [0, 1] among B equal-width bins (lo, hi], with
 * v = 0 in bin 0. v * B is exact in double (a float's 24-bit mantissa times
 * a small integer), so the bin is exactly the one whose interval holds v. */
static int bin_of(float v, int B)
{
    int b = (int)ceil((double)v * B) - 1;
    return b < 0 ? 0 : (b >= B ? B - 1 : b);
}

/* Per-chunk partials. Bins: [count, sum of confidence, sum of hits]. */
typedef struct chunk_acc {
    double *top;     /* [B][3] */
    double *cls;     /* [C][B][3] */
    double *brier;   /* [C] */
    double nll, hits;
    int64_t n;
    int64_t *pos;    /* [C] */
    /* the first bad voxel of this chunk: kind 0 = none */
    int err_kind;    /* 1 label, 2 non-finite, 3 range, 4 sum */
    int64_t err_voxel, err_class, err_label;
    double err_value;
} chunk_acc;

static sl_status opts_check(const sl_prob_opts *o, char *msg, size_t msglen)
{
    if (o->bins < 1) return sl_errf(msg, msglen, SL_EINVAL, "bins must be >= 1 (got %d)", o->bins);
    if (!(o->sum_tol >= 0.0) || !isfinite(o->sum_tol))
        return sl_errf(msg, msglen, SL_EINVAL, "sum_tol must be finite and >= 0 (got %g)", o->sum_tol);
    if (o->threads < 0) return sl_errf(msg, msglen, SL_EINVAL, "threads must be >= 0 (got %d)", o->threads);
    return SL_OK;
}

static void scan_chunk(const float *prob, int64_t C, const sl_labelmap *labels, int64_t n, const sl_prob_opts *o,
                       int64_t start, int64_t end, chunk_acc *a)
{
    const int B = o->bins;
    for (int64_t i = start; i < end; i++) {
        int64_t y;
        if (!slm_label_at(labels, i, &y)) {
            a->err_kind = 1, a->err_voxel = i, a->err_label = INT64_MIN;
            return;
        }
        if (o->has_ignore && y == o->ignore_label) continue;
        if (y < 0 || y >= C) {
            a->err_kind = 1, a->err_voxel = i, a->err_label = y;
            return;
        }
        double sum = 0.0;
        int64_t arg = 0;
        float best = -1.0f;
        for (int64_t c = 0; c < C; c++) {
            float p = prob[c * n + i];
            if (!isfinite(p)) {
                a->err_kind = 2, a->err_voxel = i, a->err_class = c, a->err_value = p;
                return;
            }
            if (p < 0.0f || p > 1.0f) {
                a->err_kind = 3, a->err_voxel = i, a->err_class = c, a->err_value = p;
                return;
            }
            sum += p;
            if (p > best) best = p, arg = c;
        }
        if (fabs(sum - 1.0) > o->sum_tol) {
            a->err_kind = 4, a->err_voxel = i, a->err_value = sum;
            return;
        }
        const double hit = arg == y;
        double *t = a->top + 3 * bin_of(best, B);
        t[0] += 1.0, t[1] += best, t[2] += hit;
        for (int64_t c = 0; c < C; c++) {
            float p = prob[c * n + i];
            double is = c == y;
            double *b = a->cls + (c * B + bin_of(p, B)) * 3;
            b[0] += 1.0, b[1] += p, b[2] += is;
            a->brier[c] += (p - is) * (p - is);
        }
        float py = prob[y * n + i];
        a->nll -= log(py > NLL_EPS ? (double)py : NLL_EPS);
        a->hits += hit;
        a->pos[y]++;
        a->n++;
    }
}

/* ECE and MCE of B bins of [count, sum conf, sum hits] over n values. */
static void ece_mce(const double *bins, int B, double n, double *ece, double *mce)
{
    double e = 0.0, m = 0.0;
    for (int b = 0; b < B; b++) {
        const double *t = bins + 3 * b;
        if (t[0] == 0.0) continue;
        double gap = fabs(t[2] / t[0] - t[1] / t[0]);
        e += t[0] / n * gap;
        if (gap > m) m = gap;
    }
    *ece = e;
    *mce = m;
}

static sl_status bad_voxel(const chunk_acc *a, int64_t C, const sl_prob_opts *o, char *msg, size_t msglen)
{
    switch (a->err_kind) {
    case 1:
        if (a->err_label == INT64_MIN)
            return sl_errf(msg, msglen, SL_ERANGE, "voxel %lld: the label is not an integer",
                           (long long)a->err_voxel);
        return sl_errf(msg, msglen, SL_ERANGE, "voxel %lld: label %lld outside [0, %lld)", (long long)a->err_voxel,
                       (long long)a->err_label, (long long)C);
    case 2:
        return sl_errf(msg, msglen, SL_ENONFINITE, "voxel %lld: probability of class %lld is %g",
                       (long long)a->err_voxel, (long long)a->err_class, a->err_value);
    case 3:
        return sl_errf(msg, msglen, SL_ERANGE, "voxel %lld: probability of class %lld is %.9g, outside [0, 1]",
                       (long long)a->err_voxel, (long long)a->err_class, a->err_value);
    default:
        return sl_errf(msg, msglen, SL_ERANGE,
                       "voxel %lld: probabilities sum to %.9g, not 1 within %g (not a softmax output?)",
                       (long long)a->err_voxel, a->err_value, o->sum_tol);
    }
}

sl_status sl_prob_eval(const float *prob, int64_t nclass, const sl_labelmap *labels, int64_t n,
                       const sl_prob_opts *opts, int with_ranking, sl_prob_result *out,
                       sl_prob_class *per_class, char *msg, size_t msglen)
{
    sl_prob_opts o = SL_PROB_OPTS_DEFAULT;
    if (opts) o = *opts;
    if (!prob || !labels || !labels->data || !out)
        return sl_errf(msg, msglen, SL_EINVAL, "prob, labels and out are required");
    if (nclass < 2) return sl_errf(msg, msglen, SL_EINVAL, "probabilities need C >= 2 classes (got %lld)",
                                   (long long)nclass);
    if (n < 1) return sl_errf(msg, msglen, SL_EINVAL, "no voxels");
    if (!slm_dtype_ok(labels->dtype)) return sl_errf(msg, msglen, SL_EDTYPE, "unknown label dtype");
    sl_status st = opts_check(&o, msg, msglen);
    if (st != SL_OK) return st;
    int64_t total;
    if (sl_mul_size(nclass, n, &total) != SL_OK) return sl_errf(msg, msglen, SL_EOVERFLOW, "C * n overflows");

    const int B = o.bins;
    const int64_t C = nclass, nch = (n + PROB_CHUNK - 1) / PROB_CHUNK;
    const int64_t per = 3 * B + 3 * C * B + C; /* doubles per chunk */
    chunk_acc *acc = sl_calloc(nch, sizeof *acc);
    double *store = sl_calloc(nch * per, sizeof *store);
    int64_t *posstore = sl_calloc(nch * C, sizeof *posstore);
    if (!acc || !store || !posstore) {
        free(acc);
        free(store);
        free(posstore);
        return sl_errf(msg, msglen, SL_ENOMEM, "out of memory for %lld chunk partials", (long long)nch);
    }
    for (int64_t k = 0; k < nch; k++) {
        acc[k].top = store + k * per;
        acc[k].cls = acc[k].top + 3 * B;
        acc[k].brier = acc[k].cls + 3 * C * B;
        acc[k].pos = posstore + k * C;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(sl_threads(o.threads)) if (nch > 1)
    for (int64_t k = 0; k < nch; k++) {
        int64_t s = k * PROB_CHUNK, e = s + PROB_CHUNK < n ? s + PROB_CHUNK : n;
        scan_chunk(prob, C, labels, n, &o, s, e, &acc[k]);
    }
    /* the first bad voxel in raster order: chunks are in order */
    for (int64_t k = 0; k < nch; k++)
        if (acc[k].err_kind) {
            st = bad_voxel(&acc[k], C, &o, msg, msglen);
            free(acc);
            free(store);
            free(posstore);
            return st;
        }
    /* combine the partials in chunk order (into chunk 0's slots) */
    for (int64_t k = 1; k < nch; k++) {
        for (int64_t j = 0; j < per; j++) store[j] += store[k * per + j];
        for (int64_t c = 0; c < C; c++) posstore[c] += posstore[k * C + c];
        acc[0].nll += acc[k].nll;
        acc[0].hits += acc[k].hits;
        acc[0].n += acc[k].n;
    }
    const chunk_acc *a = &acc[0];
    if (a->n == 0) {
        free(acc);
        free(store);
        free(posstore);
        return sl_errf(msg, msglen, SL_EEMPTY, "every voxel carries the ignore label: nothing to score");
    }
    const double nn = (double)a->n;
    memset(out, 0, sizeof *out);
    out->n = a->n;
    out->accuracy = a->hits / nn;
    out->nll = a->nll / nn;
    ece_mce(a->top, B, nn, &out->ece, &out->mce);
    double cw = 0.0, br = 0.0;
    for (int64_t c = 0; c < C; c++) {
        double e, m;
        ece_mce(a->cls + 3 * c * B, B, nn, &e, &m);
        cw += e;
        br += a->brier[c] / nn;
        if (per_class) {
            per_class[c].positives = a->pos[c];
            per_class[c].ece = e;
            per_class[c].mce = m;
            per_class[c].brier = a->brier[c] / nn;
            per_class[c].auroc = NAN;
            per_class[c].ap = NAN;
        }
    }
    out->classwise_ece = cw / (double)C;
    out->brier = br;
    free(acc);
    free(store);
    free(posstore);
    if (!per_class || !with_ranking) return SL_OK;

    /* Ranking per class over the scored voxels (ignored ones left out). */
    float *s = sl_malloc(out->n, sizeof *s);
    uint8_t *y = sl_malloc(out->n, 1);
    if (!s || !y) {
        free(s);
        free(y);
        return sl_errf(msg, msglen, SL_ENOMEM, "out of memory for the ranking of %lld scores", (long long)out->n);
    }
    for (int64_t c = 0; c < C && st == SL_OK; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t lab;
            slm_label_at(labels, i, &lab); /* validated above */
            if (o.has_ignore && lab == o.ignore_label) continue;
            s[m] = prob[c * n + i];
            y[m++] = lab == c;
        }
        st = sl_auroc_ap(s, y, m, &per_class[c].auroc, &per_class[c].ap);
        if (st != SL_OK) st = sl_errf(msg, msglen, st, "ranking of class %lld failed", (long long)c);
    }
    free(s);
    free(y);
    return st;
}
