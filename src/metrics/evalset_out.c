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
#include <sys/stat.h>
#include <unistd.h>
#include "evalset_internal.h"
#include "internal.h"
#include "outfile.h"

/* ---- rows ------------------------------------------------------------------ */

static int ready(const sl_evalset *s)
{
    return s && s->scored;
}

static double field(const sl_evalset *s, const sl_metric_result *r, const ev_case *c, int t, int col)
{
    const ev_column *cl = &ev_columns[col];
    if (cl->get) return cl->get(s, r, c, t);
    const char *p = (const char *)r + cl->off;
    if (cl->kind == 'i') {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return (double)v;
    }
    double v;
    memcpy(&v, p, sizeof v);
    return v;
}

static double *row_vals(const sl_evalset *s, int i, int t)
{
    return s->vals + ((size_t)i * (size_t)s->ntargets + (size_t)t) * (size_t)s->ncols;
}

static ev_row *row_at(const sl_evalset *s, int i, int t)
{
    return s->rows + (size_t)i * (size_t)s->ntargets + (size_t)t;
}

/* A row left out of the summary by --empty exclude. */
static int excluded(const sl_evalset *s, int i, int t)
{
    return s->o.empty == SL_EVAL_EMPTY_EXCLUDE && s->targets[t].kind != EV_MEAN && row_at(s, i, t)->empty_gt;
}

static sl_status alloc_rows(sl_evalset *s)
{
    size_t nr = (size_t)s->ncases * (size_t)s->ntargets;
    s->vals = calloc(nr * (size_t)s->ncols + 1, sizeof *s->vals);
    s->rows = calloc(nr + 1, sizeof *s->rows);
    return s->vals && s->rows ? SL_OK : SL_ENOMEM;
}

/* The output values of every row, from the scored results: infinite
 * distances replaced by the case's empty distance (row marked), the empty
 * rule applied, and the "mean" target computed from the others. */
sl_status ev_materialise(sl_evalset *s)
{
    if (alloc_rows(s) != SL_OK) return SL_ENOMEM;
    for (int i = 0; i < s->ncases; i++) {
        const ev_case *c = &s->cases[i];
        for (int t = 0; t < s->ntargets; t++) {
            double *v = row_vals(s, i, t);
            ev_row *rw = row_at(s, i, t);
            if (s->targets[t].kind == EV_MEAN) {
                /* the mean over the foreground targets' finite values (rows
                 * excluded by --empty exclude left out, as NaN ones are) */
                for (int k = 0; k < s->ncols; k++) {
                    double sum = 0;
                    int n = 0;
                    for (int u = 0; u < s->ntargets; u++) {
                        const ev_target *tg = &s->targets[u];
                        if (tg->kind == EV_MEAN || (tg->kind == EV_LABEL && tg->label == 0) || excluded(s, i, u))
                            continue;
                        double x = row_vals(s, i, u)[k];
                        if (isfinite(x)) sum += x, n++;
                    }
                    v[k] = n ? sum / n : NAN;
                }
                rw->cm[0] = rw->cm[1] = rw->cm[2] = rw->cm[3] = -1;
                continue;
            }
            const sl_metric_result *r = &c->res[t];
            rw->empty_pred = r->empty_pred;
            rw->empty_gt = r->empty_gt;
            rw->cm[0] = r->tp, rw->cm[1] = r->fp, rw->cm[2] = r->fn, rw->cm[3] = r->tn;
            int nan_row = s->o.empty == SL_EVAL_EMPTY_NAN && r->empty_gt;
            for (int k = 0; k < s->ncols; k++) {
                const ev_column *cl = &ev_columns[s->cols[k]];
                double x = field(s, r, c, t, s->cols[k]);
                if (nan_row && (cl->kind == 'd' || cl->kind == 'D')) x = NAN;
                else if (cl->kind == 'D' && isinf(x)) {
                    rw->subst = 1;
                    x = c->empty_distance;
                }
                v[k] = x;
            }
        }
    }
    return SL_OK;
}

/* ---- queries --------------------------------------------------------------- */

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
    return ready(s) ? s->ntargets : 0;
}

