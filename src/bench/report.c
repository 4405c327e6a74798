/*
 * The benchmark's data files and text reports: results.csv (one row per
 * data set, seed, entry, class and metric), summary.csv (the statistics
 * tables), results.json (both, plus the ranking, the runs and the preset),
 * report.md, and the plain-text ranking the terminal shows.
 */
#define _POSIX_C_SOURCE 200809L
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_internal.h"
#include "search.h"

char **slb_report_classes(const slb_report *r, int d)
{
    for (int s = 0; s < slb_nreps(r->p); s++)
        for (int e = 0; e < r->p->nentries; e++)
            if (!slb_report_run(r, d, s, e)->failed) return slb_report_run(r, d, s, e)->class_names;
    return NULL;
}

static double run_mean(const slb_run *run, int c, int m)
{
    const double *v = slb_value(run, c, m);
    double s = 0;
    for (int64_t i = 0; i < run->n_cases; i++) s += v[i];
    return s / (double)run->n_cases;
}

/* ------------------------------------------------------------------- CSV */

static void csv_field(slb_str *s, const char *text)
{
    if (!strpbrk(text, ",\"\n\r")) {
        slb_puts(s, text);
        return;
    }
    slb_puts(s, "\"");
    for (const char *c = text; *c; c++) {
        if (*c == '"') slb_puts(s, "\"\"");
        else {
            char one[2] = {*c, 0};
            slb_puts(s, one);
        }
    }
    slb_puts(s, "\"");
}

static void csv_num(slb_str *s, double v)
{
    if (isnan(v)) return; /* empty field */
    if (isinf(v)) slb_puts(s, v > 0 ? "inf" : "-inf");
    else slb_printf(s, "%.17g", v);
}

sl_status slb_write_csv(const slb_report *r, char *msg, size_t msglen)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    slb_str s = {0};
    char tt[32];
    /* the fold column only with folds, so that other benchmarks keep their files */
    slb_puts(&s, p->nfolds ? "dataset,fraction,seed,loss,spec,tta,int8,status,class,metric,value,n_cases,converged,fold\n"
                           : "dataset,fraction,seed,loss,spec,tta,int8,status,class,metric,value,n_cases,converged\n");
    for (int d = 0; d < p->ndatasets; d++) {
        char **names = slb_report_classes(r, d);
        for (int sd = 0; sd < slb_nreps(p); sd++)
            for (int e = 0; e < p->nentries; e++) {
                if (!slb_rep_listed(p, e, sd)) continue;
                const int ens = p->entries[e].ensemble;
                const slb_run *run = slb_report_run(r, d, sd, e);
                /* every run of the data set failed: its classes are unknown, one row per run */
                const int nc = names ? t->num_classes[d] : 1, nm = names ? SLB_NMET : 1;
                for (int c = 0; c < nc; c++)
                    for (int m = 0; m < nm; m++) {
                        csv_field(&s, p->datasets[d].name);
                        slb_puts(&s, ",");
                        csv_num(&s, t->fraction[d]);
                        if (ens) slb_puts(&s, ",ens,"); /* the ensemble of every seed and fold */
                        else slb_printf(&s, ",%llu,", (unsigned long long)slb_rep_seed(p, sd));
                        csv_field(&s, p->entries[e].name);
                        slb_puts(&s, ",");
                        csv_field(&s, slb_report_spec(r, d, e)); /* a searched entry: the chosen spec */
                        slb_printf(&s, ",%s,%d,%s,", slb_tta_text(&p->entries[e], 1, tt, sizeof tt), p->entries[e].int8,
                                   run->failed ? "failed" : "ok");
                        csv_field(&s, names ? names[c] : "");
                        slb_printf(&s, ",%s,", names ? slb_metric_names[m] : "");
                        if (!run->failed) csv_num(&s, run_mean(run, c, m));
                        /* appended last so that the earlier columns keep their places; empty for a failed run */
                        slb_printf(&s, ",%lld,%s", (long long)(run->failed ? 0 : run->n_cases),
                                   run->failed ? "" : slb_conv_name(slb_run_converged(run)));
                        if (p->nfolds && !ens) slb_printf(&s, ",%d", slb_rep_fold(p, sd));
                        else if (p->nfolds) slb_puts(&s, ",");
                        slb_puts(&s, "\n");
                    }
            }
    }
    sl_status st = slb_write_text(r->dir, "results.csv", &s, msg, msglen);
    slb_str_free(&s);
    if (st != SL_OK) return st;

    slb_puts(&s, "dataset,loss,class,metric,n_cases,mean,ci_lo,ci_hi,seed_std,diff,diff_ci_lo,diff_ci_hi,wilcoxon,p,p_holm,rank\n");
    for (int d = 0; d < p->ndatasets; d++) {
        char **names = slb_report_classes(r, d);
        for (int e = 0; e < p->nentries; e++)
            for (int c = 0; c < t->num_classes[d]; c++)
                for (int m = 0; m < SLB_NMET; m++) {
                    const slb_stat *o = slb_stat_at(t, d, e, c, m);
                    csv_field(&s, p->datasets[d].name);
                    slb_puts(&s, ",");
                    csv_field(&s, p->entries[e].name);
                    slb_puts(&s, ",");
                    csv_field(&s, names[c]);
                    slb_printf(&s, ",%s,%lld", slb_metric_names[m], (long long)o->n);
                    const double v[] = {o->mean, o->lo, o->hi, o->seed_std, o->diff, o->diff_lo, o->diff_hi, o->wilcoxon, o->p,
                                         o->p_holm};
                    for (size_t k = 0; k < sizeof v / sizeof *v; k++) {
                        slb_puts(&s, ",");
                        csv_num(&s, v[k]);
                    }
                    slb_printf(&s, ",%d\n", t->rank[d * p->nentries + e]);
                }
    }
    st = slb_write_text(r->dir, "summary.csv", &s, msg, msglen);
    slb_str_free(&s);
    return st;
}

