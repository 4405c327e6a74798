/*
 * segloss eval --pred P --gt G [options]
 *
 * Evaluates predicted label maps against ground truth, per case and per
 * label, with the metrics of segloss/metrics.h, and writes a summary table
 * (stdout), and on request a CSV (one row per case and label) and a JSON
 * file (cases, per-label summary, the conventions in force).
 *
 * P and G are two files, or two folders whose image files (.nii, .nii.gz,
 * .npy) are matched by case name (the file name without its extension).
 * The steps:
 *   1. parse and validate the options (bad usage: exit 2);
 *   2. list and match the cases (a case missing on either side: exit 1);
 *   3. with --labels all (the default), read every case once to collect
 *      the labels present in any prediction or ground truth, so that every
 *      case is scored on the same label set (a label absent from both
 *      sides of a case is a "both empty" row, counted in the summary);
 *   4. score the cases in parallel (threads split between cases and, for
 *      few large cases, inside each case);
 *   5. replace infinite distances (one side empty) by --empty-distance and
 *      mark the row; summarise each label over the cases; write outputs.
 * Any failure stops the run with one line naming the file and the problem.
 */
#define _POSIX_C_SOURCE 200809L /* opendir, isatty, fileno */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "cli_util.h"
#include "commands.h"
#include "segloss/geometry.h"
#include "segloss/io.h"
#include "segloss/metrics.h"

static const char *usage_text =
    "usage: segloss eval --pred P --gt G [options]\n"
    "\n"
    "Scores predicted label maps P against ground truth G, per case and per label.\n"
    "P and G are two image files, or two folders matched by case name (file name\n"
    "without .nii, .nii.gz or .npy). Label maps of any integer dtype (or float holding\n"
    "whole numbers), 1-, 2- or 3-D, on the same grid.\n"
    "\n"
    "  --labels L           comma-separated labels (0 = background allowed), or 'all'\n"
    "                       (default): every non-zero label found in any P or G\n"
    "  --metrics LIST       comma-separated (default dice,iou,precision,recall,specificity,\n"
    "                       hd,hd95,assd,nsd), or 'all'. Also: voe, rvd, vs, mcc, kappa,\n"
    "                       counts, volume, asd, msd, biou, lesion, cldice, or any column name\n"
    "  --hd-mode M          max (default; MONAI, DeepMind) | union (MedPy) | mean (plastimatch)\n"
    "  --percentile Q       percentile of the hd95 column, in [0, 100] (default 95)\n"
    "  --assd-mode M        pooled (default; MONAI) | mean (MedPy, DeepMind)\n"
    "  --surface S          border (default; border voxels) | surfel (DeepMind surfels)\n"
    "  --nsd-tolerance MM   NSD tolerance in mm (default 1)\n"
    "  --biou-width MM      boundary IoU band width in mm (default 2)\n"
    "  --connectivity N     lesion components: 4/8 (2-D), 6/18/26 (3-D); default full\n"
    "  --lesion-iou T       a lesion is detected at IoU >= T (default: >= 1 voxel overlap)\n"
    "  --empty-distance MM  value written for a distance when one side is empty\n"
    "                       (default: the image diagonal in mm); such rows are marked\n"
    "  --spacing Z,Y,X      voxel size in mm per array axis (default: NIfTI pixdim, or 1)\n"
    "  --csv FILE           one row per case and label\n"
    "  --json FILE          cases, per-label summary and conventions\n"
    "  --threads N          threads (default: all cores)\n"
    "\n"
    "Arrays are C order, slowest axis first: NIfTI (nx, ny, nz) is (nz, ny, nx).\n"
    "Exit codes: 0 ok, 1 an input could not be read or does not match, 2 bad usage.\n";

/* ---- columns ------------------------------------------------------------ */

/* One output column: a field of sl_metric_result. Distances (kind 'D')
 * may be +inf when one side is empty and are then written as the empty
 * distance; kind 'i' fields are int64. */
typedef struct {
    const char *name;
    size_t off;
    char kind;
    unsigned group;
} column;

#define COL(n, f, k, g) {n, offsetof(sl_metric_result, f), k, g}
static const column COLUMNS[] = {
    COL("dice", dice, 'd', SL_MET_OVERLAP),
    COL("iou", iou, 'd', SL_MET_OVERLAP),
    COL("precision", precision, 'd', SL_MET_OVERLAP),
    COL("recall", recall, 'd', SL_MET_OVERLAP),
    COL("specificity", specificity, 'd', SL_MET_OVERLAP),
    COL("voe", voe, 'd', SL_MET_OVERLAP),
    COL("rvd", rvd, 'd', SL_MET_OVERLAP),
    COL("volume_similarity", volume_similarity, 'd', SL_MET_OVERLAP),
    COL("mcc", mcc, 'd', SL_MET_OVERLAP),
    COL("kappa", kappa, 'd', SL_MET_OVERLAP),
    COL("tp", tp, 'i', SL_MET_OVERLAP),
    COL("fp", fp, 'i', SL_MET_OVERLAP),
    COL("fn", fn, 'i', SL_MET_OVERLAP),
    COL("tn", tn, 'i', SL_MET_OVERLAP),
    COL("vol_pred", vol_pred, 'd', SL_MET_OVERLAP),
    COL("vol_gt", vol_gt, 'd', SL_MET_OVERLAP),
    COL("hd", hd, 'D', SL_MET_DISTANCE),
    COL("hd95", hd_perc, 'D', SL_MET_DISTANCE),
    COL("assd", assd, 'D', SL_MET_DISTANCE),
    COL("asd_pred_to_gt", asd_pred_to_gt, 'D', SL_MET_DISTANCE),
    COL("asd_gt_to_pred", asd_gt_to_pred, 'D', SL_MET_DISTANCE),
    COL("msd_pred_to_gt", msd_pred_to_gt, 'D', SL_MET_DISTANCE),
    COL("msd_gt_to_pred", msd_gt_to_pred, 'D', SL_MET_DISTANCE),
    COL("nsd", nsd, 'd', SL_MET_NSD),
    COL("biou", biou, 'd', SL_MET_BIOU),
    COL("lesions_gt", lesions_gt, 'i', SL_MET_LESION),
    COL("lesions_pred", lesions_pred, 'i', SL_MET_LESION),
    COL("lesion_tp", lesion_tp, 'i', SL_MET_LESION),
    COL("lesion_fp", lesion_fp, 'i', SL_MET_LESION),
    COL("lesion_fn", lesion_fn, 'i', SL_MET_LESION),
    COL("lesion_precision", lesion_precision, 'd', SL_MET_LESION),
    COL("lesion_recall", lesion_recall, 'd', SL_MET_LESION),
    COL("lesion_f1", lesion_f1, 'd', SL_MET_LESION),
    COL("lesion_dice", lesion_dice, 'd', SL_MET_LESION),
    COL("cldice", cldice, 'd', SL_MET_CLDICE),
    COL("topo_precision", topo_precision, 'd', SL_MET_CLDICE),
    COL("topo_sensitivity", topo_sensitivity, 'd', SL_MET_CLDICE),
};
#define NCOLUMNS ((int)(sizeof COLUMNS / sizeof *COLUMNS))

