/*
 * The evaluation set's results: queries, the per-label summary (one
 * convention: population std), and the CSV / JSON / table writers of
 * `segloss eval`.
 */
#define _POSIX_C_SOURCE 200809L
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "evalset_internal.h"
#include "internal.h"

/* ---- queries --------------------------------------------------------------- */

static int ready(const sl_evalset *s)
{
    return s && s->scored;
}

int sl_evalset_ncases(const sl_evalset *s)
{
    return s ? s->ncases : 0;
}

const char *sl_evalset_case_id(const sl_evalset *s, int i)
{
    return s && i >= 0 && i < s->ncases ? s->cases[i].id : NULL;
}

int sl_evalset_nlabels(const sl_evalset *s)
{
    return ready(s) ? s->nlabels : 0;
}

int64_t sl_evalset_label(const sl_evalset *s, int l)
{
    return ready(s) && l >= 0 && l < s->nlabels ? s->labels[l] : -1;
}

int sl_evalset_ncolumns(const sl_evalset *s)
{
    return s ? s->ncols : 0;
}

const char *sl_evalset_column(const sl_evalset *s, int k)
{
    return s && k >= 0 && k < s->ncols ? ev_columns[s->cols[k]].name : NULL;
}

const sl_metric_result *sl_evalset_result(const sl_evalset *s, int i, int l)
{
    if (!ready(s) || i < 0 || i >= s->ncases || l < 0 || l >= s->nlabels) return NULL;
    return &s->cases[i].res[l];
}

const char *sl_evalset_describe(const sl_evalset *s)
{
    return ready(s) ? s->describe : "";
}

static double field(const sl_metric_result *r, int c)
{
    const char *p = (const char *)r + ev_columns[c].off;
    if (ev_columns[c].kind == 'i') {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return (double)v;
    }
    double v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The value written for column c: infinite distances become the case's
 * empty distance (and *subst is set). */
double ev_value(const sl_evalset *s, int i, int l, int c, int *subst)
{
    const ev_case *cs = &s->cases[i];
    double v = field(&cs->res[l], c);
    if (ev_columns[c].kind == 'D' && isinf(v)) {
        *subst = 1;
        return cs->empty_distance;
    }
    return v;
}

double sl_evalset_value(const sl_evalset *s, int i, int l, int k, int *substituted)
{
    if (!ready(s) || i < 0 || i >= s->ncases || l < 0 || l >= s->nlabels || k < 0 || k >= s->ncols) return NAN;
    int sub = 0;
    double v = ev_value(s, i, l, s->cols[k], &sub);
    if (substituted) *substituted = sub;
    return v;
}

/* ---- summary --------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* mean, population std (numpy's default ddof = 0), median (numpy's: the
 * mean of the two middle values) over the finite values of v (reordered). */
static sl_eval_stats summarise(double *v, int n)
{
    sl_eval_stats s = {0, NAN, NAN, NAN, NAN, NAN};
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) v[k++] = v[i];
    s.n = k;
    if (!k) return s;
    double sum = 0;
    for (int i = 0; i < k; i++) sum += v[i];
    s.mean = sum / k;
    double ss = 0;
    for (int i = 0; i < k; i++) ss += (v[i] - s.mean) * (v[i] - s.mean);
    s.std = sqrt(ss / k);
    qsort(v, (size_t)k, sizeof *v, cmp_double);
    s.median = k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
    s.min = v[0];
    s.max = v[k - 1];
    return s;
}

static sl_eval_counts label_counts(const sl_evalset *s, int l)
{
    sl_eval_counts c = {s->ncases, 0, 0, 0, 0};
    for (int i = 0; i < s->ncases; i++) {
        const sl_metric_result *r = &s->cases[i].res[l];
        c.empty_pred += r->empty_pred && !r->empty_gt;
        c.empty_gt += r->empty_gt && !r->empty_pred;
        c.both_empty += r->empty_pred && r->empty_gt;
        int sub = 0;
        for (int k = 0; k < s->ncols; k++) ev_value(s, i, l, s->cols[k], &sub);
        c.distance_substituted += sub;
    }
    return c;
}

