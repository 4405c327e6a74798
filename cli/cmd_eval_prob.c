/*
 * segloss eval --prob P --gt G [--bins B] [--sum-tol T] [--ignore-label V]
 *              [--no-ranking] [--csv F] [--json F] [--threads N]
 *
 * Scores predicted probabilities (the .npy that `segloss predict
 * --probabilities` writes: float32 (C, spatial...)) against label maps:
 * calibration (ECE, MCE, class-wise ECE), Brier score, NLL, and per class
 * AUROC and average precision. P and G are two files, or two folders
 * matched by file name (P: NAME.npy, G: NAME.npy / .nii / .nii.gz).
 * Thin over sl_prob_eval; cmd_eval hands over when --prob is given.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli_util.h"
#include "commands.h"
#include "segloss/metrics.h"

typedef struct {
    const char *prob, *gt, *csv, *json;
    sl_prob_opts po;
    int ranking;
} prob_args;

typedef struct {
    char *id, *prob, *gt;
    sl_prob_result r;
    sl_prob_class *pc;
    int64_t nclass;
} prob_case;

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int cmp_case(const void *a, const void *b)
{
    return strcmp(((const prob_case *)a)->id, ((const prob_case *)b)->id);
}

/* The cases: one pair of files, or every NAME.npy of the P folder with its
 * G file. 0, or the exit code after printing the reason. */
static int list_cases(const prob_args *o, prob_case **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!is_dir(o->prob)) {
        if (is_dir(o->gt)) return cli_fail("eval", EXIT_USAGE, "--prob is a file but --gt is a folder");
        prob_case *c = calloc(1, sizeof *c);
        *out = c;
        *n = c ? 1 : 0;
        const char *base = strrchr(o->gt, '/');
        base = base ? base + 1 : o->gt;
        if (!c || !(c->id = strdup(base)) || !(c->prob = strdup(o->prob)) || !(c->gt = strdup(o->gt)))
            return cli_fail("eval", EXIT_WORK, "out of memory"), EXIT_WORK;
        char *dot = strstr(c->id, ".nii");
        if (!dot) dot = strstr(c->id, ".npy");
        if (dot) *dot = 0;
        *out = c;
        *n = 1;
        return 0;
    }
    if (!is_dir(o->gt)) return cli_fail("eval", EXIT_USAGE, "--prob is a folder but --gt is not");
    DIR *d = opendir(o->prob);
    if (!d) return cli_fail("eval", EXIT_WORK, "cannot list '%s': %s", o->prob, strerror(errno)), EXIT_WORK;
    prob_case *cs = NULL;
    int cap = 0, k = 0, ok = 1;
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".npy")) continue;
        if (k == cap) {
            cap = cap ? 2 * cap : 16;
            prob_case *g = realloc(cs, (size_t)cap * sizeof *cs);
            if (!g) {
                ok = 0;
                break;
            }
            cs = g;
        }
        prob_case *c = &cs[k];
        memset(c, 0, sizeof *c);
        c->id = strndup(e->d_name, len - 4);
        c->prob = join(o->prob, e->d_name);
        k++;
        if (!c->id || !c->prob) ok = 0;
        static const char *ext[] = {".npy", ".nii.gz", ".nii"};
        for (int x = 0; ok && x < 3 && !c->gt; x++) {
            size_t nl = strlen(c->id) + strlen(ext[x]) + 1;
            char *name = malloc(nl);
            if (!name) {
                ok = 0;
                break;
            }
            snprintf(name, nl, "%s%s", c->id, ext[x]);
            char *p = join(o->gt, name);
            free(name);
            if (p && access(p, R_OK) == 0) c->gt = p;
            else free(p);
        }
        if (ok && !c->gt) {
            closedir(d);
            cli_fail("eval", EXIT_WORK, "'%s' has no label map in '%s' (%s.npy/.nii/.nii.gz)", c->prob, o->gt, c->id);
            *out = cs;
            *n = k;
            return EXIT_WORK;
        }
    }
    closedir(d);
    *out = cs;
    *n = k;
    if (!ok) return cli_fail("eval", EXIT_WORK, "out of memory"), EXIT_WORK;
    if (k == 0) return cli_fail("eval", EXIT_WORK, "no .npy probabilities in '%s'", o->prob), EXIT_WORK;
    qsort(cs, (size_t)k, sizeof *cs, cmp_case);
    return 0;
}

