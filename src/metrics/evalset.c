/*
 * The evaluation set: cases from files or memory, label discovery, grid
 * checks and parallel scoring (the engine of `segloss eval`).
 *
 * Scoring runs in two passes over the cases:
 *   1. with every label requested (opts.labels NULL), read each case once
 *      to collect the labels present in any prediction or ground truth, so
 *      that every case is scored on one label set; images read here are
 *      kept for pass 2 up to a memory budget;
 *   2. score the cases in parallel (threads split between cases and, for
 *      few large cases, inside each case).
 * A failing case stops the passes; the failure reported is the first in
 * case order, so the message does not depend on the thread schedule.
 */
#define _POSIX_C_SOURCE 200809L /* opendir, strdup */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "evalset_internal.h"
#include "internal.h"
#include "metrics_internal.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- create / free --------------------------------------------------------- */

static int valid_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
           ch == '-' || ch == '.';
}

/* Parses one integer of a list; *p advances past it. */
static int parse_i64(const char **p, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(*p, &end, 10);
    if (end == *p || errno == ERANGE) return 0;
    *v = x;
    *p = end;
    return 1;
}

/* "WT=1,2,4;TC=1,4;ET=4" into region targets appended to s->targets. */
static sl_status parse_regions(sl_evalset *s, const char *spec, char *msg, size_t msglen)
{
    const char *p = spec;
    while (*p) {
        const char *name = p;
        while (valid_name_char(*p)) p++;
        size_t nl = (size_t)(p - name);
        if (nl == 0 || nl >= sizeof s->targets[0].name || *p != '=')
            return sl_errf(msg, msglen, SL_EINVAL,
                           "--regions: expected NAME=L1,L2,... (names of letters, digits, _ - .) at '%s' in '%s'", name,
                           spec);
        p++;
        ev_target *nt = realloc(s->targets, (size_t)(s->ntargets + 1) * sizeof *nt);
        if (!nt) return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
        s->targets = nt;
        ev_target *t = &s->targets[s->ntargets++];
        memset(t, 0, sizeof *t);
        memcpy(t->name, name, nl);
        t->kind = EV_REGION;
        t->label = -1;
        for (int k = 0; k < s->ntargets - 1; k++)
            if (!strcmp(s->targets[k].name, t->name))
                return sl_errf(msg, msglen, SL_EINVAL, "--regions: the name '%s' is defined twice", t->name);
        for (;;) {
            int64_t v;
            if (!parse_i64(&p, &v))
                return sl_errf(msg, msglen, SL_EINVAL, "--regions: region '%s' needs integer labels like 1,2,4 in '%s'",
                               t->name, spec);
            for (int k = 0; k < t->nset; k++)
                if (t->set[k] == v)
                    return sl_errf(msg, msglen, SL_EINVAL, "--regions: region '%s' lists %lld twice", t->name,
                                   (long long)v);
            int64_t *ns = realloc(t->set, (size_t)(t->nset + 1) * sizeof *ns);
            if (!ns) return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
            t->set = ns;
            t->set[t->nset++] = v;
            if (*p == ',') {
                p++;
                continue;
            }
            break;
        }
        if (*p == ';') {
            p++;
            if (!*p) break; /* a trailing ';' is harmless */
        } else if (*p) {
            return sl_errf(msg, msglen, SL_EINVAL, "--regions: unexpected '%c' after region '%s' in '%s'", *p, t->name,
                           spec);
        }
    }
    if (s->ntargets == 0) return sl_errf(msg, msglen, SL_EINVAL, "--regions is empty");
    return SL_OK;
}

/* The targets once the labels are known: the labels, then the regions
 * (already parsed, kept in front), then "mean". */
static sl_status build_targets(sl_evalset *s, char *msg, size_t msglen)
{
    int nreg = s->ntargets, nl = s->nlabels, total = nl + nreg + (s->o.label_mean ? 1 : 0);
    ev_target *t = calloc((size_t)total + 1, sizeof *t);
    if (!t) return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
    for (int l = 0; l < nl; l++) {
        t[l].kind = EV_LABEL;
        t[l].label = s->labels[l];
        snprintf(t[l].name, sizeof t[l].name, "%lld", (long long)s->labels[l]);
    }
    if (nreg) memcpy(t + nl, s->targets, (size_t)nreg * sizeof *t);
    if (s->o.label_mean) {
        ev_target *m = &t[nl + nreg];
        m->kind = EV_MEAN;
        m->label = -1;
        snprintf(m->name, sizeof m->name, "mean");
        for (int k = 0; k < nl + nreg; k++)
            if (!strcmp(t[k].name, "mean")) {
                free(t);
                return sl_errf(msg, msglen, SL_EINVAL, "--regions: 'mean' is the name of the --label-mean row");
            }
    }
    free(s->targets);
    s->targets = t;
    s->ntargets = total;
    return SL_OK;
}

/* The ignore label must not be scored: its voxels are removed from G. */
static sl_status check_ignore(const sl_evalset *s, char *msg, size_t msglen)
{
    if (!s->o.has_ignore) return SL_OK;
    for (int l = 0; l < s->nlabels; l++)
        if (s->labels[l] == s->o.ignore_label)
            return sl_errf(msg, msglen, SL_EINVAL, "--ignore-label %lld is also in --labels",
                           (long long)s->o.ignore_label);
    for (int t = 0; t < s->ntargets; t++)
        for (int k = 0; k < s->targets[t].nset; k++)
            if (s->targets[t].set[k] == s->o.ignore_label)
                return sl_errf(msg, msglen, SL_EINVAL, "--ignore-label %lld is part of region '%s'",
                               (long long)s->o.ignore_label, s->targets[t].name);
    return SL_OK;
}

