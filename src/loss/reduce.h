/*
 * The sum reducer of a loss (sl_loss_set_reducer in loss.h): what the fused
 * path (fused.c) hands across processes, and what it learns back. Private
 * to src/loss.
 */
#ifndef SL_LOSS_REDUCE_H
#define SL_LOSS_REDUCE_H
#include "term.h"

typedef struct sl_reducer sl_reducer;

struct sl_reducer {
    sl_reduce_fn fn; /* NULL: no reduction (every ctx then has red == NULL) */
    void *user;
    /* learnt during one forward */
    double n_local, n_global; /* samples on this rank and on all ranks (after the sums call) */
    int have_freq;            /* freq holds the global class counts of this forward */
    double *freq;             /* [C] Σ over valid voxels of g per class, all ranks; then the total */
    int64_t freq_cap;
    unsigned char *pre;       /* [nterms] 1: a per-sample term finalised before the sums call */
    int pre_cap;
};

/* Calls the reducer on v[n] and checks what it returns; `what` names the
 * sums in the error messages. SL_EIO if the reducer fails, SL_ENONFINITE if
 * a reduced sum is not finite. */
sl_status sl_reducer_call(sl_reducer *red, double *v, int64_t n, const char *what, char *msg, size_t msglen);

/* Before the fused passes: refuses what the reducer cannot make exact
 * (SL_EUNSUPPORTED) and, when a term weighs classes by their frequency,
 * reduces the class counts (read by sl_class_weights through cx->red). */
sl_status sl_reducer_begin(sl_reducer *red, const sl_term *terms, int nterms, const sl_ctx *cx, char *msg,
                           size_t msglen);

/* After the first pass: sums[N][NS] are the per-sample sums of fused.c
 * (6 per class first). The terms that are means over samples and need
 * nothing global (all but a training adaptive_dice) are finalised here,
 * from their own samples' sums; their coefficients times
 * n_local / n_global go to K (fused.c's layout, 3·N·C), their values
 * become global: red->pre marks them, fused.c skips them. One call reduces
 * the sample count, Σ_n sums and those terms' values; *gsum (allocated,
 * NS, the caller frees) receives the global Σ_n sums and *share
 * n_local / n_global. */
sl_status sl_reducer_sums(sl_reducer *red, sl_term *terms, int nterms, const sl_ctx *cx, const double *sums,
                          int64_t NS, double *K, double **gsum, double *share, char *msg, size_t msglen);

/* 1 for a term whose value is a mean over samples (its last_value then holds
 * this rank's share until sl_reducer_values). */
int sl_reducer_is_share(const sl_term *t);

/* After the ratios: sums the shares of the per-sample terms not finalised
 * in sl_reducer_sums (a training adaptive_dice) over the ranks, so that
 * every term's last_value is global, and recomputes *total. No call when
 * there is none. */
sl_status sl_reducer_values(sl_reducer *red, sl_term *terms, int nterms, double *total, char *msg, size_t msglen);

/* Why a spec does not take the fused path, for the refusal message: the
 * first term that is neither a region loss nor cross-entropy, or that has
 * soft_label, pool_classes or another ignore_index. */
const char *sl_reducer_misfit(const sl_term *terms, int nterms);

void sl_reducer_release(sl_reducer *red);

#endif