int eval_prob_files(const char *prob, const char *gt, eval_files **out, int *n)
{
    prob_args o;
    memset(&o, 0, sizeof o);
    o.prob = prob;
    o.gt = gt;
    prob_case *cs = NULL;
    int k = 0, rc = list_cases(&o, &cs, &k);
    eval_files *f = calloc((size_t)k + 1, sizeof *f);
    for (int i = 0; i < k; i++) {
        if (f) f[i].id = cs[i].id, f[i].prob = cs[i].prob, f[i].gt = cs[i].gt;
        else free(cs[i].id), free(cs[i].prob), free(cs[i].gt);
    }
    free(cs);
    *out = f;
    *n = f ? k : 0;
    if (!rc && !f) rc = cli_fail("eval", EXIT_WORK, "out of memory");
    return rc;
}

void eval_prob_files_free(eval_files *f, int n)
{
    for (int i = 0; f && i < n; i++) free(f[i].id), free(f[i].prob), free(f[i].gt);
    free(f);
}

/* Scores one case; 0 after printing the reason. */
static int score_case(const prob_args *o, prob_case *c)
{
    char msg[1024];
    sl_array p = SL_ARRAY_EMPTY, g = SL_ARRAY_EMPTY;
    int ok = 0;
    if (sl_image_read(c->prob, &p, NULL, msg, sizeof msg) != SL_OK || sl_image_read(c->gt, &g, NULL, msg, sizeof msg) != SL_OK) {
        cli_fail("eval", EXIT_WORK, "%s", msg);
        goto done;
    }
    if (p.dtype != SL_DT_F32 && p.dtype != SL_DT_F64) {
        cli_fail("eval", EXIT_WORK, "%s: probabilities must be float32 or float64, not %s", c->prob, sl_dtype_name(p.dtype));
        goto done;
    }
    int same = p.ndim == g.ndim + 1;
    for (int a = 0; same && a < g.ndim; a++) same = p.shape[a + 1] == g.shape[a];
    if (!same) {
        cli_fail("eval", EXIT_WORK, "%s: probabilities must be (C, spatial...) over %s's grid (%d axes)", c->prob,
                 c->gt, g.ndim);
        goto done;
    }
    c->nclass = p.shape[0];
    int64_t n = sl_array_count(&g);
    if (p.dtype == SL_DT_F64) {
        /* float64 probabilities are scored as float32 (the library's input) */
        sl_array f = SL_ARRAY_EMPTY;
        if (sl_array_alloc(&f, SL_DT_F32, p.ndim, p.shape) != SL_OK) {
            cli_fail("eval", EXIT_WORK, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n * c->nclass; i++) ((float *)f.data)[i] = (float)((double *)p.data)[i];
        sl_array_free(&p);
        p = f;
    }
    c->pc = calloc((size_t)(c->nclass > 0 ? c->nclass : 1), sizeof *c->pc);
    if (!c->pc) {
        cli_fail("eval", EXIT_WORK, "out of memory");
        goto done;
    }
    sl_labelmap lm = {g.data, g.dtype};
    if (sl_prob_eval(p.data, c->nclass, &lm, n, &o->po, o->ranking, &c->r, c->pc, msg, sizeof msg) != SL_OK) {
        cli_fail("eval", EXIT_WORK, "%s vs %s: %s", c->prob, c->gt, msg);
        goto done;
    }
    ok = 1;
done:
    sl_array_free(&p);
    sl_array_free(&g);
    return ok;
}

static void num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.17g", v);
    else fputs("null", f);
}

static void csv_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.17g", v);
    else if (isnan(v)) fputs("nan", f);
    else fputs(v > 0 ? "inf" : "-inf", f);
}

/* mean and population std (ddof = 0, as segloss eval's summaries) of the
 * finite values of a case field */