int64_t sl_evalset_label(const sl_evalset *s, int l)
{
    return ready(s) && l >= 0 && l < s->ntargets && s->targets[l].kind == EV_LABEL ? s->targets[l].label : -1;
}

const char *sl_evalset_target_name(const sl_evalset *s, int l)
{
    return ready(s) && l >= 0 && l < s->ntargets ? s->targets[l].name : NULL;
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
    if (!ready(s) || s->merged || i < 0 || i >= s->ncases || l < 0 || l >= s->ntargets) return NULL;
    if (s->targets[l].kind == EV_MEAN) return NULL;
    return &s->cases[i].res[l];
}

const char *sl_evalset_describe(const sl_evalset *s)
{
    return ready(s) ? s->describe : "";
}

double sl_evalset_value(const sl_evalset *s, int i, int l, int k, int *substituted)
{
    if (!ready(s) || i < 0 || i >= s->ncases || l < 0 || l >= s->ntargets || k < 0 || k >= s->ncols) return NAN;
    if (substituted) *substituted = row_at(s, i, l)->subst;
    return row_vals(s, i, l)[k];
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

static sl_eval_counts label_counts(const sl_evalset *s, int t)
{
    sl_eval_counts c = {s->ncases, 0, 0, 0, 0, 0};
    for (int i = 0; i < s->ncases; i++) {
        const ev_row *r = row_at(s, i, t);
        c.empty_pred += r->empty_pred && !r->empty_gt;
        c.empty_gt += r->empty_gt && !r->empty_pred;
        c.both_empty += r->empty_pred && r->empty_gt;
        c.distance_substituted += r->subst;
        c.excluded += excluded(s, i, t);
    }
    return c;
}

sl_status sl_evalset_summary(const sl_evalset *s, int l, int k, sl_eval_stats *st, sl_eval_counts *counts)
{
    if (!ready(s) || l < 0 || l >= s->ntargets || k < 0 || k >= s->ncols || !st) return SL_EINVAL;
    double *v = malloc((size_t)s->ncases * sizeof *v + 1);
    if (!v) return SL_ENOMEM;
    int n = 0;
    for (int i = 0; i < s->ncases; i++)
        if (!excluded(s, i, l)) v[n++] = row_vals(s, i, l)[k];
    *st = summarise(v, n);
    free(v);
    if (counts) *counts = label_counts(s, l);
    return SL_OK;
}

sl_status sl_evalset_pooled(const sl_evalset *s, int l, int k, double *out)
{
    if (!ready(s) || l < 0 || l >= s->ntargets || k < 0 || k >= s->ncols || !out) return SL_EINVAL;
    const ev_column *cl = &ev_columns[s->cols[k]];
    if (!cl->pooled || s->targets[l].kind == EV_MEAN) return SL_EUNSUPPORTED;
    int64_t cm[4] = {0, 0, 0, 0};
    for (int i = 0; i < s->ncases; i++) {
        if (excluded(s, i, l)) continue;
        const ev_row *r = row_at(s, i, l);
        for (int j = 0; j < 4; j++) {
            if (r->cm[j] < 0) return SL_EUNSUPPORTED;
            cm[j] += r->cm[j];
        }
    }
    sl_metric_result r;
    memset(&r, 0, sizeof r);
    ev_overlap_from_counts(&r, cm[0], cm[1], cm[2], cm[3], NULL);
    *out = field(s, &r, NULL, l, s->cols[k]);
    return SL_OK;
}

/* All summaries: [ntargets][ncols] stats and [ntargets] counts. */
static sl_status all_summaries(const sl_evalset *s, sl_eval_stats **stats, sl_eval_counts **counts)
{
    *stats = calloc((size_t)s->ntargets * (size_t)s->ncols + 1, sizeof **stats);
    *counts = calloc((size_t)s->ntargets + 1, sizeof **counts);
    if (!*stats || !*counts) {
        free(*stats);
        free(*counts);
        return SL_ENOMEM;
    }
    for (int l = 0; l < s->ntargets; l++)
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
        for (int l = 0; l < s->ntargets; l++) {
            csv_field(f, s->cases[i].id);
            fputc(',', f);
            csv_field(f, s->targets[l].name);
            const double *v = row_vals(s, i, l);
            int whole = s->targets[l].kind != EV_MEAN; /* the mean of counts is fractional */
            for (int k = 0; k < s->ncols; k++) {
                double x = v[k];
                if (ev_columns[s->cols[k]].kind == 'i' && whole && isfinite(x)) fprintf(f, ",%lld", (long long)x);
                else if (isnan(x)) fputs(",nan", f);
                else if (isinf(x)) fputs(x > 0 ? ",inf" : ",-inf", f);
                else fprintf(f, ",%.15g", x);
            }
            const ev_row *r = row_at(s, i, l);
            fprintf(f, ",%d,%d,%d\n", r->empty_pred ? 1 : 0, r->empty_gt ? 1 : 0, r->subst);
        }
}

/* ---- JSON ------------------------------------------------------------------ */

/* A double as JSON, exactly: the shortest of %.15g, %.16g, %.17g that
 * reads back as the same double (cJSON's own printer stops at 15 digits
 * when the value is within an epsilon, which loses the last bits a merge
 * of shards needs). Non-finite values are null. */
static cJSON *num(double v)
{
    if (!isfinite(v)) return cJSON_CreateNull();
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}

static void add_num(cJSON *obj, const char *name, double v)
{
    cJSON_AddItemToObject(obj, name, num(v));
}

static cJSON *stats_json(const sl_eval_stats *s)
{
    cJSON *j = cJSON_CreateObject();
    add_num(j, "mean", s->mean);
    add_num(j, "std", s->std);
    add_num(j, "median", s->median);
    add_num(j, "min", s->min);
    add_num(j, "max", s->max);
    cJSON_AddNumberToObject(j, "n", s->n);
    return j;
}

static const char *empty_name(sl_eval_empty e)
{
    return e == SL_EVAL_EMPTY_NAN ? "nan" : e == SL_EVAL_EMPTY_EXCLUDE ? "exclude" : "score";
}

static cJSON *conventions_json(const sl_evalset *s)
{
    if (s->conventions) return cJSON_Duplicate((const cJSON *)s->conventions, 1);
    const sl_metric_opts *mo = &s->o.metric;
    cJSON *jv = cJSON_CreateObject();
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
    cJSON_AddStringToObject(jv, "empty", empty_name(s->o.empty));
    cJSON_AddStringToObject(jv, "labels", s->labels_all ? "all non-zero labels in any prediction or ground truth"
                                          : s->nlabels ? "as given by --labels"
                                          : s->o.instances ? "none (instance maps: target 'instances' = id != 0)"
                                                           : "none (regions only)");
    if (s->o.instances)
        cJSON_AddStringToObject(jv, "instances", "every distinct non-zero id of a file is one instance");
    if (s->regions) cJSON_AddStringToObject(jv, "regions", s->regions);
    if (s->o.has_ignore) cJSON_AddNumberToObject(jv, "ignore_label", (double)s->o.ignore_label);
    if (s->o.label_mean)
        cJSON_AddStringToObject(jv, "label_mean", "target 'mean': per case, the mean over the foreground targets");
    for (int k = 0; k < s->ncols; k++)
        if (ev_columns[s->cols[k]].get && !strcmp(ev_columns[s->cols[k]].name, "fbeta"))
            cJSON_AddNumberToObject(jv, "fbeta_beta", s->o.beta > 0 ? s->o.beta : 1.0);
    cJSON_AddStringToObject(jv, "summary", "mean, std (population, ddof=0), median, min, max over the finite values "
                                           "of the cases; n = how many");
    cJSON_AddStringToObject(jv, "pooled", "metrics of the confusion counts summed over the cases (micro)");
    cJSON_AddStringToObject(jv, "spacing", s->o.nspacing ? "--spacing" : "NIfTI pixdim in mm (1 for .npy)");
    cJSON_AddStringToObject(jv, "axis_order", "C order, slowest axis first: NIfTI (nx, ny, nz) is (nz, ny, nx)");
    cJSON_AddStringToObject(jv, "columns", s->columns);
    cJSON_AddStringToObject(jv, "segloss_version", sl_version());
    return jv;
}

/* A number that may be non-finite: cJSON writes NaN and +-inf as null, so
 * a row with an infinite value (e.g. RVD with an empty G) also names it in
 * "nonfinite", which lets a merge restore it exactly. */
static void add_value(cJSON *row, cJSON **nonfinite, const char *name, double v)
{
    add_num(row, name, v);
    if (isinf(v)) {
        if (!*nonfinite) *nonfinite = cJSON_CreateObject();
        cJSON_AddStringToObject(*nonfinite, name, v > 0 ? "inf" : "-inf");
    }
}

/* The JSON text (malloc'ed), or NULL when out of memory. */
static char *json_text(const sl_evalset *s, const sl_eval_stats *stats, const sl_eval_counts *counts)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *jc = cJSON_AddArrayToObject(root, "cases");
    for (int i = 0; i < s->ncases; i++)
        for (int l = 0; l < s->ntargets; l++) {
            const ev_case *c = &s->cases[i];
            const ev_target *tg = &s->targets[l];
            const ev_row *r = row_at(s, i, l);
            const double *v = row_vals(s, i, l);
            cJSON *row = cJSON_CreateObject(), *nonfinite = NULL;
            cJSON_AddStringToObject(row, "case", c->id);
            if (tg->kind == EV_LABEL) cJSON_AddNumberToObject(row, "label", (double)tg->label);
            else cJSON_AddStringToObject(row, "label", tg->name);
            for (int k = 0; k < s->ncols; k++) add_value(row, &nonfinite, ev_columns[s->cols[k]].name, v[k]);
            cJSON_AddBoolToObject(row, "empty_pred", r->empty_pred);
            cJSON_AddBoolToObject(row, "empty_gt", r->empty_gt);
            cJSON_AddBoolToObject(row, "distance_substituted", r->subst);
            if (r->cm[0] >= 0) {
                double cm[4] = {(double)r->cm[0], (double)r->cm[1], (double)r->cm[2], (double)r->cm[3]};
                cJSON_AddItemToObject(row, "confusion", cJSON_CreateDoubleArray(cm, 4));
            }
            if (nonfinite) cJSON_AddItemToObject(row, "nonfinite", nonfinite);
            if (c->pred) cJSON_AddStringToObject(row, "pred", c->pred);
            if (c->gt) cJSON_AddStringToObject(row, "gt", c->gt);
            cJSON_AddItemToArray(jc, row);
        }
    cJSON *js = cJSON_AddObjectToObject(root, "summary");
    for (int l = 0; l < s->ntargets; l++) {
        cJSON *jl = cJSON_AddObjectToObject(js, s->targets[l].name);
        cJSON_AddNumberToObject(jl, "cases", counts[l].cases);
        cJSON_AddNumberToObject(jl, "empty_pred", counts[l].empty_pred);
        cJSON_AddNumberToObject(jl, "empty_gt", counts[l].empty_gt);
        cJSON_AddNumberToObject(jl, "both_empty", counts[l].both_empty);
        cJSON_AddNumberToObject(jl, "distance_substituted", counts[l].distance_substituted);
        if (s->o.empty == SL_EVAL_EMPTY_EXCLUDE) cJSON_AddNumberToObject(jl, "excluded", counts[l].excluded);
        for (int k = 0; k < s->ncols; k++)
            cJSON_AddItemToObject(jl, ev_columns[s->cols[k]].name, stats_json(&stats[l * s->ncols + k]));
        cJSON *jp = NULL;
        for (int k = 0; k < s->ncols; k++) {
            double pv;
            if (sl_evalset_pooled(s, l, k, &pv) != SL_OK) continue;
            if (!jp) jp = cJSON_AddObjectToObject(jl, "pooled");
            add_num(jp, ev_columns[s->cols[k]].name, pv);
        }
    }
    cJSON_AddItemToObject(root, "conventions", conventions_json(s));
    if (s->o.shard_n > 0) {
        /* what a merge needs beyond the rows: which share this is, and the targets */
        cJSON *sh = cJSON_AddObjectToObject(root, "shard");
        cJSON_AddNumberToObject(sh, "k", s->o.shard_k);
        cJSON_AddNumberToObject(sh, "n", s->o.shard_n);
        cJSON *tn = cJSON_AddArrayToObject(sh, "targets");
        for (int l = 0; l < s->ntargets; l++) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "name", s->targets[l].name);
            cJSON_AddNumberToObject(t, "kind", s->targets[l].kind);
            cJSON_AddNumberToObject(t, "label", (double)s->targets[l].label);
            cJSON_AddItemToArray(tn, t);
        }
        cJSON_AddNumberToObject(sh, "empty_distance_mm", s->o.empty_distance);
        cJSON_AddNumberToObject(sh, "empty", s->o.empty);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