/* Metric names that stand for several columns. */
static const struct {
    const char *name, *cols;
} ALIASES[] = {
    {"vs", "volume_similarity"},
    {"counts", "tp,fp,fn,tn"},
    {"volume", "vol_pred,vol_gt"},
    {"asd", "asd_pred_to_gt,asd_gt_to_pred"},
    {"msd", "msd_pred_to_gt,msd_gt_to_pred"},
    {"lesion", "lesions_gt,lesions_pred,lesion_tp,lesion_fp,lesion_fn,lesion_precision,lesion_recall,lesion_f1,"
               "lesion_dice"},
    {"cldice", "cldice,topo_precision,topo_sensitivity"},
};
static const char *DEFAULT_METRICS = "dice,iou,precision,recall,specificity,hd,hd95,assd,nsd";

static double col_value(const sl_metric_result *r, int c)
{
    const char *p = (const char *)r + COLUMNS[c].off;
    if (COLUMNS[c].kind == 'i') {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return (double)v;
    }
    double v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---- options ------------------------------------------------------------ */

typedef struct {
    const char *pred, *gt, *csv, *json;
    sl_metric_opts mo;
    int labels_all;
    int64_t *labels;
    int nlabels;
    int cols[NCOLUMNS], ncols;
    double empty_distance;
    int empty_distance_set;
    double spacing[SL_MAX_SPATIAL];
    int nspacing;
    int threads;
} eval_args;

static int add_column(eval_args *o, const char *name)
{
    for (int c = 0; c < NCOLUMNS; c++)
        if (!strcmp(COLUMNS[c].name, name)) {
            for (int k = 0; k < o->ncols; k++)
                if (o->cols[k] == c) return 1;
            o->cols[o->ncols++] = c;
            return 1;
        }
    return 0;
}

static int parse_metrics(eval_args *o, const char *list)
{
    o->ncols = 0;
    if (!strcmp(list, "all")) {
        for (int c = 0; c < NCOLUMNS; c++) o->cols[o->ncols++] = c;
        return 0;
    }
    char buf[1024];
    if (strlen(list) >= sizeof buf) return cli_fail("eval", EXIT_USAGE, "--metrics list is too long");
    strcpy(buf, list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int done = 0;
        for (size_t a = 0; a < sizeof ALIASES / sizeof *ALIASES && !done; a++)
            if (!strcmp(ALIASES[a].name, t)) {
                char cols[512], *s2 = NULL;
                strcpy(cols, ALIASES[a].cols);
                for (char *c = strtok_r(cols, ",", &s2); c; c = strtok_r(NULL, ",", &s2)) add_column(o, c);
                done = 1;
            }
        if (!done && !add_column(o, t))
            return cli_fail("eval", EXIT_USAGE, "unknown metric '%s' (see segloss eval --help)", t);
    }
    if (o->ncols == 0) return cli_fail("eval", EXIT_USAGE, "--metrics is empty");
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int parse_labels(eval_args *o, const char *s)
{
    if (!strcmp(s, "all")) {
        o->labels_all = 1;
        return 0;
    }
    o->labels_all = 0;
    int n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    free(o->labels);
    o->labels = malloc((size_t)n * sizeof *o->labels);
    if (!o->labels) return cli_fail("eval", EXIT_WORK, "out of memory");
    o->nlabels = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno == ERANGE || (*end != ',' && *end != 0))
            return cli_fail("eval", EXIT_USAGE, "--labels expects 'all' or integers like 1,2,3, got '%s'", s);
        for (int k = 0; k < o->nlabels; k++)
            if (o->labels[k] == v) return cli_fail("eval", EXIT_USAGE, "--labels lists %lld twice", v);
        o->labels[o->nlabels++] = v;
        if (!*end) break;
        p = end + 1;
    }
    qsort(o->labels, (size_t)o->nlabels, sizeof *o->labels, cmp_i64);
    return 0;
}

static int parse_number(const char *opt, const char *s, double lo, double *out)
{
    if (!cli_parse_double(s, out) || !(*out >= lo))
        return cli_fail("eval", EXIT_USAGE, "%s expects a number >= %g, got '%s'", opt, lo, s);
    return 0;
}

