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

/* ------------------------------------------------ multiple comparisons */

typedef struct {
    double v;
    int64_t i;
} indexed;

/* By value, then by index, so that equal values keep a fixed order. */
static int cmp_indexed(const void *a, const void *b)
{
    const indexed *x = a, *y = b;
    if (x->v != y->v) return (x->v > y->v) - (x->v < y->v);
    return (x->i > y->i) - (x->i < y->i);
}

sl_status sl_holm(const double *p, int64_t m, double *p_holm)
{
    if (!p || !p_holm || m < 1) return SL_EINVAL;
    for (int64_t i = 0; i < m; i++)
        if (!(p[i] >= 0 && p[i] <= 1)) return isfinite(p[i]) ? SL_ERANGE : SL_ENONFINITE;
    indexed *s = sl_malloc(m, sizeof *s);
    if (!s) return SL_ENOMEM;
    for (int64_t i = 0; i < m; i++) s[i] = (indexed){p[i], i};
    qsort(s, (size_t)m, sizeof *s, cmp_indexed);
    /* Step-down: the j-th smallest (0-based) is compared with alpha/(m-j);
     * the adjusted value is the running maximum of min(1, (m-j) p_(j)), so
     * that a hypothesis is never rejected after one that is kept. */
    double run = 0;
    for (int64_t j = 0; j < m; j++) {
        double a = (double)(m - j) * s[j].v;
        if (a > 1) a = 1;
        if (a > run) run = a;
        p_holm[s[j].i] = run;
    }
    free(s);
    return SL_OK;
}

/* ------------------------------------------- distributions for p-values */

/* Regularised lower incomplete gamma P(a, x) by its series, for
 * 0 <= x < a + 1 where the series converges fast. */
static double gamma_p_series(double a, double x)
{
    if (x <= 0) return 0;
    double term = 1 / a, sum = term;
    for (int n = 1; n < 10000; n++) {
        term *= x / (a + n);
        sum += term;
        if (fabs(term) < fabs(sum) * 1e-17) break;
    }
    return sum * exp(a * log(x) - x - lgamma(a));
}

/* Upper tail of the chi-square distribution with df degrees of freedom. */
static double chi2_sf(double x, double df)
{
    if (!(x > 0)) return 1;
    if (isinf(x)) return 0;
    /* Q = 1 − P by the series below a + 1; above, Q directly by its
     * continued fraction (modified Lentz), where 1 − P would lose the tail */
    const double a = df / 2, h = x / 2;
    if (h < a + 1) return 1 - gamma_p_series(a, h);
    const double tiny = 1e-300, lg = a * log(h) - h - lgamma(a);
    double b = h + 1 - a, c = 1 / tiny, d = 1 / b, f = d;
    for (int n = 1; n < 10000; n++) {
        double an = -n * (n - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < tiny) d = tiny;
        c = b + an / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        f *= del;
        if (fabs(del - 1) < 1e-16) break;
    }
    return exp(lg) * f;
}

/* Continued fraction of the regularised incomplete beta I_x(a, b)
 * (modified Lentz), valid for x < (a + 1) / (a + b + 2). */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m < 10000; m++) {
        double m2 = 2.0 * m, aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-16) break;
    }
    return h;
}

/* I_x(a, b) for 0 <= x <= 1. */
static double beta_inc(double a, double b, double x)
{
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double lf = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2)) return exp(lf) * beta_cf(a, b, x) / a;
    return 1 - exp(lf) * beta_cf(b, a, 1 - x) / b;
}

/* Upper tail of the F distribution with (d1, d2) degrees of freedom:
 * P(F > f) = I_{d2/(d2 + d1 f)}(d2/2, d1/2). */
static double f_sf(double f, double d1, double d2)
{
    if (!(f > 0)) return 1;
    if (isinf(f)) return 0;
    return beta_inc(d2 / 2, d1 / 2, d2 / (d2 + d1 * f));
}

/* ------------------------------------------------------------ Friedman */

