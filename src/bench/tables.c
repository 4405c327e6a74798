/*
 * The statistics tables of the benchmark (bench.h states the definitions).
 *
 * The unit of the paired comparison is the test case: a case's value is
 * first averaged over the seeds (y_i), so every seed's model votes on the
 * same case and the pairs (y_i, baseline_i) are independent across cases,
 * as the Wilcoxon test and the case bootstrap assume. The spread over
 * seeds (training noise) is reported beside it as the standard deviation
 * of the per-seed means. Every bootstrap uses the preset's stats_seed, so
 * the tables are a pure function of the result files.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "bench_internal.h"
#include "segloss/stats.h"

static void stat_nan(slb_stat *s)
{
    s->n = 0;
    s->mean = s->lo = s->hi = s->seed_std = NAN;
    s->diff = s->diff_lo = s->diff_hi = s->wilcoxon = s->p = s->p_holm = NAN;
}

static sl_status check_runs(const sl_bench_preset *p, slb_run *const *runs, slb_tables *t, char *msg, size_t msglen)
{
    const int S = slb_nreps(p), E = p->nentries; /* replicates: seeds x folds */
    for (int d = 0; d < p->ndatasets; d++) {
        const slb_run *first = NULL;
        for (int s = 0; s < S; s++)
            for (int e = 0; e < E; e++) {
                const slb_run *r = runs[((int64_t)d * S + s) * E + e];
                if (!r) return sl_errf(msg, msglen, SL_EINVAL, "bench: run %s / seed %llu / %s has no result", p->datasets[d].name,
                                       (unsigned long long)slb_rep_seed(p, s), p->entries[e].name);
                if (r->failed) continue;
                if (!first) {
                    first = r;
                    continue;
                }
                int same = r->num_classes == first->num_classes && r->n_cases == first->n_cases &&
                           r->small_class == first->small_class;
                for (int c = 1; same && c < r->num_classes; c++) same = !strcmp(r->class_names[c], first->class_names[c]);
                if (!same)
                    return sl_errf(msg, msglen, SL_EFORMAT, "bench: the results of %s disagree on its classes or test cases "
                                                             "(%s / seed %llu vs %s / seed %llu)",
                                   p->datasets[d].name, p->entries[r->entry].name, (unsigned long long)slb_rep_seed(p, r->seed),
                                   p->entries[first->entry].name, (unsigned long long)slb_rep_seed(p, first->seed));
            }
        t->num_classes[d] = first ? first->num_classes : 0;
        t->small_class[d] = first ? first->small_class : 0;
        t->fraction[d] = first ? first->fraction : NAN;
        t->n_cases[d] = first ? first->n_cases : 0;
        if (t->num_classes[d] > t->max_classes) t->max_classes = t->num_classes[d];
    }
    if (t->max_classes < 2) t->max_classes = 2;
    return SL_OK;
}

/* Entries sorted by key (ascending), ties by tie (descending), then by
 * name, so that the order does not depend on the preset's order. */
typedef struct sort_item {
    double key, tie;
    int index;
} sort_item;

static int item_before(const sl_bench_preset *p, const sort_item *a, const sort_item *b)
{
    if (a->key != b->key) return a->key < b->key;
    if (a->tie != b->tie) return a->tie > b->tie;
    return strcmp(p->entries[a->index].name, p->entries[b->index].name) < 0;
}

static void sort_items(const sl_bench_preset *p, sort_item *items, int n)
{
    for (int i = 1; i < n; i++) /* insertion sort: n is the number of entries */
        for (int j = i; j > 0 && item_before(p, &items[j], &items[j - 1]); j--) {
            sort_item tmp = items[j - 1];
            items[j - 1] = items[j];
            items[j] = tmp;
        }
}