static int parse(int argc, char **argv, eval_args *o)
{
    sl_metric_opts d = SL_METRIC_OPTS_DEFAULT;
    o->mo = d;
    o->labels_all = 1;
    const char *metrics = DEFAULT_METRICS;
    int rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v, *s = NULL;
#define VALUE()                                                 \
    do {                                                        \
        if (!(s = cli_value("eval", argc, argv, &i, v))) return EXIT_USAGE; \
    } while (0)
        if (cli_opt(a, "--pred", &v)) {
            VALUE();
            o->pred = s;
        } else if (cli_opt(a, "--gt", &v)) {
            VALUE();
            o->gt = s;
        } else if (cli_opt(a, "--csv", &v)) {
            VALUE();
            o->csv = s;
        } else if (cli_opt(a, "--json", &v)) {
            VALUE();
            o->json = s;
        } else if (cli_opt(a, "--labels", &v)) {
            VALUE();
            if ((rc = parse_labels(o, s))) return rc;
        } else if (cli_opt(a, "--metrics", &v)) {
            VALUE();
            metrics = s;
        } else if (cli_opt(a, "--hd-mode", &v)) {
            VALUE();
            if (sl_hd_mode_parse(s, &o->mo.hd_mode) != SL_OK)
                return cli_fail("eval", EXIT_USAGE, "--hd-mode expects max, union or mean, got '%s'", s);
        } else if (cli_opt(a, "--assd-mode", &v)) {
            VALUE();
            if (sl_assd_mode_parse(s, &o->mo.assd_mode) != SL_OK)
                return cli_fail("eval", EXIT_USAGE, "--assd-mode expects pooled or mean, got '%s'", s);
        } else if (cli_opt(a, "--surface", &v)) {
            VALUE();
            if (!strcmp(s, "surfel") || !strcmp(s, "surfels")) o->mo.surface = SL_SURFACE_SURFELS;
            else if (!strcmp(s, "border")) o->mo.surface = SL_SURFACE_BORDER;
            else return cli_fail("eval", EXIT_USAGE, "--surface expects border or surfel, got '%s'", s);
        } else if (cli_opt(a, "--percentile", &v)) {
            VALUE();
            if (!cli_parse_double(s, &o->mo.percentile) || o->mo.percentile < 0 || o->mo.percentile > 100)
                return cli_fail("eval", EXIT_USAGE, "--percentile expects a number in [0, 100], got '%s'", s);
        } else if (cli_opt(a, "--nsd-tolerance", &v)) {
            VALUE();
            if ((rc = parse_number("--nsd-tolerance", s, 0, &o->mo.nsd_tolerance))) return rc;
        } else if (cli_opt(a, "--biou-width", &v)) {
            VALUE();
            if ((rc = parse_number("--biou-width", s, 0, &o->mo.biou_width))) return rc;
            if (o->mo.biou_width == 0) return cli_fail("eval", EXIT_USAGE, "--biou-width must be > 0");
        } else if (cli_opt(a, "--lesion-iou", &v)) {
            VALUE();
            if (!cli_parse_double(s, &o->mo.lesion_iou) || !(o->mo.lesion_iou > 0 && o->mo.lesion_iou <= 1))
                return cli_fail("eval", EXIT_USAGE, "--lesion-iou expects a number in (0, 1], got '%s'", s);
            o->mo.lesion_match = SL_LESION_IOU;
        } else if (cli_opt(a, "--empty-distance", &v)) {
            VALUE();
            if ((rc = parse_number("--empty-distance", s, 0, &o->empty_distance))) return rc;
            o->empty_distance_set = 1;
        } else if (cli_opt(a, "--connectivity", &v)) {
            VALUE();
            long c;
            if (!cli_parse_int(s, &c) || (c != 4 && c != 8 && c != 6 && c != 18 && c != 26 && c != 2 && c != 0))
                return cli_fail("eval", EXIT_USAGE, "--connectivity expects 4 or 8 (2-D), 6, 18 or 26 (3-D), got '%s'",
                                s);
            o->mo.connectivity = (int)c;
        } else if (cli_opt(a, "--spacing", &v)) {
            VALUE();
            o->nspacing = cli_parse_list(s, o->spacing, SL_MAX_SPATIAL);
            if (o->nspacing < 1)
                return cli_fail("eval", EXIT_USAGE, "--spacing expects 1 to 3 comma-separated numbers, got '%s'", s);
            for (int k = 0; k < o->nspacing; k++)
                if (!(o->spacing[k] > 0))
                    return cli_fail("eval", EXIT_USAGE, "--spacing values must be positive, got '%s'", s);
        } else if (cli_opt(a, "--threads", &v)) {
            VALUE();
            long t;
            if (!cli_parse_int(s, &t) || t < 0 || t > 1024)
                return cli_fail("eval", EXIT_USAGE, "--threads expects an integer in [0, 1024], got '%s'", s);
            o->threads = (int)t;
        } else if (a[0] == '-') {
            return cli_fail("eval", EXIT_USAGE, "unknown option '%s' (see segloss eval --help)", a);
        } else {
            return cli_fail("eval", EXIT_USAGE, "unexpected argument '%s' (use --pred P --gt G)", a);
        }
#undef VALUE
    }
    if (!o->pred) return cli_fail("eval", EXIT_USAGE, "missing --pred P (see segloss eval --help)");
    if (!o->gt) return cli_fail("eval", EXIT_USAGE, "missing --gt G (see segloss eval --help)");
    if ((rc = parse_metrics(o, metrics))) return rc;
    o->mo.metrics = 0;
    for (int k = 0; k < o->ncols; k++) o->mo.metrics |= COLUMNS[o->cols[k]].group;
    char msg[256];
    if (sl_metric_opts_check(&o->mo, msg, sizeof msg) != SL_OK) return cli_fail("eval", EXIT_USAGE, "%s", msg);
    return 0;
}

/* ---- cases -------------------------------------------------------------- */

typedef struct {
    char *id, *pred, *gt;
} case_t;

static void free_cases(case_t *c, int n)
{
    for (int i = 0; c && i < n; i++) {
        free(c[i].id);
        free(c[i].pred);
        free(c[i].gt);
    }
    free(c);
}

/* The case name of a file: its base name without the image extension. */
static char *case_name(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    switch (sl_format_from_path(b)) {
    case SL_FORMAT_NIFTI_GZ: n -= 7; break;
    case SL_FORMAT_NIFTI: case SL_FORMAT_NPY: n -= 4; break;
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

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* Image files of a folder (not recursive; hidden files and other
 * extensions are ignored), sorted by case name. */
static int list_folder(const char *dir, entry **out, int *n)
{
    DIR *d = opendir(dir);
    if (!d) return cli_fail("eval", EXIT_WORK, "cannot open folder '%s': %s", dir, strerror(errno));
    entry *e = NULL;
    int cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || sl_format_from_path(de->d_name) == SL_FORMAT_UNKNOWN) continue;
        char *path = join(dir, de->d_name);
        struct stat st;
        if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (cnt == cap) {
            cap = cap ? 2 * cap : 64;
            entry *ne = realloc(e, (size_t)cap * sizeof *e);
            if (!ne) {
                free(path);
                break;
            }
            e = ne;
        }
        e[cnt].path = path;
        e[cnt].name = case_name(de->d_name);
        cnt++;
    }
    closedir(d);
    if (cnt) qsort(e, (size_t)cnt, sizeof *e, cmp_entry);
    for (int i = 1; i < cnt; i++)
        if (!strcmp(e[i].name, e[i - 1].name)) {
            cli_fail("eval", EXIT_WORK, "'%s' and '%s' are the same case '%s'; keep one", e[i - 1].path, e[i].path,
                     e[i].name);
            for (int k = 0; k < cnt; k++) {
                free(e[k].name);
                free(e[k].path);
            }
            free(e);
            return EXIT_WORK;
        }
    *out = e;
    *n = cnt;
    return 0;
}

