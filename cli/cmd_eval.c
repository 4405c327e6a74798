/*
 * segloss eval --pred P --gt G [options]
 *
 * Evaluates predicted label maps against ground truth, per case and per
 * label, and writes a summary table (stdout), and on request a CSV (one
 * row per case and label) and a JSON file (cases, per-label summary, the
 * conventions in force).
 *
 * The engine is the library's evaluation set (sl_evalset in
 * segloss/metrics.h): case matching, grid checks, label discovery,
 * parallel scoring, summaries and the writers live there. This file
 * parses the options (bad usage: exit 2), runs the set, draws the
 * progress bar and maps status codes to exit codes (SL_EINVAL: 2, any
 * other failure: 1).
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli_util.h"
#include "commands.h"
#include "segloss/metrics.h"

static const char *usage_text =
    "usage: segloss eval --pred P --gt G [options]\n"
    "       segloss eval --merge PART.json... [--csv FILE] [--json FILE]\n"
    "\n"
    "Scores predicted label maps P against ground truth G, per case and per label.\n"
    "P and G are two image files, or two folders matched by case name (file name\n"
    "without .nii, .nii.gz or .npy). Label maps of any integer dtype (or float holding\n"
    "whole numbers), 1-, 2- or 3-D, on the same grid.\n"
    "\n"
    "  --labels L           comma-separated labels (0 = background allowed), or 'all'\n"
    "                       (default): every non-zero label found in any P or G\n"
    "  --regions SPEC       named label unions scored as targets (BraTS), e.g.\n"
    "                       \"WT=1,2,4;TC=1,4;ET=4\"; regions may overlap. Without\n"
    "                       --labels only the regions are scored\n"
    "  --ignore-label V     voxels whose G is V take part in no metric (nnU-Net)\n"
    "  --empty M            rows whose G lacks the target: score (default; documented\n"
    "                       scores) | nan (NaN, as MONAI ignore_empty) | exclude (left\n"
    "                       out of the summary); always counted in the summary\n"
    "  --label-mean         add a target 'mean': per case, the mean over foreground targets\n"
    "  --metrics LIST       comma-separated (default dice,iou,precision,recall,specificity,\n"
    "                       hd,hd95,assd,nsd), or 'all'. Also: voe, rvd, vs, mcc, kappa,\n"
    "                       counts, volume, asd, msd, biou, lesion, cldice; the confusion\n"
    "                       family (confusion: accuracy, balanced_accuracy, npv, fpr, fnr,\n"
    "                       fdr, for, lr_plus, lr_minus, youden, informedness, markedness,\n"
    "                       fbeta), pixel_accuracy, autopet (fp_volume_ml, fn_volume_ml),\n"
    "                       panoptic (pq, sq, rq: MONAI's panoptic quality of the target's\n"
    "                       connected components, --connectivity), instance (panoptic and\n"
    "                       inst_tp, inst_fp, inst_fn, inst_precision, inst_recall, inst_f1),\n"
    "                       or any column name\n"
    "  --instances          P and G are instance-id maps (0 background, every other id one\n"
    "                       instance): one target 'instances' (overlap and distances on id != 0);\n"
    "                       pq, sq, rq and inst_* match the given ids instead of components\n"
    ;

/* the rest of the options (C99 caps string literals at 4095 characters) */
static const char *usage_more =
    "  --match M            pq matching: monai (default; IoU > 0.5 unique, Hungarian below)\n"
    "                       | greedy | hungarian\n"
    "  --iou-threshold T    pq: a pair matches when IoU > T, T in (0, 1] (default 0.5)\n"
    "  --beta B             beta of the fbeta column (default 1)\n"
    "  --hd-mode M          max (default; MONAI, DeepMind) | union (MedPy) | mean (plastimatch)\n"
    "  --percentile Q       percentile of the hd95 column, in [0, 100] (default 95)\n"
    "  --assd-mode M        pooled (default; MONAI, MedPy >= 0.5) | mean (the mean of the two\n"
    "                       directed means: MedPy <= 0.4, MetricsReloaded MASD, DeepMind)\n"
    "  --surface S          border (default; border voxels) | surfel (DeepMind surfels)\n"
    "  --nsd-tolerance MM   NSD tolerance in mm (default 1)\n"
    "  --biou-width MM      boundary IoU band width in mm (default 2)\n"
    "  --connectivity N     components (lesions, autopet volumes): 4/8 (2-D), 6/18/26 (3-D);\n"
    "                       default full (autoPET uses 18)\n"
    "  --lesion-iou T       a lesion is detected at IoU >= T (default: >= 1 voxel overlap)\n"
    "  --empty-distance MM  value written for a distance when one side is empty\n"
    "                       (default: the image diagonal in mm); such rows are marked\n"
    "  --spacing Z,Y,X      voxel size in mm per array axis (default: NIfTI pixdim, or 1)\n"
    "  --csv FILE           one row per case and label\n"
    "  --json FILE          cases, per-label summary (per-case mean and pooled), conventions\n"
    "  --shard K/N          score only the K-th of N shares of the cases (needs --labels or\n"
    "                       --regions); merge the N JSON files with --merge\n"
    "  --merge PART.json... the JSON files of shards 1/N..N/N: writes the CSV/JSON and table\n"
    "                       of the unsharded run, byte for byte\n"
    "  --threads N          threads (default: all cores)\n"
    "\n"
    "Summaries: mean, population std (ddof 0), median, min, max over the finite values.\n"
    "Arrays are C order, slowest axis first: NIfTI (nx, ny, nz) is (nz, ny, nx).\n"
    "Exit codes: 0 ok, 1 an input could not be read or does not match, 2 bad usage.\n";