static sl_status create_checks(sl_evalset *s, const sl_eval_opts *opts, char *msg, size_t msglen)
{
    if (!(opts->empty_distance < 0) && !(opts->empty_distance >= 0 && isfinite(opts->empty_distance)))
        return sl_errf(msg, msglen, SL_EINVAL, "--empty-distance must be a finite number >= 0");
    if (opts->nspacing < 0 || opts->nspacing > SL_MAX_SPATIAL)
        return sl_errf(msg, msglen, SL_EINVAL, "--spacing expects 1 to 3 values");
    for (int k = 0; k < opts->nspacing; k++)
        if (!(opts->spacing[k] > 0) || !isfinite(opts->spacing[k]))
            return sl_errf(msg, msglen, SL_EINVAL, "--spacing values must be positive");
    if (opts->threads < 0) return sl_errf(msg, msglen, SL_EINVAL, "eval: threads must be >= 0");
    if ((int)opts->empty < 0 || (int)opts->empty > 2)
        return sl_errf(msg, msglen, SL_EINVAL, "--empty expects score, nan or exclude");
    if (!(opts->beta >= 0) || !isfinite(opts->beta)) return sl_errf(msg, msglen, SL_EINVAL, "--beta must be > 0");
    if ((int)opts->instance_match < 0 || (int)opts->instance_match > 2)
        return sl_errf(msg, msglen, SL_EINVAL, "--match expects monai, greedy or hungarian");
    if (!(opts->instance_iou >= 0 && opts->instance_iou <= 1))
        return sl_errf(msg, msglen, SL_EINVAL, "--iou-threshold must be in (0, 1]");
    if (opts->instances) {
        /* instance ids are not class labels: one foreground target only */
        if (opts->labels || opts->regions)
            return sl_errf(msg, msglen, SL_EINVAL,
                           "--instances scores every non-zero id as one instance: it takes no --labels or --regions");
        if (opts->has_ignore)
            return sl_errf(msg, msglen, SL_EINVAL, "--instances and --ignore-label exclude each other");
    }
    if (opts->shard_n || opts->shard_k) {
        if (opts->shard_n < 1 || opts->shard_k < 1 || opts->shard_k > opts->shard_n)
            return sl_errf(msg, msglen, SL_EINVAL, "--shard K/N needs 1 <= K <= N, got %d/%d", opts->shard_k,
                           opts->shard_n);
        if (!opts->labels && !opts->regions && !opts->instances)
            return sl_errf(msg, msglen, SL_EINVAL,
                           "--shard needs --labels or --regions, so that every shard scores the same labels");
    }
    return SL_OK;
}

sl_status sl_evalset_create(const sl_eval_opts *opts, sl_evalset **out, char *msg, size_t msglen)
{
    if (!out) return sl_errf(msg, msglen, SL_EINVAL, "eval: out is NULL");
    *out = NULL;
    sl_eval_opts d = SL_EVAL_OPTS_DEFAULT;
    if (!opts) opts = &d;
    sl_evalset *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
    s->o = *opts;
    s->o.columns = s->o.regions = NULL;
    s->o.labels = NULL;
    sl_status st;
    const char *cols = opts->columns ? opts->columns : SL_EVAL_DEFAULT_COLUMNS;
    if ((st = ev_parse_columns(cols, s->cols, &s->ncols, (int)(sizeof s->cols / sizeof *s->cols), msg, msglen)) !=
        SL_OK)
        goto fail;
    s->columns = strdup(cols);
    s->warnings = calloc(1, 1);
    if (!s->columns || !s->warnings || (opts->regions && !(s->regions = strdup(opts->regions)))) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
        goto fail;
    }
    s->o.columns = s->columns;
    s->o.regions = s->regions;
    if ((st = create_checks(s, opts, msg, msglen)) != SL_OK) goto fail;
    s->labels_all = opts->labels == NULL;
    if (!s->labels_all) {
        if (opts->nlabels < 1) {
            st = sl_errf(msg, msglen, SL_EINVAL, "eval: nlabels must be >= 1 when labels are given");
            goto fail;
        }
        s->labels = malloc((size_t)opts->nlabels * sizeof *s->labels);
        if (!s->labels) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
            goto fail;
        }
        memcpy(s->labels, opts->labels, (size_t)opts->nlabels * sizeof *s->labels);
        s->nlabels = opts->nlabels;
        qsort(s->labels, (size_t)s->nlabels, sizeof *s->labels, cmp_i64);
        for (int k = 1; k < s->nlabels; k++)
            if (s->labels[k] == s->labels[k - 1]) {
                st = sl_errf(msg, msglen, SL_EINVAL, "--labels lists %lld twice", (long long)s->labels[k]);
                goto fail;
            }
    }
    if (s->regions && (st = parse_regions(s, s->regions, msg, msglen)) != SL_OK) goto fail;
    /* regions alone: no label scan, only the regions */
    if (s->regions && s->labels_all) s->labels_all = 0;
    if (s->o.instances) {
        /* instance maps: one target, the foreground (id != 0), no label scan */
        s->targets = calloc(1, sizeof *s->targets);
        if (!s->targets) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
            goto fail;
        }
        s->ntargets = 1;
        s->targets[0].kind = EV_REGION;
        s->targets[0].label = -1;
        snprintf(s->targets[0].name, sizeof s->targets[0].name, "instances");
        s->labels_all = 0;
    }
    if ((st = check_ignore(s, msg, msglen)) != SL_OK) goto fail;
    s->o.labels = s->labels;
    s->o.metric.metrics = SL_MET_OVERLAP; /* the counts: every row carries them */
    for (int k = 0; k < s->ncols; k++) {
        s->o.metric.metrics |= ev_columns[s->cols[k]].group;
        s->need |= ev_columns[s->cols[k]].need;
    }
    if ((st = sl_metric_opts_check(&s->o.metric, msg, msglen)) != SL_OK) {
        st = SL_EINVAL;
        goto fail;
    }
    *out = s;
    return SL_OK;
fail:
    sl_evalset_free(s);
    return st;
}

static void unload(ev_case *c)
{
    sl_array_free(&c->ap);
    sl_array_free(&c->ag);
    c->loaded = 0;
}

void sl_evalset_free(sl_evalset *s)
{
    if (!s) return;
    for (int i = 0; i < s->ncases; i++) {
        ev_case *c = &s->cases[i];
        unload(c);
        free(c->id);
        free(c->pred);
        free(c->gt);
        free(c->found);
        free(c->res);
        free(c->fp_ml);
        free(c->fn_ml);
        free(c->pq);
    }
    for (int t = 0; t < s->ntargets; t++) free(s->targets[t].set);
    free(s->targets);
    free(s->vals);
    free(s->rows);
    ev_free_conventions(s);
    free(s->cases);
    free(s->columns);
    free(s->regions);
    free(s->labels);
    free(s->warnings);
    free(s);
}

/* ---- adding cases ---------------------------------------------------------- */