/* ------------------------------------------------------------------ volumes */

int slb_dataset_is_volume(const sl_bench_preset *p, int d)
{
    const sl_train_config *c = &p->datasets[d].config;
    return c->patch_depth > 0 || c->data_opts.volumes || !strcmp(c->data, "phantom3d") || !strcmp(c->data, "colin3d");
}

int slb_preset_has_volumes(const sl_bench_preset *p)
{
    for (int d = 0; d < p->ndatasets; d++)
        if (slb_dataset_is_volume(p, d)) return 1;
    return 0;
}

/* ------------------------------------------------------------------ JSON */

static int add_num(cJSON *o, const char *key, double v)
{
    cJSON *n = slb_json_exact(v);
    return n && cJSON_AddItemToObject(o, key, n);
}

/* "seed" of a row: the seed, or "ens" for an ensemble entry; then "fold"
 * (null for an ensemble) when the preset has folds. */
static int add_rep(cJSON *o, const sl_bench_preset *p, int e, int s)
{
    const int ens = p->entries[e].ensemble;
    int ok = ens ? cJSON_AddStringToObject(o, "seed", "ens") != NULL
                 : cJSON_AddNumberToObject(o, "seed", (double)slb_rep_seed(p, s)) != NULL;
    if (ok && p->nfolds)
        ok = ens ? cJSON_AddNullToObject(o, "fold") != NULL : cJSON_AddNumberToObject(o, "fold", slb_rep_fold(p, s)) != NULL;
    return ok;
}

