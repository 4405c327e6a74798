/*
 * segloss/loss.h — segmentation losses with exact analytic gradients.
 *
 * A loss is configured once from a spec string (or from term descriptions)
 * and then evaluated many times:
 *
 *     sl_loss *loss;
 *     char msg[256];
 *     if (sl_loss_create("dice+ce", &loss, msg, sizeof msg) != SL_OK) { puts(msg); return 1; }
 *     sl_dims dims = {.n = 2, .c = 4, .spatial_ndim = 3, .spatial = {64, 64, 64}};
 *     sl_target tgt = {.kind = SL_TARGET_LABELS, .labels = labels};
 *     double value;
 *     sl_loss_forward(loss, logits, &dims, &tgt, NULL, &value, grad, msg, sizeof msg);
 *     sl_loss_free(loss);
 *
 * The spec grammar (docs/losses.md lists every loss and key):
 *
 *     spec  := term ('+' term)*
 *     term  := [number '*'] name ['(' key '=' value (',' key '=' value)* ')']
 *     value := number | true | false | word | '[' number (',' number)* ']'
 *
 * Data layout (docs/internals.md): scores are float32, C-contiguous,
 * (N, C, spatial...) — logits by default; the loss applies softmax (C > 1)
 * or sigmoid (C = 1) itself, or takes probabilities with activation=none.
 * Targets are a label map (N, spatial...) of int32 class indices, or a
 * one-hot / soft float32 target (N, C, spatial...). The gradient has the
 * shape of the scores and is taken with respect to them as given.
 */
#ifndef SEGLOSS_LOSS_H
#define SEGLOSS_LOSS_H

#include "segloss/core.h"

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

typedef enum sl_target_kind {
    SL_TARGET_LABELS = 0, /* labels: (N, spatial...) int32 class indices */
    SL_TARGET_SOFT = 1    /* soft: (N, C, spatial...) float32 in [0, 1] */
} sl_target_kind;

typedef struct sl_target {
    sl_target_kind kind;
    const int32_t *labels; /* for SL_TARGET_LABELS; values in [0, C) (in {0, 1}
                              for a single sigmoid channel), or equal to a
                              term's ignore_index */
    const float *soft;     /* for SL_TARGET_SOFT */
    const float *mask;     /* optional per-voxel weights (N, 1, spatial...) float32, the
                              layout of labels: 0 excludes a voxel from every statistic
                              of every term, w > 0 weights it (a mean becomes
                              Σ w·l / Σ w, a region sum Σ p·g becomes Σ w·p·g). NULL =
                              every voxel weighs 1. Weights must be finite and >= 0.
                              Every loss of the catalogue takes one (a loss that could
                              not would refuse it with SL_EINVAL); docs/losses.md#masks
                              gives each loss's masked form. */
} sl_target;

/* Per-call options of sl_loss_forward. */
typedef struct sl_forward_opts {
    double spacing[SL_MAX_SPATIAL]; /* voxel size per spatial axis, array order (mm) */
    const float *dist;  /* optional precomputed signed distance maps (N, C, spatial...)
                           for the boundary losses; NULL = computed from the target */
    int threads;        /* 0 = OpenMP default */
    int training;       /* 1 = stateful losses (adaptive_dice) update their state */
} sl_forward_opts;

#define SL_FORWARD_OPTS_DEFAULT {{1.0, 1.0, 1.0}, NULL, 0, 0}

typedef struct sl_loss sl_loss;

/* ---- building a loss ---------------------------------------------------- */

typedef enum sl_param_kind {
    SL_PARAM_NUMBER = 0,
    SL_PARAM_BOOL,
    SL_PARAM_WORD,
    SL_PARAM_LIST
} sl_param_kind;

/* One key=value of a term. Strings and lists are borrowed for the duration
 * of sl_loss_create_terms only. */
typedef struct sl_param {
    const char *key;
    sl_param_kind kind;
    double number;      /* SL_PARAM_NUMBER */
    int boolean;        /* SL_PARAM_BOOL */
    const char *word;   /* SL_PARAM_WORD */
    const double *list; /* SL_PARAM_LIST */
    int list_len;
} sl_param;

/* One weighted term of a loss: weight * name(params...). */
typedef struct sl_term_desc {
    const char *name;
    double weight;
    int nparams;
    const sl_param *params;
} sl_term_desc;

/*
 * Parses `spec` and builds a loss. On failure returns SL_EFORMAT (syntax),
 * SL_EUNKNOWN (unknown loss name or key), SL_EINVAL (a value of the wrong
 * type or out of range), SL_ENOMEM; writes a one-line reason naming the
 * offending part to msg (may be NULL) and leaves *out NULL.
 * The loss is released with sl_loss_free().
 */
sl_status sl_loss_create(const char *spec, sl_loss **out, char *msg, size_t msglen);

/* The same from term descriptions (what sl_loss_create builds internally). */
sl_status sl_loss_create_terms(const sl_term_desc *terms, int nterms, sl_loss **out,
                               char *msg, size_t msglen);