static ev_case *new_case(sl_evalset *s)
{
    if (s->ncases == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        ev_case *nc = realloc(s->cases, (size_t)cap * sizeof *nc);
        if (!nc) return NULL;
        s->cases = nc;
        s->cap = cap;
    }
    ev_case *c = &s->cases[s->ncases];
    memset(c, 0, sizeof *c);
    return c;
}

static sl_status check_open(const sl_evalset *s, char *msg, size_t msglen)
{
    if (!s) return sl_errf(msg, msglen, SL_EINVAL, "eval: the set is NULL");
    if (s->scored || s->failed) return sl_errf(msg, msglen, SL_EBADSTATE, "eval: the set was already scored");
    return SL_OK;
}

sl_status sl_evalset_add_files(sl_evalset *s, const char *id, const char *pred, const char *gt, char *msg,
                               size_t msglen)
{
    sl_status st = check_open(s, msg, msglen);
    if (st != SL_OK) return st;
    if (!id || !pred || !gt) return sl_errf(msg, msglen, SL_EINVAL, "eval: id, pred and gt are required");
    ev_case *c = new_case(s);
    if (!c) return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
    c->id = strdup(id);
    c->pred = strdup(pred);
    c->gt = strdup(gt);
    if (!c->id || !c->pred || !c->gt) {
        free(c->id);
        free(c->pred);
        free(c->gt);
        return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
    }
    s->ncases++;
    return SL_OK;
}

sl_status sl_evalset_add_maps(sl_evalset *s, const char *id, const sl_labelmap *pred, const sl_labelmap *gt,
                              const sl_grid *grid, char *msg, size_t msglen)
{
    sl_status st = check_open(s, msg, msglen);
    if (st != SL_OK) return st;
    if (!id || !pred || !gt || !grid || !pred->data || !gt->data)
        return sl_errf(msg, msglen, SL_EINVAL, "eval: id, pred, gt and grid are required");
    if (grid->ndim < 1 || grid->ndim > SL_MAX_SPATIAL)
        return sl_errf(msg, msglen, SL_EINVAL, "eval: case '%s' has %d axes; eval takes 1-, 2- or 3-D label maps",
                       id, grid->ndim);
    if (s->o.nspacing && s->o.nspacing != grid->ndim)
        return sl_errf(msg, msglen, SL_EINVAL, "--spacing has %d values but case '%s' has %d axes", s->o.nspacing,
                       id, grid->ndim);
    ev_case *c = new_case(s);
    if (!c) return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
    c->id = strdup(id);
    if (!c->id) return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
    c->inmem = 1;
    c->mp = *pred;
    c->mg = *gt;
    c->mgrid = *grid;
    s->ncases++;
    return SL_OK;
}

/* The case name of a file: its base name without the image extension. */
static char *case_name(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    switch (sl_format_from_path(b)) {
    case SL_FORMAT_NIFTI_GZ: n -= 7; break;
    case SL_FORMAT_NIFTI: case SL_FORMAT_NPY: case SL_FORMAT_PNG: n -= 4; break;
    case SL_FORMAT_UNKNOWN: break;
    }
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, b, n);
        s[n] = 0;
    }
    return s;
}

typedef struct {
    char *name, *path;
} entry;

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static void free_entries(entry *e, int n)
{
    for (int i = 0; e && i < n; i++) {
        free(e[i].name);
        free(e[i].path);
    }
    free(e);
}

/* Image files of a folder (not recursive; hidden files and other
 * extensions are ignored), sorted by case name. */
static sl_status list_folder(const char *dir, entry **out, int *n, char *msg, size_t msglen)
{
    DIR *d = opendir(dir);
    if (!d) return sl_errf(msg, msglen, SL_EIO, "cannot open folder '%s': %s", dir, strerror(errno));
    entry *e = NULL;
    int cnt = 0, cap = 0, oom = 0;
    struct dirent *de;
    while (!oom && (de = readdir(d))) {
        if (de->d_name[0] == '.' || sl_format_from_path(de->d_name) == SL_FORMAT_UNKNOWN) continue;
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        char *path = malloc(len);
        struct stat st;
        if (path) snprintf(path, len, "%s/%s", dir, de->d_name);
        if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            oom = !path;
            free(path);
            continue;
        }
        if (cnt == cap) {
            cap = cap ? 2 * cap : 64;
            entry *ne = realloc(e, (size_t)cap * sizeof *e);
            if (!ne) {
                free(path);
                oom = 1;
                break;
            }
            e = ne;
        }
        e[cnt].path = path;
        e[cnt].name = case_name(de->d_name);
        oom = !e[cnt].name;
        cnt++;
    }
    closedir(d);
    if (oom) {
        free_entries(e, cnt);
        return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory listing '%s'", dir);
    }
    if (cnt) qsort(e, (size_t)cnt, sizeof *e, cmp_entry);
    for (int i = 1; i < cnt; i++)
        if (!strcmp(e[i].name, e[i - 1].name)) {
            sl_errf(msg, msglen, SL_EFORMAT, "'%s' and '%s' are the same case '%s'; keep one", e[i - 1].path,
                    e[i].path, e[i].name);
            free_entries(e, cnt);
            return SL_EFORMAT;
        }
    *out = e;
    *n = cnt;
    return SL_OK;
}

/* Appends "'name'" to a comma list of at most a few names. */
static void note_name(char *buf, size_t len, int *count, const char *name)
{
    size_t n = strlen(buf);
    if (*count < 5) snprintf(buf + n, len - n, "%s'%s'", *count ? ", " : "", name);
    else if (*count == 5) snprintf(buf + n, len - n, ", ...");
    (*count)++;
}

