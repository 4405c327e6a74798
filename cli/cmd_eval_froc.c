/*
 * segloss eval --froc --prob P --gt G [--froc-label L] [--cand-threshold T]
 *              [--rates R1,R2,...] [--connectivity N] [--sum-tol T]
 *              [--csv F] [--json F]
 *
 * Lesion-wise FROC over a set of cases, as LUNA16's evaluation
 * (noduleCADEvaluationLUNA16.py, computeFROC) computes it, with lesions
 * and candidates taken from images:
 *   - the lesions of a case are the connected components of (G == L);
 *   - its candidates are the connected components of (p >= T), p the
 *     probability of class L (channel L of a (C, spatial...) softmax .npy,
 *     or a (spatial...) map of the same shape as G), each scored by its
 *     highest probability;
 *   - a candidate hits a lesion when they share a voxel; a lesion's score
 *     is the highest of the candidates hitting it (a missed lesion counts in
 *     the number of lesions but gives no point, as LUNA16's excluded
 *     entries); candidates hitting nothing are the false positives;
 *   - the curve has one point per distinct candidate score t: FP(t) = the
 *     false positives scoring >= t per case, sens(t) = the lesions scoring
 *     >= t over all lesions (LUNA16's roc_curve fpr * FP / cases and tpr *
 *     detected / lesions), closed by (0, 0);
 *   - the sensitivity at each rate r is numpy.interp(r, FP, sens) (a rate
 *     beyond the curve takes its last sensitivity); the score is their mean
 *     (LUNA16's CPM over 1/8, 1/4, 1/2, 1, 2, 4, 8).
 * The library's sl_froc follows CAMELYON16's script, whose thresholds are
 * all distinct scores but the smallest; one false-positive score of 0
 * (below every candidate, all >= T > 0) is passed with the real ones so
 * that the smallest dropped is that 0 and every candidate score is a
 * threshold, as in LUNA16. cmd_eval hands over when --froc is given.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli_util.h"
#include "commands.h"
#include "segloss/metrics.h"

#define MAX_RATES 64

typedef struct {
    const char *prob, *gt, *csv, *json;
    int64_t label;
    double cand_threshold, sum_tol;
    int connectivity;
    double rates[MAX_RATES];
    int nrates;
} froc_args;

/* what the cases gave: candidate scores and lesion scores over all cases */
typedef struct {
    double *fp, *les;
    int64_t nfp, nfp_cap, nles, nles_cap;
    int64_t *case_fp, *case_les; /* per case: false positives, lesions */
} froc_acc;

/* value i of a label map as a double */
static double at(const sl_array *a, int64_t i)
{
    switch (a->dtype) {
    case SL_DT_F32: return ((const float *)a->data)[i];
    case SL_DT_F64: return ((const double *)a->data)[i];
    case SL_DT_BOOL:
    case SL_DT_U8: return ((const uint8_t *)a->data)[i];
    case SL_DT_I8: return ((const int8_t *)a->data)[i];
    case SL_DT_U16: return ((const uint16_t *)a->data)[i];
    case SL_DT_I16: return ((const int16_t *)a->data)[i];
    case SL_DT_U32: return ((const uint32_t *)a->data)[i];
    case SL_DT_I32: return ((const int32_t *)a->data)[i];
    case SL_DT_U64: return (double)((const uint64_t *)a->data)[i];
    case SL_DT_I64: return (double)((const int64_t *)a->data)[i];
    }
    return NAN;
}

/* The lesion probability of one case as float32 over G's grid, checked:
 * finite, in [0, 1], and for a softmax every voxel's sum within sum_tol of
 * 1. 0 after printing the reason. */