sl_status slb_write_json(const slb_report *r, char *msg, size_t msglen)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    const int E = p->nentries;
    cJSON *root = cJSON_CreateObject(), *a = NULL, *o = NULL, *preset = cJSON_Parse(p->json);
    int ok = root && preset && cJSON_AddStringToObject(root, "format", "segloss-bench-results") &&
             cJSON_AddNumberToObject(root, "version", 1) && cJSON_AddStringToObject(root, "segloss_version", sl_version()) &&
             cJSON_AddItemToObject(root, "preset", preset);
    if (!ok) cJSON_Delete(preset);
    /* the sample words: slices only (as always), or with volumes in mm */
    const char *head = slb_preset_has_volumes(p)
                           ? "per test case (a 2-D slice, or a 3-D volume scored whole), per foreground class; hd95 = max "
                             "of the directed 95th percentiles on border pixels (voxels), in pixels for slices and in mm "
                             "for volumes (their voxel spacing), one side empty = the slice or volume diagonal (same "
                             "unit); nsd at evaluation.nsd_tolerance (pixels; mm for volumes); lesion_f1 on fully "
                             "connected components (8 in 2-D, 26 in 3-D), detected at >= 1 pixel (voxel) of overlap; "
                           : "per test case (2-D slice), per foreground class; hd95 = max of the directed 95th "
                             "percentiles on border pixels, one side empty = the slice diagonal (pixels); nsd at "
                             "evaluation.nsd_tolerance pixels; lesion_f1 on 8-connected components, detected at >= 1 "
                             "pixel of overlap; ";
    char conv[2048];
    snprintf(conv, sizeof conv, "%s%s", head,
                                       "both empty: dice = nsd = recall = precision = lesion_f1 = 1, hd95 = 0; "
                                       "class \"mean\" = mean over the foreground classes of each case; statistics over cases "
                                       "of the values averaged over seeds; seed_std = std (n-1) of the per-seed means; CIs = "
                                       "percentile bootstrap; p = two-sided Wilcoxon signed-rank (scipy defaults); p_holm = p "
                                       "after Holm's step-down correction over the entries compared with the baseline on the "
                                       "same data set, class and metric; friedman: ranks of the ranking score per data set "
                                       "(ties averaged, failed runs tied last), Friedman chi-square (scipy's tie correction), "
                                       "Iman-Davenport F, Nemenyi critical difference (Demsar 2006) at alpha 0.05");
    ok = ok && cJSON_AddStringToObject(root, "conventions", conv);
    ok = ok && (a = cJSON_AddArrayToObject(root, "datasets"));
    for (int d = 0; ok && d < p->ndatasets; d++) {
        char **names = slb_report_classes(r, d);
        cJSON *cl;
        ok = (o = cJSON_CreateObject()) && cJSON_AddItemToArray(a, o) && cJSON_AddStringToObject(o, "name", p->datasets[d].name) &&
             cJSON_AddStringToObject(o, "data", p->datasets[d].config.data) && cJSON_AddBoolToObject(o, "sweep", p->datasets[d].sweep) &&
             add_num(o, "fraction", t->fraction[d]) && cJSON_AddNumberToObject(o, "cases", (double)t->n_cases[d]) &&
             cJSON_AddStringToObject(o, "small_class", names ? names[t->small_class[d]] : "") &&
             (cl = cJSON_AddArrayToObject(o, "classes"));
        for (int c = 1; ok && names && c < t->num_classes[d]; c++) ok = cJSON_AddItemToArray(cl, cJSON_CreateString(names[c]));
    }
    ok = ok && (a = cJSON_AddArrayToObject(root, "rows"));
    for (int d = 0; ok && d < p->ndatasets; d++) {
        char **names = slb_report_classes(r, d);
        for (int s = 0; ok && s < slb_nreps(p); s++)
            for (int e = 0; ok && e < E; e++) {
                if (!slb_rep_listed(p, e, s)) continue;
                const slb_run *run = slb_report_run(r, d, s, e);
                const int nc = names ? t->num_classes[d] : 1, nm = names ? SLB_NMET : 1;
                for (int c = 0; ok && c < nc; c++)
                    for (int m = 0; ok && m < nm; m++)
                        ok = (o = cJSON_CreateObject()) && cJSON_AddItemToArray(a, o) &&
                             cJSON_AddStringToObject(o, "dataset", p->datasets[d].name) &&
                             add_rep(o, p, e, s) && cJSON_AddStringToObject(o, "loss", p->entries[e].name) &&
                             cJSON_AddStringToObject(o, "spec", slb_report_spec(r, d, e)) &&
                             cJSON_AddItemToObject(o, "tta", slb_tta_json(&p->entries[e])) &&
                             cJSON_AddBoolToObject(o, "int8", p->entries[e].int8) &&
                             cJSON_AddStringToObject(o, "status", run->failed ? "failed" : "ok") &&
                             cJSON_AddStringToObject(o, "class", names ? names[c] : "") &&
                             cJSON_AddStringToObject(o, "metric", names ? slb_metric_names[m] : "") &&
                             add_num(o, "value", run->failed ? NAN : run_mean(run, c, m)) &&
                             cJSON_AddNumberToObject(o, "n_cases", run->failed ? 0 : (double)run->n_cases) &&
                             (run->failed ? cJSON_AddNullToObject(o, "converged")
                                          : cJSON_AddStringToObject(o, "converged", slb_conv_name(slb_run_converged(run))));
            }
    }
    ok = ok && (a = cJSON_AddArrayToObject(root, "statistics"));
    for (int d = 0; ok && d < p->ndatasets; d++) {
        char **names = slb_report_classes(r, d);
        for (int e = 0; ok && e < E; e++)
            for (int c = 0; ok && c < t->num_classes[d]; c++)
                for (int m = 0; ok && m < SLB_NMET; m++) {
                    const slb_stat *st = slb_stat_at(t, d, e, c, m);
                    ok = (o = cJSON_CreateObject()) && cJSON_AddItemToArray(a, o) &&
                         cJSON_AddStringToObject(o, "dataset", p->datasets[d].name) &&
                         cJSON_AddStringToObject(o, "loss", p->entries[e].name) && cJSON_AddStringToObject(o, "class", names[c]) &&
                         cJSON_AddStringToObject(o, "metric", slb_metric_names[m]) &&
                         cJSON_AddNumberToObject(o, "n_cases", (double)st->n) && add_num(o, "mean", st->mean) &&
                         add_num(o, "ci_lo", st->lo) && add_num(o, "ci_hi", st->hi) && add_num(o, "seed_std", st->seed_std) &&
                         add_num(o, "diff", st->diff) && add_num(o, "diff_ci_lo", st->diff_lo) &&
                         add_num(o, "diff_ci_hi", st->diff_hi) && add_num(o, "wilcoxon", st->wilcoxon) && add_num(o, "p", st->p) &&
                         add_num(o, "p_holm", st->p_holm);
                }
    }
    cJSON *rk = ok ? cJSON_AddObjectToObject(root, "ranking") : NULL, *per = NULL;
    ok = rk && cJSON_AddStringToObject(rk, "score", "mean over the foreground classes of the Dice (class \"mean\"); ties by the "
                                                    "smallest class's Dice, then by name; failed entries share the last rank") &&
         (per = cJSON_AddObjectToObject(rk, "datasets"));
    for (int d = 0; ok && d < p->ndatasets; d++) {
        cJSON *lst = cJSON_AddArrayToObject(per, p->datasets[d].name);
        ok = lst != NULL;
        for (int k = 0; ok && k < E; k++) {
            int e = t->order[d * E + k];
            ok = (o = cJSON_CreateObject()) && cJSON_AddItemToArray(lst, o) &&
                 cJSON_AddNumberToObject(o, "rank", t->rank[d * E + e]) && cJSON_AddStringToObject(o, "loss", p->entries[e].name) &&
                 add_num(o, "score", t->score[d * E + e]) && cJSON_AddBoolToObject(o, "failed", t->failed[d * E + e]);
        }
    }
    cJSON *ov = ok ? cJSON_AddArrayToObject(rk, "overall") : NULL;
    ok = ov != NULL;
    for (int k = 0; ok && k < E; k++) {
        int e = t->overall[k];
        ok = (o = cJSON_CreateObject()) && cJSON_AddItemToArray(ov, o) && cJSON_AddNumberToObject(o, "rank", k + 1) &&
             cJSON_AddStringToObject(o, "loss", p->entries[e].name) && add_num(o, "mean_rank", t->mean_rank[e]) &&
             add_num(o, "mean_score", t->mean_score[e]);
    }
    cJSON *fr = ok && t->friedman ? cJSON_AddObjectToObject(root, "friedman") : NULL;
    if (ok && t->friedman) {
        ok = fr && add_num(fr, "chi2", t->fr_chi2) && add_num(fr, "p", t->fr_p) && add_num(fr, "iman_davenport_f", t->fr_f) &&
             add_num(fr, "iman_davenport_p", t->fr_fp) && add_num(fr, "alpha", t->nem_alpha) && add_num(fr, "q_alpha", t->nem_q) &&
             add_num(fr, "cd", t->nem_cd) && (a = cJSON_AddArrayToObject(fr, "mean_ranks"));
        for (int k = 0; ok && k < E; k++) {
            int e = t->fr_order[k];
            ok = (o = cJSON_CreateObject()) && cJSON_AddItemToArray(a, o) && cJSON_AddStringToObject(o, "loss", p->entries[e].name) &&
                 add_num(o, "mean_rank", t->fr_rank[e]);
        }
        ok = ok && (a = cJSON_AddArrayToObject(fr, "groups"));
        for (int g = 0; ok && g < t->fr_ngroups; g++) {
            cJSON *grp = cJSON_CreateArray();
            ok = grp && cJSON_AddItemToArray(a, grp);
            for (int k = t->fr_group_lo[g]; ok && k <= t->fr_group_hi[g]; k++)
                ok = cJSON_AddItemToArray(grp, cJSON_CreateString(p->entries[t->fr_order[k]].name));
        }
    }
    ok = ok && (a = cJSON_AddArrayToObject(root, "runs"));
    for (int d = 0; ok && d < p->ndatasets; d++)
        for (int s = 0; ok && s < slb_nreps(p); s++)
            for (int e = 0; ok && e < E; e++) {
                if (!slb_rep_listed(p, e, s)) continue;
                const slb_run *run = slb_report_run(r, d, s, e);
                ok = (o = cJSON_CreateObject()) && cJSON_AddItemToArray(a, o) &&
                     cJSON_AddStringToObject(o, "dataset", p->datasets[d].name) &&
                     add_rep(o, p, e, s) && cJSON_AddStringToObject(o, "loss", p->entries[e].name) &&
                     cJSON_AddStringToObject(o, "status", run->failed ? "failed" : "ok") &&
                     cJSON_AddStringToObject(o, "message", run->message) && add_num(o, "seconds_train", run->seconds_train) &&
                     add_num(o, "seconds_eval", run->seconds_eval) && cJSON_AddNumberToObject(o, "num_params", (double)run->num_params) &&
                     cJSON_AddNumberToObject(o, "budget", p->entries[e].budget) &&
                     (run->failed ? cJSON_AddNullToObject(o, "converged")
                                  : cJSON_AddStringToObject(o, "converged", slb_conv_name(slb_run_converged(run))));
            }
    /* only with searched entries, so that other results keep their form */
    if (ok && r->search) ok = cJSON_AddItemToObject(root, "searches", slb_search_results_json(r));
    ok = ok && (o = cJSON_AddObjectToObject(root, "timing")) && add_num(o, "seconds", r->seconds) &&
         add_num(o, "cpu_seconds", r->cpu_seconds);
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory writing results.json");
    slb_str s = {text, strlen(text), strlen(text) + 1, 0};
    sl_status st = slb_write_text(r->dir, "results.json", &s, msg, msglen);
    cJSON_free(text);
    return st;
}