sl_status sl_evalset_summary(const sl_evalset *s, int l, int k, sl_eval_stats *st, sl_eval_counts *counts)
{
    if (!ready(s) || l < 0 || l >= s->nlabels || k < 0 || k >= s->ncols || !st) return SL_EINVAL;
    double *v = malloc((size_t)s->ncases * sizeof *v);
    if (!v) return SL_ENOMEM;
    int sub;
    for (int i = 0; i < s->ncases; i++) v[i] = ev_value(s, i, l, s->cols[k], &sub);
    *st = summarise(v, s->ncases);
    free(v);
    if (counts) *counts = label_counts(s, l);
    return SL_OK;
}

/* All summaries: [nlabels][ncols] stats and [nlabels] counts. */
static sl_status all_summaries(const sl_evalset *s, sl_eval_stats **stats, sl_eval_counts **counts)
{
    *stats = calloc((size_t)s->nlabels * (size_t)s->ncols + 1, sizeof **stats);
    *counts = calloc((size_t)s->nlabels + 1, sizeof **counts);
    if (!*stats || !*counts) {
        free(*stats);
        free(*counts);
        return SL_ENOMEM;
    }
    for (int l = 0; l < s->nlabels; l++)
        for (int k = 0; k < s->ncols; k++) {
            sl_status st = sl_evalset_summary(s, l, k, &(*stats)[l * s->ncols + k], k ? NULL : &(*counts)[l]);
            if (st != SL_OK) {
                free(*stats);
                free(*counts);
                return st;
            }
        }
    return SL_OK;
}

/* ---- CSV ------------------------------------------------------------------- */

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_csv(const sl_evalset *s, FILE *f)
{
    fputs("case,label", f);
    for (int k = 0; k < s->ncols; k++) fprintf(f, ",%s", ev_columns[s->cols[k]].name);
    fputs(",empty_pred,empty_gt,distance_substituted\n", f);
    for (int i = 0; i < s->ncases; i++)
        for (int l = 0; l < s->nlabels; l++) {
            csv_field(f, s->cases[i].id);
            fprintf(f, ",%lld", (long long)s->labels[l]);
            int sub = 0;
            for (int k = 0; k < s->ncols; k++) {
                double v = ev_value(s, i, l, s->cols[k], &sub);
                if (ev_columns[s->cols[k]].kind == 'i') fprintf(f, ",%lld", (long long)v);
                else if (isnan(v)) fputs(",nan", f);
                else if (isinf(v)) fputs(v > 0 ? ",inf" : ",-inf", f);
                else fprintf(f, ",%.15g", v);
            }
            const sl_metric_result *r = &s->cases[i].res[l];
            fprintf(f, ",%d,%d,%d\n", r->empty_pred ? 1 : 0, r->empty_gt ? 1 : 0, sub);
        }
}

/* ---- JSON ------------------------------------------------------------------ */

static cJSON *stats_json(const sl_eval_stats *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "mean", s->mean);
    cJSON_AddNumberToObject(j, "std", s->std);
    cJSON_AddNumberToObject(j, "median", s->median);
    cJSON_AddNumberToObject(j, "min", s->min);
    cJSON_AddNumberToObject(j, "max", s->max);
    cJSON_AddNumberToObject(j, "n", s->n);
    return j;
}

/* The JSON text (malloc'ed), or NULL when out of memory. cJSON writes NaN
 * and +-inf as null: the only values that can be non-finite here are the
 * undefined ones (e.g. RVD with an empty G); distances were already
 * replaced by the empty distance. */