void ev_free_conventions(sl_evalset *s)
{
    if (s->conventions) cJSON_Delete((cJSON *)s->conventions);
    s->conventions = NULL;
}

/* ---- writing both files or neither ----------------------------------------- */

/* 1 when path names the same existing file as `other`. */
static int same_file(const char *path, const char *other)
{
    struct stat a, b;
    if (!path || !other) return 0;
    if (!strcmp(path, other)) return 1;
    return stat(path, &a) == 0 && stat(other, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

sl_status sl_evalset_check_outputs(const sl_evalset *s, const char *csv_path, const char *json_path, char *msg,
                                   size_t msglen)
{
    if (!s) return sl_errf(msg, msglen, SL_EINVAL, "eval: the set is NULL");
    if (csv_path && json_path && same_file(csv_path, json_path))
        return sl_errf(msg, msglen, SL_EINVAL, "--csv and --json name the same file '%s'", csv_path);
    const char *opt[2] = {"--csv", "--json"}, *paths[2] = {csv_path, json_path};
    for (int k = 0; k < 2; k++) {
        if (!paths[k]) continue;
        for (int i = 0; i < s->ncases; i++) {
            const ev_case *c = &s->cases[i];
            const char *hit = same_file(paths[k], c->gt) ? "ground truth" : same_file(paths[k], c->pred) ? "prediction"
                                                                                                          : NULL;
            if (hit)
                return sl_errf(msg, msglen, SL_EINVAL, "%s '%s' is the %s of case '%s'; it would be overwritten", opt[k],
                               paths[k], hit, c->id);
        }
    }
    return SL_OK;
}

sl_status sl_evalset_write(const sl_evalset *s, const char *csv_path, const char *json_path, char *msg,
                           size_t msglen)
{
    if (!s) return sl_errf(msg, msglen, SL_EINVAL, "eval: the set is NULL");
    if (!s->scored) return sl_errf(msg, msglen, SL_EBADSTATE, "eval: the set is not scored");
    sl_status st = sl_evalset_check_outputs(s, csv_path, json_path, msg, msglen);
    if (st != SL_OK) return st;
    const char *paths[2] = {csv_path, json_path};
    sl_out *out[2] = {NULL, NULL};
    sl_eval_stats *stats = NULL;
    sl_eval_counts *counts = NULL;
    char *json = NULL;
    if (json_path) {
        if (all_summaries(s, &stats, &counts) != SL_OK || !(json = json_text(s, stats, counts))) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "out of memory writing '%s'", json_path);
            goto done;
        }
    }
    /* Both temporary files are written completely (and flushed) before
     * either is committed; a failure aborts both and leaves the targets as
     * they were. */
    for (int k = 0; k < 2 && st == SL_OK; k++) {
        if (!paths[k]) continue;
        if ((st = sl_out_open(paths[k], &out[k], msg, msglen)) != SL_OK) break;
        FILE *f = sl_out_file(out[k]);
        if (k == 0) write_csv(s, f);
        else {
            fputs(json, f);
            fputc('\n', f);
        }
        if (fflush(f) != 0 || ferror(f))
            st = sl_errf(msg, msglen, SL_EIO, "cannot write '%s': %s", paths[k], strerror(errno));
    }
    for (int k = 0; k < 2 && st == SL_OK; k++)
        if (out[k]) {
            st = sl_out_commit(out[k], msg, msglen);
            out[k] = NULL;
        }
done:
    for (int k = 0; k < 2; k++) sl_out_abort(out[k]);
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
    int n = s->ncases, nl = s->ntargets, nc = s->ncols;
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
        fprintf(f, "%-6s %5d  %-14s", s->targets[l].name, counts[l].cases, e);
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

/* ---- merging shards ---------------------------------------------------------- */

static char *read_text(const char *path, char *msg, size_t msglen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sl_errf(msg, msglen, SL_EIO, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n - 1, f);
        n += r;
        if (n + 1 < cap) break;
        char *nb = realloc(b, cap *= 2);
        if (!nb) {
            free(b);
            b = NULL;
        } else {
            b = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        sl_errf(msg, msglen, b ? SL_EIO : SL_ENOMEM, "cannot read '%s'", path);
        return NULL;
    }
    b[n] = 0;
    return b;
}

/* A JSON number as int64, refusing what does not fit (a cast of an
 * out-of-range double is undefined behaviour). */
static int json_i64(const cJSON *x, int64_t *out)
{
    if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) < 9.0e18) || x->valuedouble != floor(x->valuedouble)) return 0;
    *out = (int64_t)x->valuedouble;
    return 1;
}