static void free_entries(entry *e, int n)
{
    for (int i = 0; e && i < n; i++) {
        free(e[i].name);
        free(e[i].path);
    }
    free(e);
}

/* Appends "name" to a comma list of at most a few names. */
static void note_name(char *buf, size_t len, int *count, const char *name)
{
    if (*count < 5) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "%s'%s'", *count ? ", " : "", name);
    } else if (*count == 5) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, ", ...");
    }
    (*count)++;
}

/* Two files: one case. Two folders: the cases present on both sides; a
 * case on one side only is an error naming it. */
static int match_cases(const eval_args *o, case_t **cases, int *ncases)
{
    struct stat sp, sg;
    if (stat(o->pred, &sp) != 0) return cli_fail("eval", EXIT_WORK, "cannot read --pred '%s': %s", o->pred, strerror(errno));
    if (stat(o->gt, &sg) != 0) return cli_fail("eval", EXIT_WORK, "cannot read --gt '%s': %s", o->gt, strerror(errno));
    int dp = S_ISDIR(sp.st_mode), dg = S_ISDIR(sg.st_mode);
    if (dp != dg)
        return cli_fail("eval", EXIT_USAGE, "--pred '%s' is a %s but --gt '%s' is a %s; give two files or two folders",
                        o->pred, dp ? "folder" : "file", o->gt, dg ? "folder" : "file");
    if (!dp) {
        if (sl_format_from_path(o->pred) == SL_FORMAT_UNKNOWN)
            return cli_fail("eval", EXIT_USAGE, "'%s': unknown image format (expected .nii, .nii.gz or .npy)", o->pred);
        if (sl_format_from_path(o->gt) == SL_FORMAT_UNKNOWN)
            return cli_fail("eval", EXIT_USAGE, "'%s': unknown image format (expected .nii, .nii.gz or .npy)", o->gt);
        case_t *c = calloc(1, sizeof *c);
        if (!c) return cli_fail("eval", EXIT_WORK, "out of memory");
        c->id = case_name(o->gt);
        c->pred = strdup(o->pred);
        c->gt = strdup(o->gt);
        *cases = c;
        *ncases = 1;
        return 0;
    }
    entry *ep = NULL, *eg = NULL;
    int np = 0, ng = 0, rc;
    if ((rc = list_folder(o->pred, &ep, &np))) return rc;
    if ((rc = list_folder(o->gt, &eg, &ng))) {
        free_entries(ep, np);
        return rc;
    }
    case_t *c = calloc((size_t)(np < ng ? np : ng) + 1, sizeof *c);
    char no_pred[512] = "", no_gt[512] = "";
    int n_no_pred = 0, n_no_gt = 0, n = 0;
    for (int i = 0, j = 0; i < np || j < ng;) {
        int cmp = i >= np ? 1 : j >= ng ? -1 : strcmp(ep[i].name, eg[j].name);
        if (cmp == 0) {
            c[n].id = strdup(eg[j].name);
            c[n].pred = strdup(ep[i].path);
            c[n].gt = strdup(eg[j].path);
            n++, i++, j++;
        } else if (cmp < 0) {
            note_name(no_gt, sizeof no_gt, &n_no_gt, ep[i++].name);
        } else {
            note_name(no_pred, sizeof no_pred, &n_no_pred, eg[j++].name);
        }
    }
    free_entries(ep, np);
    free_entries(eg, ng);
    if (n_no_pred || n_no_gt) {
        char line[1200] = "";
        if (n_no_pred)
            snprintf(line, sizeof line, "%d ground-truth case%s without a prediction in '%s': %s", n_no_pred,
                     n_no_pred > 1 ? "s" : "", o->pred, no_pred);
        if (n_no_gt) {
            size_t l = strlen(line);
            snprintf(line + l, sizeof line - l, "%s%d prediction%s without a ground truth in '%s': %s",
                     l ? "; " : "", n_no_gt, n_no_gt > 1 ? "s" : "", o->gt, no_gt);
        }
        free_cases(c, n);
        return cli_fail("eval", EXIT_WORK, "%s", line);
    }
    if (n == 0) {
        free_cases(c, n);
        return cli_fail("eval", EXIT_WORK, "no image files (.nii, .nii.gz, .npy) in '%s' and '%s'", o->pred, o->gt);
    }
    *cases = c;
    *ncases = n;
    return 0;
}

/* ---- loading one case --------------------------------------------------- */

typedef struct {
    sl_array p, g;
    sl_grid grid;
    int loaded;
    size_t bytes;
} loaded_t;

static void unload(loaded_t *L)
{
    sl_array_free(&L->p);
    sl_array_free(&L->g);
    L->loaded = 0;
}

static void shape_str(const sl_array *a, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < a->ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)a->shape[i]);
    if (n < len) snprintf(buf + n, len - n, ")");
}

/* A label map holds whole numbers: a float map with fractions is a
 * probability map given by mistake, and would silently match no label. */
static int check_labelmap(const sl_array *a, const char *path, char *err, size_t errlen)
{
    if (sl_dtype_is_integer(a->dtype)) return 0;
    int64_t n = sl_array_count(a);
    for (int64_t i = 0; i < n; i++) {
        double v = a->dtype == SL_DT_F32 ? ((const float *)a->data)[i] : ((const double *)a->data)[i];
        if (!isfinite(v) || v != floor(v)) {
            snprintf(err, errlen, "%s holds the value %g: a label map must hold whole numbers (threshold or argmax "
                     "probabilities first)", path, v);
            return EXIT_WORK;
        }
    }
    return 0;
}