sl_status sl_evalset_add_paths(sl_evalset *s, const char *pred, const char *gt, char *msg, size_t msglen)
{
    sl_status st = check_open(s, msg, msglen);
    if (st != SL_OK) return st;
    if (!pred || !gt) return sl_errf(msg, msglen, SL_EINVAL, "eval: pred and gt are required");
    struct stat sp, sg;
    if (stat(pred, &sp) != 0) return sl_errf(msg, msglen, SL_EIO, "cannot read --pred '%s': %s", pred, strerror(errno));
    if (stat(gt, &sg) != 0) return sl_errf(msg, msglen, SL_EIO, "cannot read --gt '%s': %s", gt, strerror(errno));
    int dp = S_ISDIR(sp.st_mode), dg = S_ISDIR(sg.st_mode);
    if (dp != dg)
        return sl_errf(msg, msglen, SL_EINVAL,
                       "--pred '%s' is a %s but --gt '%s' is a %s; give two files or two folders", pred,
                       dp ? "folder" : "file", gt, dg ? "folder" : "file");
    if (!dp) {
        const char *bad = sl_format_from_path(pred) == SL_FORMAT_UNKNOWN ? pred
                          : sl_format_from_path(gt) == SL_FORMAT_UNKNOWN ? gt : NULL;
        if (bad)
            return sl_errf(msg, msglen, SL_EINVAL, "'%s': unknown image format (expected .nii, .nii.gz or .npy)",
                           bad);
        char *id = case_name(gt);
        if (!id) return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
        st = sl_evalset_add_files(s, id, pred, gt, msg, msglen);
        free(id);
        return st;
    }
    entry *ep = NULL, *eg = NULL;
    int np = 0, ng = 0;
    if ((st = list_folder(pred, &ep, &np, msg, msglen)) != SL_OK) return st;
    if ((st = list_folder(gt, &eg, &ng, msg, msglen)) != SL_OK) {
        free_entries(ep, np);
        return st;
    }
    char no_pred[512] = "", no_gt[512] = "";
    int n_no_pred = 0, n_no_gt = 0, n = 0, first = s->ncases;
    for (int i = 0, j = 0; (i < np || j < ng) && st == SL_OK;) {
        int cmp = i >= np ? 1 : j >= ng ? -1 : strcmp(ep[i].name, eg[j].name);
        if (cmp == 0) {
            st = sl_evalset_add_files(s, eg[j].name, ep[i].path, eg[j].path, msg, msglen);
            n++, i++, j++;
        } else if (cmp < 0) {
            note_name(no_gt, sizeof no_gt, &n_no_gt, ep[i++].name);
        } else {
            note_name(no_pred, sizeof no_pred, &n_no_pred, eg[j++].name);
        }
    }
    free_entries(ep, np);
    free_entries(eg, ng);
    if (st == SL_OK && (n_no_pred || n_no_gt)) {
        char line[1200] = "";
        if (n_no_pred)
            snprintf(line, sizeof line, "%d ground-truth case%s without a prediction in '%s': %s", n_no_pred,
                     n_no_pred > 1 ? "s" : "", pred, no_pred);
        if (n_no_gt) {
            size_t l = strlen(line);
            snprintf(line + l, sizeof line - l, "%s%d prediction%s without a ground truth in '%s': %s",
                     l ? "; " : "", n_no_gt, n_no_gt > 1 ? "s" : "", gt, no_gt);
        }
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s", line);
    } else if (st == SL_OK && n == 0) {
        st = sl_errf(msg, msglen, SL_EEMPTY, "no image files (.nii, .nii.gz, .npy) in '%s' and '%s'", pred, gt);
    }
    if (st != SL_OK) /* all or nothing: drop the cases of this call */
        while (s->ncases > first) {
            ev_case *c = &s->cases[--s->ncases];
            free(c->id);
            free(c->pred);
            free(c->gt);
        }
    return st;
}

/* ---- reading one case ------------------------------------------------------ */

static void shape_str(const sl_array *a, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < a->ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)a->shape[i]);
    if (n < len) snprintf(buf + n, len - n, ")");
}

/* A label map holds whole numbers: a float map with fractions is a
 * probability map given by mistake, and would silently match no label. */
static sl_status check_labelmap(const sl_labelmap *m, int64_t n, const char *what, char *err, size_t errlen)
{
    if (sl_dtype_is_integer(m->dtype)) return SL_OK;
    for (int64_t i = 0; i < n; i++) {
        double v = m->dtype == SL_DT_F32 ? ((const float *)m->data)[i] : ((const double *)m->data)[i];
        if (!isfinite(v) || v != floor(v))
            return sl_errf(err, errlen, SL_ERANGE,
                           "%s holds the value %g: a label map must hold whole numbers (threshold or argmax "
                           "probabilities first)", what, v);
    }
    return SL_OK;
}

static sl_status load_files(const sl_evalset *s, ev_case *c, int warn)
{
    sl_image_info ip, ig;
    char m[1024];
    sl_status st;
    if ((st = sl_image_read(c->pred, &c->ap, &ip, m, sizeof m)) != SL_OK ||
        (st = sl_image_read(c->gt, &c->ag, &ig, m, sizeof m)) != SL_OK) {
        unload(c);
        /* a file that cannot be read is an input failure, never a usage error */
        return sl_errf(c->err, sizeof c->err, st == SL_EINVAL ? SL_EIO : st, "%s", m);
    }
    char s1[128], s2[128];
    int same = c->ap.ndim == c->ag.ndim;
    for (int a = 0; same && a < c->ap.ndim; a++) same = c->ap.shape[a] == c->ag.shape[a];
    if (!same) {
        shape_str(&c->ap, s1, sizeof s1);
        shape_str(&c->ag, s2, sizeof s2);
        unload(c);
        return sl_errf(c->err, sizeof c->err, SL_ESHAPE, "grids differ: %s is %s but %s is %s", c->pred, s1, c->gt,
                       s2);
    }
    int nd = c->ag.ndim;
    if (nd < 1 || nd > SL_MAX_SPATIAL) {
        shape_str(&c->ag, s2, sizeof s2);
        unload(c);
        return sl_errf(c->err, sizeof c->err, SL_ESHAPE, "%s has shape %s; eval takes 1-, 2- or 3-D label maps",
                       c->gt, s2);
    }
    if (s->o.nspacing && s->o.nspacing != nd) {
        unload(c);
        return sl_errf(c->err, sizeof c->err, SL_EINVAL, "--spacing has %d values but %s has %d axes", s->o.nspacing,
                       c->gt, nd);
    }
    /* Spacing: the option, else the images' (which must agree to 0.1 %,
     * enough for float pixdim written by different tools), else 1. */
    if (!s->o.nspacing && ip.has_spacing && ig.has_spacing)
        for (int a = 0; a < nd; a++) {
            double x = ip.spacing[a], y = ig.spacing[a];
            if (fabs(x - y) > 1e-3 * fmax(x, y)) {
                unload(c);
                return sl_errf(c->err, sizeof c->err, SL_ESHAPE,
                               "grids differ: %s has spacing %g mm on axis %d but %s has %g mm", c->pred, x, a, c->gt,
                               y);
            }
        }
    if (warn && !s->o.nspacing)
        for (int k = 0; k < 2; k++) {
            const sl_image_info *in = k ? &ig : &ip;
            size_t l = strlen(c->warn);
            if (in->has_spacing && in->nifti.spacing_defaulted)
                snprintf(c->warn + l, sizeof c->warn - l, "%s has a zero pixdim; 1 mm used for that axis\n",
                         k ? c->gt : c->pred);
        }
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = nd;
    for (int a = 0; a < nd; a++) {
        g.shape[a] = c->ag.shape[a];
        g.spacing[a] = s->o.nspacing ? s->o.spacing[a] : ig.has_spacing ? ig.spacing[a] : ip.spacing[a];
    }
    c->grid = g;
    sl_labelmap mp = {c->ap.data, c->ap.dtype}, mg = {c->ag.data, c->ag.dtype};
    if ((st = check_labelmap(&mp, sl_array_count(&c->ap), c->pred, c->err, sizeof c->err)) != SL_OK ||
        (st = check_labelmap(&mg, sl_array_count(&c->ag), c->gt, c->err, sizeof c->err)) != SL_OK) {
        unload(c);
        return st;
    }
    c->bytes = (size_t)sl_array_count(&c->ap) * sl_dtype_size(c->ap.dtype) +
               (size_t)sl_array_count(&c->ag) * sl_dtype_size(c->ag.dtype);
    c->loaded = 1;
    return SL_OK;
}