/* ------------------------------------------------------------ text tables */

/* A table of text cells laid out in aligned columns (plain) or as a
 * Markdown table. */
typedef struct table {
    int ncols, nrows;
    char cells[260][16][72]; /* [row][col]; row 0 is the header */
    int right[16];          /* right-aligned column */
} table;

static void tcell(table *tb, int row, int col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void tcell(table *tb, int row, int col, const char *fmt, ...)
{
    if (row >= 260 || col >= 16) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tb->cells[row][col], sizeof tb->cells[row][col], fmt, ap);
    va_end(ap);
    if (row + 1 > tb->nrows) tb->nrows = row + 1;
    if (col + 1 > tb->ncols) tb->ncols = col + 1;
}

/* Display width of UTF-8 text (code points). */
static int width(const char *s)
{
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void table_out(const table *tb, int markdown, slb_str *out)
{
    int w[16] = {0};
    for (int r = 0; r < tb->nrows; r++)
        for (int c = 0; c < tb->ncols; c++)
            if (width(tb->cells[r][c]) > w[c]) w[c] = width(tb->cells[r][c]);
    for (int r = 0; r < tb->nrows; r++) {
        if (markdown) slb_puts(out, "|");
        for (int c = 0; c < tb->ncols; c++) {
            int pad = w[c] - width(tb->cells[r][c]);
            slb_puts(out, markdown ? " " : (c ? "  " : ""));
            if (tb->right[c]) slb_printf(out, "%*s", pad, "");
            slb_puts(out, tb->cells[r][c]);
            if (!tb->right[c] && (markdown || c + 1 < tb->ncols)) slb_printf(out, "%*s", pad, "");
            if (markdown) slb_puts(out, " |");
        }
        slb_puts(out, "\n");
        if (r == 0 && markdown) {
            slb_puts(out, "|");
            for (int c = 0; c < tb->ncols; c++) {
                slb_puts(out, " ");
                for (int k = 0; k < w[c] - (tb->right[c] ? 1 : 0); k++) slb_puts(out, "-");
                slb_puts(out, tb->right[c] ? ": |" : " |");
            }
            slb_puts(out, "\n");
        }
    }
}

/* The ranking table of data set d. */
static void dataset_table(const slb_report *r, int d, table *tb)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    const int E = p->nentries, sc = t->small_class[d];
    memset(tb, 0, sizeof *tb);
    int col = 0;
    tcell(tb, 0, col++, "rank");
    tcell(tb, 0, col++, "loss");
    tcell(tb, 0, col++, slb_nreps(p) > 1 ? "Dice (mean ± sd)" : "Dice (mean)");
    /* the small class is named in the line above the table: its name can be long */
    tcell(tb, 0, col++, "small Dice [%g%% CI]", 100 * p->ci_level);
    tcell(tb, 0, col++, "small HD95");
    tcell(tb, 0, col++, "small lesion F1");
    tcell(tb, 0, col++, "ΔDice vs %.24s [CI]", p->entries[p->baseline].name);
    tcell(tb, 0, col++, "p");
    tcell(tb, 0, col++, "p (Holm)");
    tb->right[0] = tb->right[2] = tb->right[4] = tb->right[5] = tb->right[7] = tb->right[8] = 1;
    for (int k = 0; k < E && k < 259; k++) {
        int e = t->order[d * E + k], row = k + 1;
        char a[64], b[64], c[64];
        tcell(tb, row, 0, "%d", t->rank[d * E + e]);
        tcell(tb, row, 1, "%s", p->entries[e].name);
        if (t->failed[d * E + e]) {
            tcell(tb, row, 2, "failed");
            for (int k2 = 3; k2 < 9; k2++) tcell(tb, row, k2, "-");
            continue;
        }
        const slb_stat *dm = slb_stat_at(t, d, e, 0, SLB_DICE);
        if (slb_nreps(p) > 1 && !p->entries[e].ensemble) tcell(tb, row, 2, "%s ± %s", slb_fmt(a, sizeof a, dm->mean, 3), slb_fmt(b, sizeof b, dm->seed_std, 3));
        else tcell(tb, row, 2, "%s", slb_fmt(a, sizeof a, dm->mean, 3));
        const slb_stat *sd = slb_stat_at(t, d, e, sc, SLB_DICE);
        slb_fmt_ci(c, sizeof c, sd->mean, sd->lo, sd->hi, 3);
        tcell(tb, row, 3, "%s", c);
        tcell(tb, row, 4, "%s", slb_fmt(a, sizeof a, slb_stat_at(t, d, e, sc, SLB_HD95)->mean, 2));
        tcell(tb, row, 5, "%s", slb_fmt(a, sizeof a, slb_stat_at(t, d, e, sc, SLB_LESION_F1)->mean, 3));
        if (e == p->baseline) {
            tcell(tb, row, 6, "baseline");
            tcell(tb, row, 7, "-");
            tcell(tb, row, 8, "-");
        } else {
            char sign[8];
            snprintf(sign, sizeof sign, "%s", dm->diff >= 0 ? "+" : "");
            slb_fmt_ci(c, sizeof c, dm->diff, dm->diff_lo, dm->diff_hi, 3);
            tcell(tb, row, 6, "%s%s", sign, c);
            tcell(tb, row, 7, "%s", slb_fmt_p(a, sizeof a, dm->p));
            tcell(tb, row, 8, "%s", slb_fmt_p(a, sizeof a, dm->p_holm));
        }
    }
}

