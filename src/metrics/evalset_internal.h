/*
 * Private pieces of the evaluation set (evalset.c: cases, reading,
 * scoring; evalset_cols.c: the metric table; evalset_out.c: rows,
 * summaries, outputs and the merge of shards). Not installed.
 *
 * The pipeline: cases are scored into sl_metric_result (plus a few
 * per-case extras); scoring ends by "materialising" one row per case and
 * target: the output values of every column, the empty flags and the
 * confusion counts. Summaries and every writer read rows only, so a merge
 * of shard JSON files, which rebuilds the rows from the files, writes
 * exactly what one unsharded run writes.
 */
/*
 * Extending the engine:
 *   - a metric computed from what scoring already has (the counts, a field
 *     of sl_metric_result): one ev_columns entry with a get() function
 *     (evalset_cols.c), plus an alias if it belongs to a family;
 *   - a metric needing more of the case (components, the whole label map):
 *     an EV_NEED_* bit, its per-target storage in ev_case (like fp_ml), the
 *     computation in score_target()/case_extras() (evalset.c);
 *   - another input per case (probabilities, several raters): fields in
 *     ev_case beside pred/gt, an sl_evalset_add_* entry that fills them,
 *     and their loading in load_case(); rows and every writer then work
 *     unchanged, and a merge needs nothing new as long as the values are
 *     columns.
 */
#ifndef SL_EVALSET_INTERNAL_H
#define SL_EVALSET_INTERNAL_H

#include <stddef.h>
#include "segloss/io.h"
#include "segloss/metrics.h"

struct ev_case;
typedef struct sl_evalset sl_evalset_t;

/* Extra inputs a column may need beyond sl_metrics_eval (bits of `need`). */
#define EV_NEED_FPFN 0x1u    /* false-positive / false-negative component volumes */
#define EV_NEED_PIXACC 0x2u  /* the case's pixel accuracy (all labels at once) */
#define EV_NEED_PQ 0x4u      /* panoptic quality of the target's components */
#define EV_PQ_N 6            /* values per target in ev_case.pq */

/*
 * One output column. kind: 'd' a double score, 'D' a distance (+inf when
 * one side is empty, replaced by the empty distance in the outputs), 'i'
 * an int64 count, 'v' a volume or per-case quantity (never set to NaN by
 * the empty rule). Values come from a field of sl_metric_result (get ==
 * NULL) or from get(). pooled: the value is a function of the confusion
 * counts alone, so a pooled ("micro") value over the cases exists: get()
 * is called on a result holding the summed counts, with c = NULL.
 */
typedef struct ev_column {
    const char *name;
    size_t off;
    char kind;
    unsigned group; /* SL_MET_* group(s) needed */
    unsigned need;  /* EV_NEED_* */
    int pooled;
    double (*get)(const sl_evalset_t *s, const sl_metric_result *r, const struct ev_case *c, int t);
} ev_column;

extern const ev_column ev_columns[];
extern const int ev_ncolumns;
/* Expands a comma list of names and aliases into column indices (in
 * request order, no repeats). SL_EINVAL names an unknown one. */
sl_status ev_parse_columns(const char *list, int *cols, int *ncols, int cap, char *msg, size_t msglen);
int ev_find_column(const char *name);

/* A scored target: one label, a named union of labels (region), or the
 * mean over the case's foreground targets. */
enum { EV_LABEL = 0, EV_REGION = 1, EV_MEAN = 2 };
typedef struct ev_target {
    char name[48];
    int kind;
    int64_t label;   /* EV_LABEL */
    int64_t *set;    /* EV_REGION: its labels */
    int nset;
} ev_target;

/* One case: its inputs, and what scoring made of it. */
typedef struct ev_case {
    char *id, *pred, *gt;   /* pred/gt: file paths, NULL for maps in memory */
    sl_labelmap mp, mg;     /* maps in memory (borrowed) */
    sl_grid mgrid;
    int inmem;

    sl_array ap, ag;        /* the loaded images (files) */
    sl_grid grid;
    int loaded;
    size_t bytes;

    int64_t *found;         /* labels present in P or G (label scan) */
    int64_t nfound;
    sl_metric_result *res;  /* [ntargets] */
    double *fp_ml, *fn_ml;  /* [ntargets] with EV_NEED_FPFN */
    double *pq;             /* [ntargets][EV_PQ_N] PQ, SQ, RQ, TP, FP, FN with EV_NEED_PQ */
    double pixel_accuracy;  /* with EV_NEED_PIXACC */
    int64_t n_ignored;      /* voxels of the ignore label */
    double empty_distance;  /* substituted for infinite distances */
    int ndim;
    sl_status st;           /* SL_OK or this case's failure */
    char err[1100];
    char warn[600];         /* warnings of this case ('\n'-terminated lines) */
} ev_case;

/* One output row (case i, target t). */
typedef struct ev_row {
    int empty_pred, empty_gt, subst;
    int64_t cm[4];          /* tp, fp, fn, tn (-1 when not counted) */
} ev_row;

struct sl_evalset {
    sl_eval_opts o;         /* copy; pointers re-aimed at the set's own copies */
    char *columns, *regions;
    int64_t *labels;        /* explicit or discovered labels */
    int nlabels, labels_all;
    ev_target *targets;
    int ntargets;
    int cols[128], ncols;   /* indices into ev_columns, in request order */
    unsigned need;
    ev_case *cases;
    int ncases, cap;
    int scored, failed;
    char describe[512];
    char *warnings;
    /* rows (after scoring or merging) */
    double *vals;           /* [ncases][ntargets][ncols] */
    ev_row *rows;           /* [ncases][ntargets] */
    void *conventions;      /* cJSON object copied from merged parts, or NULL */
    int merged;
};

/* Row storage and the materialisation of scored results (evalset_out.c). */
sl_status ev_materialise(sl_evalset *s);
void ev_free_conventions(sl_evalset *s);
/* Overlap metrics recomputed from counts (TN corrected for the ignore
 * label) on a grid. */
void ev_overlap_from_counts(sl_metric_result *r, int64_t tp, int64_t fp, int64_t fn, int64_t tn, const sl_grid *g);

#endif
