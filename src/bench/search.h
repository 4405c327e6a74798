/*
 * Choosing a compound loss's weights by successive halving (Jamieson &
 * Talwalkar 2016; the inner loop of Li et al.'s Hyperband). A preset entry
 * whose spec holds free weights ("a*dice+b*ce") and a "search" object with
 * their ranges gets its weights from a search on the validation split of
 * each data set; docs/benchmark.md ("Searching compound weights") is the
 * manual. Private to the benchmark; the unit tests include it.
 */
#ifndef SL_BENCH_SEARCH_H
#define SL_BENCH_SEARCH_H

#include "bench_internal.h"

#define SLB_SEARCH_MAX_FREE 8    /* free weights of one spec */
#define SLB_SEARCH_MAX_CAND 64   /* candidates (n) */
#define SLB_SEARCH_MAX_RUNGS 8   /* n <= 64 and eta >= 2 give at most 6 */
#define SLB_SEARCH_NAME 32       /* capacity of a free weight's name, with the NUL */

struct sl_bench_search {
    int nfree;
    char names[SLB_SEARCH_MAX_FREE][SLB_SEARCH_NAME];
    double lo[SLB_SEARCH_MAX_FREE], hi[SLB_SEARCH_MAX_FREE];
    int logscale[SLB_SEARCH_MAX_FREE];
    int grid;                    /* 0: random sampling, 1: grid */
    int n, eta;
    int64_t min_epochs;
    /* the candidates' weights, rounded to 3 significant digits (the spec's text is exact) */
    double values[SLB_SEARCH_MAX_CAND][SLB_SEARCH_MAX_FREE];
};

/*
 * Parses and checks an entry's "search" object for the spec `loss` (where
 * = "losses[3]" for messages): every free name of the spec has a range and
 * every range a free name; bounds finite, 0 <= lo < hi (lo > 0 on a log
 * scale); method "random" (n candidates drawn from seed and the entry's
 * name) or "grid" (n = m^k points, m per free weight); 2 <= n <= 64,
 * 2 <= eta <= n, min_epochs >= 1. Every candidate's spec is then checked
 * by the schedule parser. *out is malloc'ed (NULL on failure).
 */
sl_status slb_search_parse(const struct cJSON *o, const char *loss, const char *name, uint64_t seed, const char *where,
                           sl_bench_search **out, char *msg, size_t msglen);

/* The canonical "search" object (ranges as [lo, hi, "log"|"linear"]). */
struct cJSON *slb_search_json(const sl_bench_search *s);

/* The first free name of a spec (an identifier where a numeric weight
 * stands: followed by '*'), copied to name; 0 when it has none. */
int slb_search_first_free(const char *loss, char *name, size_t len);

/* loss with the free names replaced by candidate k's weights ("%.3g").
 * SL_ERANGE when out is too small. */
sl_status slb_search_spec(const sl_bench_search *s, const char *loss, int k, char *out, size_t len);

/*
 * The halving schedule for n candidates, factor eta, and a final budget of
 * `epochs`: rung r trains keep[r] candidates for ep[r] epochs; keep[0] = n,
 * keep[r + 1] = max(1, floor(keep[r] / eta)), until one is left; the last
 * rung has `epochs`, each earlier one eta times fewer (integer division),
 * at least min_epochs. Returns the number of rungs (0 for bad arguments).
 */
int slb_search_schedule(int n, int eta, int64_t epochs, int64_t min_epochs, int keep[SLB_SEARCH_MAX_RUNGS],
                        int64_t ep[SLB_SEARCH_MAX_RUNGS]);

/* The order of a rung: the candidates idx[0..m) sorted by score, higher
 * first, NaN (a failed training) last, ties by the lower index. */
void slb_search_rank(const double *score, int *idx, int m);

/* ---------------------------------------------------------------- outcome */

typedef struct slb_search_outcome {
    int nrungs;
    int keep[SLB_SEARCH_MAX_RUNGS];
    int64_t epochs[SLB_SEARCH_MAX_RUNGS];
    /* per rung and candidate: trained (1) and its validation Dice (NaN: the
     * training's loss became non-finite) */
    unsigned char trained[SLB_SEARCH_MAX_RUNGS][SLB_SEARCH_MAX_CAND];
    double score[SLB_SEARCH_MAX_RUNGS][SLB_SEARCH_MAX_CAND];
    double cpu_seconds;          /* CPU time of the trainings, summed (each on one thread) */
    double seconds;              /* their wall time, summed */
    int done;                    /* 1: chosen is final */
    int chosen;                  /* the candidate */
    char spec[SL_TRAIN_TEXT];    /* its spec */
} slb_search_outcome;

/* DIR/results/DATA__search__ENTRY.json */
sl_status slb_search_path(char *buf, size_t len, const char *dir, const sl_bench_preset *p, int d, int e);
/* The outcome as the file holds it (also results.json's "searches"). */
struct cJSON *slb_search_outcome_json(const sl_bench_preset *p, int d, int e, const slb_search_outcome *o);
/* Reads an outcome file, checked against entry e on data set d. */
sl_status slb_search_read(const char *path, const sl_bench_preset *p, int d, int e, slb_search_outcome *o, char *msg,
                          size_t msglen);

/* Trains one configuration for the search (the runner's, with its progress
 * and stop): label names the training in the progress; base and part are
 * the job's cost done before it and its own cost. tr->completed = 0 when
 * stopped. */
typedef sl_status (*slb_search_train_fn)(void *user, const sl_train_config *cfg, const char *label, double base, double part,
                                         sl_train_result *tr, char *msg, size_t msglen);

typedef struct slb_search_job {
    const sl_bench_preset *p;
    const char *dir;
    int d, e;
    const sl_train_config *base; /* the data set's configuration for the first seed: seed,
                                    epochs (budget applied), dataset, threads, out_dir "" */
    double epoch_cost;           /* the cost of one epoch (progress) */
    slb_search_train_fn train;
    void *user;
} slb_search_job;

/*
 * The search of entry e on data set d: continues the outcome file when
 * there is one (a finished search is only read), trains what is left with
 * the test split never loaded (skip_test), and writes the file atomically
 * after every training. o->done = 0 when a training was stopped.
 */
sl_status slb_search_run(const slb_search_job *sj, slb_search_outcome *o, char *msg, size_t msglen);

/* The cost of a whole search in epochs of a training. */
double slb_search_epochs(const sl_bench_search *s, int64_t epochs);

/* ----------------------------------------------------------------- report */

/* The spec a run of (d, e) trained: the chosen one for a searched entry. */
const char *slb_report_spec(const slb_report *r, int d, int e);
/* Loads the outcome of every searched (d, e) into r->search ([d][e], NULL
 * elsewhere; released by slb_search_free_all). */
sl_status slb_search_load_all(const sl_bench_preset *p, const char *dir, slb_search_outcome ***out, char *msg, size_t msglen);
void slb_search_free_all(const sl_bench_preset *p, slb_search_outcome **all);
void slb_search_markdown(const slb_report *r, slb_str *s);
void slb_search_html(const slb_report *r, slb_str *h);
/* results.json's "searches" array (NULL on allocation failure). */
struct cJSON *slb_search_results_json(const slb_report *r);

#endif