/* the --prob mode (cli/cmd_eval_prob.c), a second string: C99 caps string literals */
static const char *usage_prob =
    "\n"
    "Probabilities: segloss eval --prob P --gt G [--bins B] [--sum-tol T] [--ignore-label V]\n"
    "  [--no-ranking] [--csv F] [--json F] scores the softmax .npy (C, spatial...) that\n"
    "  segloss predict --probabilities writes (files, or folders matched by name): ECE and\n"
    "  MCE (top-label, B equal-width bins (lo, hi], default 15), class-wise ECE, Brier, NLL,\n"
    "  per class AUROC and average precision (scikit-learn's). Probabilities outside [0, 1]\n"
    "  or not summing to 1 within T (default 1e-4) are refused.\n";

/* the --froc mode (cli/cmd_eval_froc.c) */
static const char *usage_froc =
    "\n"
    "FROC: segloss eval --froc --prob P --gt G [--froc-label L] [--cand-threshold T]\n"
    "  [--rates R1,R2,...] [--connectivity N] [--sum-tol T] [--csv F] [--json F]\n"
    "  lesion-wise FROC as LUNA16's evaluation: lesions = components of G == L (default 1),\n"
    "  candidates = components of p >= T (default 0.5), p = channel L of a (C, spatial...)\n"
    "  softmax .npy or a (spatial...) probability map, scored by their maximum; a candidate\n"
    "  hits a lesion it shares a voxel with. Sensitivity at the average false positives\n"
    "  per case R (default 0.125,0.25,0.5,1,2,4,8) and their mean (LUNA16's CPM); the\n"
    "  JSON holds the whole curve.\n";

/* ---- options ------------------------------------------------------------ */

typedef struct {
    const char *pred, *gt, *csv, *json;
    sl_eval_opts eo;
    int64_t *labels;
    int nlabels;
    const char **merge; /* --merge parts (pointers into argv) */
    int nmerge;
} eval_args;