/*
 * Friedman's test over the data sets (Demšar 2006): each data set ranks
 * the entries by the ranking score (rank 1 = best, ties at their average
 * rank, failed entries tied last), χ²_F and Iman–Davenport's F test
 * whether the mean ranks differ, and the Nemenyi critical difference at
 * 0.05 says which pairs do. The groups drawn as bars in the diagram are
 * the maximal runs of entries (in mean-rank order) whose first and last
 * mean ranks differ by less than the CD.
 */
static sl_status friedman(const sl_bench_preset *p, slb_tables *t, double *block, sort_item *items)
{
    const int D = t->ndatasets, E = t->nentries;
    t->nem_alpha = 0.05;
    t->fr_chi2 = t->fr_p = t->fr_f = t->fr_fp = t->nem_q = t->nem_cd = NAN;
    if (D < 2 || E < 2) return SL_OK;
    for (int d = 0; d < D; d++)
        for (int e = 0; e < E; e++) /* ascending ranks: the negated Dice; a failed run (2) below any Dice */
            block[d * E + e] = t->failed[d * E + e] ? 2.0 : -t->score[d * E + e];
    sl_status st = sl_friedman(block, D, E, t->fr_rank, &t->fr_chi2, &t->fr_p, &t->fr_f, &t->fr_fp);
    if (st == SL_OK) st = sl_nemenyi_cd(E, D, t->nem_alpha, &t->nem_q, &t->nem_cd);
    if (st != SL_OK) return st;
    for (int e = 0; e < E; e++) {
        items[e].key = t->fr_rank[e];
        items[e].tie = isfinite(t->mean_score[e]) ? t->mean_score[e] : -INFINITY;
        items[e].index = e;
    }
    sort_items(p, items, E);
    for (int k = 0; k < E; k++) t->fr_order[k] = items[k].index;
    t->fr_ngroups = 0;
    int last = 0; /* the furthest position a group has reached */
    for (int i = 0; i < E; i++) {
        int j = i;
        while (j + 1 < E && t->fr_rank[t->fr_order[j + 1]] - t->fr_rank[t->fr_order[i]] < t->nem_cd) j++;
        if (j > i && j > last) {
            t->fr_group_lo[t->fr_ngroups] = i;
            t->fr_group_hi[t->fr_ngroups] = j;
            t->fr_ngroups++;
            last = j;
        }
    }
    t->friedman = 1;
    return SL_OK;
}