/* Reads both images of a case and checks that they share one grid. */
static int load_case(const eval_args *o, const case_t *c, loaded_t *L, int warn, char *err, size_t errlen)
{
    memset(L, 0, sizeof *L);
    sl_image_info ip, ig;
    char msg[1024];
    if (sl_image_read(c->pred, &L->p, &ip, msg, sizeof msg) != SL_OK) {
        snprintf(err, errlen, "%s", msg);
        return EXIT_WORK;
    }
    if (sl_image_read(c->gt, &L->g, &ig, msg, sizeof msg) != SL_OK) {
        snprintf(err, errlen, "%s", msg);
        unload(L);
        return EXIT_WORK;
    }
    char s1[128], s2[128];
    int same = L->p.ndim == L->g.ndim;
    for (int a = 0; same && a < L->p.ndim; a++) same = L->p.shape[a] == L->g.shape[a];
    if (!same) {
        shape_str(&L->p, s1, sizeof s1);
        shape_str(&L->g, s2, sizeof s2);
        snprintf(err, errlen, "grids differ: %s is %s but %s is %s", c->pred, s1, c->gt, s2);
        unload(L);
        return EXIT_WORK;
    }
    if (L->g.ndim < 1 || L->g.ndim > SL_MAX_SPATIAL) {
        shape_str(&L->g, s2, sizeof s2);
        snprintf(err, errlen, "%s has shape %s; eval takes 1-, 2- or 3-D label maps", c->gt, s2);
        unload(L);
        return EXIT_WORK;
    }
    int nd = L->g.ndim;
    if (o->nspacing && o->nspacing != nd) {
        snprintf(err, errlen, "--spacing has %d values but %s has %d axes", o->nspacing, c->gt, nd);
        unload(L);
        return EXIT_USAGE;
    }
    /* Spacing: --spacing, else the images' (which must agree to 0.1 %,
     * enough for float pixdim written by different tools), else 1. */
    if (!o->nspacing && ip.has_spacing && ig.has_spacing) {
        for (int a = 0; a < nd; a++) {
            double x = ip.spacing[a], y = ig.spacing[a];
            if (fabs(x - y) > 1e-3 * fmax(x, y)) {
                snprintf(err, errlen, "grids differ: %s has spacing %g mm on axis %d but %s has %g mm", c->pred, x, a,
                         c->gt, y);
                unload(L);
                return EXIT_WORK;
            }
        }
    }
    if (warn && !o->nspacing)
        for (int k = 0; k < 2; k++) {
            const sl_image_info *in = k ? &ig : &ip;
            if (in->has_spacing && in->nifti.spacing_defaulted)
                fprintf(stderr, "segloss eval: warning: %s has a zero pixdim; 1 mm used for that axis\n",
                        k ? c->gt : c->pred);
        }
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = nd;
    for (int a = 0; a < nd; a++) {
        g.shape[a] = L->g.shape[a];
        g.spacing[a] = o->nspacing ? o->spacing[a] : ig.has_spacing ? ig.spacing[a] : ip.spacing[a];
    }
    L->grid = g;
    int rc;
    if ((rc = check_labelmap(&L->p, c->pred, err, errlen)) || (rc = check_labelmap(&L->g, c->gt, err, errlen))) {
        unload(L);
        return rc;
    }
    L->bytes = (size_t)sl_array_count(&L->p) * sl_dtype_size(L->p.dtype) +
               (size_t)sl_array_count(&L->g) * sl_dtype_size(L->g.dtype);
    L->loaded = 1;
    return 0;
}

/* Sorted distinct labels of one map into a new array. */
static int unique_labels(const sl_array *a, const char *path, int64_t **out, int64_t *n, char *err, size_t errlen)
{
    sl_labelmap m = {a->data, a->dtype};
    int64_t cnt = 0, total = sl_array_count(a);
    char msg[256];
    if (sl_labels_unique(&m, total, NULL, 0, &cnt, msg, sizeof msg) != SL_OK) {
        snprintf(err, errlen, "%s: %s", path, msg);
        return EXIT_WORK;
    }
    if (cnt > 100000) {
        snprintf(err, errlen, "%s has %lld distinct values: not a label map? (choose labels with --labels)", path,
                 (long long)cnt);
        return EXIT_WORK;
    }
    *out = malloc((size_t)(cnt ? cnt : 1) * sizeof **out);
    if (!*out || sl_labels_unique(&m, total, *out, cnt, &cnt, msg, sizeof msg) != SL_OK) {
        snprintf(err, errlen, "%s: out of memory", path);
        return EXIT_WORK;
    }
    *n = cnt;
    return 0;
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

/* ---- progress ----------------------------------------------------------- */

typedef struct {
    int on, done, total;
    const char *what;
} progress;

static void progress_step(progress *p)
{
    p->done++;
    if (!p->on) return;
    int width = 30, fill = p->total ? p->done * width / p->total : width;
    fprintf(stderr, "\r%-10s [", p->what);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] %d/%d", p->done, p->total);
    if (p->done == p->total) fputc('\n', stderr);
    fflush(stderr);
}

/* ---- the run ------------------------------------------------------------ */

typedef struct {
    loaded_t L;             /* kept from the label scan when memory allows */
    int64_t *labels;        /* labels present in P or G (scan) */
    int64_t nlabels;
    sl_metric_result *res;  /* [nlabels of the run] */
    double empty_distance;  /* the value substituted for infinite distances */
    int ndim;               /* axes of the case's grid */
    int rc;                 /* 0, or the exit code of this case's failure */
    char err[1100];
} case_out;

static double diagonal_mm(const sl_grid *g)
{
    double s = 0;
    for (int a = 0; a < g->ndim; a++) s += (g->shape[a] * g->spacing[a]) * (g->shape[a] * g->spacing[a]);
    return sqrt(s);
}

