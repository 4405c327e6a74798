/*
 * segloss/bench.h — the controlled loss benchmark: a matrix of losses x
 * data sets x seeds trained with everything else held fixed, evaluated on
 * the held-out test split, compared against a baseline, and reported.
 * docs/benchmark.md is the manual (preset format, files, statistics).
 *
 *     sl_bench_preset *p;
 *     if (sl_bench_preset_load(&p, "presets/quick.json", msg, sizeof msg)) { puts(msg); return 1; }
 *     sl_bench_opts o = SL_BENCH_OPTS_DEFAULT;
 *     o.out_dir = "bench-out";
 *     o.resume = 1;                               // keep what an earlier call finished
 *     sl_bench_outcome r = SL_BENCH_OUTCOME_EMPTY;
 *     if (sl_bench_run(p, &o, NULL, NULL, &r, msg, sizeof msg)) { puts(msg); return 1; }
 *     fputs(r.ranking, stdout);                   // bench-out/report.html, results.csv, ...
 *     sl_bench_outcome_free(&r);
 *     sl_bench_preset_free(p);
 *
 * What is held fixed. Every run of a data set starts from one training
 * configuration (the preset's "train" section merged with the data set's
 * own keys); a run changes only the loss (spec or schedule) and the seed.
 * The seed fixes the network initialisation, the order of the batches and
 * every augmentation draw (segloss/train.h), so two losses with the same
 * seed see the same first weights and the same batches. Each data set is
 * opened once and shared by its runs. Test-time augmentation (flip TTA) is
 * an evaluation option of an entry: entries that differ only by it share
 * one training.
 *
 * Evaluation. Every test sample (a 2-D slice) is a case. Per case and per
 * foreground class: Dice, HD95 (max of the two directed 95th percentiles,
 * border voxels; one side empty: the slice diagonal in pixels, as the
 * trainer), NSD at nsd_tolerance, recall, precision and lesion-wise F1
 * (connected components, 8-connectivity, detected at >= 1 voxel of
 * overlap); empty masks as docs/metrics.md#empty-masks says. The pseudo-class "mean" is
 * the mean over the foreground classes of each case.
 *
 * Statistics, per data set, entry, class and metric, with the values of a
 * case averaged over the seeds first (y_i): mean and its percentile
 * bootstrap CI over the cases; mean +- standard deviation over seeds of
 * the per-seed means; the paired difference y_i - baseline_i with its
 * bootstrap CI and the two-sided Wilcoxon signed-rank p-value (stats.h).
 * Ranking of a data set: by the "mean" class's Dice (higher first), ties by
 * the smallest class's Dice, then by name; overall: by the mean rank over
 * the data sets, ties by the mean of the ranking scores.
 *
 * Cross-validation ("folds": K) and ensemble entries ("ensemble": true):
 * see sl_bench_preset.nfolds, sl_bench_entry.ensemble and docs/benchmark.md.
 *
 * Files (all written to a temporary name and renamed): DIR/preset.json
 * (the preset as parsed, for --resume), DIR/runs/DATA/seedS/LOSS/ (the
 * trainer's folder of each training), DIR/results/DATA__seedS__ENTRY.json
 * (one per run: its existence marks the run done), DIR/results/DATA__search__ENTRY.json
 * (a searched entry's weight search on a data set), DIR/overlays/DATA/caseI__ENTRY.png,
 * DIR/results.csv, DIR/results.json, DIR/report.md, DIR/report.html.
 *
 * The library never prints; progress goes to the callback.
 */
#ifndef SEGLOSS_BENCH_H
#define SEGLOSS_BENCH_H

#include "segloss/core.h"
#include "segloss/train.h"

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

#define SL_BENCH_MAX_BUDGETS 4   /* budget factors of a budget study */
#define SL_BENCH_NAME 64   /* capacity of names (entries, data sets, presets), with the NUL */

/* ------------------------------------------------------------------ preset */

typedef struct sl_bench_dataset {
    char name[SL_BENCH_NAME];  /* label in the tables ("phantom 1%") */
    char slug[SL_BENCH_NAME];  /* file-name form of name ([A-Za-z0-9+._-], others '_') */
    int sweep;                 /* 1: a point of the imbalance sweep chart */
    sl_train_config config;    /* everything but loss and seed (loss = "ce", seed = 0 here) */
} sl_bench_dataset;

/* A search of an entry's free weights (docs/benchmark.md, "Searching
 * compound weights"); opaque, owned by the preset. */
typedef struct sl_bench_search sl_bench_search;