/* "all" or a comma list of integers (duplicates are refused by the set). */
static int parse_labels(eval_args *o, const char *s)
{
    free(o->labels);
    o->labels = NULL;
    o->nlabels = 0;
    if (!strcmp(s, "all")) return 0;
    int n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    o->labels = malloc((size_t)n * sizeof *o->labels);
    if (!o->labels) return cli_fail("eval", EXIT_WORK, "out of memory");
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno == ERANGE || (*end != ',' && *end != 0))
            return cli_fail("eval", EXIT_USAGE, "--labels expects 'all' or integers like 1,2,3, got '%s'", s);
        o->labels[o->nlabels++] = v;
        if (!*end) break;
        p = end + 1;
    }
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
    sl_eval_opts d = SL_EVAL_OPTS_DEFAULT;
    o->eo = d;
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
            o->eo.columns = s;
        } else if (cli_opt(a, "--hd-mode", &v)) {
            VALUE();
            if (sl_hd_mode_parse(s, &o->eo.metric.hd_mode) != SL_OK)
                return cli_fail("eval", EXIT_USAGE, "--hd-mode expects max, union or mean, got '%s'", s);
        } else if (cli_opt(a, "--assd-mode", &v)) {
            VALUE();
            if (sl_assd_mode_parse(s, &o->eo.metric.assd_mode) != SL_OK)
                return cli_fail("eval", EXIT_USAGE, "--assd-mode expects pooled or mean, got '%s'", s);
        } else if (cli_opt(a, "--surface", &v)) {
            VALUE();
            if (!strcmp(s, "surfel") || !strcmp(s, "surfels")) o->eo.metric.surface = SL_SURFACE_SURFELS;
            else if (!strcmp(s, "border")) o->eo.metric.surface = SL_SURFACE_BORDER;
            else return cli_fail("eval", EXIT_USAGE, "--surface expects border or surfel, got '%s'", s);
        } else if (cli_opt(a, "--percentile", &v)) {
            VALUE();
            if (!cli_parse_double(s, &o->eo.metric.percentile) || o->eo.metric.percentile < 0 || o->eo.metric.percentile > 100)
                return cli_fail("eval", EXIT_USAGE, "--percentile expects a number in [0, 100], got '%s'", s);
        } else if (cli_opt(a, "--nsd-tolerance", &v)) {
            VALUE();
            if ((rc = parse_number("--nsd-tolerance", s, 0, &o->eo.metric.nsd_tolerance))) return rc;
        } else if (cli_opt(a, "--biou-width", &v)) {
            VALUE();
            if ((rc = parse_number("--biou-width", s, 0, &o->eo.metric.biou_width))) return rc;
            if (o->eo.metric.biou_width == 0) return cli_fail("eval", EXIT_USAGE, "--biou-width must be > 0");
        } else if (cli_opt(a, "--lesion-iou", &v)) {
            VALUE();
            if (!cli_parse_double(s, &o->eo.metric.lesion_iou) || !(o->eo.metric.lesion_iou > 0 && o->eo.metric.lesion_iou <= 1))
                return cli_fail("eval", EXIT_USAGE, "--lesion-iou expects a number in (0, 1], got '%s'", s);
            o->eo.metric.lesion_match = SL_LESION_IOU;
        } else if (cli_opt(a, "--empty-distance", &v)) {
            VALUE();
            if ((rc = parse_number("--empty-distance", s, 0, &o->eo.empty_distance))) return rc;
        } else if (cli_opt(a, "--connectivity", &v)) {
            VALUE();
            long c;
            if (!cli_parse_int(s, &c) || (c != 4 && c != 8 && c != 6 && c != 18 && c != 26 && c != 2 && c != 0))
                return cli_fail("eval", EXIT_USAGE, "--connectivity expects 4 or 8 (2-D), 6, 18 or 26 (3-D), got '%s'",
                                s);
            o->eo.metric.connectivity = (int)c;
        } else if (cli_opt(a, "--spacing", &v)) {
            VALUE();
            o->eo.nspacing = cli_parse_list(s, o->eo.spacing, SL_MAX_SPATIAL);
            if (o->eo.nspacing < 1)
                return cli_fail("eval", EXIT_USAGE, "--spacing expects 1 to 3 comma-separated numbers, got '%s'", s);
            for (int k = 0; k < o->eo.nspacing; k++)
                if (!(o->eo.spacing[k] > 0))
                    return cli_fail("eval", EXIT_USAGE, "--spacing values must be positive, got '%s'", s);
        } else if (cli_opt(a, "--ignore-label", &v)) {
            VALUE();
            long long x;
            char *end;
            errno = 0;
            x = strtoll(s, &end, 10);
            if (end == s || *end || errno == ERANGE)
                return cli_fail("eval", EXIT_USAGE, "--ignore-label expects an integer, got '%s'", s);
            o->eo.has_ignore = 1;
            o->eo.ignore_label = x;
        } else if (cli_opt(a, "--empty", &v)) {
            VALUE();
            if (!strcmp(s, "score")) o->eo.empty = SL_EVAL_EMPTY_SCORE;
            else if (!strcmp(s, "nan")) o->eo.empty = SL_EVAL_EMPTY_NAN;
            else if (!strcmp(s, "exclude")) o->eo.empty = SL_EVAL_EMPTY_EXCLUDE;
            else return cli_fail("eval", EXIT_USAGE, "--empty expects score, nan or exclude, got '%s'", s);
        } else if (cli_opt(a, "--regions", &v)) {
            VALUE();
            o->eo.regions = s;
        } else if (!strcmp(a, "--instances")) {
            o->eo.instances = 1;
        } else if (!strcmp(a, "--label-mean")) {
            o->eo.label_mean = 1;
        } else if (cli_opt(a, "--beta", &v)) {
            VALUE();
            if (!cli_parse_double(s, &o->eo.beta) || !(o->eo.beta > 0) || !isfinite(o->eo.beta))
                return cli_fail("eval", EXIT_USAGE, "--beta expects a number > 0, got '%s'", s);
        } else if (cli_opt(a, "--match", &v)) {
            VALUE();
            if (sl_instance_match_parse(s, &o->eo.instance_match) != SL_OK)
                return cli_fail("eval", EXIT_USAGE, "--match expects monai, greedy or hungarian, got '%s'", s);
        } else if (cli_opt(a, "--iou-threshold", &v)) {
            VALUE();
            if (!cli_parse_double(s, &o->eo.instance_iou) || !(o->eo.instance_iou > 0 && o->eo.instance_iou <= 1))
                return cli_fail("eval", EXIT_USAGE, "--iou-threshold expects a number in (0, 1], got '%s'", s);
        } else if (cli_opt(a, "--shard", &v)) {
            VALUE();
            int k, n, used = 0;
            if (sscanf(s, "%d/%d%n", &k, &n, &used) != 2 || s[used] || n < 1 || k < 1 || k > n)
                return cli_fail("eval", EXIT_USAGE, "--shard expects K/N with 1 <= K <= N, got '%s'", s);
            o->eo.shard_k = k;
            o->eo.shard_n = n;
        } else if (!strcmp(a, "--merge")) {
            /* every following argument up to the next option is a part */
            o->merge = (const char **)&argv[i + 1];
            while (i + 1 < argc && argv[i + 1][0] != '-') i++, o->nmerge++;
            if (!o->nmerge) return cli_fail("eval", EXIT_USAGE, "--merge needs the JSON files of the shards");
        } else if (cli_opt(a, "--threads", &v)) {
            VALUE();
            long t;
            if (!cli_parse_int(s, &t) || t < 0 || t > 1024)
                return cli_fail("eval", EXIT_USAGE, "--threads expects an integer in [0, 1024], got '%s'", s);
            o->eo.threads = (int)t;
        } else if (a[0] == '-') {
            return cli_fail("eval", EXIT_USAGE, "unknown option '%s' (see segloss eval --help)", a);
        } else {
            return cli_fail("eval", EXIT_USAGE, "unexpected argument '%s' (use --pred P --gt G)", a);
        }
