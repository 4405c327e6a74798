/*
 * segloss eval --pred P --gt R1,R2,... [every eval option]
 *
 * Several raters: the prediction is scored against each rater's label map
 * (one sl_evalset per rater, the same options), and against the STAPLE
 * fusion of the raters (sl_fuse, per case, scored from memory). Reports,
 * per label and column, each rater's mean, the mean, min and max over the
 * raters, and the fused reference's mean; the CSV holds every row with its
 * reference ("rater1".., "fused"), the JSON the summaries. cmd_eval hands
 * over when --gt holds a comma.
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
#include "outfile.h"
#include "segloss/metrics.h"

#define MAXR 32

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* dir/stem with the first extension that exists (malloc'ed), or NULL. */
static char *find_image(const char *dir, const char *stem)
{
    static const char *ext[] = {".nii.gz", ".nii", ".npy"};
    for (int x = 0; x < 3; x++) {
        size_t n = strlen(dir) + strlen(stem) + strlen(ext[x]) + 2;
        char *p = malloc(n);
        if (!p) return NULL;
        snprintf(p, n, "%s/%s%s", dir, stem, ext[x]);
        if (access(p, R_OK) == 0) return p;
        free(p);
    }
    return NULL;
}

/* STAPLE of the raters' files of one case, scored against the prediction
 * from memory into set `fs`. 0 after printing the reason. */
static int add_fused_case(sl_evalset *fs, const char *id, const char *pred, char **rater, int nr,
                          sl_array *keep_pred, sl_array *keep_fused)
{
    char msg[1200];
    sl_array r[MAXR];
    sl_image_info pinfo, rinfo;
    int nread = 0, ok = 0;
    if (sl_image_read(pred, keep_pred, &pinfo, msg, sizeof msg) != SL_OK) {
        cli_fail("eval", EXIT_WORK, "%s", msg);
        return 0;
    }
    sl_labelmap maps[MAXR];
    for (int j = 0; j < nr; j++) {
        r[j] = (sl_array)SL_ARRAY_EMPTY;
        if (sl_image_read(rater[j], &r[j], &rinfo, msg, sizeof msg) != SL_OK) {
            cli_fail("eval", EXIT_WORK, "%s", msg);
            goto done;
        }
        nread++;
        int same = r[j].ndim == keep_pred->ndim;
        for (int a = 0; same && a < r[j].ndim; a++) same = r[j].shape[a] == keep_pred->shape[a];
        if (!same) {
            cli_fail("eval", EXIT_WORK, "raters on other grids: %s does not have the shape of %s", rater[j], pred);
            goto done;
        }
        maps[j].data = r[j].data;
        maps[j].dtype = r[j].dtype;
    }
    int64_t n = sl_array_count(keep_pred);
    if (sl_array_alloc(keep_fused, SL_DT_I64, keep_pred->ndim, keep_pred->shape) != SL_OK) {
        cli_fail("eval", EXIT_WORK, "out of memory");
        goto done;
    }
    sl_fuse_opts fo = SL_FUSE_OPTS_DEFAULT;
    if (sl_fuse(maps, nr, n, &fo, keep_fused->data, NULL, msg, sizeof msg) != SL_OK) {
        cli_fail("eval", EXIT_WORK, "fusing the raters of '%s': %s", id, msg);
        goto done;
    }
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = keep_pred->ndim;
    for (int a = 0; a < g.ndim; a++) g.shape[a] = keep_pred->shape[a], g.spacing[a] = pinfo.spacing[a];
    sl_labelmap lp = {keep_pred->data, keep_pred->dtype}, lf = {keep_fused->data, SL_DT_I64};
    if (sl_evalset_add_maps(fs, id, &lp, &lf, &g, msg, sizeof msg) != SL_OK) {
        cli_fail("eval", EXIT_WORK, "%s", msg);
        goto done;
    }
    ok = 1;
done:
    for (int j = 0; j < nread; j++) sl_array_free(&r[j]);
    return ok;
}

static void num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.17g", v);
    else fputs("null", f);
}

