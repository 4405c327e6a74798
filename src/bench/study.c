/*
 * Two questions about the training budget, answered from what each run
 * already records (its per-epoch validation Dice, as the trainer logs it):
 * did the run converge (a plateau at the end of training), and is the
 * ranking of the entries stable when the budget grows (the budget study,
 * "budget_study" in the preset). docs/benchmark.md states both rules.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_internal.h"

const char *slb_conv_name(int conv)
{
    return conv == SLB_CONV_YES ? "yes" : conv == SLB_CONV_NO ? "no" : "unknown";
}

int slb_converged(const double *v, int64_t n, int64_t stride)
{
    if (n < SLB_CONV_MIN_EVALS) return SLB_CONV_UNKNOWN;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i * stride])) return SLB_CONV_UNKNOWN; /* a run without validation */
    /* the last quarter of the evaluations, rounded up (>= 2 points) */
    const int64_t w = (n + 3) / 4, first = n - w;
    double best = -INFINITY, best_last = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        best = fmax(best, v[i * stride]);
        if (i >= first) best_last = fmax(best_last, v[i * stride]);
    }
    /* least-squares slope over the window, per evaluation; the rise is what
     * the fitted line climbs from the window's first point to its last */
    double mx = 0, my = 0;
    for (int64_t i = first; i < n; i++) {
        mx += (double)(i - first);
        my += v[i * stride];
    }
    mx /= (double)w;
    my /= (double)w;
    double sxy = 0, sxx = 0;
    for (int64_t i = first; i < n; i++) {
        sxy += ((double)(i - first) - mx) * (v[i * stride] - my);
        sxx += ((double)(i - first) - mx) * ((double)(i - first) - mx);
    }
    const double rise = sxy / sxx * (double)(w - 1);
    return best_last >= best - SLB_CONV_TOL && rise < SLB_CONV_TOL ? SLB_CONV_YES : SLB_CONV_NO;
}

int slb_run_converged(const slb_run *r)
{
    if (r->failed) return SLB_CONV_UNKNOWN;
    return slb_converged(r->curve_val, r->nepochs, r->num_classes); /* column 0: the mean over the foreground */
}

double slb_kendall_tau(const double *x, const double *y, int n, int *discordant)
{
    int64_t conc = 0, disc = 0, tx = 0, ty = 0, pairs = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            /* NaN (a failed entry) ranks below every number and ties with NaN */
            const double xi = isnan(x[i]) ? -INFINITY : x[i], xj = isnan(x[j]) ? -INFINITY : x[j];
            const double yi = isnan(y[i]) ? -INFINITY : y[i], yj = isnan(y[j]) ? -INFINITY : y[j];
            const int sx = (xi > xj) - (xi < xj), sy = (yi > yj) - (yi < yj);
            pairs++;
            if (sx == 0) tx++;
            if (sy == 0) ty++;
            if (sx && sy) {
                if (sx == sy) conc++;
                else disc++;
            }
        }
    if (discordant) *discordant = (int)disc;
    const double den = sqrt((double)(pairs - tx) * (double)(pairs - ty));
    return den > 0 ? (double)(conc - disc) / den : NAN;
}

/* ------------------------------------------------------------- the report */

/* Appends, for data set d, the entries with a run that did not converge
 * (want = SLB_CONV_NO) or whose convergence is unknown, as "a (1/3 seeds),
 * b"; returns how many entries it named. */
static int conv_list(const slb_report *r, int d, int want, slb_str *s, int html)
{
    const sl_bench_preset *p = r->p;
    int named = 0;
    for (int e = 0; e < p->nentries; e++) {
        int k = 0;
        const int nr = p->entries[e].ensemble ? 1 : slb_nreps(p); /* an ensemble is one run */
        for (int sd = 0; sd < nr; sd++) {
            const slb_run *run = slb_report_run(r, d, sd, e);
            k += !run->failed && slb_run_converged(run) == want;
        }
        if (!k) continue;
        slb_puts(s, named++ ? ", " : "");
        if (html) slb_html(s, p->entries[e].name);
        else slb_printf(s, "`%s`", p->entries[e].name);
        if (nr > 1) slb_printf(s, " (%d/%d %s)", k, nr, p->nfolds ? "trainings" : "seeds");
    }
    return named;
}

/* The fewest validation points of the runs that did not fail (-1: none). */
static int64_t min_evals(const slb_report *r)
{
    int64_t lo = -1;
    for (int64_t i = 0; i < sl_bench_num_runs(r->p); i++)
        if (!r->runs[i]->failed && (lo < 0 || r->runs[i]->nepochs < lo)) lo = r->runs[i]->nepochs;
    return lo;
}