#undef VALUE
    }
    if (o->nmerge) {
        if (o->pred || o->gt) return cli_fail("eval", EXIT_USAGE, "--merge takes no --pred or --gt");
        if (o->eo.shard_n) return cli_fail("eval", EXIT_USAGE, "--merge and --shard exclude each other");
        for (int k = 0; k < o->nmerge; k++)
            if ((o->csv && !strcmp(o->csv, o->merge[k])) || (o->json && !strcmp(o->json, o->merge[k])))
                return cli_fail("eval", EXIT_USAGE, "an output names the part '%s'; it would be overwritten",
                                o->merge[k]);
        return 0;
    }
    if (!o->pred) return cli_fail("eval", EXIT_USAGE, "missing --pred P (see segloss eval --help)");
    if (!o->gt) return cli_fail("eval", EXIT_USAGE, "missing --gt G (see segloss eval --help)");
    o->eo.labels = o->labels;
    o->eo.nlabels = o->nlabels;
    return 0;
}

/* ---- the run ------------------------------------------------------------ */

/* The progress bar on a terminal (stderr), one per phase. */
static void progress_bar(void *ctx, const char *phase, int done, int total)
{
    if (!*(const int *)ctx) return;
    int width = 30, fill = total ? done * width / total : width;
    fprintf(stderr, "\r%-10s [", phase);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] %d/%d", done, total);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