sl_status sl_friedman(const double *x, int64_t n, int64_t k, double *mean_ranks, double *chi2, double *pvalue,
                      double *iman_f, double *iman_p)
{
    if (!x || n < 1 || k < 2) return SL_EINVAL;
    if (n > INT64_MAX / k) return SL_EOVERFLOW;
    for (int64_t i = 0; i < n * k; i++)
        if (!isfinite(x[i])) return SL_ENONFINITE;
    indexed *s = sl_malloc(k, sizeof *s);
    double *rsum = sl_calloc(k, sizeof *rsum);
    if (!s || !rsum) {
        free(s), free(rsum);
        return SL_ENOMEM;
    }
    /* Rank each block (row) ascending, ties at their average rank; the
     * tie groups enter the correction factor as Σ (t³ − t). */
    double ties = 0;
    for (int64_t b = 0; b < n; b++) {
        for (int64_t j = 0; j < k; j++) s[j] = (indexed){x[b * k + j], j};
        qsort(s, (size_t)k, sizeof *s, cmp_indexed);
        for (int64_t i = 0; i < k;) {
            int64_t j = i;
            while (j + 1 < k && s[j + 1].v == s[i].v) j++;
            double r = 0.5 * (double)(i + j) + 1.0, t = (double)(j - i + 1);
            for (int64_t q = i; q <= j; q++) rsum[s[q].i] += r;
            ties += t * t * t - t;
            i = j + 1;
        }
    }
    const double N = (double)n, K = (double)k;
    double ss = 0;
    for (int64_t j = 0; j < k; j++) ss += rsum[j] * rsum[j];
    const double c = 1 - ties / (K * (K * K - 1) * N);
    /* c = 0 only when every block is one tie: no evidence of a difference */
    double q = c > 0 ? (12.0 / (K * N * (K + 1)) * ss - 3 * N * (K + 1)) / c : 0;
    if (q < 0) q = 0; /* rounding below an exact 0 */
    if (mean_ranks)
        for (int64_t j = 0; j < k; j++) mean_ranks[j] = rsum[j] / N;
    if (chi2) *chi2 = q;
    if (pvalue) *pvalue = chi2_sf(q, K - 1);
    /* Iman and Davenport (1980): F = (N−1) χ² / (N(k−1) − χ²) with (k−1,
     * (k−1)(N−1)) degrees of freedom; undefined for one block. */
    double f = NAN, pf = NAN;
    if (n > 1) {
        double den = N * (K - 1) - q;
        f = den > 0 ? (N - 1) * q / den : INFINITY;
        pf = f_sf(f, K - 1, (K - 1) * (N - 1));
    }
    if (iman_f) *iman_f = f;
    if (iman_p) *iman_p = pf;
    free(s), free(rsum);
    return SL_OK;
}

/* ------------------------------------------------------------- Nemenyi */

/* Standard normal density and distribution function. */
static double norm_pdf(double z) { return 0.3989422804014327 * exp(-0.5 * z * z); }
static double norm_cdf(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

/* P(range of k independent standard normals <= w)
 *   = k ∫ φ(z) [Φ(z) − Φ(z − w)]^(k−1) dz,
 * the studentized range distribution with infinitely many degrees of
 * freedom. Composite Simpson on [−12, 12] with step 1/400: the integrand
 * is smooth and below 1e-30 outside, the error far below 1e-10. */
static double range_cdf(double w, int64_t k)
{
    const int steps = 9600;
    const double lo = -12, h = 24.0 / steps;
    double sum = 0;
    for (int i = 0; i <= steps; i++) {
        double z = lo + i * h, f = norm_pdf(z) * pow(norm_cdf(z) - norm_cdf(z - w), (double)(k - 1));
        sum += f * (i == 0 || i == steps ? 1 : i % 2 ? 4 : 2);
    }
    return (double)k * sum * h / 3;
}

sl_status sl_nemenyi_cd(int64_t k, int64_t n, double alpha, double *q_alpha, double *cd)
{
    if (k < 2 || k > 100000 || n < 1 || !(alpha > 0 && alpha < 1)) return SL_EINVAL;
    /* the (1 − alpha) quantile of the range by bisection: the cdf rises
     * from 0 at w = 0 to 1; 60 halvings of [0, 40] reach 1e-16 */
    double lo = 0, hi = 40;
    for (int it = 0; it < 60; it++) {
        double mid = 0.5 * (lo + hi);
        if (range_cdf(mid, k) < 1 - alpha) lo = mid;
        else hi = mid;
    }
    const double q = 0.5 * (lo + hi) / sqrt(2.0);
    if (q_alpha) *q_alpha = q;
    if (cd) *cd = q * sqrt((double)k * (double)(k + 1) / (6.0 * (double)n));
    return SL_OK;
}