static void overall_table(const slb_report *r, table *tb)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    const int E = p->nentries;
    memset(tb, 0, sizeof *tb);
    tcell(tb, 0, 0, "rank");
    tcell(tb, 0, 1, "loss");
    tcell(tb, 0, 2, "mean rank");
    tb->right[0] = tb->right[2] = 1;
    int nd = p->ndatasets < 12 ? p->ndatasets : 12;
    for (int d = 0; d < nd; d++) {
        tcell(tb, 0, 3 + d, "%.40s", p->datasets[d].name);
        tb->right[3 + d] = 1;
    }
    for (int k = 0; k < E && k < 259; k++) {
        int e = t->overall[k];
        char a[32];
        tcell(tb, k + 1, 0, "%d", k + 1);
        tcell(tb, k + 1, 1, "%s", p->entries[e].name);
        tcell(tb, k + 1, 2, "%.2f", t->mean_rank[e]);
        for (int d = 0; d < nd; d++) {
            if (t->failed[d * E + e]) tcell(tb, k + 1, 3 + d, "failed (%d)", t->rank[d * E + e]);
            else tcell(tb, k + 1, 3 + d, "%s (%d)", slb_fmt(a, sizeof a, t->score[d * E + e], 3), t->rank[d * E + e]);
        }
    }
}

static void seeds_text(const sl_bench_preset *p, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = 0;
    for (int s = 0; s < p->nseeds && k + 24 < len; s++)
        k += (size_t)snprintf(buf + k, len - k, "%s%llu", s ? ", " : "", (unsigned long long)p->seeds[s]);
    if (p->nfolds && k + 24 < len) snprintf(buf + k, len - k, "; %d folds each", p->nfolds);
}

