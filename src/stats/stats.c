/*
 * Paired statistics for the loss benchmark: Wilcoxon signed-rank test,
 * percentile bootstrap, summaries. Checked against scipy.stats.wilcoxon and
 * numpy in tests/ref/test_stats.py.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "segloss/metrics.h"
#include "segloss/rng.h"
#include "segloss/stats.h"

typedef struct {
    double absd;
    int sign;
} signed_diff;

static int cmp_abs(const void *a, const void *b)
{
    double x = ((const signed_diff *)a)->absd, y = ((const signed_diff *)b)->absd;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Standard normal survival function. */
static double norm_sf(double z) { return 0.5 * erfc(z / sqrt(2.0)); }

sl_status sl_wilcoxon(const double *x, const double *y, int64_t n, double *statistic, double *pvalue)
{
    if (!x || !y || !statistic || !pvalue || n < 1) return SL_EINVAL;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]) || !isfinite(y[i])) return SL_ENONFINITE;
    signed_diff *d = sl_calloc(n, sizeof *d);
    double *rank = sl_calloc(n, sizeof(double));
    if (!d || !rank) {
        free(d), free(rank);
        return SL_ENOMEM;
    }
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = x[i] - y[i];
        if (v == 0) continue; /* zero_method="wilcox": zero differences are dropped */
        d[m].absd = fabs(v);
        d[m].sign = v > 0 ? 1 : -1;
        m++;
    }
    if (m == 0) {
        *statistic = 0;
        *pvalue = 1;
        free(d), free(rank);
        return SL_OK;
    }
    qsort(d, (size_t)m, sizeof *d, cmp_abs);
    /* Average ranks over ties; tie groups also enter the variance correction. */
    double tie_term = 0; /* Σ (t³ − t) over tie groups */
    for (int64_t i = 0; i < m;) {
        int64_t j = i;
        while (j + 1 < m && d[j + 1].absd == d[i].absd) j++;
        double r = 0.5 * (double)(i + j) + 1.0;
        for (int64_t k = i; k <= j; k++) rank[k] = r;
        double t = (double)(j - i + 1);
        if (t > 1) tie_term += t * t * t - t;
        i = j + 1;
    }
    double rplus = 0, rminus = 0;
    for (int64_t i = 0; i < m; i++) {
        if (d[i].sign > 0) rplus += rank[i];
        else rminus += rank[i];
    }
    double T = rplus < rminus ? rplus : rminus;
    *statistic = T;

    /* scipy's method="auto" (scipy 1.10, Debian 12): the exact null
     * distribution when n <= 50 and no difference is zero — with ties too,
     * where scipy truncates R+ to an integer —, else the normal
     * approximation with the tie correction. */
    int exact = n <= 50 && m == n;
    if (exact) {
        /* Null distribution of R+ by dynamic programming over ranks 1..m:
         * count[s] = number of sign assignments with positive-rank sum s. */
        int64_t maxs = m * (m + 1) / 2;
        double *count = sl_calloc(maxs + 1, sizeof(double));
        if (!count) {
            free(d), free(rank);
            return SL_ENOMEM;
        }
        count[0] = 1;
        for (int64_t r = 1; r <= m; r++)
            for (int64_t s = maxs; s >= r; s--) count[s] += count[s - r];
        const double total = ldexp(1.0, (int)m);
        const int64_t rp = (int64_t)rplus;
        double p;
        if (rp == maxs / 2) {
            p = 1.0; /* R+ at the centre of the distribution */
        } else {
            double less = 0, greater = 0;
            for (int64_t s = 0; s <= maxs; s++) {
                if (s <= rp) less += count[s];
                if (s >= rp) greater += count[s];
            }
            p = 2.0 * (less < greater ? less : greater) / total;
        }
        *pvalue = p > 1 ? 1 : p;
        free(count);
    } else {
        double mn = (double)m * (m + 1) / 4.0;
        double var = (double)m * (m + 1) * (2.0 * m + 1) / 24.0 - tie_term / 48.0;
        double z = var > 0 ? (T - mn) / sqrt(var) : 0;
        double p = 2.0 * norm_sf(fabs(z));
        *pvalue = p > 1 ? 1 : p;
    }
    free(d), free(rank);
    return SL_OK;
}

sl_status sl_bootstrap_ci(const double *v, int64_t n, int64_t resamples, double level, uint64_t seed, double *lo,
                          double *hi)
{
    if (!v || !lo || !hi || n < 1 || resamples < 1 || !(level > 0 && level < 1)) return SL_EINVAL;
    double *means = sl_malloc(resamples, sizeof(double));
    if (!means) return SL_ENOMEM;
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    for (int64_t b = 0; b < resamples; b++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += v[sl_rng_below(&rng, (uint64_t)n)];
        means[b] = s / (double)n;
    }
    sl_status st = sl_percentile(means, resamples, 50.0 * (1 - level), lo);
    if (st == SL_OK) st = sl_percentile(means, resamples, 50.0 * (1 + level), hi);
    free(means);
    return st;
}

sl_status sl_summary(const double *v, int64_t n, double *mean, double *std, double *median)
{
    if (!v || n < 1) return SL_EINVAL;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    double mu = s / (double)n, ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (v[i] - mu) * (v[i] - mu);
    if (mean) *mean = mu;
    if (std) *std = n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
    if (median) {
        double *c = sl_malloc(n, sizeof(double));
        if (!c) return SL_ENOMEM;
        memcpy(c, v, (size_t)n * sizeof(double));
        qsort(c, (size_t)n, sizeof(double), cmp_double);
        *median = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
        free(c);
    }
    return SL_OK;
}