static void conv_section(const slb_report *r, slb_str *s, int html)
{
    const sl_bench_preset *p = r->p;
    slb_printf(s, html ? "<section id=\"convergence\"><h2>Convergence</h2>\n<p>" : "\n## Convergence\n\n");
    slb_printf(s, "A run converged when its validation Dice (mean over the foreground classes, one value per epoch) "
                  "plateaued: over the last quarter of the epochs (rounded up), the best value is within %g of the best of "
                  "the run and the least-squares line rises by less than %g. Fewer than %d epochs: unknown. Entries not "
                  "named below converged in every run that did not fail; where an entry did not, its rank says how fast the "
                  "loss starts more than where it ends.",
               SLB_CONV_TOL, SLB_CONV_TOL, SLB_CONV_MIN_EVALS);
    const int64_t lo = min_evals(r);
    if (lo >= 0 && lo < SLB_CONV_MIN_EVALS)
        slb_printf(s, " Some runs record only %lld validation points: give the preset at least %d epochs to decide.", (long long)lo,
                   SLB_CONV_MIN_EVALS);
    slb_puts(s, html ? "</p>\n<ul>\n" : "\n\n");
    for (int d = 0; d < p->ndatasets; d++) {
        slb_puts(s, html ? "<li><b>" : "- **");
        if (html) slb_html(s, p->datasets[d].name);
        else slb_puts(s, p->datasets[d].name);
        slb_puts(s, html ? "</b>: not converged: " : "**: not converged: ");
        if (!conv_list(r, d, SLB_CONV_NO, s, html)) slb_puts(s, "none");
        slb_puts(s, "; unknown: ");
        if (!conv_list(r, d, SLB_CONV_UNKNOWN, s, html)) slb_puts(s, "none");
        slb_puts(s, html ? ".</li>\n" : ".\n");
    }
    if (html) slb_puts(s, "</ul>\n</section>\n");
}

/* Budget factor k of the study against factor 0: the scores of the base
 * entries per data set (d < ndatasets) or their mean scores (d = -1). */
static double budget_tau(const slb_report *r, int d, int k, slb_str *swaps, int html, int *nswap)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    const int nb = p->nbase_entries, E = p->nentries;
    double *x = malloc((size_t)nb * sizeof *x), *y = malloc((size_t)nb * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        *nswap = 0;
        return NAN;
    }
    for (int i = 0; i < nb; i++) {
        x[i] = d < 0 ? t->mean_score[i] : t->score[d * E + i];
        y[i] = d < 0 ? t->mean_score[k * nb + i] : t->score[d * E + k * nb + i];
    }
    const double tau = slb_kendall_tau(x, y, nb, nswap);
    int listed = 0;
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < nb; j++) {
            const double xi = isnan(x[i]) ? -INFINITY : x[i], xj = isnan(x[j]) ? -INFINITY : x[j];
            const double yi = isnan(y[i]) ? -INFINITY : y[i], yj = isnan(y[j]) ? -INFINITY : y[j];
            if (!(xi > xj && yi < yj)) continue;
            if (listed++ == 12) slb_puts(swaps, ", …");
            if (listed > 12) continue;
            slb_puts(swaps, listed > 1 ? ", " : "");
            /* i was ahead at 1x, j is ahead at the larger budget */
            if (html) {
                slb_html(swaps, p->entries[i].name);
                slb_puts(swaps, " ↔ ");
                slb_html(swaps, p->entries[j].name);
            } else
                slb_printf(swaps, "`%s` ↔ `%s`", p->entries[i].name, p->entries[j].name);
        }
    free(x);
    free(y);
    return tau;
}

static void budget_section(const slb_report *r, slb_str *s, int html)
{
    const sl_bench_preset *p = r->p;
    if (p->nbudgets < 2) return;
    slb_puts(s, html ? "<section id=\"budget\"><h2>Budget study</h2>\n<p>" : "\n## Budget study\n\n");
    slb_printf(s, "The %d losses trained again with the epochs multiplied (entries named \"@Nx\"); per data set, Kendall's "
                  "τ-b between the ranking by the Dice averaged over the foreground classes at the preset's budget and at "
                  "the larger one (1: the same order; failed entries rank last), and the pairs that swap (the first was "
                  "ahead at 1x). \"overall\" compares the mean scores over the data sets.",
               p->nbase_entries);
    slb_puts(s, html ? "</p>\n" : "\n");
    for (int k = 1; k < p->nbudgets; k++) {
        if (html)
            slb_printf(s, "<h3>1x against %dx</h3>\n<table><thead><tr><th>data set</th><th>τ</th><th>pairs swapped</th>"
                          "<th>swaps</th></tr></thead><tbody>\n",
                       p->budgets[k]);
        else
            slb_printf(s, "\n### 1x against %dx\n\n| data set | τ | pairs swapped | swaps |\n|---|---:|---:|---|\n", p->budgets[k]);
        for (int d = 0; d <= p->ndatasets; d++) {
            slb_str sw = {0};
            int nswap = 0;
            const int overall = d == p->ndatasets;
            const double tau = budget_tau(r, overall ? -1 : d, k, &sw, html, &nswap);
            char a[32];
            slb_fmt(a, sizeof a, tau, 3);
            const char *name = overall ? "overall" : p->datasets[d].name;
            const char *sws = sw.p && sw.len ? sw.p : "none";
            if (html) {
                slb_puts(s, "<tr><td>");
                slb_html(s, name);
                slb_printf(s, "</td><td class=\"num\">%s</td><td class=\"num\">%d</td><td>%s</td></tr>\n", a, nswap, sws);
            } else
                slb_printf(s, "| %s | %s | %d | %s |\n", name, a, nswap, sws);
            slb_str_free(&sw);
        }
        if (html) slb_puts(s, "</tbody></table>\n");
    }
    if (html) slb_puts(s, "</section>\n");
}

void slb_study_markdown(const slb_report *r, slb_str *s)
{
    conv_section(r, s, 0);
    budget_section(r, s, 0);
}

void slb_study_html(const slb_report *r, slb_str *h)
{
    conv_section(r, h, 1);
    budget_section(r, h, 1);
}