/* Makes the case's maps and grid available: files are read, maps in
 * memory are checked once. */
static sl_status load_case(const sl_evalset *s, ev_case *c, int warn)
{
    if (c->loaded) return SL_OK;
    if (!c->inmem) return load_files(s, c, warn);
    c->grid = c->mgrid;
    if (s->o.nspacing)
        for (int a = 0; a < c->grid.ndim; a++) c->grid.spacing[a] = s->o.spacing[a];
    int64_t n = 1;
    for (int a = 0; a < c->grid.ndim; a++) n *= c->grid.shape[a];
    char what[300];
    snprintf(what, sizeof what, "the prediction of case '%s'", c->id);
    sl_status st = check_labelmap(&c->mp, n, what, c->err, sizeof c->err);
    snprintf(what, sizeof what, "the ground truth of case '%s'", c->id);
    if (st == SL_OK) st = check_labelmap(&c->mg, n, what, c->err, sizeof c->err);
    c->loaded = st == SL_OK;
    return st;
}

static sl_labelmap map_p(const ev_case *c)
{
    if (c->inmem) return c->mp;
    sl_labelmap m = {c->ap.data, c->ap.dtype};
    return m;
}

static sl_labelmap map_g(const ev_case *c)
{
    if (c->inmem) return c->mg;
    sl_labelmap m = {c->ag.data, c->ag.dtype};
    return m;
}

static const char *case_what(const ev_case *c, int gt)
{
    return c->inmem ? c->id : gt ? c->gt : c->pred;
}

/* ---- labels ---------------------------------------------------------------- */

/* Sorted distinct labels of one map into a new array. */
static sl_status unique_labels(const sl_labelmap *m, int64_t total, const char *what, int64_t **out, int64_t *n,
                               char *err, size_t errlen)
{
    int64_t cnt = 0;
    char msg[256];
    sl_status st = sl_labels_unique(m, total, NULL, 0, &cnt, msg, sizeof msg);
    if (st != SL_OK) return sl_errf(err, errlen, st == SL_EINVAL ? SL_ERANGE : st, "%s: %s", what, msg);
    if (cnt > 100000)
        return sl_errf(err, errlen, SL_ERANGE,
                       "%s has %lld distinct values: not a label map? (choose labels with --labels)", what,
                       (long long)cnt);
    *out = malloc((size_t)(cnt ? cnt : 1) * sizeof **out);
    if (!*out || sl_labels_unique(m, total, *out, cnt, &cnt, msg, sizeof msg) != SL_OK)
        return sl_errf(err, errlen, SL_ENOMEM, "%s: out of memory", what);
    *n = cnt;
    return SL_OK;
}

/* dst (sorted, unique) |= src (sorted), skipping 0. */
static int merge_labels(int64_t **dst, int64_t *nd, const int64_t *src, int64_t ns)
{
    int64_t *m = malloc((size_t)(*nd + ns + 1) * sizeof *m);
    if (!m) return 0;
    int64_t i = 0, j = 0, k = 0;
    while (i < *nd || j < ns) {
        int64_t v;
        if (j >= ns || (i < *nd && (*dst)[i] <= src[j])) {
            v = (*dst)[i];
            if (j < ns && src[j] == v) j++;
            i++;
        } else {
            v = src[j++];
        }
        if (v != 0 && (k == 0 || m[k - 1] != v)) m[k++] = v;
    }
    free(*dst);
    *dst = m;
    *nd = k;
    return 1;
}

/* ---- the passes ------------------------------------------------------------ */