static int lesion_prob(const froc_args *o, const eval_files *c, const sl_array *p, const sl_array *g, float *out)
{
    if (p->dtype != SL_DT_F32 && p->dtype != SL_DT_F64)
        return cli_fail("eval", EXIT_WORK, "%s: probabilities must be float32 or float64, not %s", c->prob,
                        sl_dtype_name(p->dtype)), 0;
    int64_t n = sl_array_count(g), C = 1;
    int channels = p->ndim == g->ndim + 1, same = channels || p->ndim == g->ndim;
    for (int a = 0; same && a < g->ndim; a++) same = p->shape[a + channels] == g->shape[a];
    if (!same)
        return cli_fail("eval", EXIT_WORK, "%s: probabilities must be (C, spatial...) or (spatial...) over %s's grid",
                        c->prob, c->gt), 0;
    if (channels) {
        C = p->shape[0];
        if (o->label >= C)
            return cli_fail("eval", EXIT_WORK, "%s has %lld classes: no channel for --froc-label %lld", c->prob,
                            (long long)C, (long long)o->label), 0;
    }
    for (int64_t i = 0; i < n; i++) {
        double sum = 0;
        for (int64_t k = 0; k < C; k++) {
            int64_t j = k * n + i;
            double v = p->dtype == SL_DT_F32 ? ((const float *)p->data)[j] : ((const double *)p->data)[j];
            if (!(v >= 0 && v <= 1))
                return cli_fail("eval", EXIT_WORK, "%s: voxel %lld of class %lld holds %g, not a probability in [0, 1]",
                                c->prob, (long long)i, (long long)(channels ? k : o->label), v), 0;
            sum += v;
            if (k == (channels ? o->label : 0)) out[i] = (float)v;
        }
        if (channels && !(fabs(sum - 1) <= o->sum_tol))
            return cli_fail("eval", EXIT_WORK, "%s: the probabilities of voxel %lld sum to %.9g, not 1 (--sum-tol %g)",
                            c->prob, (long long)i, sum, o->sum_tol), 0;
    }
    return 1;
}

/* Reads one case and appends its candidates and lesions. 0 after printing. */
static int add_case(const froc_args *o, const eval_files *c, froc_acc *acc, int i)
{
    char msg[1024];
    sl_array p = SL_ARRAY_EMPTY, g = SL_ARRAY_EMPTY;
    float *pr = NULL;
    uint8_t *gm = NULL;
    int ok = 0;
    if (sl_image_read(c->prob, &p, NULL, msg, sizeof msg) != SL_OK ||
        sl_image_read(c->gt, &g, NULL, msg, sizeof msg) != SL_OK) {
        cli_fail("eval", EXIT_WORK, "%s", msg);
        goto done;
    }
    if (g.ndim < 1 || g.ndim > SL_MAX_SPATIAL) {
        cli_fail("eval", EXIT_WORK, "%s: expected a 1-, 2- or 3-D label map, got %d axes", c->gt, g.ndim);
        goto done;
    }
    int64_t n = sl_array_count(&g);
    pr = malloc((size_t)n * sizeof *pr);
    gm = malloc((size_t)n);
    if (!pr || !gm) {
        cli_fail("eval", EXIT_WORK, "out of memory");
        goto done;
    }
    if (!lesion_prob(o, c, &p, &g, pr)) goto done;
    for (int64_t k = 0; k < n; k++) gm[k] = at(&g, k) == (double)o->label;
    sl_grid grid = SL_GRID_DEFAULT;
    grid.ndim = g.ndim;
    for (int a = 0; a < g.ndim; a++) grid.shape[a] = g.shape[a];
    int64_t nfp0 = acc->nfp, nles0 = acc->nles;
    if (sl_froc_case(pr, gm, &grid, o->cand_threshold, o->connectivity, &acc->fp, &acc->nfp, &acc->nfp_cap, &acc->les,
                     &acc->nles, &acc->nles_cap, msg, sizeof msg) != SL_OK) {
        cli_fail("eval", EXIT_WORK, "%s vs %s: %s", c->prob, c->gt, msg);
        goto done;
    }
    acc->case_fp[i] = acc->nfp - nfp0;
    acc->case_les[i] = acc->nles - nles0;
    ok = 1;
done:
    free(pr);
    free(gm);
    sl_array_free(&p);
    sl_array_free(&g);
    return ok;
}

/* a JSON string (quotes, backslashes and control characters escaped) */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.17g", v);
    else fputs("null", f);
}