static void summary(FILE *f, const char *name, const prob_case *cs, int n, size_t off, int last)
{
    double s = 0, s2 = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&cs[i].r + off);
        if (isfinite(v)) s += v, k++;
    }
    double m = k ? s / k : NAN;
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&cs[i].r + off);
        if (isfinite(v)) s2 += (v - m) * (v - m);
    }
    fprintf(f, "    \"%s\": {\"n\": %d, \"mean\": ", name, k);
    num(f, m);
    fputs(", \"std\": ", f);
    num(f, k ? sqrt(s2 / k) : NAN);
    fprintf(f, "}%s\n", last ? "" : ",");
}

static const struct {
    const char *name;
    size_t off;
} FIELDS[] = {{"accuracy", offsetof(sl_prob_result, accuracy)}, {"ece", offsetof(sl_prob_result, ece)},
              {"mce", offsetof(sl_prob_result, mce)},           {"classwise_ece", offsetof(sl_prob_result, classwise_ece)},
              {"brier", offsetof(sl_prob_result, brier)},       {"nll", offsetof(sl_prob_result, nll)}};
#define NFIELDS (int)(sizeof FIELDS / sizeof *FIELDS)

static int write_json(FILE *f, const prob_args *o, const prob_case *cs, int n)
{
    fprintf(f, "{\n  \"conventions\": \"bins=%d bin_rule=(lo,hi] sum_tol=%g nll_eps=1e-15 ece=top-label (Guo 2017) "
               "classwise_ece=Kull 2019 brier=sum over classes auroc=sklearn roc_auc_score "
               "ap=sklearn average_precision_score std=population\",\n",
            o->po.bins, o->po.sum_tol);
    if (o->po.has_ignore) fprintf(f, "  \"ignore_label\": %lld,\n", (long long)o->po.ignore_label);
    fputs("  \"cases\": [\n", f);
    for (int i = 0; i < n; i++) {
        const prob_case *c = &cs[i];
        fputs("    {\"case\": \"", f);
        fputs(c->id, f);
        fprintf(f, "\", \"n\": %lld", (long long)c->r.n);
        for (int k = 0; k < NFIELDS; k++) {
            fprintf(f, ", \"%s\": ", FIELDS[k].name);
            num(f, *(const double *)((const char *)&c->r + FIELDS[k].off));
        }
        fputs(", \"classes\": [", f);
        for (int64_t k = 0; k < c->nclass; k++) {
            const sl_prob_class *p = &c->pc[k];
            fprintf(f, "%s{\"class\": %lld, \"positives\": %lld, \"ece\": ", k ? ", " : "", (long long)k,
                    (long long)p->positives);
            num(f, p->ece);
            fputs(", \"mce\": ", f);
            num(f, p->mce);
            fputs(", \"brier\": ", f);
            num(f, p->brier);
            fputs(", \"auroc\": ", f);
            num(f, p->auroc);
            fputs(", \"ap\": ", f);
            num(f, p->ap);
            fputc('}', f);
        }
        fprintf(f, "]}%s\n", i + 1 < n ? "," : "");
    }
    fputs("  ],\n  \"summary\": {\n", f);
    for (int k = 0; k < NFIELDS; k++) summary(f, FIELDS[k].name, cs, n, FIELDS[k].off, k + 1 == NFIELDS);
    fputs("  }\n}\n", f);
    return ferror(f) ? -1 : 0;
}

static int write_csv(FILE *f, const prob_case *cs, int n)
{
    fputs("case,class,n,positives,accuracy,ece,mce,classwise_ece,brier,nll,auroc,ap\n", f);
    for (int i = 0; i < n; i++) {
        const prob_case *c = &cs[i];
        fprintf(f, "%s,all,%lld,,", c->id, (long long)c->r.n);
        for (int k = 0; k < NFIELDS; k++) {
            csv_num(f, *(const double *)((const char *)&c->r + FIELDS[k].off));
            fputc(',', f);
        }
        fputs(",\n", f);
        for (int64_t k = 0; k < c->nclass; k++) {
            const sl_prob_class *p = &c->pc[k];
            fprintf(f, "%s,%lld,%lld,%lld,,", c->id, (long long)k, (long long)c->r.n, (long long)p->positives);
            csv_num(f, p->ece);
            fputc(',', f);
            csv_num(f, p->mce);
            fputs(",,", f);
            csv_num(f, p->brier);
            fputs(",,", f);
            csv_num(f, p->auroc);
            fputc(',', f);
            csv_num(f, p->ap);
            fputc('\n', f);
        }
    }
    return ferror(f) ? -1 : 0;
}