/* Prints the set's warnings, one "segloss eval: warning: ..." line each. */
static void print_warnings(const sl_evalset *s)
{
    const char *w = sl_evalset_warnings(s);
    while (*w) {
        const char *e = strchr(w, '\n');
        int n = e ? (int)(e - w) : (int)strlen(w);
        cli_warn("eval", "%.*s", n, w);
        w += n + (e != NULL);
    }
}

static int fail_status(sl_status st, const char *msg)
{
    return cli_fail("eval", st == SL_EINVAL ? EXIT_USAGE : EXIT_WORK, "%s", msg);
}

int cmd_eval(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            fputs(usage_more, stdout);
            fputs(usage_prob, stdout);
            fputs(usage_froc, stdout);
            return 0;
        }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--froc")) return cmd_eval_froc(argc, argv);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--prob") || !strncmp(argv[i], "--prob=", 7)) return cmd_eval_prob(argc, argv);
    eval_args o;
    memset(&o, 0, sizeof o);
    sl_evalset *set = NULL;
    char msg[1400];
    int tty = 0, rc = parse(argc, argv, &o);
    sl_status st;
    if (rc) goto done;
    o.eo.progress = progress_bar;
    o.eo.progress_ctx = &tty;
    if (!o.nmerge && o.gt && strchr(o.gt, ',') && o.eo.instances) {
        rc = cli_fail("eval", EXIT_USAGE, "--instances takes one ground truth, not several raters");
        goto done;
    }
    if (!o.nmerge && o.gt && strchr(o.gt, ',')) {
        /* several raters (cli/cmd_eval_raters.c) */
        o.eo.progress = NULL;
        rc = cmd_eval_raters(&o.eo, o.pred, o.gt, o.csv, o.json);
        goto done;
    }
    if (o.nmerge) {
        if ((st = sl_evalset_merge(o.merge, o.nmerge, &set, msg, sizeof msg)) != SL_OK) {
            rc = fail_status(st, msg);
            goto done;
        }
    } else {
        if ((st = sl_evalset_create(&o.eo, &set, msg, sizeof msg)) != SL_OK ||
            (st = sl_evalset_add_paths(set, o.pred, o.gt, msg, sizeof msg)) != SL_OK ||
            (st = sl_evalset_check_outputs(set, o.csv, o.json, msg, sizeof msg)) != SL_OK) {
            rc = fail_status(st, msg);
            goto done;
        }
        tty = sl_evalset_ncases(set) > 1 && isatty(fileno(stderr));
        st = sl_evalset_score(set, msg, sizeof msg);
        print_warnings(set);
    }
    if (st != SL_OK || (st = sl_evalset_write(set, o.csv, o.json, msg, sizeof msg)) != SL_OK) {
        rc = fail_status(st, msg);
        goto done;
    }
    sl_evalset_print_table(set, stdout);
    rc = 0;
done:
    sl_evalset_free(set);
    free(o.labels);
    return rc;
}