static int threads_total(int requested)
{
    if (requested > 0) return requested;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* First failed case in case order (so the message does not depend on the
 * thread schedule); prints it and returns its exit code. */
static int first_failure(const case_out *co, int n)
{
    for (int i = 0; i < n; i++)
        if (co[i].rc) return cli_fail("eval", co[i].rc, "%s", co[i].err);
    return 0;
}

static int scan_labels(const eval_args *o, const case_t *cases, int n, case_out *co, int outer, progress *pg)
{
    /* Volumes read here are kept for the scoring pass up to this budget. */
    const size_t keep_budget = (size_t)1 << 30;
    size_t kept = 0;
    int stop = 0;
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
        case_out *c = &co[i];
        c->rc = load_case(o, &cases[i], &c->L, 1, c->err, sizeof c->err);
        int64_t *lp = NULL, *lg = NULL, np = 0, ng = 0;
        if (!c->rc) c->rc = unique_labels(&c->L.p, cases[i].pred, &lp, &np, c->err, sizeof c->err);
        if (!c->rc) c->rc = unique_labels(&c->L.g, cases[i].gt, &lg, &ng, c->err, sizeof c->err);
        if (!c->rc && (!merge_labels(&c->labels, &c->nlabels, lp, np) || !merge_labels(&c->labels, &c->nlabels, lg, ng))) {
            c->rc = EXIT_WORK;
            snprintf(c->err, sizeof c->err, "out of memory");
        }
        free(lp);
        free(lg);
        int keep = 0;
#ifdef _OPENMP
#pragma omp critical(eval_progress)
#endif
        {
            if (c->rc) stop = 1;
            if (!c->rc && c->L.loaded && kept + c->L.bytes <= keep_budget) {
                kept += c->L.bytes;
                keep = 1;
            }
            progress_step(pg);
        }
        if (!keep) unload(&c->L);
    }
    return first_failure(co, n);
}

/* Scores the labels of one loaded case with `inner` threads. Labels are
 * independent, so with several threads and several labels each thread
 * takes whole labels (one-threaded metric calls): an atlas with a hundred
 * labels scales with the threads, where splitting each small label's work
 * across threads would mostly wait. One label (or one thread) gets every
 * thread inside the metric call instead. Results and the reported error
 * (the first failing label) do not depend on the schedule. */
static void score_labels(const eval_args *o, const case_t *cs, case_out *c, int inner)
{
    sl_labelmap p = {c->L.p.data, c->L.p.dtype}, g = {c->L.g.data, c->L.g.dtype};
    int per_label = inner > 1 && o->nlabels > 1;
    int nl = o->nlabels, team = per_label ? (inner < nl ? inner : nl) : 1;
    sl_status *st = calloc((size_t)nl, sizeof *st);
    char(*msgs)[512] = calloc((size_t)nl, sizeof *msgs);
    if (!st || !msgs) {
        free(st);
        free(msgs);
        c->rc = EXIT_WORK;
        snprintf(c->err, sizeof c->err, "out of memory");
        return;
    }
    sl_metric_opts mo = o->mo;
    mo.threads = per_label ? 1 : inner;
    if (!per_label) {
        st[0] = sl_metrics_eval(&p, &g, &c->L.grid, o->labels, nl, &mo, c->res, msgs[0], sizeof msgs[0]);
    } else {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
#endif
        for (int l = 0; l < nl; l++)
            st[l] = sl_metrics_eval(&p, &g, &c->L.grid, &o->labels[l], 1, &mo, &c->res[l], msgs[l], sizeof msgs[l]);
    }
    (void)team;
    for (int l = 0; l < (per_label ? nl : 1); l++)
        if (st[l] != SL_OK) {
            c->rc = st[l] == SL_EINVAL ? EXIT_USAGE : EXIT_WORK;
            snprintf(c->err, sizeof c->err, "%s vs %s: %s", cs->pred, cs->gt, msgs[l][0] ? msgs[l] : sl_strerror(st[l]));
            break;
        }
    free(st);
    free(msgs);
}

static int score_cases(const eval_args *o, const case_t *cases, int n, case_out *co, int outer, int inner,
                       progress *pg)
{
    int stop = 0;
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
        case_out *c = &co[i];
        if (!c->L.loaded) c->rc = load_case(o, &cases[i], &c->L, !o->labels_all, c->err, sizeof c->err);
        if (!c->rc) {
            c->res = calloc((size_t)o->nlabels, sizeof *c->res);
            if (!c->res) {
                c->rc = EXIT_WORK;
                snprintf(c->err, sizeof c->err, "out of memory");
            } else {
                score_labels(o, &cases[i], c, inner);
            }
            c->empty_distance = o->empty_distance_set ? o->empty_distance : diagonal_mm(&c->L.grid);
            c->ndim = c->L.grid.ndim;
        }
        unload(&c->L);
#ifdef _OPENMP
#pragma omp critical(eval_progress)
#endif
        {
            if (c->rc) stop = 1;
            progress_step(pg);
        }
    }
    return first_failure(co, n);
}

/* ---- results ------------------------------------------------------------ */

/* The value written for column c of a row: infinite distances become the
 * case's empty distance (and *subst is set). */
static double out_value(const case_out *c, int label_idx, int col, int *subst)
{
    double v = col_value(&c->res[label_idx], col);
    if (COLUMNS[col].kind == 'D' && isinf(v)) {
        *subst = 1;
        return c->empty_distance;
    }
    return v;
}

typedef struct {
    int n, nfinite;
    double mean, std, median, min, max;
} stats;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* mean, population std (numpy's default ddof = 0), median (numpy's: the
 * mean of the two middle values) over the finite values. */
static stats summarise(double *v, int n)
{
    stats s = {n, 0, NAN, NAN, NAN, NAN, NAN};
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) v[k++] = v[i];
    s.nfinite = k;
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

typedef struct {
    int cases, empty_pred, empty_gt, both_empty, substituted;
    stats *col; /* [ncols] */
} label_summary;

static label_summary *build_summary(const eval_args *o, const case_out *co, int n)
{
    label_summary *ls = calloc((size_t)o->nlabels, sizeof *ls);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!ls || !v) {
        free(ls);
        free(v);
        return NULL;
    }
    for (int l = 0; l < o->nlabels; l++) {
        label_summary *s = &ls[l];
        s->col = calloc((size_t)o->ncols, sizeof *s->col);
        if (!s->col) continue;
        s->cases = n;
        for (int i = 0; i < n; i++) {
            const sl_metric_result *r = &co[i].res[l];
            s->empty_pred += r->empty_pred && !r->empty_gt;
            s->empty_gt += r->empty_gt && !r->empty_pred;
            s->both_empty += r->empty_pred && r->empty_gt;
            int sub = 0;
            for (int k = 0; k < o->ncols; k++) out_value(&co[i], l, o->cols[k], &sub);
            s->substituted += sub;
        }
        for (int k = 0; k < o->ncols; k++) {
            int sub;
            for (int i = 0; i < n; i++) v[i] = out_value(&co[i], l, o->cols[k], &sub);
            s->col[k] = summarise(v, n);
        }
    }
    free(v);
    return ls;
}

