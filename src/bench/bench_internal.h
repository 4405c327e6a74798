/*
 * Private pieces of the benchmark shared by its files: the result of one
 * run as held in memory, the statistics tables, a growing text buffer, and
 * the report writers. Not installed; the unit tests include it.
 */
#ifndef SL_BENCH_INTERNAL_H
#define SL_BENCH_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include "internal.h"
#include "segloss/bench.h"

/* ------------------------------------------------------------ text buffer */

/* A NUL-terminated string that grows; `failed` records an allocation
 * failure (later appends are then ignored), checked once at the end. */
typedef struct slb_str {
    char *p;
    size_t len, cap;
    int failed;
} slb_str;

void slb_puts(slb_str *s, const char *text);
void slb_printf(slb_str *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends text with &, <, >, " escaped for HTML. */
void slb_html(slb_str *s, const char *text);
/* Appends n bytes as base64 (RFC 4648, with padding). */
void slb_base64(slb_str *s, const unsigned char *data, size_t n);
void slb_str_free(slb_str *s);

/* The file-name form of a name: [A-Za-z0-9+._-] kept, anything else '_'
 * (a leading '.' too); "" gives "_". out has SL_BENCH_NAME bytes. */
void slb_slug(const char *name, char *out);

/* ------------------------------------------------------------- replicates */

/* The trainings of an entry on a data set: nseeds x folds, replicate r =
 * seed index * folds + fold (folds = 1 without cross-validation). Runs are
 * stored and the statistics pool them by replicate. */
static inline int slb_folds(const sl_bench_preset *p) { return p->nfolds > 0 ? p->nfolds : 1; }
static inline int slb_nreps(const sl_bench_preset *p) { return p->nseeds * slb_folds(p); }
static inline uint64_t slb_rep_seed(const sl_bench_preset *p, int r) { return p->seeds[r / slb_folds(p)]; }
/* The fold of replicate r, or -1 without cross-validation. */
static inline int slb_rep_fold(const sl_bench_preset *p, int r) { return p->nfolds > 0 ? r % p->nfolds : -1; }
/* An ensemble entry has one run per data set, held in every replicate's
 * slot (the same object, so the statistics of its replicates are its
 * own); listings (files, rows) show it at replicate 0 only. */
static inline int slb_rep_listed(const sl_bench_preset *p, int e, int r) { return r == 0 || !p->entries[e].ensemble; }
/* The entry whose trainings ensemble entry e averages (the first
 * non-ensemble entry with its loss and budget), or -1. */
int slb_ensemble_source(const sl_bench_preset *p, int e);

/* ------------------------------------------------------------- run results */

/* The metrics of a case, in this order everywhere (files, tables). */
enum { SLB_DICE = 0, SLB_HD95, SLB_NSD, SLB_RECALL, SLB_PRECISION, SLB_LESION_F1, SLB_NMET };
extern const char *const slb_metric_names[SLB_NMET];   /* "dice", "hd95", ... */
extern const char *const slb_metric_labels[SLB_NMET];  /* "Dice", "HD95", ... */
/* 1 when a larger value is better (every metric but HD95). */
int slb_metric_higher_better(int metric);

/*
 * One run (data set, seed, entry) as its result file holds it. Class index
 * 0 is the pseudo-class "mean" (the mean over the foreground classes of
 * each case, derived when the run is built or read); 1..C-1 are the
 * foreground classes of the data set.
 */
typedef struct slb_run {
    int dataset, seed, entry;     /* indices into the preset; seed: the replicate (slb_rep_seed) */
    int failed;                   /* the training stopped with a non-finite loss */
    char message[512];            /* the failure */
    int num_classes;              /* C, the data set's (background included) */
    char **class_names;           /* [C]; [0] = "mean" */
    int small_class;              /* the data set's smallest class (>= 1) */
    double fraction;              /* share of the small class in the test split */
    int64_t n_cases;              /* test cases */
    double *values;               /* [C][SLB_NMET][n_cases], see slb_value */
    int64_t nepochs;
    double *curve_loss;           /* [nepochs] mean training loss */
    double *curve_val;            /* [nepochs][C] validation Dice, [0] = mean over fg; NaN without */
    int64_t noverlays;
    int64_t *overlay_cases;       /* [noverlays] test indices drawn in overlays/ */
    double seconds_train, seconds_eval;
    int64_t num_params;
} slb_run;

static inline double *slb_value(const slb_run *r, int c, int m)
{
    return r->values + ((int64_t)c * SLB_NMET + m) * r->n_cases;
}

/* Allocates class_names, values and the curves for the sizes already set
 * (num_classes, n_cases, nepochs, noverlays); class_names[0] = "mean".
 * SL_ENOMEM. */
sl_status slb_run_alloc(slb_run *r);
/* values[0][m][i] = mean over the foreground classes of values[c][m][i]. */
void slb_run_derive_mean(slb_run *r);
void slb_run_free(slb_run *r);

/* A cJSON number item printed with 17 significant digits (reads back to
 * the same double); null for NaN and Inf. */
struct cJSON *slb_json_exact(double v);

/* Result file of a run: DIR/results/DATA__seedS__ENTRY.json, with folds
 * DATA__seedS__foldK__ENTRY.json (s the replicate). */
sl_status slb_result_path(char *buf, size_t len, const char *dir, const sl_bench_preset *p, int d, int s, int e);
/* Writes a run's result file atomically (cJSON, doubles round-trip). */
sl_status slb_run_write(const char *path, const sl_bench_preset *p, const slb_run *r, char *msg, size_t msglen);
/* Reads one and checks that it belongs to (d, s, e) of p. SL_EIO,
 * SL_EFORMAT (malformed, named), SL_EBADSTATE (another run's file). */
sl_status slb_run_read(const char *path, const sl_bench_preset *p, int d, int s, int e, slb_run *r, char *msg,
                       size_t msglen);

/* -------------------------------------------------------------- statistics */

typedef struct slb_stat {
    int64_t n;                   /* cases (0: no statistics: a failed run) */
    double mean;                 /* mean over cases of y_i (values averaged over seeds) */
    double lo, hi;               /* its bootstrap CI */
    double seed_std;             /* standard deviation of the per-seed means (0 with one seed) */
    double diff, diff_lo, diff_hi; /* mean of y_i - baseline_i and its CI (NaN for the baseline) */
    double wilcoxon, p;          /* signed-rank statistic and two-sided p (NaN for the baseline) */
    double p_holm;               /* p after Holm's correction over the entries of the data set (same class
                                    and metric; NaN for the baseline) */
} slb_stat;

/*
 * Every table of the report, from the runs of a complete matrix:
 * runs[(d * nseeds + s) * nentries + e].
 */
typedef struct slb_tables {
    int ndatasets, nentries, max_classes;
    slb_stat *stat;      /* [d][e][c < max_classes][m], see slb_stat_at */
    int *num_classes;    /* [d] */
    int *small_class;    /* [d] */
    double *fraction;    /* [d] share of the small class in the test split */
    int64_t *n_cases;    /* [d] */
    int *failed;         /* [d][e] 1 when a run of (d, e) failed */
    double *score;       /* [d][e] ranking score: the "mean" class's Dice (NaN if failed) */
    int *rank;           /* [d][e] 1-based; failed entries share the last rank */
    int *order;          /* [d][k] entries by rank */
    double *mean_rank;   /* [e] over the data sets */
    double *mean_score;  /* [e] over the data sets where it did not fail (NaN if none) */
    int *overall;        /* [k] entries by mean rank */
    /* Friedman test and Nemenyi critical difference over the data sets
     * (blocks) of the ranking score, failed entries tied last; computed
     * when there are at least 2 data sets and 2 entries (friedman = 1). */
    int friedman;
    double fr_chi2, fr_p, fr_f, fr_fp; /* χ²_F and p; Iman–Davenport F and p */
    double nem_alpha, nem_q, nem_cd;   /* level, q_alpha, critical difference */
    double *fr_rank;     /* [e] mean rank with ties averaged (1 = best) */
    int *fr_order;       /* [k] entries by fr_rank (ties by mean score, then name) */
    int fr_ngroups;      /* maximal groups of entries whose mean ranks differ by less than the CD */
    int *fr_group_lo, *fr_group_hi; /* [g] first and last position in fr_order */
} slb_tables;

static inline slb_stat *slb_stat_at(const slb_tables *t, int d, int e, int c, int m)
{
    return &t->stat[(((int64_t)d * t->nentries + e) * t->max_classes + c) * SLB_NMET + m];
}

sl_status slb_tables_build(const sl_bench_preset *p, slb_run *const *runs, slb_tables *t, char *msg, size_t msglen);
void slb_tables_free(slb_tables *t);

/* ------------------------------------------------------------------ report */

/* Everything a writer needs. */
typedef struct slb_report {
    const sl_bench_preset *p;
    slb_run *const *runs;        /* [d][s][e] as for slb_tables_build */
    const slb_tables *t;
    const char *dir;
    double seconds, cpu_seconds; /* of the whole benchmark, as known */
    /* [d * nentries + e]: the weight search of a searched entry (search.h),
     * NULL for the others; the array itself may be NULL (no searches) */
    struct slb_search_outcome *const *search;
} slb_report;

static inline const slb_run *slb_report_run(const slb_report *r, int d, int s, int e)
{
    return r->runs[((int64_t)d * slb_nreps(r->p) + s) * r->p->nentries + e];
}
/* Data set d is scored as volumes (phantom3d, colin3d, a D,H,W patch,
 * data option volumes); some data set of the preset is. The report
 * writers say voxels/mm/volume diagonal then, and keep the 2-D wording
 * byte for byte otherwise. */
int slb_dataset_is_volume(const sl_bench_preset *p, int d);
int slb_preset_has_volumes(const sl_bench_preset *p);
/* The class names of data set d (from its first run that did not fail);
 * [0] = "mean". NULL when every run of d failed. */
char **slb_report_classes(const slb_report *r, int d);

sl_status slb_write_csv(const slb_report *r, char *msg, size_t msglen);
sl_status slb_write_json(const slb_report *r, char *msg, size_t msglen);
sl_status slb_write_markdown(const slb_report *r, char *msg, size_t msglen);
sl_status slb_write_html(const slb_report *r, char *msg, size_t msglen);
/* The sentence naming the network and training budget of the data sets (one, or one per distinct budget with its
 * data sets), appended to s; shared by report.md and report.html. */
void slb_training_text(const sl_bench_preset *p, slb_str *s);
/* The ranking tables as plain text (the terminal's), appended to out. */
void slb_ranking_text(const slb_report *r, slb_str *out);

/* Letters of the Nemenyi groups that position k of t->fr_order belongs
 * to ("ab"), "-" for none. */
void slb_group_letters(const slb_tables *t, int k, char *buf, size_t len);

/* Formats a number for the tables: "%.*f", "inf", "-" for NaN. */
const char *slb_fmt(char *buf, size_t len, double v, int digits);
/* "0.812 [0.790, 0.833]", or "-" for NaN. */
const char *slb_fmt_ci(char *buf, size_t len, double v, double lo, double hi, int digits);
/* A p-value: "0.0123", "<1e-4", "-" for NaN. */
const char *slb_fmt_p(char *buf, size_t len, double p);

/* ----------------------------------------------------------------- overlays */

/* Overlay file of a case: DIR/overlays/DATA/caseI__ENTRY.png, or
 * caseI.png (the image with the target) for entry < 0. Relative to DIR
 * when dir is NULL. */
sl_status slb_overlay_path(char *buf, size_t len, const char *dir, const sl_bench_preset *p, int d, int64_t cs, int e);

/* Overlay colours, one per foreground class (cycled): the target's and a
 * prediction's contours, RGB. */
void slb_overlay_colour(int c, int predicted, unsigned char rgb[3]);

/*
 * Draws an image (h, w) float32 (windowed to its 1st..99th percentile) in
 * grey, upscaled by an integer factor to about 256 pixels a side, with the
 * contour of every foreground class of target (h, w) and, when pred is not
 * NULL, of pred (h, w), and writes it as an RGB PNG (through libpng,
 * atomically). SL_EIO, SL_ENOMEM.
 */
sl_status slb_overlay_write(const char *path, const float *image, const int32_t *target, const int32_t *pred,
                            int64_t h, int64_t w, int num_classes, char *msg, size_t msglen);

/* ------------------------------------------------------ convergence, budget */

/*
 * Convergence of a run from its validation Dice per evaluation v[i * stride]
 * (i < n): with w = ceil(n / 4) the last evaluations, the run converged
 * when the best of those w is within SLB_CONV_TOL of the best of all n, and
 * the least-squares line through them rises by less than SLB_CONV_TOL from
 * the first of them to the last. Unknown with fewer than SLB_CONV_MIN_EVALS
 * evaluations or a non-finite one (no validation split).
 */
enum { SLB_CONV_UNKNOWN = -1, SLB_CONV_NO = 0, SLB_CONV_YES = 1 };
#define SLB_CONV_MIN_EVALS 8
#define SLB_CONV_TOL 0.01
int slb_converged(const double *v, int64_t n, int64_t stride);
/* Of a run's mean foreground validation Dice; a failed run is unknown. */
int slb_run_converged(const slb_run *r);
/* "yes", "no", "unknown". */
const char *slb_conv_name(int conv);

/* Kendall's tau-b between two scorings of n items (NaN ranks last, ties
 * with NaN); NaN when either scoring is constant. *discordant (may be NULL)
 * = the pairs ordered oppositely. */
double slb_kendall_tau(const double *x, const double *y, int n, int *discordant);

/* The report's convergence and budget-study sections. */
void slb_study_markdown(const slb_report *r, slb_str *s);
void slb_study_html(const slb_report *r, slb_str *h);

/* ------------------------------------------------------------------- files */

/* Folders and files of DIR, relative names. */
#define SLB_PRESET_FILE "preset.json"
#define SLB_RESULTS_DIR "results"
#define SLB_RUNS_DIR "runs"
#define SLB_OVERLAY_DIR "overlays"

/* With folds: DIR/runs/DATA/folds.csv, every sample of data set d (ds, its
 * open dataset) with its validation fold ("test" for the test split):
 * split,index,name,case,slice,fold (folds.c). */
sl_status slb_write_folds(const char *dir, const sl_bench_preset *p, int d, const sl_dataset *ds, char *msg, size_t msglen);

/* Writes a string to DIR/name atomically. */
sl_status slb_write_text(const char *dir, const char *name, const slb_str *s, char *msg, size_t msglen);

/* crf_eval.c: pred (n, [D,] H, W) = the argmax of the dense CRF of each
 * test case's softmax (img: the normalised cases; size (D, H, W), D = 1 for
 * slices; nd 2 or 3). */
sl_status slb_predict_crf(sl_unet *net, const sl_preproc *pp, const sl_predict_opts *po, const float *img, int64_t n,
                          int nd, const int64_t size[3], int C, int32_t *pred, char *msg, size_t msglen);
/* ---------------------------------------------- entry_eval.c: tta, postprocess */

/* A preset's "tta" (true/false, or "none", "flip", "rot", "aug:N") into an
 * sl_tta code and its draws; SL_EFORMAT naming `where` otherwise. */
sl_status slb_get_tta(const struct cJSON *it, const char *where, int *tta, int *n, char *msg, size_t msglen);
/* The entry's tta as the preset and result files write it (false/true for
 * none/flip, as before; else the string); NULL when out of memory. */
struct cJSON *slb_tta_json(const sl_bench_entry *en);
/* 1 when a file's "tta" is the entry's. */
int slb_tta_json_equal(const struct cJSON *it, const sl_bench_entry *en);
/* results.csv (csv = 1): "0"/"1" for none/flip, else "rot", "aug:N"; the
 * tables (csv = 0): "-", "flip", "rot", "aug:N". */
const char *slb_tta_text(const sl_bench_entry *en, int csv, char *buf, size_t len);
/* A "postprocess" entry: the rule chosen on ds's validation split with net
 * (sl_postprocess_fit) applied to each of the n test cases pred (nd axes of
 * size). */
sl_status slb_postprocess_cases(sl_unet *net, const sl_preproc *pp, const sl_dataset *ds, int nd,
                                int64_t n, const int64_t size[3], int32_t *pred, char *msg, size_t msglen);

#endif