static char *json_text(const sl_evalset *s, const sl_eval_stats *stats, const sl_eval_counts *counts)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *jc = cJSON_AddArrayToObject(root, "cases");
    for (int i = 0; i < s->ncases; i++)
        for (int l = 0; l < s->nlabels; l++) {
            const ev_case *c = &s->cases[i];
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "case", c->id);
            cJSON_AddNumberToObject(row, "label", (double)s->labels[l]);
            int sub = 0;
            for (int k = 0; k < s->ncols; k++)
                cJSON_AddNumberToObject(row, ev_columns[s->cols[k]].name, ev_value(s, i, l, s->cols[k], &sub));
            cJSON_AddBoolToObject(row, "empty_pred", c->res[l].empty_pred);
            cJSON_AddBoolToObject(row, "empty_gt", c->res[l].empty_gt);
            cJSON_AddBoolToObject(row, "distance_substituted", sub);
            if (!c->inmem) {
                cJSON_AddStringToObject(row, "pred", c->pred);
                cJSON_AddStringToObject(row, "gt", c->gt);
            }
            cJSON_AddItemToArray(jc, row);
        }
    cJSON *js = cJSON_AddObjectToObject(root, "summary");
    for (int l = 0; l < s->nlabels; l++) {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)s->labels[l]);
        cJSON *jl = cJSON_AddObjectToObject(js, key);
        cJSON_AddNumberToObject(jl, "cases", counts[l].cases);
        cJSON_AddNumberToObject(jl, "empty_pred", counts[l].empty_pred);
        cJSON_AddNumberToObject(jl, "empty_gt", counts[l].empty_gt);
        cJSON_AddNumberToObject(jl, "both_empty", counts[l].both_empty);
        cJSON_AddNumberToObject(jl, "distance_substituted", counts[l].distance_substituted);
        for (int k = 0; k < s->ncols; k++)
            cJSON_AddItemToObject(jl, ev_columns[s->cols[k]].name, stats_json(&stats[l * s->ncols + k]));
    }
    const sl_metric_opts *mo = &s->o.metric;
    cJSON *jv = cJSON_AddObjectToObject(root, "conventions");
    cJSON_AddStringToObject(jv, "metrics", s->describe);
    cJSON_AddStringToObject(jv, "hd_mode", sl_hd_mode_name(mo->hd_mode));
    cJSON_AddNumberToObject(jv, "percentile", mo->percentile);
    cJSON_AddStringToObject(jv, "hd95", "the --percentile value of the Hausdorff distance, combined by hd_mode");
    cJSON_AddStringToObject(jv, "assd_mode", sl_assd_mode_name(mo->assd_mode));
    cJSON_AddStringToObject(jv, "surface", sl_surface_kind_name(mo->surface));
    cJSON_AddNumberToObject(jv, "nsd_tolerance_mm", mo->nsd_tolerance);
    if (s->o.empty_distance >= 0) cJSON_AddNumberToObject(jv, "empty_distance_mm", s->o.empty_distance);
    else cJSON_AddStringToObject(jv, "empty_distance_mm", "image diagonal: sqrt(sum((extent * spacing)^2))");
    cJSON_AddStringToObject(jv, "empty_masks",
                            "both empty: scores 1, distances 0; one empty: scores 0, distances = empty_distance_mm "
                            "(row marked distance_substituted)");
    cJSON_AddStringToObject(jv, "labels", s->labels_all ? "all non-zero labels in any prediction or ground truth"
                                                        : "as given by --labels");
    cJSON_AddStringToObject(jv, "summary", "mean, std (population, ddof=0), median, min, max over the finite values "
                                           "of the cases; n = how many");
    cJSON_AddStringToObject(jv, "spacing", s->o.nspacing ? "--spacing" : "NIfTI pixdim in mm (1 for .npy)");
    cJSON_AddStringToObject(jv, "axis_order", "C order, slowest axis first: NIfTI (nx, ny, nz) is (nz, ny, nx)");
    cJSON_AddStringToObject(jv, "segloss_version", sl_version());
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* ---- writing both files or neither ----------------------------------------- */

/* PATH.<pid>.tmp beside the target. */
static char *tmp_name(const char *path)
{
    size_t n = strlen(path) + 32;
    char *t = malloc(n);
    if (t) snprintf(t, n, "%s.%ld.tmp", path, (long)getpid());
    return t;
}