static void free_summary(label_summary *ls, int nl)
{
    for (int l = 0; ls && l < nl; l++) free(ls[l].col);
    free(ls);
}

/* Writes to PATH.tmp then renames, like the library's writers. */
static FILE *open_out(const char *path, char **tmp)
{
    size_t n = strlen(path) + 16;
    *tmp = malloc(n);
    if (!*tmp) return NULL;
    snprintf(*tmp, n, "%s.tmp", path);
    return fopen(*tmp, "w");
}

static int close_out(FILE *f, const char *path, char *tmp)
{
    int ok = !ferror(f);
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        free(tmp);
        return cli_fail("eval", EXIT_WORK, "cannot write '%s': %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}

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

static int write_csv(const eval_args *o, const case_t *cases, const case_out *co, int n)
{
    char *tmp = NULL;
    FILE *f = open_out(o->csv, &tmp);
    if (!f) {
        free(tmp);
        return cli_fail("eval", EXIT_WORK, "cannot write '%s': %s", o->csv, strerror(errno));
    }
    fputs("case,label", f);
    for (int k = 0; k < o->ncols; k++) fprintf(f, ",%s", COLUMNS[o->cols[k]].name);
    fputs(",empty_pred,empty_gt,distance_substituted\n", f);
    for (int i = 0; i < n; i++)
        for (int l = 0; l < o->nlabels; l++) {
            csv_field(f, cases[i].id);
            fprintf(f, ",%lld", (long long)o->labels[l]);
            int sub = 0;
            for (int k = 0; k < o->ncols; k++) {
                double v = out_value(&co[i], l, o->cols[k], &sub);
                if (COLUMNS[o->cols[k]].kind == 'i') fprintf(f, ",%lld", (long long)v);
                else if (isnan(v)) fputs(",nan", f);
                else if (isinf(v)) fputs(v > 0 ? ",inf" : ",-inf", f);
                else fprintf(f, ",%.15g", v);
            }
            const sl_metric_result *r = &co[i].res[l];
            fprintf(f, ",%d,%d,%d\n", r->empty_pred ? 1 : 0, r->empty_gt ? 1 : 0, sub);
        }
    return close_out(f, o->csv, tmp);
}

static cJSON *stats_json(const stats *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "mean", s->mean);
    cJSON_AddNumberToObject(j, "std", s->std);
    cJSON_AddNumberToObject(j, "median", s->median);
    cJSON_AddNumberToObject(j, "min", s->min);
    cJSON_AddNumberToObject(j, "max", s->max);
    cJSON_AddNumberToObject(j, "n", s->nfinite);
    return j;
}

static int write_json(const eval_args *o, const case_t *cases, const case_out *co, int n, const label_summary *ls,
                      const char *describe)
{
    /* cJSON writes NaN and +-inf as null: the only values that can be
     * non-finite here are the undefined ones (e.g. RVD with an empty G);
     * distances were already replaced by the empty distance. */
    cJSON *root = cJSON_CreateObject();
    cJSON *jc = cJSON_AddArrayToObject(root, "cases");
    for (int i = 0; i < n; i++)
        for (int l = 0; l < o->nlabels; l++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "case", cases[i].id);
            cJSON_AddNumberToObject(row, "label", (double)o->labels[l]);
            int sub = 0;
            for (int k = 0; k < o->ncols; k++)
                cJSON_AddNumberToObject(row, COLUMNS[o->cols[k]].name, out_value(&co[i], l, o->cols[k], &sub));
            cJSON_AddBoolToObject(row, "empty_pred", co[i].res[l].empty_pred);
            cJSON_AddBoolToObject(row, "empty_gt", co[i].res[l].empty_gt);
            cJSON_AddBoolToObject(row, "distance_substituted", sub);
            cJSON_AddStringToObject(row, "pred", cases[i].pred);
            cJSON_AddStringToObject(row, "gt", cases[i].gt);
            cJSON_AddItemToArray(jc, row);
        }
    cJSON *js = cJSON_AddObjectToObject(root, "summary");
    for (int l = 0; l < o->nlabels; l++) {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)o->labels[l]);
        cJSON *jl = cJSON_AddObjectToObject(js, key);
        cJSON_AddNumberToObject(jl, "cases", ls[l].cases);
        cJSON_AddNumberToObject(jl, "empty_pred", ls[l].empty_pred);
        cJSON_AddNumberToObject(jl, "empty_gt", ls[l].empty_gt);
        cJSON_AddNumberToObject(jl, "both_empty", ls[l].both_empty);
        cJSON_AddNumberToObject(jl, "distance_substituted", ls[l].substituted);
        for (int k = 0; k < o->ncols; k++)
            cJSON_AddItemToObject(jl, COLUMNS[o->cols[k]].name, stats_json(&ls[l].col[k]));
    }
    cJSON *jv = cJSON_AddObjectToObject(root, "conventions");
    cJSON_AddStringToObject(jv, "metrics", describe);
    cJSON_AddStringToObject(jv, "hd_mode", sl_hd_mode_name(o->mo.hd_mode));
    cJSON_AddNumberToObject(jv, "percentile", o->mo.percentile);
    cJSON_AddStringToObject(jv, "hd95", "the --percentile value of the Hausdorff distance, combined by hd_mode");
    cJSON_AddStringToObject(jv, "assd_mode", sl_assd_mode_name(o->mo.assd_mode));
    cJSON_AddStringToObject(jv, "surface", sl_surface_kind_name(o->mo.surface));
    cJSON_AddNumberToObject(jv, "nsd_tolerance_mm", o->mo.nsd_tolerance);
    if (o->empty_distance_set) cJSON_AddNumberToObject(jv, "empty_distance_mm", o->empty_distance);
    else cJSON_AddStringToObject(jv, "empty_distance_mm", "image diagonal: sqrt(sum((extent * spacing)^2))");
    cJSON_AddStringToObject(jv, "empty_masks",
                            "both empty: scores 1, distances 0; one empty: scores 0, distances = empty_distance_mm "
                            "(row marked distance_substituted)");
    cJSON_AddStringToObject(jv, "labels", o->labels_all ? "all non-zero labels in any prediction or ground truth"
                                                        : "as given by --labels");
    cJSON_AddStringToObject(jv, "summary", "mean, std (population, ddof=0), median, min, max over the finite values "
                                           "of the cases; n = how many");
    cJSON_AddStringToObject(jv, "spacing", o->nspacing ? "--spacing" : "NIfTI pixdim in mm (1 for .npy)");
    cJSON_AddStringToObject(jv, "axis_order", "C order, slowest axis first: NIfTI (nx, ny, nz) is (nz, ny, nx)");
    cJSON_AddStringToObject(jv, "segloss_version", sl_version());

    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return cli_fail("eval", EXIT_WORK, "out of memory writing '%s'", o->json);
    char *tmp = NULL;
    FILE *f = open_out(o->json, &tmp);
    if (!f) {
        free(text);
        free(tmp);
        return cli_fail("eval", EXIT_WORK, "cannot write '%s': %s", o->json, strerror(errno));
    }
    fputs(text, f);
    fputc('\n', f);
    free(text);
    return close_out(f, o->json, tmp);
}