/* Two data sets train alike when the network and the budget the header names are the same. */
static int same_training(const sl_train_config *a, const sl_train_config *b)
{
    return a->depth == b->depth && a->base_width == b->base_width && a->epochs == b->epochs &&
           a->steps_per_epoch == b->steps_per_epoch && a->batch_size == b->batch_size;
}

/*
 * "the same U-Net (depth D, width W) ... for E epochs × S steps × batch B": one budget when every data set has it,
 * else each distinct one followed by the data sets that train with it, so a data set's own "train" block is never
 * reported as another's.
 */
void slb_training_text(const sl_bench_preset *p, slb_str *s)
{
    const sl_train_config *c0 = &p->datasets[0].config;
    int uniform = 1;
    for (int d = 1; d < p->ndatasets; d++) uniform &= same_training(c0, &p->datasets[d].config);
    if (uniform) {
        slb_printf(s, "Every run of a data set trains the same U-Net (depth %d, width %d) from the same initialisation and "
                      "batches for %lld epochs × %lld steps × batch %lld; only the loss changes.",
                   c0->depth, c0->base_width, (long long)c0->epochs, (long long)c0->steps_per_epoch,
                   (long long)c0->batch_size);
        return;
    }
    slb_puts(s, "Every run of a data set trains the same U-Net from the same initialisation and batches; only the loss "
                "changes. Network and budget per data set:");
    for (int d = 0; d < p->ndatasets; d++) {
        const sl_train_config *c = &p->datasets[d].config;
        int first = 1;
        for (int e = 0; e < d && first; e++) first = !same_training(c, &p->datasets[e].config);
        if (!first) continue;
        slb_printf(s, "%s depth %d, width %d, %lld epochs × %lld steps × batch %lld (", d ? ";" : "", c->depth,
                   c->base_width, (long long)c->epochs, (long long)c->steps_per_epoch, (long long)c->batch_size);
        for (int e = d, n = 0; e < p->ndatasets; e++)
            if (same_training(c, &p->datasets[e].config)) slb_printf(s, "%s%s", n++ ? ", " : "", p->datasets[e].name);
        slb_puts(s, ")");
    }
    slb_puts(s, ".");
}

void slb_ranking_text(const slb_report *r, slb_str *out)
{
    const sl_bench_preset *p = r->p;
    table *tb = malloc(sizeof *tb);
    if (!tb) {
        out->failed = 1;
        return;
    }
    for (int d = 0; d < p->ndatasets; d++) {
        char **names = slb_report_classes(r, d);
        slb_printf(out, "%s: %lld test cases, %d seed%s; Dice = mean over the foreground classes; small = %s (%.3g %% of the "
                        "test pixels); Δ vs %s, %g%% CI, Wilcoxon p, Holm-corrected over the entries\n",
                   p->datasets[d].name, (long long)r->t->n_cases[d], p->nseeds, p->nseeds > 1 ? "s" : "",
                   names ? names[r->t->small_class[d]] : "-", 100 * r->t->fraction[d], p->entries[p->baseline].name,
                   100 * p->ci_level);
        dataset_table(r, d, tb);
        table_out(tb, 0, out);
        slb_puts(out, "\n");
    }
    slb_printf(out, "Overall ranking (mean rank over %d data set%s; each cell: Dice (rank))\n", p->ndatasets,
               p->ndatasets > 1 ? "s" : "");
    overall_table(r, tb);
    table_out(tb, 0, out);
    free(tb);
}

/* -------------------------------------------------------------- Markdown */

/* Letters of the Nemenyi groups an entry (position k of fr_order) belongs to. */
void slb_group_letters(const slb_tables *t, int k, char *buf, size_t len)
{
    size_t n = 0;
    for (int g = 0; g < t->fr_ngroups && n + 2 < len; g++)
        if (k >= t->fr_group_lo[g] && k <= t->fr_group_hi[g]) buf[n++] = (char)(g < 26 ? 'a' + g : g < 52 ? 'A' + g - 26 : '*');
    if (n == 0 && len > 1) buf[n++] = '-';
    buf[n] = 0;
}

/* The Friedman test and the Nemenyi groups as text: the critical
 * difference diagram of report.html in a table. */
static void friedman_markdown(const slb_report *r, table *tb, slb_str *s)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    const int E = p->nentries;
    slb_puts(s, "\n### Across data sets: Friedman test and critical difference\n\n");
    if (!t->friedman) {
        slb_puts(s, "The Friedman test needs at least 2 data sets and 2 entries; this preset has fewer.\n");
        return;
    }
    char a[32], b[32];
    slb_printf(s, "Each data set ranks the entries by the score above (1 = best, ties at their average rank, failed runs "
                  "tied last). Friedman χ² = %.3f (%d degrees of freedom), p = %s; Iman–Davenport F = %.3f, p = %s. "
                  "Nemenyi critical difference at α = %g: q = %.3f, CD = %.3f for %d entries over %d data sets; entries "
                  "sharing a letter have mean ranks closer than the CD (not significantly different). With few data sets "
                  "the CD is wide: read it as a bound on what the benchmark can separate.\n\n",
               t->fr_chi2, E - 1, slb_fmt_p(a, sizeof a, t->fr_p), t->fr_f, slb_fmt_p(b, sizeof b, t->fr_fp), t->nem_alpha,
               t->nem_q, t->nem_cd, E, p->ndatasets);
    memset(tb, 0, sizeof *tb);
    tcell(tb, 0, 0, "loss");
    tcell(tb, 0, 1, "mean rank");
    tcell(tb, 0, 2, "group");
    tb->right[1] = 1;
    for (int k = 0; k < E && k < 259; k++) {
        int e = t->fr_order[k];
        char g[64];
        slb_group_letters(t, k, g, sizeof g);
        tcell(tb, k + 1, 0, "%s", p->entries[e].name);
        tcell(tb, k + 1, 1, "%.3f", t->fr_rank[e]);
        tcell(tb, k + 1, 2, "%s", g);
    }
    table_out(tb, 1, s);
}