static int threads_total(int requested)
{
    if (requested > 0) return requested;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static double diagonal_mm(const sl_grid *g)
{
    double s = 0;
    for (int a = 0; a < g->ndim; a++) s += (g->shape[a] * g->spacing[a]) * (g->shape[a] * g->spacing[a]);
    return sqrt(s);
}

static sl_status first_failure(sl_evalset *s, char *msg, size_t msglen)
{
    for (int i = 0; i < s->ncases; i++)
        if (s->cases[i].st != SL_OK) {
            s->failed = 1;
            return sl_errf(msg, msglen, s->cases[i].st, "%s", s->cases[i].err);
        }
    return SL_OK;
}

static void progress(const sl_evalset *s, const char *phase, int *done)
{
    ++*done;
    if (s->o.progress) s->o.progress(s->o.progress_ctx, phase, *done, s->ncases);
}

static void scan_labels(sl_evalset *s, int outer)
{
    /* Volumes read here are kept for the scoring pass up to this budget. */
    const size_t keep_budget = (size_t)1 << 30;
    size_t kept = 0;
    int stop = 0, done = 0, n = s->ncases;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(outer)
#endif
    for (int i = 0; i < n; i++) {
        int skip;
#ifdef _OPENMP
#pragma omp atomic read
#endif
        skip = stop;
        if (skip) continue;
        ev_case *c = &s->cases[i];
        c->st = load_case(s, c, 1);
        int64_t *lp = NULL, *lg = NULL, np = 0, ng = 0;
        if (c->st == SL_OK) {
            int64_t total = 1;
            for (int a = 0; a < c->grid.ndim; a++) total *= c->grid.shape[a];
            sl_labelmap p = map_p(c), g = map_g(c);
            c->st = unique_labels(&p, total, case_what(c, 0), &lp, &np, c->err, sizeof c->err);
            if (c->st == SL_OK) c->st = unique_labels(&g, total, case_what(c, 1), &lg, &ng, c->err, sizeof c->err);
        }
        if (c->st == SL_OK &&
            (!merge_labels(&c->found, &c->nfound, lp, np) || !merge_labels(&c->found, &c->nfound, lg, ng)))
            c->st = sl_errf(c->err, sizeof c->err, SL_ENOMEM, "out of memory");
        free(lp);
        free(lg);
        int keep = 0;
#ifdef _OPENMP
#pragma omp critical /* unnamed: a named one is an exported symbol */
#endif
        {
            if (c->st != SL_OK) stop = 1;
            if (c->st == SL_OK && c->loaded && !c->inmem && kept + c->bytes <= keep_budget) {
                kept += c->bytes;
                keep = 1;
            }
            progress(s, "labels", &done);
        }
        if (!keep && !c->inmem) unload(c);
    }
}

/* Value of voxel i of a label map, as a double (labels compare as doubles
 * in sl_metrics_eval too). */
static double voxel(const sl_labelmap *m, int64_t i)
{
    switch (m->dtype) {
    case SL_DT_F32: return ((const float *)m->data)[i];
    case SL_DT_F64: return ((const double *)m->data)[i];
    case SL_DT_BOOL:
    case SL_DT_U8: return ((const uint8_t *)m->data)[i];
    case SL_DT_I8: return ((const int8_t *)m->data)[i];
    case SL_DT_U16: return ((const uint16_t *)m->data)[i];
    case SL_DT_I16: return ((const int16_t *)m->data)[i];
    case SL_DT_U32: return ((const uint32_t *)m->data)[i];
    case SL_DT_I32: return ((const int32_t *)m->data)[i];
    case SL_DT_U64: return (double)((const uint64_t *)m->data)[i];
    case SL_DT_I64: return (double)((const int64_t *)m->data)[i];
    }
    return NAN;
}

static int in_set(double v, const ev_target *t)
{
    if (t->kind == EV_LABEL) return v == (double)t->label;
    if (t->kind == EV_REGION && t->nset == 0) return v != 0; /* --instances: the foreground */
    for (int k = 0; k < t->nset; k++)
        if (v == (double)t->set[k]) return 1;
    return 0;
}

/* The per-case quantities that need every label at once: the number of
 * ignored voxels and the pixel accuracy (the fraction of the voxels not
 * ignored whose predicted label equals the ground truth's). */
static void case_extras(const sl_evalset *s, ev_case *c, int threads)
{
    sl_labelmap p = map_p(c), g = map_g(c);
    int64_t n = 1, ign = 0, same = 0;
    for (int a = 0; a < c->grid.ndim; a++) n *= c->grid.shape[a];
    double iv = (double)s->o.ignore_label;
    (void)threads;
    /* integer reductions: the same result for any thread count */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) reduction(+ : ign, same) if (n > 65536)
#endif
    for (int64_t i = 0; i < n; i++) {
        double gv = voxel(&g, i);
        if (s->o.has_ignore && gv == iv) {
            ign++;
            continue;
        }
        same += voxel(&p, i) == gv;
    }
    c->n_ignored = ign;
    c->pixel_accuracy = n - ign > 0 ? (double)same / (double)(n - ign) : NAN;
}

void ev_overlap_from_counts(sl_metric_result *r, int64_t tp, int64_t fp, int64_t fn, int64_t tn, const sl_grid *g)
{
    slm_scan sc;
    memset(&sc, 0, sizeof sc);
    sc.tp = tp, sc.fp = fp, sc.fn = fn, sc.tn = tn;
    slg_vol v;
    memset(&v, 0, sizeof v);
    v.ndim = 1;
    v.sp[0] = v.sp[1] = v.sp[2] = 1.0;
    if (g && slg_vol_from_grid(g, &v, NULL, 0) != SL_OK) g = NULL;
    slm_overlap(r, &sc, &v);
    if (!g) r->vol_pred = r->vol_gt = NAN;
}

/* autoPET's false-positive and false-negative volumes (mL) of two masks:
 * the voxels of the predicted components that touch no ground-truth voxel,
 * and of the ground-truth components that touch no predicted voxel, times
 * the voxel volume in mL (mm^3 / 1000). Components with opts.connectivity
 * (autoPET: 18). */
static sl_status fpfn_volumes(const uint8_t *pm, const uint8_t *gm, const sl_grid *g, int connectivity, double *fp_ml,
                              double *fn_ml, char *msg, size_t msglen)
{
    int64_t n = 1;
    double vox = 1;
    for (int a = 0; a < g->ndim; a++) n *= g->shape[a], vox *= g->spacing[a];
    int32_t *lab = sl_malloc(n, sizeof *lab);
    uint8_t *hit = NULL;
    if (!lab) return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
    double *out[2] = {fp_ml, fn_ml};
    sl_status st = SL_OK;
    for (int side = 0; side < 2 && st == SL_OK; side++) {
        const uint8_t *m = side ? gm : pm, *other = side ? pm : gm;
        sl_components comp = SL_COMPONENTS_EMPTY;
        st = sl_components_label(m, g, connectivity, lab, &comp, msg, msglen);
        if (st != SL_OK) break;
        hit = calloc((size_t)comp.count + 1, 1);
        if (!hit) {
            sl_components_free(&comp);
            st = sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory");
            break;
        }
        for (int64_t i = 0; i < n; i++)
            if (lab[i] > 0 && other[i]) hit[lab[i] - 1] = 1;
        int64_t missed = 0;
        for (int64_t k = 0; k < comp.count; k++)
            if (!hit[k]) missed += comp.size[k];
        *out[side] = (double)missed * vox / 1000.0;
        free(hit);
        hit = NULL;
        sl_components_free(&comp);
    }
    free(lab);
    return st;
}

/* Scores target t of a loaded case into c->res[t] with `threads`. A plain
 * label without the ignore label or the autoPET volumes goes straight to
 * sl_metrics_eval; otherwise the two masks are built here (the union of
 * the region's labels, minus the ignored voxels) and scored as masks, TN
 * corrected by the ignored voxels. */