sl_status slb_tables_build(const sl_bench_preset *p, slb_run *const *runs, slb_tables *t, char *msg, size_t msglen)
{
    memset(t, 0, sizeof *t);
    const int D = p->ndatasets, S = slb_nreps(p), E = p->nentries; /* folds pool like seeds */
    t->ndatasets = D;
    t->nentries = E;
    t->num_classes = calloc((size_t)D, sizeof *t->num_classes);
    t->small_class = calloc((size_t)D, sizeof *t->small_class);
    t->fraction = calloc((size_t)D, sizeof *t->fraction);
    t->n_cases = calloc((size_t)D, sizeof *t->n_cases);
    t->failed = calloc((size_t)D * E, sizeof *t->failed);
    t->score = calloc((size_t)D * E, sizeof *t->score);
    t->rank = calloc((size_t)D * E, sizeof *t->rank);
    t->order = calloc((size_t)D * E, sizeof *t->order);
    t->mean_rank = calloc((size_t)E, sizeof *t->mean_rank);
    t->mean_score = calloc((size_t)E, sizeof *t->mean_score);
    t->overall = calloc((size_t)E, sizeof *t->overall);
    if (!t->num_classes || !t->small_class || !t->fraction || !t->n_cases || !t->failed || !t->score || !t->rank ||
        !t->order || !t->mean_rank || !t->mean_score || !t->overall) {
        slb_tables_free(t);
        return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    }
    sl_status st = check_runs(p, runs, t, msg, msglen);
    if (st != SL_OK) {
        slb_tables_free(t);
        return st;
    }
    int64_t maxn = 1;
    for (int d = 0; d < D; d++)
        if (t->n_cases[d] > maxn) maxn = t->n_cases[d];
    t->stat = sl_calloc((int64_t)D * E * t->max_classes * SLB_NMET, sizeof *t->stat);
    double *y = sl_malloc((int64_t)E * maxn, sizeof *y);   /* [e][i] of one (d, c, m) */
    double *diff = sl_malloc(maxn, sizeof *diff);
    double *seedmean = sl_malloc(S, sizeof *seedmean);
    sort_item *items = sl_malloc(E, sizeof *items);
    double *fam = sl_malloc(E, sizeof *fam);
    double *block = sl_malloc((int64_t)D * E, sizeof *block);
    t->fr_rank = sl_calloc(E, sizeof *t->fr_rank);
    t->fr_order = sl_calloc(E, sizeof *t->fr_order);
    t->fr_group_lo = sl_calloc(E, sizeof *t->fr_group_lo);
    t->fr_group_hi = sl_calloc(E, sizeof *t->fr_group_hi);
    if (!t->stat || !y || !diff || !seedmean || !items || !fam || !block || !t->fr_rank || !t->fr_order || !t->fr_group_lo ||
        !t->fr_group_hi) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
        goto done;
    }
    const int b = p->baseline;
    for (int d = 0; d < D; d++) {
        const int64_t n = t->n_cases[d];
        for (int e = 0; e < E; e++)
            for (int s = 0; s < S; s++)
                if (runs[((int64_t)d * S + s) * E + e]->failed) t->failed[d * E + e] = 1;
        for (int c = 0; c < t->max_classes; c++)
            for (int m = 0; m < SLB_NMET; m++) {
                /* y_i and the per-seed means of every entry */
                for (int e = 0; e < E; e++) {
                    slb_stat *o = slb_stat_at(t, d, e, c, m);
                    stat_nan(o);
                    if (t->failed[d * E + e] || c >= t->num_classes[d]) continue;
                    double *ye = y + (int64_t)e * maxn;
                    for (int64_t i = 0; i < n; i++) ye[i] = 0;
                    for (int s = 0; s < S; s++) {
                        const double *v = slb_value(runs[((int64_t)d * S + s) * E + e], c, m);
                        double sum = 0;
                        for (int64_t i = 0; i < n; i++) {
                            ye[i] += v[i];
                            sum += v[i];
                        }
                        seedmean[s] = sum / (double)n;
                    }
                    for (int64_t i = 0; i < n; i++) ye[i] /= S;
                    o->n = n;
                    if ((st = sl_summary(seedmean, S, NULL, &o->seed_std, NULL)) != SL_OK ||
                        (st = sl_summary(ye, n, &o->mean, NULL, NULL)) != SL_OK ||
                        (st = sl_bootstrap_ci(ye, n, p->bootstrap, p->ci_level, p->stats_seed, &o->lo, &o->hi)) != SL_OK) {
                        st = sl_errf(msg, msglen, st, "bench: statistics of %s / %s failed", p->datasets[d].name, p->entries[e].name);
                        goto done;
                    }
                    if (p->entries[e].ensemble) o->seed_std = NAN; /* one prediction: no spread over trainings */
                }
                /* paired differences against the baseline */
                if (t->failed[d * E + b] || c >= t->num_classes[d]) continue;
                const double *yb = y + (int64_t)b * maxn;
                for (int e = 0; e < E; e++) {
                    if (e == b || t->failed[d * E + e]) continue;
                    slb_stat *o = slb_stat_at(t, d, e, c, m);
                    const double *ye = y + (int64_t)e * maxn;
                    for (int64_t i = 0; i < n; i++) diff[i] = ye[i] - yb[i];
                    if ((st = sl_summary(diff, n, &o->diff, NULL, NULL)) != SL_OK ||
                        (st = sl_bootstrap_ci(diff, n, p->bootstrap, p->ci_level, p->stats_seed, &o->diff_lo, &o->diff_hi)) != SL_OK ||
                        (st = sl_wilcoxon(ye, yb, n, &o->wilcoxon, &o->p)) != SL_OK) {
                        st = sl_errf(msg, msglen, st, "bench: comparison of %s with %s on %s failed", p->entries[e].name,
                                     p->entries[b].name, p->datasets[d].name);
                        goto done;
                    }
                }
                /* Holm over the family of this data set, class and metric:
                 * every entry that was compared with the baseline */
                int nfam = 0;
                for (int e = 0; e < E; e++)
                    if (isfinite(slb_stat_at(t, d, e, c, m)->p)) fam[nfam++] = slb_stat_at(t, d, e, c, m)->p;
                if (nfam == 0) continue;
                if ((st = sl_holm(fam, nfam, fam)) != SL_OK) {
                    st = sl_errf(msg, msglen, st, "bench: Holm's correction on %s failed", p->datasets[d].name);
                    goto done;
                }
                nfam = 0;
                for (int e = 0; e < E; e++)
                    if (isfinite(slb_stat_at(t, d, e, c, m)->p)) slb_stat_at(t, d, e, c, m)->p_holm = fam[nfam++];
            }

        /* ranking of the data set: "mean" class Dice, ties by the small class's Dice, then name */
        int nok = 0;
        for (int e = 0; e < E; e++) {
            t->score[d * E + e] = t->failed[d * E + e] ? NAN : slb_stat_at(t, d, e, 0, SLB_DICE)->mean;
            if (!t->failed[d * E + e]) {
                items[nok].key = -t->score[d * E + e];
                items[nok].tie = slb_stat_at(t, d, e, t->small_class[d], SLB_DICE)->mean;
                items[nok].index = e;
                nok++;
            }
        }
        sort_items(p, items, nok);
        int k = 0;
        for (; k < nok; k++) {
            t->order[d * E + k] = items[k].index;
            t->rank[d * E + items[k].index] = k + 1;
        }
        for (int e = 0; e < E; e++)
            if (t->failed[d * E + e]) {
                t->order[d * E + k++] = e;
                t->rank[d * E + e] = E; /* failed entries share the last rank */
            }
    }

    /* overall: mean rank over the data sets, ties by the mean score */
    for (int e = 0; e < E; e++) {
        double rs = 0, ss = 0;
        int ns = 0;
        for (int d = 0; d < D; d++) {
            rs += t->rank[d * E + e];
            if (!t->failed[d * E + e]) {
                ss += t->score[d * E + e];
                ns++;
            }
        }
        t->mean_rank[e] = rs / D;
        t->mean_score[e] = ns ? ss / ns : NAN;
        items[e].key = t->mean_rank[e];
        items[e].tie = ns ? t->mean_score[e] : -INFINITY;
        items[e].index = e;
    }
    sort_items(p, items, E);
    for (int e = 0; e < E; e++) t->overall[e] = items[e].index;
    if ((st = friedman(p, t, block, items)) != SL_OK) {
        st = sl_errf(msg, msglen, st, "bench: the Friedman test failed");
        goto done;
    }
    st = SL_OK;
done:
    free(fam);
    free(block);
    free(y);
    free(diff);
    free(seedmean);
    free(items);
    if (st != SL_OK) slb_tables_free(t);
    return st;
}

void slb_tables_free(slb_tables *t)
{
    if (!t) return;
    free(t->stat);
    free(t->num_classes);
    free(t->small_class);
    free(t->fraction);
    free(t->n_cases);
    free(t->failed);
    free(t->score);
    free(t->rank);
    free(t->order);
    free(t->mean_rank);
    free(t->mean_score);
    free(t->overall);
    free(t->fr_rank);
    free(t->fr_order);
    free(t->fr_group_lo);
    free(t->fr_group_hi);
    memset(t, 0, sizeof *t);
}
