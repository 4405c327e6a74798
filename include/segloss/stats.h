/*
 * segloss/stats.h — the statistics of the loss benchmark: paired
 * differences between a loss and a baseline on the same test cases.
 *
 *   sl_wilcoxon:   Wilcoxon signed-rank test, two-sided p-value, as
 *                  scipy.stats.wilcoxon(x, y) with its defaults
 *                  (zero_method="wilcox", correction=False, method="auto"
 *                  of scipy 1.10, Debian 12's: the exact null distribution
 *                  for n <= 50 without zero differences, the normal
 *                  approximation with tie correction otherwise).
 *   sl_bootstrap_ci: percentile bootstrap confidence interval of the mean
 *                  of values (the paired differences), resampling with the
 *                  project's RNG from a seed.
 *   sl_summary:    mean, standard deviation (n − 1), median.
 * Percentiles are metrics.h's sl_percentile (numpy's default interpolation).
 */
#ifndef SEGLOSS_STATS_H
#define SEGLOSS_STATS_H

#include <stdint.h>
#include "segloss/core.h"

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

/* Two-sided Wilcoxon signed-rank test of the paired samples x[i] − y[i],
 * i < n. Pairs with a zero difference are dropped (zero_method="wilcox").
 * Writes the statistic (the smaller of the positive and negative rank
 * sums, as scipy reports it) and the p-value; with fewer than one non-zero
 * difference the p-value is 1. SL_EINVAL for NULL or n < 1, SL_ENONFINITE
 * for NaN/Inf, SL_ENOMEM. */
sl_status sl_wilcoxon(const double *x, const double *y, int64_t n, double *statistic, double *pvalue);

/* Percentile bootstrap CI of the mean of v[0..n): `resamples` means of n
 * values drawn with replacement (seeded), and their (1−level)/2 and
 * (1+level)/2 quantiles with linear interpolation (numpy's default).
 * SL_EINVAL for NULL, n < 1, resamples < 1, level outside (0, 1). */
sl_status sl_bootstrap_ci(const double *v, int64_t n, int64_t resamples, double level, uint64_t seed, double *lo,
                          double *hi);

/* Mean, sample standard deviation (0 when n = 1) and median of v[0..n).
 * Any argument but v and n may be NULL. SL_EINVAL for NULL v or n < 1. */
sl_status sl_summary(const double *v, int64_t n, double *mean, double *std, double *median);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