typedef struct sl_bench_entry {
    char name[SL_BENCH_NAME];  /* label ("dice+ce", "staged", "dice+ce +TTA") */
    char slug[SL_BENCH_NAME];
    char loss[SL_TRAIN_TEXT];  /* loss spec or schedule (segloss/schedule.h) */
    int tta;                   /* TTA at test time, an sl_tta: 0 none, 1 flip (the preset's
                                  false/true), 2 rot, 3 aug (tta_n draws) */
    int int8;                  /* 1: the trained model quantised to INT8 (calibrated
                                  on SL_BENCH_INT8_CALIB training images) */
    int budget;                /* the data set's epochs are multiplied by this (1; the
                                  budget study's copies, "NAME @4x", have 4) */
    int crf;                   /* 1: dense CRF post-processing (segloss/crf.h, default
                                  parameters) of the test softmax before the argmax
                                  (appended field) */
    sl_bench_search *search;   /* NULL; else `loss` holds free weights ("a*dice+b*ce")
                                  chosen per data set by successive halving */
    int tta_n;                 /* aug: draws (seed 0) (appended field) */
    int postprocess;           /* 1: the test labels post-processed by the rule chosen
                                  on the validation split (sl_postprocess_fit) */
    int ensemble;              /* 1: no training of its own: the mean softmax of the
                                  trainings (every seed and fold) of the non-ensemble
                                  entry with the same loss and budget, tested once per
                                  data set (appended field) */
} sl_bench_entry;

/* Training images an INT8 entry calibrates its activation ranges on (the
 * first ones of the training split, without augmentation). */
#define SL_BENCH_INT8_CALIB 32

typedef struct sl_bench_preset {
    char name[SL_BENCH_NAME];
    char description[512];
    int baseline;              /* index of the baseline entry */
    int nseeds;
    uint64_t *seeds;           /* [nseeds], distinct */
    int ndatasets;
    sl_bench_dataset *datasets;/* [ndatasets] */
    int nentries;
    sl_bench_entry *entries;   /* [nentries], distinct names and slugs */
    int64_t bootstrap;         /* bootstrap resamples (2000) */
    double ci_level;           /* confidence level (0.95) */
    uint64_t stats_seed;       /* seed of every bootstrap (1) */
    int overlay_cases;         /* test cases shown as overlays per data set (3) */
    double nsd_tolerance;      /* NSD tolerance in pixels (1) */
    char *json;                /* the preset as canonical JSON (what preset.json holds) */
    /* The budget study ("budget_study": [1, 4]): the preset's nbase_entries
     * losses are repeated at each budget factor, entries[k * nbase_entries + i]
     * being loss i at budgets[k] times the epochs (budgets[0] = 1). Without a
     * study nbudgets = 0 and nbase_entries = nentries. */
    int nbudgets;
    int budgets[SL_BENCH_MAX_BUDGETS];
    int nbase_entries;
    /* k-fold cross-validation ("folds": K, 2 <= K <= 10; 0 = none): every
     * data set's training and validation splits pooled and split into K
     * folds by sl_dataset_fold (seeded by the data, so every loss and seed
     * sees the same folds); each seed trains K times, fold k validating on
     * fold k; every training is tested on the data set's test split. The
     * runs of an entry on a data set are its nseeds x nfolds trainings,
     * pooled like seeds in the statistics. */
    int nfolds;
} sl_bench_preset;

/*
 * Parses a preset (docs/benchmark.md gives the format) and checks it
 * completely: every training configuration (sl_train_config_check), every
 * loss spec or schedule, names, seeds, the baseline. Opens no data.
 * *out is NULL on failure. Codes: SL_EINVAL (NULL), SL_EFORMAT (not JSON,
 * wrong type; msg names the key as "datasets[1].data_opts.noise"),
 * SL_EUNKNOWN (unknown key), SL_ERANGE (value out of range), the codes of
 * sl_train_config_parse / sl_schedule_create, SL_ENOMEM.
 */
sl_status sl_bench_preset_parse(sl_bench_preset **out, const char *json, char *msg, size_t msglen);

/* The same from a file. SL_EIO if it cannot be read. */
sl_status sl_bench_preset_load(sl_bench_preset **out, const char *path, char *msg, size_t msglen);

/* Releases a preset; NULL is a no-op. */
void sl_bench_preset_free(sl_bench_preset *p);

/* Runs of a preset: datasets x seeds x folds (1 without folds) x entries
 * (0 for NULL). */
int64_t sl_bench_num_runs(const sl_bench_preset *p);

/* ---------------------------------------------------------------- progress */

typedef enum sl_bench_event {
    SL_BENCH_START = 0,   /* before the first training (runs, runs_done from earlier calls) */
    SL_BENCH_TRAIN = 1,   /* a training begins (dataset, seed, entry = its first entry) */
    SL_BENCH_EPOCH = 2,   /* an epoch of that training ended */
    SL_BENCH_RUN = 3,     /* a run's result was written (or it failed: failed = 1) */
    SL_BENCH_REPORT = 4   /* the report files are being written */
} sl_bench_event;