/* Releases a loss; NULL is a no-op. */
void sl_loss_free(sl_loss *loss);

/*
 * Evaluates the loss. scores: (N, C, spatial...) float32 per dims; target as
 * described above; opts may be NULL (defaults). Writes the scalar loss to
 * *value and, when grad is not NULL, d(loss)/d(scores) to grad (same shape,
 * overwritten). Per-term values are kept for sl_loss_term_value().
 * Codes: SL_EINVAL (NULL scores/target/value, bad options, a mask given to a
 * term that takes none), SL_ESHAPE (dims
 * invalid or not what a term needs, e.g. a class-weight list of the wrong
 * length), SL_ERANGE (a label outside [0, C), a probability outside [0, 1]
 * with activation=none, a soft target outside [0, 1], a negative mask
 * weight), SL_ENONFINITE (NaN or Inf in the scores, target or mask, or a
 * non-finite result), SL_ENOMEM.
 * On failure *value and grad are unspecified and msg names the problem.
 * Thread-safety: one loss object must not be used by two threads at once.
 */
sl_status sl_loss_forward(sl_loss *loss, const float *scores, const sl_dims *dims,
                          const sl_target *target, const sl_forward_opts *opts,
                          double *value, float *grad, char *msg, size_t msglen);

/* Number of terms, a term's loss name, weight, and unweighted value from the
 * last successful forward (NaN before). Out-of-range i gives NULL / NaN. */
int sl_loss_num_terms(const sl_loss *loss);
const char *sl_loss_term_name(const sl_loss *loss, int i);
double sl_loss_term_weight(const sl_loss *loss, int i);
double sl_loss_term_value(const sl_loss *loss, int i);

/* Changes a term's weight (used by weight schedules). SL_EINVAL for a bad
 * index or a non-finite weight. */
sl_status sl_loss_set_term_weight(sl_loss *loss, int i, double weight);

/* Specs made only of region losses (dice, iou, tversky, ...) and cross-entropy
 * are evaluated in two fused passes over the scores; everything else through
 * materialised probabilities. Both give the same numbers up to float
 * rounding. enabled = 0 forces the plain path (for tests and benchmarks).
 * SL_EINVAL for NULL. */
sl_status sl_loss_set_fused(sl_loss *loss, int enabled);

/* ---- the catalogue ------------------------------------------------------ */

typedef struct sl_loss_info {
    const char *name;      /* spec name: "dice" */
    const char *family;    /* "distribution", "region", "boundary", "compound" */
    const char *summary;   /* one line */
    const char *reference; /* paper, and the implementation whose numbers it matches */
} sl_loss_info;

/* Number of losses in the catalogue and the i-th entry (NULL out of range). */
int sl_loss_catalogue_size(void);
const sl_loss_info *sl_loss_catalogue(int i);

/* Writes "key=default" descriptions of every key the named loss accepts,
 * comma separated, into buf. SL_EUNKNOWN for an unknown name; SL_EINVAL if
 * buf is too small (it is then truncated but terminated). */
sl_status sl_loss_describe_keys(const char *name, char *buf, size_t buflen);

/* ---- persistent state (stateful losses such as adaptive_dice) ----------------
 *
 * A stateful term keeps state between training forwards (adaptive_dice: one
 * running average per class). To resume training exactly, save it with
 * sl_loss_state_get and restore it into a loss built from the same spec with
 * sl_loss_state_set. The buffer is plain bytes, portable between machines
 * (little-endian, doubles bit for bit); it names the terms, so a loss of
 * another spec refuses it. Term weights are not part of it. A loss whose
 * terms have no state, or no state yet, saves a short buffer that restores
 * "no state yet".
 *
 * sl_loss_state_size: the number of bytes sl_loss_state_get writes now (it
 *   grows after the first forward of a stateful term). SL_EINVAL for NULL.
 * sl_loss_state_get: writes them to buf (len >= that size, else SL_EINVAL);
 *   *written (may be NULL) receives the count.
 * sl_loss_state_set: restores. SL_EFORMAT for a buffer that is not one
 *   (magic, version, truncation, trailing bytes), SL_EBADSTATE for a buffer
 *   from a loss with other terms; on failure the loss is unchanged and msg
 *   names the problem. SL_ENOMEM.
 */
sl_status sl_loss_state_size(const sl_loss *loss, size_t *bytes);
sl_status sl_loss_state_get(const sl_loss *loss, void *buf, size_t len, size_t *written);
sl_status sl_loss_state_set(sl_loss *loss, const void *buf, size_t len, char *msg, size_t msglen);

