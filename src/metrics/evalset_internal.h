/*
 * Private pieces of the evaluation set (evalset.c: cases, reading,
 * scoring; evalset_out.c: summaries and outputs). Not installed.
 *
 * The metric table: one output column per entry, read from a field of
 * sl_metric_result. A new metric family adds its columns here (and, when
 * it needs a new group of sl_metrics_eval, the group bit); aliases name
 * several columns at once.
 */
#ifndef SL_EVALSET_INTERNAL_H
#define SL_EVALSET_INTERNAL_H

#include <stddef.h>
#include "segloss/io.h"
#include "segloss/metrics.h"

/* kind: 'd' a double score, 'D' a distance (+inf when one side is empty,
 * replaced by the empty distance in the outputs), 'i' an int64 count. */
typedef struct ev_column {
    const char *name;
    size_t off;
    char kind;
    unsigned group;
} ev_column;

extern const ev_column ev_columns[];
extern const int ev_ncolumns;

/* One case: its inputs, and what scoring made of it. */
typedef struct ev_case {
    char *id, *pred, *gt;   /* pred/gt: file paths, NULL for maps in memory */
    sl_labelmap mp, mg;     /* maps in memory (borrowed) */
    sl_grid mgrid;
    int inmem;

    /* the loaded images (files) */
    sl_array ap, ag;
    sl_grid grid;
    int loaded;
    size_t bytes;

    int64_t *found;         /* labels present in P or G (label scan) */
    int64_t nfound;
    sl_metric_result *res;  /* [nlabels] */
    double empty_distance;  /* substituted for infinite distances */
    int ndim;
    sl_status st;           /* SL_OK or this case's failure */
    char err[1100];
    char warn[600];         /* warnings of this case ('\n'-terminated lines) */
} ev_case;

struct sl_evalset {
    sl_eval_opts o;         /* copy; o.labels points at labels, o.columns at columns */
    char *columns;
    int64_t *labels;
    int nlabels, labels_all;
    int cols[128], ncols;   /* indices into ev_columns, in request order */
    ev_case *cases;
    int ncases, cap;
    int scored, failed;
    char describe[512];
    char *warnings;
};

/* Output value of column c (an ev_columns index) for case i, label l. */
double ev_value(const sl_evalset *s, int i, int l, int c, int *subst);

#endif