/* Display width of a UTF-8 string (the only multi-byte character here is
 * the "±" of the cells). */
static int text_width(const char *s)
{
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void print_padded(const char *s, int width)
{
    printf("  %*s%s", width - text_width(s) > 0 ? width - text_width(s) : 0, "", s);
}

/* The summary on stdout: one row per label, "mean ± std" of each column
 * (the mean alone for a single case). */
static void print_table(const eval_args *o, int n, const label_summary *ls, const char *describe)
{
    printf("segloss eval: %d case%s, %d label%s; %s\n", n, n == 1 ? "" : "s", o->nlabels, o->nlabels == 1 ? "" : "s",
           describe);
    int w[NCOLUMNS];
    char(*cells)[40] = calloc((size_t)o->nlabels * (size_t)o->ncols + 1, sizeof *cells);
    if (!cells) return;
    for (int k = 0; k < o->ncols; k++) w[k] = text_width(COLUMNS[o->cols[k]].name);
    for (int l = 0; l < o->nlabels; l++)
        for (int k = 0; k < o->ncols; k++) {
            const stats *st = &ls[l].col[k];
            char *cell = cells[l * o->ncols + k];
            if (st->nfinite == 0) snprintf(cell, 40, "-");
            else if (n == 1) snprintf(cell, 40, "%.4g", st->mean);
            else snprintf(cell, 40, "%.4g ± %.2g", st->mean, st->std);
            if (text_width(cell) > w[k]) w[k] = text_width(cell);
        }
    printf("%-6s %5s  %-14s", "label", "cases", "empty P/G/both");
    for (int k = 0; k < o->ncols; k++) print_padded(COLUMNS[o->cols[k]].name, w[k]);
    printf("\n");
    for (int l = 0; l < o->nlabels; l++) {
        char e[48];
        snprintf(e, sizeof e, "%d/%d/%d", ls[l].empty_pred, ls[l].empty_gt, ls[l].both_empty);
        printf("%-6lld %5d  %-14s", (long long)o->labels[l], ls[l].cases, e);
        for (int k = 0; k < o->ncols; k++) print_padded(cells[l * o->ncols + k], w[k]);
        printf("\n");
    }
    free(cells);
    int subst = 0;
    for (int l = 0; l < o->nlabels; l++) subst += ls[l].substituted;
    if (subst)
        printf("%d row%s with one side empty: infinite distances written as %s\n", subst, subst == 1 ? "" : "s",
               o->empty_distance_set ? "the --empty-distance value" : "the image diagonal (mm)");
}

int cmd_eval(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
    eval_args o;
    memset(&o, 0, sizeof o);
    case_t *cases = NULL;
    case_out *co = NULL;
    label_summary *ls = NULL;
    int n = 0, rc = parse(argc, argv, &o);
    if (rc) goto done;
    if ((rc = match_cases(&o, &cases, &n))) goto done;
    co = calloc((size_t)n, sizeof *co);
    if (!co) {
        rc = cli_fail("eval", EXIT_WORK, "out of memory");
        goto done;
    }
    /* Threads: one case per thread when there are enough cases; the rest
     * go inside each case (nested OpenMP regions are not used). */
    int total = threads_total(o.threads);
    int outer = n < total ? n : total;
    if (outer < 1) outer = 1;
    int inner = total / outer > 1 ? total / outer : 1;
#ifdef _OPENMP
    /* Cases in one team, labels (or the metric's own loops) in a nested
     * one: outer * inner <= total threads. */
    if (omp_get_max_active_levels() < 2) omp_set_max_active_levels(2);
#endif
    int tty = n > 1 && isatty(fileno(stderr));

    if (o.labels_all) {
        progress pg = {tty, 0, n, "labels"};
        if ((rc = scan_labels(&o, cases, n, co, outer, &pg))) goto done;
        int64_t nl = 0;
        for (int i = 0; i < n; i++)
            if (!merge_labels(&o.labels, &nl, co[i].labels, co[i].nlabels)) {
                rc = cli_fail("eval", EXIT_WORK, "out of memory");
                goto done;
            }
        if (nl == 0) {
            rc = cli_fail("eval", EXIT_WORK, "no non-zero label in any prediction or ground truth; choose labels "
                                             "with --labels (e.g. --labels 0 for the background)");
            goto done;
        }
        o.nlabels = (int)nl;
    }
    progress pg = {tty, 0, n, "cases"};
    if ((rc = score_cases(&o, cases, n, co, outer, inner, &pg))) goto done;

    ls = build_summary(&o, co, n);
    if (!ls) {
        rc = cli_fail("eval", EXIT_WORK, "out of memory");
        goto done;
    }
    char describe[512];
    /* The description names the default connectivity of the first case's
     * dimensionality (cases of mixed dimensionality are unusual). */
    sl_metric_opts_describe(&o.mo, co[0].ndim, describe, sizeof describe);
    if (o.csv && (rc = write_csv(&o, cases, co, n))) goto done;
    if (o.json && (rc = write_json(&o, cases, co, n, ls, describe))) goto done;
    print_table(&o, n, ls, describe);
    rc = 0;
done:
    for (int i = 0; co && i < n; i++) {
        unload(&co[i].L);
        free(co[i].labels);
        free(co[i].res);
    }
    free(co);
    free_summary(ls, o.nlabels);
    free_cases(cases, n);
    free(o.labels);
    return rc;
}