static int cmp_case_id(const void *a, const void *b)
{
    return strcmp(((const ev_case *)a)->id, ((const ev_case *)b)->id);
}

/* One part: checks it against the first (targets, columns, conventions)
 * and appends its cases (rows kept as parsed JSON until all are read). */
typedef struct {
    cJSON *root;
    const char *path;
} part_t;

static sl_status merge_setup(sl_evalset *s, cJSON *root, const char *path, char *msg, size_t msglen)
{
    cJSON *sh = cJSON_GetObjectItemCaseSensitive(root, "shard");
    cJSON *conv = cJSON_GetObjectItemCaseSensitive(root, "conventions");
    cJSON *cols = conv ? cJSON_GetObjectItemCaseSensitive(conv, "columns") : NULL;
    cJSON *tg = sh ? cJSON_GetObjectItemCaseSensitive(sh, "targets") : NULL;
    if (!cJSON_IsString(cols) || !cJSON_IsArray(tg))
        return sl_errf(msg, msglen, SL_EFORMAT, "'%s' is not the JSON of a segloss eval --shard run", path);
    sl_status st = ev_parse_columns(cols->valuestring, s->cols, &s->ncols, (int)(sizeof s->cols / sizeof *s->cols),
                                    msg, msglen);
    if (st != SL_OK) return sl_errf(msg, msglen, SL_EFORMAT, "'%s': unknown column list '%s'", path, cols->valuestring);
    s->columns = strdup(cols->valuestring);
    int nt = cJSON_GetArraySize(tg);
    s->targets = calloc((size_t)nt + 1, sizeof *s->targets);
    if (!s->columns || !s->targets) return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
    s->ntargets = nt;
    for (int t = 0; t < nt; t++) {
        cJSON *e = cJSON_GetArrayItem(tg, t);
        cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"), *kd = cJSON_GetObjectItemCaseSensitive(e, "kind"),
              *lb = cJSON_GetObjectItemCaseSensitive(e, "label");
        int64_t kind, label;
        if (!cJSON_IsString(nm) || !json_i64(kd, &kind) || kind < EV_LABEL || kind > EV_MEAN || !json_i64(lb, &label) ||
            strlen(nm->valuestring) >= sizeof s->targets[t].name)
            return sl_errf(msg, msglen, SL_EFORMAT, "'%s': malformed shard target %d", path, t);
        snprintf(s->targets[t].name, sizeof s->targets[t].name, "%s", nm->valuestring);
        s->targets[t].kind = (int)kind;
        s->targets[t].label = label;
    }
    cJSON *ed = cJSON_GetObjectItemCaseSensitive(sh, "empty_distance_mm"),
          *em = cJSON_GetObjectItemCaseSensitive(sh, "empty");
    int64_t empty;
    if (!cJSON_IsNumber(ed) || !json_i64(em, &empty) || empty < 0 || empty > 2)
        return sl_errf(msg, msglen, SL_EFORMAT, "'%s': malformed shard record", path);
    s->o.empty_distance = ed->valuedouble;
    s->o.empty = (sl_eval_empty)empty;
    cJSON *desc = cJSON_GetObjectItemCaseSensitive(conv, "metrics");
    snprintf(s->describe, sizeof s->describe, "%s", cJSON_IsString(desc) ? desc->valuestring : "");
    s->conventions = cJSON_Duplicate(conv, 1);
    return s->conventions ? SL_OK : sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
}

