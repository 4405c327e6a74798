/*
 * Percentiles of distance sets.
 *
 * Unit weights (border voxels): numpy.percentile's default "linear" method —
 * virtual index h = (n - 1) * q / 100, the two order statistics around it
 * found by selection (O(n), no sort), and numpy's own lerp, which
 * interpolates from the nearer end (a + (b - a) t for t < 0.5, b - (b - a)
 * (1 - t) otherwise) so results agree to the last bit in the usual cases.
 *
 * Area weights (surfels): DeepMind surface-distance's compute_robust_hausdorff
 * — sort (distance, area) pairs, cumulative area fraction, the first pair
 * whose fraction reaches q / 100 (numpy searchsorted, side "left"). The
 * sort is a radix sort on the bit patterns (values are >= 0), qsort
 * otherwise or when memory is short; both give the same order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "metrics_internal.h"

/* The k-th smallest of v[0..n), reordering v so that every element after
 * position k is >= the result (three-way partitions: distance sets are full
 * of ties). */
static double select_kth(double *v, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        double a = v[lo], b = v[mid], c = v[hi];
        double p = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int64_t lt = lo, i = lo, gt = hi;
        while (i <= gt) {
            if (v[i] < p) {
                double t = v[lt];
                v[lt++] = v[i];
                v[i++] = t;
            } else if (v[i] > p) {
                double t = v[gt];
                v[gt--] = v[i];
                v[i] = t;
            } else {
                i++;
            }
        }
        if (k < lt) hi = lt - 1;
        else if (k > gt) lo = gt + 1;
        else return p;
    }
    return v[lo];
}

double slm_percentile_inplace(double *v, int64_t n, double q)
{
    if (n <= 0) return INFINITY;
    double h = (double)(n - 1) * (q / 100.0);
    int64_t k = (int64_t)floor(h);
    if (k < 0) k = 0;
    if (k > n - 1) k = n - 1;
    double t = h - (double)k;
    double a = select_kth(v, n, k);
    if (k + 1 >= n) return a;
    double b = v[k + 1];
    for (int64_t i = k + 2; i < n; i++)
        if (v[i] < b) b = v[i];
    double diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

typedef struct dw {
    double d, w;
} dw;

static int cmp_dw(const void *x, const void *y)
{
    const dw *a = x, *b = y;
    if (a->d != b->d) return a->d < b->d ? -1 : 1;
    return (a->w > b->w) - (a->w < b->w);
}

/* The bits of a double that is >= 0 (or +inf): such doubles order as
 * their bit patterns do. -0 is read as +0, which compares equal to it. */
static inline uint64_t key_bits(double x)
{
    uint64_t u;
    if (x == 0.0) x = 0.0;
    memcpy(&u, &x, sizeof u);
    return u;
}

/*
 * The order cmp_dw defines (distance, then weight), by an LSD radix sort
 * on the bit patterns: the weight's 8 bytes, then the distance's, each a
 * stable counting pass, skipping a byte that every pair shares. Linear
 * where qsort's comparisons took most of a surfel evaluation's time.
 * Needs every value >= 0 (distances and areas are); 0 when it cannot
 * allocate.
 */
static int radix_sort_dw(dw *p, int64_t n)
{
    dw *tmp = sl_malloc(n, sizeof(dw));
    if (!tmp) return 0;
    dw *src = p, *dst = tmp;
    for (int pass = 0; pass < 16; pass++) {
        const int field = pass < 8, shift = 8 * (pass % 8); /* field 1: w */
        int64_t cnt[256] = {0};
        for (int64_t i = 0; i < n; i++) cnt[(key_bits(field ? src[i].w : src[i].d) >> shift) & 255]++;
        int same = 0;
        for (int b = 0; b < 256; b++) same |= cnt[b] == n;
        if (same) continue;
        int64_t off = 0;
        for (int b = 0; b < 256; b++) {
            int64_t c = cnt[b];
            cnt[b] = off;
            off += c;
        }
        for (int64_t i = 0; i < n; i++) dst[cnt[(key_bits(field ? src[i].w : src[i].d) >> shift) & 255]++] = src[i];
        dw *t = src;
        src = dst;
        dst = t;
    }
    if (src != p) memcpy(p, src, (size_t)n * sizeof(dw));
    free(tmp);
    return 1;
}

double slm_percentile_weighted(double *d, double *w, int64_t n, double q, int *oom)
{
    if (n <= 0) return INFINITY;
    dw *p = sl_malloc(n, sizeof(dw));
    if (!p) {
        *oom = 1;
        return NAN;
    }
    int nonneg = 1;
    for (int64_t i = 0; i < n; i++) {
        p[i].d = d[i];
        p[i].w = w[i];
        nonneg &= d[i] >= 0.0 && w[i] >= 0.0;
    }
    /* pairs equal in both fields are the same values, so any sort that
     * respects cmp_dw gives the same sums below */
    if (!nonneg || !radix_sort_dw(p, n)) qsort(p, (size_t)n, sizeof(dw), cmp_dw);
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) total += p[i].w;
    double target = q / 100.0, cum = 0.0, res = p[n - 1].d;
    for (int64_t i = 0; i < n; i++) {
        cum += p[i].w;
        if (cum / total >= target) {
            res = p[i].d;
            break;
        }
    }
    free(p);
    return res;
}

sl_status sl_percentile(const double *v, int64_t n, double q, double *out)
{
    if (!v || !out || n < 1 || !(q >= 0.0 && q <= 100.0)) return SL_EINVAL;
    for (int64_t i = 0; i < n; i++)
        if (isnan(v[i])) return SL_EINVAL;
    double *c = sl_malloc(n, sizeof(double));
    if (!c) return SL_ENOMEM;
    for (int64_t i = 0; i < n; i++) c[i] = v[i];
    *out = slm_percentile_inplace(c, n, q);
    free(c);
    return SL_OK;
}