/* Both outputs written completely before either is committed (cli_write_pair). */
typedef struct prob_out {
    const prob_args *o;
    const prob_case *cs;
    int n;
} prob_out;

static int write_one(int k, FILE *f, void *ctx)
{
    const prob_out *w = ctx;
    return k ? write_json(f, w->o, w->cs, w->n) : write_csv(f, w->cs, w->n);
}

int cmd_eval_prob(int argc, char **argv)
{
    prob_args o;
    memset(&o, 0, sizeof o);
    o.po = (sl_prob_opts)SL_PROB_OPTS_DEFAULT;
    o.ranking = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v, *s;
        long t;
        if (cli_opt(a, "--prob", &v)) {
            if (!(o.prob = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--gt", &v)) {
            if (!(o.gt = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--csv", &v)) {
            if (!(o.csv = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--json", &v)) {
            if (!(o.json = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--bins", &v)) {
            if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &t) || t < 1 || t > 100000)
                return cli_fail("eval", EXIT_USAGE, "--bins expects an integer in [1, 100000], got '%s'", s);
            o.po.bins = (int)t;
        } else if (cli_opt(a, "--sum-tol", &v)) {
            if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_double(s, &o.po.sum_tol) || !(o.po.sum_tol >= 0) || !isfinite(o.po.sum_tol))
                return cli_fail("eval", EXIT_USAGE, "--sum-tol expects a number >= 0, got '%s'", s);
        } else if (cli_opt(a, "--ignore-label", &v)) {
            if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &t)) return cli_fail("eval", EXIT_USAGE, "--ignore-label expects an integer, got '%s'", s);
            o.po.has_ignore = 1;
            o.po.ignore_label = t;
        } else if (!strcmp(a, "--no-ranking")) {
            o.ranking = 0;
        } else if (cli_opt(a, "--threads", &v)) {
            if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &t) || t < 0 || t > 1024)
                return cli_fail("eval", EXIT_USAGE, "--threads expects an integer in [0, 1024], got '%s'", s);
            o.po.threads = (int)t;
        } else {
            return cli_fail("eval", EXIT_USAGE, "'%s' does not apply to --prob (see segloss eval --help)", a);
        }
    }
    if (!o.prob || !o.gt) return cli_fail("eval", EXIT_USAGE, "--prob needs --gt");
    if ((o.csv && (!strcmp(o.csv, o.prob) || !strcmp(o.csv, o.gt))) ||
        (o.json && (!strcmp(o.json, o.prob) || !strcmp(o.json, o.gt))) || (o.csv && o.json && !strcmp(o.csv, o.json)))
        return cli_fail("eval", EXIT_USAGE, "an output names an input or the other output");
    prob_case *cs = NULL;
    int n = 0, rc = EXIT_WORK;
    if ((rc = list_cases(&o, &cs, &n)) != 0) goto done;
    rc = EXIT_WORK;
    for (int i = 0; i < n; i++)
        if (!score_case(&o, &cs[i])) goto done;
    prob_out w = {&o, cs, n};
    const char *const paths[2] = {o.csv, o.json};
    if (!cli_write_pair("eval", paths, write_one, &w)) goto done;
    printf("%-14s %8s %8s %8s %8s %8s\n", "case", "ece", "mce", "cw-ece", "brier", "nll");
    for (int i = 0; i < n; i++)
        printf("%-14s %8.4f %8.4f %8.4f %8.4f %8.4f\n", cs[i].id, cs[i].r.ece, cs[i].r.mce, cs[i].r.classwise_ece,
               cs[i].r.brier, cs[i].r.nll);
    rc = 0;
done:
    for (int i = 0; i < n; i++) {
        free(cs[i].id);
        free(cs[i].prob);
        free(cs[i].gt);
        free(cs[i].pc);
    }
    free(cs);
    return rc;
}