/* Same shard layout and conventions as the first part? */
static sl_status merge_check(const cJSON *first, const cJSON *root, const char *path, char *msg, size_t msglen)
{
    const char *keys[2] = {"conventions", "shard"};
    for (int k = 0; k < 2; k++) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(first, keys[k]), *b = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        if (!b) return sl_errf(msg, msglen, SL_EFORMAT, "'%s' is not the JSON of a segloss eval --shard run", path);
        cJSON *ac = cJSON_Duplicate(a, 1), *bc = cJSON_Duplicate(b, 1);
        if (k == 1) { /* every shard has its own k */
            cJSON_DeleteItemFromObjectCaseSensitive(ac, "k");
            cJSON_DeleteItemFromObjectCaseSensitive(bc, "k");
        }
        int same = ac && bc && cJSON_Compare(ac, bc, 1);
        cJSON_Delete(ac);
        cJSON_Delete(bc);
        if (!same)
            return sl_errf(msg, msglen, SL_EFORMAT, "'%s' comes from another run (its %s differ from the first part's)",
                           path, keys[k]);
    }
    return SL_OK;
}

/* The rows of one JSON case entry into row (i, t). */
static sl_status merge_row(sl_evalset *s, const cJSON *row, int i, int t, const char *path, char *msg, size_t msglen)
{
    double *v = row_vals(s, i, t);
    ev_row *r = row_at(s, i, t);
    cJSON *nf = cJSON_GetObjectItemCaseSensitive(row, "nonfinite");
    for (int k = 0; k < s->ncols; k++) {
        const char *name = ev_columns[s->cols[k]].name;
        cJSON *x = cJSON_GetObjectItemCaseSensitive(row, name);
        if (cJSON_IsNumber(x)) v[k] = x->valuedouble;
        else if (cJSON_IsNull(x)) {
            cJSON *w = nf ? cJSON_GetObjectItemCaseSensitive(nf, name) : NULL;
            v[k] = cJSON_IsString(w) ? (w->valuestring[0] == '-' ? -INFINITY : INFINITY) : NAN;
        } else
            return sl_errf(msg, msglen, SL_EFORMAT, "'%s': a row lacks the column '%s'", path, name);
    }
    r->empty_pred = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "empty_pred"));
    r->empty_gt = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "empty_gt"));
    r->subst = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "distance_substituted"));
    cJSON *cm = cJSON_GetObjectItemCaseSensitive(row, "confusion");
    for (int j = 0; j < 4; j++) {
        cJSON *e = cJSON_IsArray(cm) ? cJSON_GetArrayItem(cm, j) : NULL;
        if (!e) r->cm[j] = -1;
        else if (!json_i64(e, &r->cm[j]) || r->cm[j] < 0)
            return sl_errf(msg, msglen, SL_EFORMAT, "'%s': malformed confusion counts", path);
    }
    return SL_OK;
}