static sl_status score_target(const sl_evalset *s, ev_case *c, int t, int threads, char *msg, size_t msglen)
{
    const ev_target *tg = &s->targets[t];
    sl_metric_opts mo = s->o.metric;
    mo.threads = threads;
    sl_labelmap p = map_p(c), g = map_g(c);
    sl_metric_result *r = &c->res[t];
    if (tg->kind == EV_LABEL && !s->o.has_ignore && !(s->need & (EV_NEED_FPFN | EV_NEED_PQ)))
        return sl_metrics_eval(&p, &g, &c->grid, &tg->label, 1, &mo, r, msg, msglen);
    int64_t n = 1;
    for (int a = 0; a < c->grid.ndim; a++) n *= c->grid.shape[a];
    uint8_t *pm = sl_malloc(n, 1), *gm = sl_malloc(n, 1);
    if (!pm || !gm) {
        free(pm);
        free(gm);
        return sl_errf(msg, msglen, SL_ENOMEM, "eval: out of memory (masks of %lld voxels)", (long long)n);
    }
    double iv = (double)s->o.ignore_label;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if (n > 65536)
#endif
    for (int64_t i = 0; i < n; i++) {
        double gv = voxel(&g, i);
        int keep = !(s->o.has_ignore && gv == iv);
        pm[i] = (uint8_t)(keep && in_set(voxel(&p, i), tg));
        gm[i] = (uint8_t)(keep && in_set(gv, tg));
    }
    sl_status st = sl_metrics_eval_mask(pm, gm, &c->grid, &mo, r, msg, msglen);
    if (st == SL_OK) {
        r->label = tg->kind == EV_LABEL ? tg->label : -1;
        /* ignored voxels are 0 in both masks: they were counted as TN */
        if (s->o.has_ignore) {
            unsigned computed = r->computed;
            ev_overlap_from_counts(r, r->tp, r->fp, r->fn, r->tn - c->n_ignored, &c->grid);
            r->computed = computed;
        }
        if (st == SL_OK && (s->need & EV_NEED_FPFN))
            st = fpfn_volumes(pm, gm, &c->grid, mo.connectivity, &c->fp_ml[t], &c->fn_ml[t], msg, msglen);
        if (st == SL_OK && (s->need & EV_NEED_PQ)) {
            /* the components of the two masks are the instances */
            sl_instance_opts io = SL_INSTANCE_OPTS_DEFAULT;
            io.match = s->o.instance_match;
            if (s->o.instance_iou > 0) io.iou_threshold = s->o.instance_iou;
            sl_labelmap lp = {pm, SL_DT_U8}, lg = {gm, SL_DT_U8};
            sl_instance_result ir;
            if (s->o.instances) /* the given ids are the instances */
                st = sl_instances_eval(&p, &g, n, &io, &ir, NULL, msg, msglen);
            else
                st = sl_instances_eval_label(&lp, &lg, &c->grid, 1, mo.connectivity, &io, &ir, msg, msglen);
            if (st == SL_OK) {
                double *q = c->pq + EV_PQ_N * t;
                q[0] = ir.pq, q[1] = ir.sq, q[2] = ir.rq;
                q[3] = (double)ir.tp, q[4] = (double)ir.fp, q[5] = (double)ir.fn;
            }
        }
    }
    free(pm);
    free(gm);
    return st;
}

/* Scores the targets of one loaded case with `inner` threads. Targets are
 * independent, so with several threads and several targets each thread
 * takes whole targets (one-threaded metric calls): an atlas with a hundred
 * labels scales with the threads, where splitting each small label's work
 * across threads would mostly wait. One target (or one thread) gets every
 * thread inside the metric call instead. Results and the reported error
 * (the first failing target) do not depend on the schedule. */
static void score_labels(const sl_evalset *s, ev_case *c, int inner)
{
    int nt = s->ntargets;
    if (s->targets[nt - 1].kind == EV_MEAN) nt--; /* computed from the others */
    int per_target = inner > 1 && nt > 1;
    int team = per_target ? (inner < nt ? inner : nt) : 1;
    sl_status *st = calloc((size_t)nt + 1, sizeof *st);
    char(*msgs)[512] = calloc((size_t)nt + 1, sizeof *msgs);
    if (!st || !msgs) {
        free(st);
        free(msgs);
        c->st = sl_errf(c->err, sizeof c->err, SL_ENOMEM, "out of memory");
        return;
    }
    if (s->o.has_ignore || (s->need & EV_NEED_PIXACC)) case_extras(s, c, inner);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(team) if (per_target)
#endif
    for (int t = 0; t < nt; t++) st[t] = score_target(s, c, t, per_target ? 1 : inner, msgs[t], sizeof msgs[t]);
    (void)team;
    for (int t = 0; t < nt; t++)
        if (st[t] != SL_OK) {
            if (c->inmem)
                sl_errf(c->err, sizeof c->err, st[t], "case '%s': %s", c->id, msgs[t][0] ? msgs[t] : sl_strerror(st[t]));
            else
                sl_errf(c->err, sizeof c->err, st[t], "%s vs %s: %s", c->pred, c->gt,
                        msgs[t][0] ? msgs[t] : sl_strerror(st[t]));
            c->st = st[t];
            break;
        }
    free(st);
    free(msgs);
}

/* The panoptic columns' matching, appended to the conventions line. */
static void describe_instances(sl_evalset *s)
{
    size_t n = strlen(s->describe);
    if (s->o.instances) {
        snprintf(s->describe + n, sizeof s->describe - n, " inputs=instance_ids");
        n = strlen(s->describe);
    }
    if (!(s->need & EV_NEED_PQ)) return;
    snprintf(s->describe + n, sizeof s->describe - n, " instance_match=%s iou_threshold=%g",
             sl_instance_match_name(s->o.instance_match), s->o.instance_iou > 0 ? s->o.instance_iou : 0.5);
}