/* ---- batch statistics across processes (data-parallel training, DDP) ---------
 *
 * Under data parallelism each process ("rank") holds a shard of the global
 * batch. A loss whose statistics pool the batch (dice/iou/tversky/... with
 * batch=true, gdice's batch weights, weight=inverse|median class counts,
 * cross-entropy's mean over voxels, adaptive_dice's running average, the
 * mean over samples) differs on a shard from the loss of the whole batch.
 * A sum reducer makes it exact: the loss hands the reducer its pooled sums
 * (a few doubles: O(C) per term), the reducer sums them over the ranks IN
 * PLACE (an all-reduce with SUM; the layout is the library's business) and
 * returns 0, or non-zero on failure. Then, on every rank:
 *   - *value is the loss of the global batch, and each term's value
 *     (sl_loss_term_value) that term's global value;
 *   - grad is d(global loss)/d(this rank's scores). A data-parallel trainer
 *     that AVERAGES the ranks' parameter gradients (PyTorch DDP) multiplies
 *     it by the number of ranks first; one that sums them takes it as it is.
 * Exact also when the shards have different sizes. Calls per forward, in
 * this order, the same sequence on every rank: (1) before the first fused
 * pass, only when a term has weight=inverse|median: the class counts, so
 * that the weights of the first pass are global; (2) always, after the
 * first pass: the sample count, 6 sums per class, numerator and
 * denominator per cross-entropy term, and the summed values of the terms
 * that are means over samples (batch=false); then, only for adaptive_dice
 * without batch=true in a training forward, (3) the sum of its per-sample
 * Dice losses per class and (4) its value's share.
 *
 * Supported specs: those the two fused passes evaluate (sl_loss_set_fused):
 * region losses with batch=true or false and ce/wce/bce, one activation, one
 * ignore_index, no mask, no soft_label or pool_classes; adaptive_dice
 * included (with a reducer its state is updated from the global batch).
 * logcosh_dice needs batch=true (its log cosh is taken of the mean over
 * samples, which is not a sum of per-rank parts). Any other spec, a mask,
 * or sl_loss_set_fused(loss, 0) gives SL_EUNSUPPORTED naming the reason
 * before any call of the reducer. Every rank must call sl_loss_forward
 * with the same spec, C and activation the same number of times: a rank
 * that fails before a reduction leaves the others waiting in theirs (as
 * any collective does). A failing reducer makes the forward fail with
 * SL_EIO; a reduced sum that is not finite with SL_ENONFINITE.
 *
 * sl_loss_set_reducer: installs fn (called with user), or removes it with
 * fn = NULL. SL_EINVAL for a NULL loss.
 */
typedef int (*sl_reduce_fn)(double *sums, int64_t n, void *user);

sl_status sl_loss_set_reducer(sl_loss *loss, sl_reduce_fn fn, void *user);
/* ---- reduction="none": per-sample and per-class values ---------------------
 *
 * MONAI's and smp's reduction="none": instead of one scalar, the matrix M
 * (N, K) of the loss's values, and the gradient of any weighted sum
 * Σ u_nk·M_nk (u = the upstream gradient of M, as autograd passes it).
 *   K = C when every term is a per-class loss (dice, iou, tversky,
 *     focal_tversky, asym, mcc, sensspec, ssim, hausdorff_er, edge_dice,
 *     cldice; pool_classes=false): M_nc = Σ_t weight_t·w_c·L_t,nc, the
 *     (sample, class) value times its class weight, 0 in a column that
 *     include_background=false drops. The mean of the included columns is
 *     the loss of sample n, and the mean over samples the ordinary value.
 *   K = 1 otherwise: M_n = the loss of sample n alone (a batch of one).
 * Each sample is evaluated as a batch of one, so statistics a batch would
 * share are the sample's own: inverse/median class weights, topk's and
 * ohem's selection, lovasz with per_image=false, cldice's auto_iters. A loss
 * whose mean over voxels spans the batch (ce, focal, ...) equals the mean of
 * M when every sample has the same number (or weight) of valid voxels.
 *
 * sl_loss_none_columns: K for these dims. SL_EINVAL for a stateful term
 *   (adaptive_dice) or batch=true (no per-sample value), with msg naming it.
 * sl_loss_forward_none: writes M to values (N·K doubles, row-major) and,
 *   when grad is not NULL, d(Σ u·M)/d(scores) to grad (overwritten);
 *   upstream: (N, K) doubles, NULL = all ones (the gradient of Σ M). Codes
 *   as sl_loss_forward, plus SL_ENONFINITE for a non-finite upstream; a
 *   failure inside a sample names it ("sample 2: ..."); SL_EUNSUPPORTED
 *   when a sum reducer is installed (sl_loss_set_reducer). The fused path
 *   is not used; sl_loss_term_value() afterwards holds the last sample's
 *   terms.
 */
sl_status sl_loss_none_columns(const sl_loss *loss, const sl_dims *dims, int64_t *cols, char *msg, size_t msglen);
sl_status sl_loss_forward_none(sl_loss *loss, const float *scores, const sl_dims *dims, const sl_target *target,
                               const sl_forward_opts *opts, double *values, const double *upstream, float *grad,
                               char *msg, size_t msglen);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