sl_status sl_evalset_merge(const char *const *json_paths, int n, sl_evalset **out, char *msg, size_t msglen)
{
    if (!out) return sl_errf(msg, msglen, SL_EINVAL, "eval: out is NULL");
    *out = NULL;
    if (!json_paths || n < 1) return sl_errf(msg, msglen, SL_EINVAL, "--merge needs at least one JSON file");
    sl_evalset *s = calloc(1, sizeof *s);
    part_t *parts = calloc((size_t)n, sizeof *parts);
    unsigned char *seen = NULL;
    sl_status st = SL_OK;
    if (!s || !parts) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
        goto done;
    }
    s->warnings = calloc(1, 1);
    int total = 0, nshard = 0;
    for (int p = 0; p < n && st == SL_OK; p++) {
        parts[p].path = json_paths[p];
        char *text = read_text(json_paths[p], msg, msglen);
        if (!text) {
            st = SL_EIO;
            break;
        }
        parts[p].root = cJSON_Parse(text);
        free(text);
        cJSON *cases = parts[p].root ? cJSON_GetObjectItemCaseSensitive(parts[p].root, "cases") : NULL;
        cJSON *sh = parts[p].root ? cJSON_GetObjectItemCaseSensitive(parts[p].root, "shard") : NULL;
        cJSON *kk = sh ? cJSON_GetObjectItemCaseSensitive(sh, "k") : NULL, *nn = sh ? cJSON_GetObjectItemCaseSensitive(sh, "n") : NULL;
        if (!cJSON_IsArray(cases) || !cJSON_IsNumber(kk) || !cJSON_IsNumber(nn)) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "'%s' is not the JSON of a segloss eval --shard run", json_paths[p]);
            break;
        }
        if (p == 0) {
            nshard = nn->valueint;
            if (nshard < 1 || nshard > 1000000 || nn->valuedouble != nshard || !(seen = calloc((size_t)nshard + 1, 1))) {
                st = sl_errf(msg, msglen, SL_EFORMAT, "'%s': bad shard count", json_paths[0]);
                break;
            }
            if ((st = merge_setup(s, parts[0].root, json_paths[0], msg, msglen)) != SL_OK) break;
        } else if ((st = merge_check(parts[0].root, parts[p].root, json_paths[p], msg, msglen)) != SL_OK) {
            break;
        }
        int k = kk->valueint;
        if (k < 1 || k > nshard || kk->valuedouble != k || seen[k]) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "'%s': shard %d/%d %s", json_paths[p], k, nshard,
                         k < 1 || k > nshard ? "is out of range" : "is given twice");
            break;
        }
        seen[k] = 1;
        int rows = cJSON_GetArraySize(cases);
        if (s->ntargets < 1 || rows % s->ntargets) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "'%s': %d rows do not make whole cases of %d targets", json_paths[p],
                         rows, s->ntargets);
            break;
        }
        total += rows / s->ntargets;
    }
    for (int k = 1; st == SL_OK && k <= nshard; k++)
        if (!seen[k]) st = sl_errf(msg, msglen, SL_EFORMAT, "--merge: shard %d/%d is missing", k, nshard);
    if (st != SL_OK) goto done;
    /* the cases of every part, then sorted by name (the unsharded order) */
    s->cases = calloc((size_t)total + 1, sizeof *s->cases);
    if (!s->cases) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
        goto done;
    }
    for (int p = 0; p < n; p++) {
        cJSON *cases = cJSON_GetObjectItemCaseSensitive(parts[p].root, "cases");
        int rows = cJSON_GetArraySize(cases);
        for (int r = 0; r < rows; r += s->ntargets) {
            cJSON *row = cJSON_GetArrayItem(cases, r);
            cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "case"), *pr = cJSON_GetObjectItemCaseSensitive(row, "pred"),
                  *gt = cJSON_GetObjectItemCaseSensitive(row, "gt");
            ev_case *c = &s->cases[s->ncases++];
            c->id = strdup(cJSON_IsString(id) ? id->valuestring : "");
            c->pred = cJSON_IsString(pr) ? strdup(pr->valuestring) : NULL;
            c->gt = cJSON_IsString(gt) ? strdup(gt->valuestring) : NULL;
            c->nfound = ((int64_t)p << 32) | r; /* where its rows are, until sorted (reset below) */
            if (!c->id) {
                st = sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
                goto done;
            }
        }
    }
    qsort(s->cases, (size_t)s->ncases, sizeof *s->cases, cmp_case_id);
    for (int i = 1; i < s->ncases; i++)
        if (!strcmp(s->cases[i].id, s->cases[i - 1].id)) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "--merge: the case '%s' is in two parts", s->cases[i].id);
            goto done;
        }
    if (alloc_rows(s) != SL_OK) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
        goto done;
    }
    for (int i = 0; i < s->ncases && st == SL_OK; i++) {
        int p = (int)(s->cases[i].nfound >> 32), r0 = (int)(s->cases[i].nfound & 0xffffffff);
        s->cases[i].nfound = 0;
        cJSON *cases = cJSON_GetObjectItemCaseSensitive(parts[p].root, "cases");
        for (int t = 0; t < s->ntargets && st == SL_OK; t++)
            st = merge_row(s, cJSON_GetArrayItem(cases, r0 + t), i, t, parts[p].path, msg, msglen);
    }
    if (st != SL_OK) goto done;
    s->scored = s->merged = 1;
    *out = s;
    s = NULL;
done:
    for (int p = 0; parts && p < n; p++) cJSON_Delete(parts[p].root);
    free(parts);
    free(seen);
    sl_evalset_free(s);
    return st;
}