sl_status sl_evalset_write(const sl_evalset *s, const char *csv_path, const char *json_path, char *msg,
                           size_t msglen)
{
    if (!s) return sl_errf(msg, msglen, SL_EINVAL, "eval: the set is NULL");
    if (!s->scored) return sl_errf(msg, msglen, SL_EBADSTATE, "eval: the set is not scored");
    const char *paths[2] = {csv_path, json_path};
    char *tmp[2] = {NULL, NULL};
    sl_eval_stats *stats = NULL;
    sl_eval_counts *counts = NULL;
    char *json = NULL;
    sl_status st = SL_OK;
    if (json_path) {
        if ((st = all_summaries(s, &stats, &counts)) != SL_OK || !(json = json_text(s, stats, counts))) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "out of memory writing '%s'", json_path);
            goto done;
        }
    }
    /* Both temporary files are written completely before either target is
     * touched; a failure removes them and leaves the targets as they were. */
    for (int k = 0; k < 2 && st == SL_OK; k++) {
        if (!paths[k]) continue;
        tmp[k] = tmp_name(paths[k]);
        FILE *f = tmp[k] ? fopen(tmp[k], "w") : NULL;
        if (!f) {
            st = sl_errf(msg, msglen, SL_EIO, "cannot write '%s': %s", paths[k], tmp[k] ? strerror(errno) : "out of memory");
            break;
        }
        if (k == 0) write_csv(s, f);
        else {
            fputs(json, f);
            fputc('\n', f);
        }
        int ok = !ferror(f);
        int e = errno;
        if (fclose(f) != 0) {
            ok = 0;
            e = errno;
        }
        if (!ok) st = sl_errf(msg, msglen, SL_EIO, "cannot write '%s': %s", paths[k], strerror(e));
    }
    for (int k = 0; k < 2 && st == SL_OK; k++)
        if (paths[k] && rename(tmp[k], paths[k]) != 0)
            st = sl_errf(msg, msglen, SL_EIO, "cannot write '%s': %s", paths[k], strerror(errno));
done:
    for (int k = 0; k < 2; k++) {
        if (tmp[k] && st != SL_OK) remove(tmp[k]);
        free(tmp[k]);
    }
    free(json);
    free(stats);
    free(counts);
    return st;
}

/* ---- the table ------------------------------------------------------------- */

/* Display width of a UTF-8 string (the only multi-byte character here is
 * the "±" of the cells). */
static int text_width(const char *s)
{
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void print_padded(FILE *f, const char *s, int width)
{
    fprintf(f, "  %*s%s", width - text_width(s) > 0 ? width - text_width(s) : 0, "", s);
}

sl_status sl_evalset_print_table(const sl_evalset *s, FILE *f)
{
    if (!s || !f) return SL_EINVAL;
    if (!s->scored) return SL_EBADSTATE;
    sl_eval_stats *stats;
    sl_eval_counts *counts;
    if (all_summaries(s, &stats, &counts) != SL_OK) return SL_ENOMEM;
    int n = s->ncases, nl = s->nlabels, nc = s->ncols;
    char(*cells)[40] = calloc((size_t)nl * (size_t)nc + 1, sizeof *cells);
    int *w = calloc((size_t)nc + 1, sizeof *w);
    if (!cells || !w) {
        free(cells);
        free(w);
        free(stats);
        free(counts);
        return SL_ENOMEM;
    }
    fprintf(f, "segloss eval: %d case%s, %d label%s; %s\n", n, n == 1 ? "" : "s", nl, nl == 1 ? "" : "s",
            s->describe);
    for (int k = 0; k < nc; k++) w[k] = text_width(ev_columns[s->cols[k]].name);
    for (int l = 0; l < nl; l++)
        for (int k = 0; k < nc; k++) {
            const sl_eval_stats *st = &stats[l * nc + k];
            char *cell = cells[l * nc + k];
            if (st->n == 0) snprintf(cell, 40, "-");
            else if (n == 1) snprintf(cell, 40, "%.4g", st->mean);
            else snprintf(cell, 40, "%.4g ± %.2g", st->mean, st->std);
            if (text_width(cell) > w[k]) w[k] = text_width(cell);
        }
    fprintf(f, "%-6s %5s  %-14s", "label", "cases", "empty P/G/both");
    for (int k = 0; k < nc; k++) print_padded(f, ev_columns[s->cols[k]].name, w[k]);
    fprintf(f, "\n");
    int subst = 0;
    for (int l = 0; l < nl; l++) {
        char e[48];
        snprintf(e, sizeof e, "%d/%d/%d", counts[l].empty_pred, counts[l].empty_gt, counts[l].both_empty);
        fprintf(f, "%-6lld %5d  %-14s", (long long)s->labels[l], counts[l].cases, e);
        for (int k = 0; k < nc; k++) print_padded(f, cells[l * nc + k], w[k]);
        fprintf(f, "\n");
        subst += counts[l].distance_substituted;
    }
    if (subst)
        fprintf(f, "%d row%s with one side empty: infinite distances written as %s\n", subst, subst == 1 ? "" : "s",
                s->o.empty_distance >= 0 ? "the --empty-distance value" : "the image diagonal (mm)");
    free(cells);
    free(w);
    free(stats);
    free(counts);
    return SL_OK;
}