static void score_cases(sl_evalset *s, int outer, int inner)
{
    int stop = 0, done = 0, n = s->ncases;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(outer)
#endif
    for (int i = 0; i < n; i++) {
        int skip;
#ifdef _OPENMP
#pragma omp atomic read
#endif
        skip = stop;
        if (skip) continue;
        ev_case *c = &s->cases[i];
        c->st = load_case(s, c, !s->labels_all);
        if (c->st == SL_OK) {
            c->res = calloc((size_t)s->ntargets, sizeof *c->res);
            if (s->need & EV_NEED_FPFN) {
                c->fp_ml = calloc((size_t)s->ntargets, sizeof *c->fp_ml);
                c->fn_ml = calloc((size_t)s->ntargets, sizeof *c->fn_ml);
            }
            if (s->need & EV_NEED_PQ) c->pq = calloc((size_t)s->ntargets * EV_PQ_N, sizeof *c->pq);
            if (!c->res || ((s->need & EV_NEED_FPFN) && (!c->fp_ml || !c->fn_ml)) ||
                ((s->need & EV_NEED_PQ) && !c->pq))
                c->st = sl_errf(c->err, sizeof c->err, SL_ENOMEM, "out of memory");
            else score_labels(s, c, inner);
            c->empty_distance = s->o.empty_distance >= 0 ? s->o.empty_distance : diagonal_mm(&c->grid);
            c->ndim = c->grid.ndim;
        }
        if (!c->inmem) unload(c);
        c->loaded = 0;
#ifdef _OPENMP
#pragma omp critical /* unnamed: a named one is an exported symbol */
#endif
        {
            if (c->st != SL_OK) stop = 1;
            progress(s, "cases", &done);
        }
    }
}

/* Appends the cases' warnings, in case order, to the set's. */
static void gather_warnings(sl_evalset *s)
{
    size_t len = strlen(s->warnings);
    for (int i = 0; i < s->ncases; i++) {
        size_t l = strlen(s->cases[i].warn);
        if (!l) continue;
        char *w = realloc(s->warnings, len + l + 1);
        if (!w) return;
        memcpy(w + len, s->cases[i].warn, l + 1);
        s->warnings = w;
        len += l;
        s->cases[i].warn[0] = 0;
    }
}

/* The number of axes of the first case (0 when it cannot be read: its
 * scoring, if it is in this shard, reports why). */
static int first_case_ndim(const sl_evalset *s)
{
    const ev_case *c = &s->cases[0];
    if (c->inmem) return c->mgrid.ndim;
    sl_array a = SL_ARRAY_EMPTY;
    char m[256];
    int nd = sl_image_read(c->gt, &a, NULL, m, sizeof m) == SL_OK ? a.ndim : 0;
    sl_array_free(&a);
    return nd >= 1 && nd <= SL_MAX_SPATIAL ? nd : 0;
}

sl_status sl_evalset_score(sl_evalset *s, char *msg, size_t msglen)
{
    sl_status st = check_open(s, msg, msglen);
    if (st != SL_OK) return st;
    if (s->ncases == 0) return sl_errf(msg, msglen, SL_EEMPTY, "eval: the set has no case");
    /* The conventions line names the default connectivity of the first
     * case's dimensionality; with shards it must be the first case of the
     * whole run, or the shards' conventions would differ. */
    int ndim0 = s->o.shard_n > 1 ? first_case_ndim(s) : 0;
    if (s->o.shard_n > 1) {
        /* keep case i when i % N == K - 1: deterministic, balanced, and the
         * merge restores the order (cases sorted by name) */
        int k = 0;
        for (int i = 0; i < s->ncases; i++) {
            if (i % s->o.shard_n == s->o.shard_k - 1) {
                s->cases[k++] = s->cases[i];
            } else {
                free(s->cases[i].id);
                free(s->cases[i].pred);
                free(s->cases[i].gt);
            }
        }
        s->ncases = k;
    }
    /* Threads: one case per thread when there are enough cases; the rest
     * go inside each case. */
    int total = threads_total(s->o.threads), n = s->ncases;
    int outer = n < total ? n : total;
    if (outer < 1) outer = 1;
    int inner = total / outer > 1 ? total / outer : 1;
#ifdef _OPENMP
    /* Cases in one team, labels (or the metric's own loops) in a nested
     * one: outer * inner <= total threads. */
    if (omp_get_max_active_levels() < 2) omp_set_max_active_levels(2);
#endif
    if (s->labels_all) {
        scan_labels(s, outer);
        gather_warnings(s);
        if ((st = first_failure(s, msg, msglen)) != SL_OK) return st;
        int64_t nl = 0;
        for (int i = 0; i < n; i++)
            if (!merge_labels(&s->labels, &nl, s->cases[i].found, s->cases[i].nfound)) {
                s->failed = 1;
                return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
            }
        if (nl == 0) {
            s->failed = 1;
            return sl_errf(msg, msglen, SL_EEMPTY,
                           "no non-zero label in any prediction or ground truth; choose labels with --labels "
                           "(e.g. --labels 0 for the background)");
        }
        /* the ignore label is never a target */
        int64_t k = 0;
        for (int64_t l = 0; l < nl; l++)
            if (!(s->o.has_ignore && s->labels[l] == s->o.ignore_label)) s->labels[k++] = s->labels[l];
        nl = k;
        if (nl == 0) {
            s->failed = 1;
            return sl_errf(msg, msglen, SL_EEMPTY,
                           "no non-zero label in any prediction or ground truth; choose labels with --labels "
                           "(e.g. --labels 0 for the background)");
        }
        s->nlabels = (int)nl;
        s->o.labels = s->labels;
        s->o.nlabels = s->nlabels;
    }
    if ((st = build_targets(s, msg, msglen)) != SL_OK) {
        s->failed = 1;
        return st;
    }
    if (s->ncases == 0) {
        /* an empty shard: its outputs hold no case */
        s->o.metric.threads = 0;
        sl_metric_opts_describe(&s->o.metric, ndim0 ? ndim0 : 3, s->describe, sizeof s->describe);
        describe_instances(s);
        s->scored = 1;
        return ev_materialise(s);
    }
    score_cases(s, outer, inner);
    gather_warnings(s);
    if ((st = first_failure(s, msg, msglen)) != SL_OK) return st;
    /* The description names the default connectivity of the first case's
     * dimensionality (cases of mixed dimensionality are unusual). */
    sl_metric_opts_describe(&s->o.metric, ndim0 ? ndim0 : s->cases[0].ndim, s->describe, sizeof s->describe);
    describe_instances(s);
    s->scored = 1;
    if ((st = ev_materialise(s)) != SL_OK) {
        s->scored = 0;
        s->failed = 1;
        return sl_errf(msg, msglen, st, "eval: out of memory");
    }
    return SL_OK;
}

const char *sl_evalset_warnings(const sl_evalset *s)
{
    return s ? s->warnings : "";
}