typedef struct sl_bench_progress {
    sl_bench_event event;
    int64_t run;          /* RUN: 1-based number of the run among all runs, in order of completion */
    int64_t runs;         /* runs of the preset */
    int64_t runs_done;    /* runs with a result, earlier calls included */
    int64_t runs_resumed; /* runs found done at the start (--resume) */
    const char *dataset, *entry; /* names (TRAIN, EPOCH, RUN) */
    uint64_t seed;
    int64_t epoch, epochs;/* EPOCH: 0-based epoch and total */
    int failed;           /* RUN: the training stopped with a non-finite loss */
    const char *message;  /* RUN: the failure, or a one-line summary of the run */
    double seconds;       /* since the call began */
    double eta;           /* estimated seconds left (NaN until something was timed) */
} sl_bench_progress;

/* Called from the worker threads, one call at a time. Return non-zero to
 * stop: runs in progress stop at their next step (their trainer
 * checkpoints stay), the call returns SL_OK with outcome.completed = 0. */
typedef int (*sl_bench_callback)(const sl_bench_progress *p, void *user);

/* --------------------------------------------------------------------- run */

typedef struct sl_bench_opts {
    const char *out_dir;  /* required */
    int threads;          /* runs trained at once, one thread each (0 = the core count);
                             results do not depend on it */
    int resume;           /* 1: keep the runs DIR already holds (a DIR that does not
                             exist or holds nothing is started); the preset must be
                             the one DIR was started with */
    int force;            /* 1: remove an earlier benchmark's files in DIR first */
    int report_only;      /* 1: train nothing; rebuild the report from DIR's results
                             (every trained run must have one; ensemble entries
                             without one are evaluated from the trained models) */
    int run_only;         /* 1: do task `run` only (a job array's task; see below) */
    int64_t run;          /* with run_only: the task, 0 <= run < sl_bench_num_tasks(p) */
} sl_bench_opts;

#define SL_BENCH_OPTS_DEFAULT {NULL, 0, 0, 0, 0, 0, 0}

/*
 * Tasks, for running a preset on several machines at once (a Slurm job
 * array, a Kubernetes indexed Job): task k is one training of the preset
 * and the evaluation of the entries that share it (entries that differ only
 * in evaluation options, e.g. TTA, are trained once; an entry with a
 * weight search is one task per data set: the search, then its run for
 * every seed, numbered where its first seed's task would be), so a preset has
 * sl_bench_num_tasks(p) <= sl_bench_num_runs(p) tasks, numbered in the
 * order data set, seed, entry. With run_only, sl_bench_run does task `run`
 * alone: it starts DIR if it is new (or checks it holds this preset, as
 * resume does), holding DIR's lock only for that (waiting while another
 * task holds it), trains with one thread, writes the task's result files
 * and no report (make it with report_only once every task has ended). A
 * task whose results exist already does nothing; one interrupted resumes
 * from its checkpoint when run again. resume, force and report_only are
 * refused with it (SL_EINVAL), and a task out of range is SL_EINVAL.
 * outcome->completed = 1 when the task's runs all have results.
 */
int64_t sl_bench_num_tasks(const sl_bench_preset *p);

typedef struct sl_bench_outcome {
    int completed;        /* 1: every run has a result and the report is written */
    int64_t runs, runs_done, runs_resumed, runs_failed;
    double seconds;       /* wall time of this call */
    double cpu_seconds;   /* CPU time of the process during this call */
    char *ranking;        /* the ranking tables as plain text (malloc'ed; NULL unless completed) */
} sl_bench_outcome;

#define SL_BENCH_OUTCOME_EMPTY {0, 0, 0, 0, 0, 0.0, 0.0, NULL}

void sl_bench_outcome_free(sl_bench_outcome *o);

/*
 * Runs the benchmark (see the top of this file). A DIR that holds an
 * earlier benchmark is refused unless resume, force or report_only.
 * A run whose training produced a non-finite loss is recorded as failed
 * (its entry is left out of that data set's statistics and ranking); any
 * other failure stops the call with its code, and the runs finished so
 * far stay for --resume. outcome may be NULL.
 * Codes: SL_EINVAL (NULL, bad opts), SL_EBADSTATE (DIR holds a benchmark
 * and neither resume, force nor report_only is set; resume with another
 * preset; report_only with runs missing), SL_EIO, SL_EFORMAT (a corrupt
 * result file, named), the trainer's and data module's codes, SL_ENOMEM.
 */
sl_status sl_bench_run(const sl_bench_preset *p, const sl_bench_opts *opts, sl_bench_callback cb, void *user,
                       sl_bench_outcome *outcome, char *msg, size_t msglen);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
