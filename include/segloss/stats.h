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
 *   sl_holm:       Holm's step-down adjusted p-values of a family of tests
 *                  (statsmodels' multipletests(method="holm")).
 *   sl_friedman:   Friedman's test of k treatments over n blocks (as
 *                  scipy.stats.friedmanchisquare) with the mean ranks and
 *                  the Iman–Davenport F variant.
 *   sl_nemenyi_cd: the Nemenyi critical difference of mean ranks
 *                  (Demšar 2006), with q_alpha computed from the
 *                  studentized range distribution, not tabulated.
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

/* Holm's step-down correction of m p-values (any order): with p_(1) <=
 * ... <= p_(m) sorted, the adjusted value of p_(i) is
 *   max over j <= i of min(1, (m − j + 1) p_(j)),
 * so rejecting where p_holm <= alpha controls the family-wise error rate
 * at alpha (the probability of any false rejection) under any dependence.
 * p_holm[i] belongs to p[i]; p_holm may alias p. SL_EINVAL for NULL or
 * m < 1, SL_ENONFINITE for NaN, SL_ERANGE for a p outside [0, 1]. */
sl_status sl_holm(const double *p, int64_t m, double *p_holm);

/*
 * Friedman's test: x is n blocks × k treatments, row-major (x[b*k + j]);
 * each block is ranked ascending (rank 1 = the smallest value; negate
 * scores where larger is better), ties at their average rank. Writes
 *   mean_ranks[j]: the mean rank of treatment j over the blocks;
 *   chi2:   χ²_F = [12/(n k (k+1)) Σ_j R_j² − 3 n (k+1)] / C, with R_j the
 *           rank sums and C = 1 − Σ (t³ − t) / (n k (k² − 1)) over the tie
 *           groups t (scipy's tie correction); 0 when every block is one
 *           tie (C = 0; scipy gives NaN there);
 *   pvalue: P(χ²(k − 1) > χ²_F);
 *   iman_f, iman_p: Iman–Davenport F = (n − 1) χ²_F / (n (k − 1) − χ²_F)
 *           and its p from F(k − 1, (k − 1)(n − 1)); +Inf and 0 when the
 *           blocks agree perfectly; NaN for n = 1.
 * Any output may be NULL. SL_EINVAL for NULL x, n < 1 or k < 2,
 * SL_ENONFINITE for NaN/Inf, SL_ENOMEM.
 */
sl_status sl_friedman(const double *x, int64_t n, int64_t k, double *mean_ranks, double *chi2, double *pvalue,
                      double *iman_f, double *iman_p);

/* The Nemenyi critical difference for k treatments ranked over n blocks
 * (Demšar 2006): two mean ranks differ significantly at level alpha when
 * they differ by at least CD = q_alpha sqrt(k (k+1) / (6 n)), where
 * q_alpha is the (1 − alpha) quantile of the studentized range of k
 * means with infinite degrees of freedom divided by sqrt(2). q_alpha is
 * computed by a numerical integral (error below 1e-9), not read from a
 * table: k = 5, alpha = 0.05 gives 2.7279 (Demšar's table: 2.728). Either
 * output may be NULL. SL_EINVAL for k < 2, k > 100000, n < 1 or alpha
 * outside (0, 1). */
sl_status sl_nemenyi_cd(int64_t k, int64_t n, double alpha, double *q_alpha, double *cd);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