static int write_json(FILE *f, const froc_args *o, const eval_files *cs, int n, const froc_acc *acc,
                      const double *sens, double score, const sl_froc_curve *cv, int64_t detected)
{
    fprintf(f, "{\n  \"conventions\": \"froc=LUNA16 computeFROC (a point per distinct candidate score; sensitivity at "
               "each rate by numpy.interp) lesions=components of gt==%lld candidates=components of p>=%.17g scored by "
               "their maximum hit=shared voxel connectivity=%d\",\n",
            (long long)o->label, o->cand_threshold, o->connectivity);
    fprintf(f, "  \"cases\": %d,\n  \"lesions\": %lld,\n  \"detected\": %lld,\n  \"false_positives\": %lld,\n", n,
            (long long)acc->nles, (long long)detected, (long long)(acc->nfp - 1));
    fputs("  \"per_case\": [", f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s\n    {\"case\": ", i ? "," : "");
        json_string(f, cs[i].id);
        fprintf(f, ", \"lesions\": %lld, \"false_positives\": %lld}", (long long)acc->case_les[i],
                (long long)acc->case_fp[i]);
    }
    fputs("\n  ],\n  \"froc\": [", f);
    for (int k = 0; k < o->nrates; k++) {
        fprintf(f, "%s\n    {\"fp_per_case\": ", k ? "," : "");
        num(f, o->rates[k]);
        fputs(", \"sensitivity\": ", f);
        num(f, sens[k]);
        fputc('}', f);
    }
    fputs("\n  ],\n  \"score\": ", f);
    num(f, score);
    fputs(",\n  \"curve\": [", f);
    /* increasing false positives: the closing point (0, 0) first */
    for (int64_t k = cv->n - 1; k >= 0; k--) {
        fprintf(f, "%s\n    {\"threshold\": ", k < cv->n - 1 ? "," : "");
        num(f, cv->threshold[k]);
        fputs(", \"fp_per_case\": ", f);
        num(f, cv->fp_per_case[k]);
        fputs(", \"sensitivity\": ", f);
        num(f, cv->sensitivity[k]);
        fputc('}', f);
    }
    fputs("\n  ]\n}\n", f);
    return ferror(f) ? -1 : 0;
}

static int write_csv(FILE *f, const froc_args *o, const double *sens)
{
    fputs("fp_per_case,sensitivity\n", f);
    for (int k = 0; k < o->nrates; k++) fprintf(f, "%.17g,%.17g\n", o->rates[k], sens[k]);
    return ferror(f) ? -1 : 0;
}

/* both outputs completely, or neither (cli_write_pair) */
typedef struct froc_out {
    const froc_args *o;
    const eval_files *cs;
    int n;
    const froc_acc *acc;
    const double *sens;
    double score;
    const sl_froc_curve *cv;
    int64_t detected;
} froc_out;

static int write_one(int k, FILE *f, void *ctx)
{
    const froc_out *w = ctx;
    return k ? write_json(f, w->o, w->cs, w->n, w->acc, w->sens, w->score, w->cv, w->detected)
             : write_csv(f, w->o, w->sens);
}

static int parse(int argc, char **argv, froc_args *o)
{
    static const double luna[] = {0.125, 0.25, 0.5, 1, 2, 4, 8};
    o->label = 1;
    o->cand_threshold = 0.5;
    o->sum_tol = 1e-4;
    o->nrates = 7;
    memcpy(o->rates, luna, sizeof luna);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v, *s;
        long t;
        if (!strcmp(a, "--froc")) continue;
        if (cli_opt(a, "--prob", &v)) {
            if (!(o->prob = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--gt", &v)) {
            if (!(o->gt = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--csv", &v)) {
            if (!(o->csv = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--json", &v)) {
            if (!(o->json = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--froc-label", &v)) {
            if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &t) || t < 0)
                return cli_fail("eval", EXIT_USAGE, "--froc-label expects an integer >= 0, got '%s'", s);
            o->label = t;
        } else if (cli_opt(a, "--cand-threshold", &v)) {
            if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_double(s, &o->cand_threshold) || !(o->cand_threshold > 0 && o->cand_threshold <= 1))
                return cli_fail("eval", EXIT_USAGE, "--cand-threshold expects a number in (0, 1], got '%s'", s);
        } else if (cli_opt(a, "--rates", &v)) {
            if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
            o->nrates = cli_parse_list(s, o->rates, MAX_RATES);
            int good = o->nrates >= 1;
            for (int k = 0; good && k < o->nrates; k++) good = o->rates[k] >= 0 && isfinite(o->rates[k]);
            if (!good)
                return cli_fail("eval", EXIT_USAGE, "--rates expects 1 to %d comma-separated numbers >= 0, got '%s'",
                                MAX_RATES, s);
        } else if (cli_opt(a, "--connectivity", &v)) {
            if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &t) || (t != 4 && t != 8 && t != 6 && t != 18 && t != 26 && t != 2 && t != 0))
                return cli_fail("eval", EXIT_USAGE, "--connectivity expects 4 or 8 (2-D), 6, 18 or 26 (3-D), got '%s'",
                                s);
            o->connectivity = (int)t;
        } else if (cli_opt(a, "--sum-tol", &v)) {
            if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_double(s, &o->sum_tol) || !(o->sum_tol >= 0) || !isfinite(o->sum_tol))
                return cli_fail("eval", EXIT_USAGE, "--sum-tol expects a number >= 0, got '%s'", s);
        } else if (cli_opt(a, "--threads", &v)) {
            /* accepted for symmetry with the other modes; FROC runs on one thread */
            if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &t) || t < 0 || t > 1024)
                return cli_fail("eval", EXIT_USAGE, "--threads expects an integer in [0, 1024], got '%s'", s);
        } else {
            return cli_fail("eval", EXIT_USAGE, "'%s' does not apply to --froc (see segloss eval --help)", a);
        }
    }
    if (!o->prob || !o->gt) return cli_fail("eval", EXIT_USAGE, "--froc needs --prob P and --gt G");
    if ((o->csv && (!strcmp(o->csv, o->prob) || !strcmp(o->csv, o->gt))) ||
        (o->json && (!strcmp(o->json, o->prob) || !strcmp(o->json, o->gt))) ||
        (o->csv && o->json && !strcmp(o->csv, o->json)))
        return cli_fail("eval", EXIT_USAGE, "an output names an input or the other output");
    return 0;
}