int cmd_eval_raters(const sl_eval_opts *eo, const char *pred, const char *gtlist, const char *csv, const char *json)
{
    char msg[1400];
    char *list = strdup(gtlist), *save = NULL;
    char *rater[MAXR];
    int nr = 0, rc = EXIT_WORK;
    sl_evalset *set[MAXR + 1] = {NULL};
    sl_array *preds = NULL, *fused = NULL;
    int ncase = 0;
    char **ids = NULL;
    if (!list) return cli_fail("eval", EXIT_WORK, "out of memory");
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (nr == MAXR) {
            free(list);
            return cli_fail("eval", EXIT_USAGE, "--gt: at most %d raters", MAXR);
        }
        rater[nr++] = t;
    }
    if (nr < 2) {
        free(list);
        return cli_fail("eval", EXIT_USAGE, "--gt R1,R2,...: give at least two raters");
    }
    int dir = is_dir(pred);
    for (int j = 0; j < nr; j++)
        if (is_dir(rater[j]) != dir) {
            cli_fail("eval", EXIT_USAGE, "--gt: %s is %s but --pred is %s", rater[j],
                     is_dir(rater[j]) ? "a folder" : "a file", dir ? "a folder" : "a file");
            free(list); /* rater[] points into it */
            return EXIT_USAGE;
        }
    /* one set per rater, then the fused reference */
    for (int j = 0; j < nr; j++) {
        sl_status st;
        if ((st = sl_evalset_create(eo, &set[j], msg, sizeof msg)) != SL_OK ||
            (st = sl_evalset_add_paths(set[j], pred, rater[j], msg, sizeof msg)) != SL_OK ||
            (st = sl_evalset_score(set[j], msg, sizeof msg)) != SL_OK) {
            rc = cli_fail("eval", st == SL_EINVAL ? EXIT_USAGE : EXIT_WORK, "rater %d: %s", j + 1, msg);
            goto done;
        }
    }
    if (sl_evalset_create(eo, &set[nr], msg, sizeof msg) != SL_OK) {
        rc = cli_fail("eval", EXIT_WORK, "%s", msg);
        goto done;
    }
    /* the fused reference, case by case: the cases of rater 1's set */
    ncase = sl_evalset_ncases(set[0]);
    preds = calloc((size_t)ncase + 1, sizeof *preds);
    fused = calloc((size_t)ncase + 1, sizeof *fused);
    ids = calloc((size_t)ncase + 1, sizeof *ids);
    if (!preds || !fused || !ids) {
        cli_fail("eval", EXIT_WORK, "out of memory");
        goto done;
    }
    for (int i = 0; i < ncase; i++) {
        const char *id = sl_evalset_case_id(set[0], i);
        char *paths[MAXR], *pp = NULL;
        int got = 0, ok = 1;
        if (dir) {
            pp = find_image(pred, id);
            for (int j = 0; j < nr && ok; j++) {
                paths[j] = find_image(rater[j], id);
                got = j + 1;
                if (!paths[j]) ok = 0, cli_fail("eval", EXIT_WORK, "rater %d (%s) has no case '%s'", j + 1, rater[j], id);
            }
            if (ok && !pp) ok = 0, cli_fail("eval", EXIT_WORK, "'%s': no prediction found", id);
        } else {
            pp = strdup(pred);
            for (int j = 0; j < nr; j++) paths[j] = strdup(rater[j]);
            got = nr;
        }
        ids[i] = strdup(id);
        if (ok) ok = ids[i] && add_fused_case(set[nr], id, pp, paths, nr, &preds[i], &fused[i]);
        free(pp);
        for (int j = 0; j < got; j++) free(paths[j]);
        if (!ok) goto done;
    }
    if (sl_evalset_score(set[nr], msg, sizeof msg) != SL_OK) {
        rc = cli_fail("eval", EXIT_WORK, "fused reference: %s", msg);
        goto done;
    }

    /* outputs: CSV rows of every reference; JSON summaries */
    const int nl = sl_evalset_nlabels(set[0]), nc = sl_evalset_ncolumns(set[0]);
    sl_out *oc = NULL, *oj = NULL;
    FILE *fc = NULL, *fj = NULL;
    if ((csv && sl_out_open(csv, &oc, msg, sizeof msg) != SL_OK) ||
        (json && sl_out_open(json, &oj, msg, sizeof msg) != SL_OK)) {
        sl_out_abort(oc);
        rc = cli_fail("eval", EXIT_WORK, "%s", msg);
        goto done;
    }
    fc = oc ? sl_out_file(oc) : NULL;
    fj = oj ? sl_out_file(oj) : NULL;
    if (fc) {
        fputs("reference,case,label", fc);
        for (int k = 0; k < nc; k++) fprintf(fc, ",%s", sl_evalset_column(set[0], k));
        fputc('\n', fc);
        for (int j = 0; j <= nr; j++)
            for (int i = 0; i < sl_evalset_ncases(set[j]); i++)
                for (int l = 0; l < sl_evalset_nlabels(set[j]); l++) {
                    if (j < nr) fprintf(fc, "rater%d,", j + 1);
                    else fputs("fused,", fc);
                    fprintf(fc, "%s,%lld", sl_evalset_case_id(set[j], i), (long long)sl_evalset_label(set[j], l));
                    for (int k = 0; k < nc; k++) fprintf(fc, ",%.17g", sl_evalset_value(set[j], i, l, k, NULL));
                    fputc('\n', fc);
                }
    }
    if (fj) {
        fputs("{\n  \"raters\": [", fj);
        for (int j = 0; j < nr; j++) {
            fputs(j ? ", \"" : "\"", fj);
            fputs(rater[j], fj);
            fputc('"', fj);
        }
        fprintf(fj, "],\n  \"fused\": \"STAPLE, multi-class (Warfield 2004), per case\",\n  \"conventions\": \"%s\",\n",
                sl_evalset_describe(set[0]));
        fputs("  \"labels\": {\n", fj);
    }
    printf("%-8s %-16s %10s %10s %10s %10s\n", "label", "metric", "raters", "min", "max", "fused");
    for (int l = 0; l < nl; l++) {
        int64_t lab = sl_evalset_label(set[0], l);
        if (fj) fprintf(fj, "%s    \"%lld\": {", l ? ",\n" : "", (long long)lab);
        for (int k = 0; k < nc; k++) {
            double per[MAXR], sum = 0, mn = INFINITY, mx = -INFINITY, fz = NAN;
            int cnt = 0;
            for (int j = 0; j <= nr; j++) {
                double v = NAN;
                for (int u = 0; u < sl_evalset_nlabels(set[j]); u++)
                    if (sl_evalset_label(set[j], u) == lab) {
                        sl_eval_stats st;
                        if (sl_evalset_summary(set[j], u, k, &st, NULL) == SL_OK) v = st.mean;
                    }
                if (j == nr) {
                    fz = v;
                    continue;
                }
                per[j] = v;
                if (isfinite(v)) sum += v, cnt++, mn = v < mn ? v : mn, mx = v > mx ? v : mx;
            }
            double mean = cnt ? sum / cnt : NAN;
            if (!cnt) mn = mx = NAN;
            printf("%-8lld %-16s %10.4f %10.4f %10.4f %10.4f\n", (long long)lab, sl_evalset_column(set[0], k), mean, mn, mx,
                   fz);
            if (fj) {
                fprintf(fj, "%s\n      \"%s\": {\"per_rater\": [", k ? "," : "", sl_evalset_column(set[0], k));
                for (int j = 0; j < nr; j++) {
                    if (j) fputs(", ", fj);
                    num(fj, per[j]);
                }
                fputs("], \"mean\": ", fj);
                num(fj, mean);
                fputs(", \"min\": ", fj);
                num(fj, mn);
                fputs(", \"max\": ", fj);
                num(fj, mx);
                fputs(", \"fused\": ", fj);
                num(fj, fz);
                fputc('}', fj);
            }
        }
        if (fj) fputs("\n    }", fj);
    }
    if (fj) fputs("\n  },\n  \"summary_rule\": \"per rater: the mean over cases; then mean, min, max over raters\"\n}\n", fj);
    /* both written completely before either is committed: both or neither */
    int werr = (fc && ferror(fc)) || (fj && ferror(fj));
    if (werr) {
        sl_out_abort(oc);
        sl_out_abort(oj);
        rc = cli_fail("eval", EXIT_WORK, "cannot write the outputs (%s)", csv ? csv : json);
        goto done;
    }
    if (oc && sl_out_commit(oc, msg, sizeof msg) != SL_OK) {
        sl_out_abort(oj); /* the CSV failed: the JSON is not committed either */
        rc = cli_fail("eval", EXIT_WORK, "%s", msg);
        goto done;
    }
    if (oj && sl_out_commit(oj, msg, sizeof msg) != SL_OK) {
        rc = cli_fail("eval", EXIT_WORK, "%s", msg);
        goto done;
    }
    rc = 0;
done:
    for (int j = 0; j <= nr && j <= MAXR; j++) sl_evalset_free(set[j]);
    for (int i = 0; i < ncase; i++) {
        if (preds) sl_array_free(&preds[i]);
        if (fused) sl_array_free(&fused[i]);
        if (ids) free(ids[i]);
    }
    free(preds);
    free(fused);
    free(ids);
    free(list);
    return rc;
}