sl_status slb_write_markdown(const slb_report *r, char *msg, size_t msglen)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    const int E = p->nentries;
    slb_str s = {0};
    table *tb = malloc(sizeof *tb);
    if (!tb) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    char seeds[256];
    seeds_text(p, seeds, sizeof seeds);
    slb_printf(&s, "# segloss benchmark: %s\n\n", p->name);
    if (p->description[0]) slb_printf(&s, "%s\n\n", p->description);
    slb_printf(&s, "%lld runs: %d loss entries × %d data sets × %d seed%s (%s). ", (long long)sl_bench_num_runs(p), E,
               p->ndatasets, p->nseeds, p->nseeds > 1 ? "s" : "", seeds);
    slb_training_text(p, &s);
    slb_printf(&s, " Baseline: `%s`. The figures are in report.html.\n\n", p->entries[p->baseline].name);

    slb_puts(&s, "## Ranking\n\n");
    slb_printf(&s, "Overall: mean rank over the data sets; each cell is the Dice averaged over the foreground classes, "
                   "with the rank on that data set.\n\n");
    overall_table(r, tb);
    table_out(tb, 1, &s);
    for (int d = 0; d < p->ndatasets; d++) {
        char **names = slb_report_classes(r, d);
        slb_printf(&s, "\n### %s\n\n%lld test cases; small = the smallest class, %s (%.3g %% of the test pixels). Δ: paired "
                       "difference per test case against `%s`, %g %% bootstrap CI, two-sided Wilcoxon signed-rank p; p (Holm): "
                       "corrected by Holm's step-down method over the entries compared on this data set.\n\n",
                   p->datasets[d].name, (long long)t->n_cases[d], names ? names[t->small_class[d]] : "-", 100 * t->fraction[d],
                   p->entries[p->baseline].name, 100 * p->ci_level);
        dataset_table(r, d, tb);
        table_out(tb, 1, &s);
    }
    friedman_markdown(r, tb, &s);
    slb_study_markdown(r, &s);
    slb_search_markdown(r, &s);

    slb_puts(&s, "\n## Per-class Dice and HD95\n\nMean over the test cases with the bootstrap CI.\n");
    for (int d = 0; d < p->ndatasets; d++) {
        char **names = slb_report_classes(r, d);
        if (!names) continue;
        slb_printf(&s, "\n### %s\n\n", p->datasets[d].name);
        memset(tb, 0, sizeof *tb);
        tcell(tb, 0, 0, "loss");
        int col = 1;
        for (int c = 1; c < t->num_classes[d] && col + 1 < 16; c++) {
            tcell(tb, 0, col++, "%.30s Dice", names[c]);
            tcell(tb, 0, col++, "%.30s HD95", names[c]);
        }
        for (int k = 0; k < E && k < 259; k++) {
            int e = t->order[d * E + k];
            tcell(tb, k + 1, 0, "%s", p->entries[e].name);
            col = 1;
            for (int c = 1; c < t->num_classes[d] && col + 1 < 16; c++) {
                char a[64];
                const slb_stat *dc = slb_stat_at(t, d, e, c, SLB_DICE), *hc = slb_stat_at(t, d, e, c, SLB_HD95);
                slb_fmt_ci(a, sizeof a, dc->mean, dc->lo, dc->hi, 3);
                tcell(tb, k + 1, col++, "%s", a);
                slb_fmt_ci(a, sizeof a, hc->mean, hc->lo, hc->hi, 1);
                tcell(tb, k + 1, col++, "%s", a);
            }
        }
        table_out(tb, 1, &s);
    }

    int nsweep = 0;
    for (int d = 0; d < p->ndatasets; d++) nsweep += p->datasets[d].sweep;
    slb_puts(&s, "\n## Imbalance sweep\n\n");
    if (nsweep == 0) {
        slb_puts(&s, "This preset has no sweep data sets.\n");
    } else {
        slb_puts(&s, "Dice of the smallest class as its share of the image shrinks (mean over test cases).\n\n");
        memset(tb, 0, sizeof *tb);
        tcell(tb, 0, 0, "loss");
        int col = 1;
        for (int d = 0; d < p->ndatasets && col < 16; d++)
            if (p->datasets[d].sweep) {
                tcell(tb, 0, col, "%.3g %% (%.30s)", 100 * t->fraction[d], p->datasets[d].name);
                tb->right[col++] = 1;
            }
        for (int e = 0; e < E && e < 259; e++) {
            tcell(tb, e + 1, 0, "%s", p->entries[e].name);
            col = 1;
            for (int d = 0; d < p->ndatasets && col < 16; d++)
                if (p->datasets[d].sweep) {
                    char a[32];
                    tcell(tb, e + 1, col++, "%s", slb_fmt(a, sizeof a, slb_stat_at(t, d, e, t->small_class[d], SLB_DICE)->mean, 3));
                }
        }
        table_out(tb, 1, &s);
    }

    slb_puts(&s, "\n## Overlays\n\nTest images with the target's contours (green/blue) and each loss's prediction "
                 "(orange/red), seed ");
    slb_printf(&s, "%llu.\n", (unsigned long long)p->seeds[0]);
    for (int d = 0; d < p->ndatasets; d++) {
        const slb_run *first = NULL;
        for (int e = 0; e < E && !first; e++)
            if (!slb_report_run(r, d, 0, e)->failed) first = slb_report_run(r, d, 0, e);
        if (!first || first->noverlays == 0) continue;
        slb_printf(&s, "\n### %s\n\n", p->datasets[d].name);
        for (int64_t k = 0; k < first->noverlays; k++) {
            char path[512];
            slb_overlay_path(path, sizeof path, NULL, p, d, first->overlay_cases[k], -1);
            slb_printf(&s, "- case %lld: [target](%s)", (long long)first->overlay_cases[k], path);
            for (int e = 0; e < E; e++) {
                if (slb_report_run(r, d, 0, e)->failed) continue;
                slb_overlay_path(path, sizeof path, NULL, p, d, first->overlay_cases[k], e);
                slb_printf(&s, ", [%s](%s)", p->entries[e].name, path);
            }
            slb_puts(&s, "\n");
        }
    }

    slb_puts(&s, "\n## Runs\n\n");
    double train = 0, eval = 0;
    int64_t nfail = 0;
    for (int64_t i = 0; i < sl_bench_num_runs(p); i++) {
        if (!slb_rep_listed(p, (int)(i % E), (int)(i / E % slb_nreps(p)))) continue; /* an ensemble counts once */
        train += r->runs[i]->seconds_train;
        eval += r->runs[i]->seconds_eval;
        nfail += r->runs[i]->failed;
    }
    slb_printf(&s, "Training %.0f s and evaluation %.0f s summed over the runs (each on one thread)", train, eval);
    if (isfinite(r->seconds)) slb_printf(&s, "; the last call took %.0f s wall, %.0f s CPU", r->seconds, r->cpu_seconds);
    slb_printf(&s, ". Failed runs: %lld.\n", (long long)nfail);
    for (int64_t i = 0; i < sl_bench_num_runs(p); i++)
        if (r->runs[i]->failed && slb_rep_listed(p, (int)(i % E), (int)(i / E % slb_nreps(p))))
            slb_printf(&s, "- %s / seed %llu / %s: %s\n", p->datasets[r->runs[i]->dataset].name,
                       (unsigned long long)slb_rep_seed(p, r->runs[i]->seed), p->entries[r->runs[i]->entry].name, r->runs[i]->message);
    slb_puts(&s, "\nLoss entries:\n\n");
    for (int e = 0; e < E; e++) {
        char tt[32];
        const sl_bench_entry *en = &p->entries[e];
        slb_printf(&s, "- `%s`: `%s`%s%s%s%s%s%s%s%s\n", en->name, en->loss, en->tta ? " with " : "",
                   en->tta ? sl_tta_name((sl_tta)en->tta, en->tta_n, tt, sizeof tt) : "", en->tta ? " TTA" : "",
                   en->int8 ? ", the trained model quantised to INT8" : "",
                   en->crf ? ", dense CRF post-processing" : "",
                   en->search ? ", free weights chosen per data set (Weight search)" : "",
                   en->postprocess ? ", labels post-processed by the rule chosen on the validation split" : "",
                   en->ensemble ? ", the ensemble (mean softmax) of its trainings over seeds and folds" : "");
    }
    slb_puts(&s, slb_preset_has_volumes(p)
                     ? "\n## Conventions\n\nPer test case (a 2-D slice, or a 3-D volume scored whole) and foreground "
                       "class: Dice; HD95 = max of the two directed 95th percentiles of border-pixel (voxel) distances, in "
                       "pixels for slices and in mm for volumes (one side empty: the slice or volume diagonal); NSD at the "
                       "preset's tolerance; recall; precision; lesion F1 over fully connected components (8 in 2-D, 26 in "
                       "3-D; a lesion is found when a predicted component overlaps it). "
                     : "\n## Conventions\n\nPer test case (a 2-D slice) and foreground class: Dice; HD95 = max of the two directed "
                       "95th percentiles of border-pixel distances, in pixels (one side empty: the slice diagonal); NSD at the "
                       "preset's tolerance; recall; precision; lesion F1 over 8-connected components (a lesion is found when a "
                       "predicted component overlaps it). ");
    slb_puts(&s, "Both empty: 1 (HD95 0). Statistics over the test cases of the values "
                 "averaged over seeds; ± = standard deviation of the per-seed means; CIs: percentile bootstrap; p: two-sided "
                 "Wilcoxon signed-rank test; p (Holm): Holm's step-down correction over the entries compared on the data "
                 "set, controlling the family-wise error rate; across data sets: Friedman test and Nemenyi critical "
                 "difference (Demšar 2006). docs/benchmark.md has the details.\n");
    free(tb);
    sl_status st = slb_write_text(r->dir, "report.md", &s, msg, msglen);
    slb_str_free(&s);
    return st;
}