int cmd_eval_froc(int argc, char **argv)
{
    froc_args o;
    memset(&o, 0, sizeof o);
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    eval_files *cs = NULL;
    int n = 0;
    froc_acc acc;
    memset(&acc, 0, sizeof acc);
    sl_froc_curve cv = SL_FROC_CURVE_EMPTY;
    double sens[MAX_RATES];
    if ((rc = eval_prob_files(o.prob, o.gt, &cs, &n)) != 0) goto done;
    rc = EXIT_WORK;
    acc.case_fp = calloc((size_t)n + 1, sizeof *acc.case_fp);
    acc.case_les = calloc((size_t)n + 1, sizeof *acc.case_les);
    acc.fp = malloc(16 * sizeof *acc.fp);
    if (!acc.case_fp || !acc.case_les || !acc.fp) {
        cli_fail("eval", EXIT_WORK, "out of memory");
        goto done;
    }
    /* the 0 sentinel (see the header comment): never a real score, all >= T > 0 */
    acc.fp[0] = 0.0;
    acc.nfp = 1;
    acc.nfp_cap = 16;
    for (int i = 0; i < n; i++)
        if (!add_case(&o, &cs[i], &acc, i)) goto done;
    if (acc.nles == 0) {
        cli_fail("eval", EXIT_WORK, "no lesion (a component of label %lld) in any ground truth: FROC is undefined",
                 (long long)o.label);
        goto done;
    }
    if (sl_froc(acc.fp, acc.nfp, acc.les, acc.nles, n, o.rates, o.nrates, sens, &cv) != SL_OK) {
        cli_fail("eval", EXIT_WORK, "out of memory");
        goto done;
    }
    int64_t detected = 0;
    for (int64_t k = 0; k < acc.nles; k++) detected += acc.les[k] > 0;
    double score = 0;
    for (int k = 0; k < o.nrates; k++) score += sens[k];
    score /= o.nrates;
    froc_out w = {&o, cs, n, &acc, sens, score, &cv, detected};
    const char *const paths[2] = {o.csv, o.json};
    if (!cli_write_pair("eval", paths, write_one, &w)) goto done;
    printf("FROC over %d cases: %lld lesions (%lld detected), %lld false-positive candidates\n", n,
           (long long)acc.nles, (long long)detected, (long long)(acc.nfp - 1));
    printf("%12s %12s\n", "fp/case", "sensitivity");
    for (int k = 0; k < o.nrates; k++) printf("%12g %12.6f\n", o.rates[k], sens[k]);
    printf("%12s %12.6f\n", "mean", score);
    rc = 0;
done:
    sl_froc_curve_free(&cv);
    free(acc.fp);
    free(acc.les);
    free(acc.case_fp);
    free(acc.case_les);
    eval_prob_files_free(cs, n);
    return rc;
}
