/*
 * The loss framework's private interface: how one loss ("term class") plugs
 * in. A new loss is a file that defines an sl_term_class (name, keys with
 * defaults and ranges, an eval function) and a line in catalogue.c.
 *
 * The framework (loss.c) does everything common to all losses before eval:
 * validation of shapes, labels and finiteness; the activation (softmax,
 * sigmoid or none) computed once per forward and shared by the terms; and
 * after eval: the backward pass through the activation. So a term computes
 * its value from probabilities p and the target g, and writes its gradient
 * either with respect to p (dp, the usual case) or directly with respect to
 * the input scores (dx, for losses such as cross-entropy whose logit
 * gradient p − g is stabler than going through 1/p).
 */
#ifndef SL_LOSS_TERM_H
#define SL_LOSS_TERM_H

#include <math.h>
#include <stddef.h>
#include "internal.h"
#include "segloss/loss.h"

/* ---- parameters ---------------------------------------------------------- */

#define SL_LIST_MAX 256 /* longest list value (a 16x16 class matrix) */

typedef struct sl_list {
    int n; /* 0 = not given */
    double v[SL_LIST_MAX];
} sl_list;

enum { SL_ACT_AUTO = 0, SL_ACT_SOFTMAX, SL_ACT_SIGMOID, SL_ACT_NONE };
enum { SL_WEIGHT_NONE = 0, SL_WEIGHT_LIST, SL_WEIGHT_INVERSE, SL_WEIGHT_MEDIAN };

/*
 * Every parameter any loss takes lives in this one struct: a loss's key
 * table says which fields it uses, with their defaults and ranges. One
 * struct keeps parsing, validation and `segloss loss --list` in one place.
 */
typedef struct sl_params {
    /* keys shared by the region losses (and activation by all) */
    int activation;          /* SL_ACT_* */
    int include_background;  /* bool */
    int batch;               /* bool: pool the sums over the batch */
    double smooth_nr, smooth_dr;
    int weight_mode;         /* SL_WEIGHT_* */
    sl_list weight;          /* class weights when weight_mode == SL_WEIGHT_LIST */
    double ignore_index;     /* label to skip; NAN = none */
    /* loss-specific; the key table of each loss documents which it uses */
    double gamma, alpha, beta, delta, k, r, lambda, momentum, thresh;
    double label_smoothing, pos_weight, min_kept;
    sl_list alpha_list;      /* focal: per-class alpha */
    sl_list matrix;          /* gwdice: class distance matrix M (C x C) */
    int squared, log, per_image;
    int mode;                /* an enumerated choice (w_type, classes, variant...) */
    int iters, width, connectivity, window;
    double sigma, p_boundary, p_inner;
    int soft_label;          /* region losses: tp = (Σp + Σg − Σ|p − g|)/2 (region.c) */
    int auto_iters;          /* cldice: iterations from the target's object size */
    double gamma_dice, gamma_ce, w_dice, w_ce; /* exp_log */
    int normalized;          /* focal: smp's normalized focal loss */
    double reduced_threshold; /* focal: smp's reduced focal loss (0 = off) */
    int pool_classes;        /* region losses: add the included classes' sums before the ratio */
    int normalize;           /* gdice/pgdice: normalise the class weights to sum 1 */
} sl_params;

typedef enum sl_key_type {
    SL_KEY_NUMBER,      /* double field */
    SL_KEY_INT,         /* int field, value must be integral */
    SL_KEY_BOOL,        /* int field, true/false */
    SL_KEY_ENUM,        /* int field, one of `words` ("a|b|c" → 0, 1, 2) */
    SL_KEY_LIST,        /* sl_list field */
    SL_KEY_NUMBER_OR_LIST, /* number → list of one value (alpha) */
    SL_KEY_WEIGHT,      /* class weights: list, or the word inverse|median */
    SL_KEY_LABEL        /* ignore_index: an integer, default none (NAN) */
} sl_key_type;

typedef struct sl_key {
    const char *key;
    sl_key_type type;
    size_t offset;      /* offsetof(sl_params, field) */
    double def;         /* default (numbers, ints, bools, enum index) */
    double lo, hi;      /* inclusive range for numbers and list entries */
    const char *words;  /* SL_KEY_ENUM: "square|simple|uniform" */
    const char *doc;    /* shown by `segloss loss --list` (default text if not numeric) */
} sl_key;

#define SL_P(field) offsetof(sl_params, field)

/* The keys every region loss accepts (docs/losses.md), for use inside a key table. */
#define SL_KEY_ACTIVATION \
    {"activation", SL_KEY_ENUM, SL_P(activation), SL_ACT_AUTO, 0, 0, "auto|softmax|sigmoid|none", \
     "auto: softmax for C > 1, sigmoid for C = 1; none: inputs are probabilities"}
#define SL_KEYS_REGION(smooth)                                                                       \
    SL_KEY_ACTIVATION,                                                                               \
    {"include_background", SL_KEY_BOOL, SL_P(include_background), 1, 0, 1, NULL,                      \
     "false drops class 0 from the average (C > 1)"},                                               \
    {"batch", SL_KEY_BOOL, SL_P(batch), 0, 0, 1, NULL, "pool the sums over the batch"},               \
    {"smooth_nr", SL_KEY_NUMBER, SL_P(smooth_nr), (smooth), 0, 1e6, NULL, "added to the numerator"}, \
    {"smooth_dr", SL_KEY_NUMBER, SL_P(smooth_dr), (smooth), 0, 1e6, NULL, "added to the denominator"}, \
    {"weight", SL_KEY_WEIGHT, SL_P(weight), 0, 0, 1e6, NULL, "class weights [w0,...] or inverse|median"}, \
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"}
#define SL_KEY_SOFT_LABEL \
    {"soft_label", SL_KEY_BOOL, SL_P(soft_label), 0, 0, 1, NULL, \
     "tp = (Σp + Σg − Σ|p − g|)/2: 0 loss when p equals a soft target (MONAI soft_label)"}
#define SL_KEY_POOL_CLASSES \
    {"pool_classes", SL_KEY_BOOL, SL_P(pool_classes), 0, 0, 1, NULL, \
     "add the sums of the included classes before the ratio: one group per sample (per batch with batch=true)"}
#define SL_KEY_END {NULL, 0, 0, 0, 0, 0, NULL, NULL}

/* ---- evaluation context ---------------------------------------------------- */

/*
 * reduction=none (sl_loss_forward_none, loss.c): a per-class term evaluated
 * on one sample (N = 1) reports its class values through this hook. When
 * sl_region_mean sees it (and the groups are that sample's C classes), it
 * writes val[c] = w_c·L_c (0 for an excluded class), sets captured, and,
 * when up is given, returns Σ_c up_c·w_c·L_c with coefficients w_c·up_c in
 * place of the mean, so that the term's gradient is that of the weighted
 * sum of its class values.
 */
typedef struct sl_class_hook {
    int64_t C;
    const double *up; /* [C] or NULL */
    double *val;      /* [C] */
    int captured;
} sl_class_hook;

/*
 * What a term sees during one forward. Arrays are (N, C, S) with S the
 * number of spatial voxels; element (n, c, s) is at (n*C + c)*S + s.
 */
typedef struct sl_ctx {
    int64_t N, C, S;
    sl_dims dims;
    int act;               /* resolved activation: SL_ACT_SOFTMAX/SIGMOID/NONE */
    const float *x;        /* input scores as given */
    const float *p;        /* probabilities */
    const float *logp;     /* log p, stable (log-softmax / log-sigmoid / log) */
    const float *log1mp;   /* log(1 − p), stable; sigmoid and none only (NULL for softmax) */
    const sl_target *target;
    const sl_forward_opts *opts;
    int threads;
    struct sl_reducer *red; /* sums across processes (reduce.h), or NULL; set on the fused path only */
    /* Gradient accumulators (NULL when no gradient is wanted). A term adds
     * scale * d(term)/d(p) to dp, or scale * d(term)/d(x) to dx. */
    float *dp, *dx;
    double scale;          /* the term's weight */
    sl_class_hook *cls;    /* reduction=none on a per-class term, else NULL */
} sl_ctx;

/* Target of class c at voxel s of sample n (labels or soft). For a single
 * sigmoid channel (C = 1) the channel is the foreground: g = (label == 1). */
static inline float sl_g(const sl_ctx *cx, int64_t n, int64_t c, int64_t s)
{
    if (cx->target->kind == SL_TARGET_SOFT) return cx->target->soft[(n * cx->C + c) * cx->S + s];
    int32_t lab = cx->target->labels[n * cx->S + s];
    return (float)(cx->C == 1 ? lab == 1 : lab == c);
}

/* 1 when voxel (n, s) counts for a term (not its ignore_index). */
static inline int sl_valid(const sl_ctx *cx, const sl_params *pr, int64_t n, int64_t s)
{
    if (isnan(pr->ignore_index) || cx->target->kind != SL_TARGET_LABELS) return 1;
    return cx->target->labels[n * cx->S + s] != (int32_t)pr->ignore_index;
}

/* Mask weight of voxel (n, s): target->mask, or 1 without a mask. */
static inline double sl_mask_w(const sl_ctx *cx, int64_t n, int64_t s)
{
    return cx->target->mask ? (double)cx->target->mask[n * cx->S + s] : 1.0;
}

/* Weight of voxel (n, s) for a term: 0 at its ignore_index, else the mask
 * weight. Every masked statistic is a sum of this weight times the
 * unmasked summand. */
static inline double sl_vw(const sl_ctx *cx, const sl_params *pr, int64_t n, int64_t s)
{
    return sl_valid(cx, pr, n, s) ? sl_mask_w(cx, n, s) : 0.0;
}

/* Σ of the mask weights over (n, s): N·S without a mask. */
static inline double sl_mask_total(const sl_ctx *cx)
{
    if (!cx->target->mask) return (double)cx->N * (double)cx->S;
    double t = 0;
    for (int64_t i = 0; i < cx->N * cx->S; i++) t += cx->target->mask[i];
    return t;
}

/* 1 when a term's voxels carry weights other than 1 (ignore_index or a mask). */
static inline int sl_weighted(const sl_ctx *cx, const sl_params *pr)
{
    return cx->target->mask || (!isnan(pr->ignore_index) && cx->target->kind == SL_TARGET_LABELS);
}

/* ---- term classes ------------------------------------------------------------ */

typedef struct sl_term sl_term;
typedef struct sl_region sl_region;

/* The term reads cx->logp (and cx->log1mp): the framework computes them
 * only when some term sets this flag. */
#define SL_NEEDS_LOGP 1u
/* The term weights voxels by target->mask (sl_vw); the framework refuses a
 * mask for a term without this flag. */
#define SL_TAKES_MASK 2u
/* The term's value is sl_region_mean of per-(sample, class) values (unless
 * pool_classes or batch pools them): reduction=none gives its (N, C) matrix.
 * Every sl_region_mean call of such a term must be its final reduction. */
#define SL_PER_CLASS 4u

typedef struct sl_term_class {
    sl_loss_info info;      /* name, family, summary, reference (loss.h) */
    const sl_key *keys;     /* terminated by SL_KEY_END */
    unsigned flags;         /* SL_NEEDS_LOGP, ... */
    /* Optional: checks parameters against each other after parsing. */
    sl_status (*validate)(const sl_params *p, char *msg, size_t msglen);
    /* Computes the term's value; adds its gradient to cx->dp or cx->dx when
     * they are not NULL. May use and update t->state. */
    sl_status (*eval)(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen);
    /* Optional: number of doubles of persistent state for C classes
     * (adaptive_dice's running averages). */
    int64_t (*state_size)(const sl_params *p, int64_t C);
    /* Optional, for losses that are functions of the region sums alone
     * (sl_region below): from the sums in *r, computes the value and fills
     * r->d_tp, d_sp, d_sp2 with d(value)/d(sum), unweighted. A loss that has
     * it sets eval = sl_region_eval. Then, when every term of a spec has it
     * or is cross-entropy, the framework evaluates the whole spec in two
     * fused passes over the scores (fused.c) instead of materialising p. */
    sl_status (*region_finalize)(sl_term *t, const sl_ctx *cx, sl_region *r, double *value, char *msg,
                                 size_t msglen);
} sl_term_class;

struct sl_term {
    const sl_term_class *cls;
    double weight;
    sl_params prm;
    double last_value;
    double *state;          /* persistent state, or NULL */
    int64_t state_n;
    void *scratch;          /* sl_term_scratch's buffer, kept between calls; or NULL */
    size_t scratch_bytes;
};

/* A work buffer of at least `bytes` for t's eval, kept by the loss object
 * between calls (as its p and dp buffers are) and freed with it: a kernel
 * whose scratch is tens of MiB would otherwise spend a sixth of its time
 * having the system zero fresh pages on every call. Contents are
 * undefined; NULL when out of memory. The object is used by one thread at
 * a time (loss.h), so one buffer per term suffices. */
void *sl_term_scratch(sl_term *t, size_t bytes);

/* The catalogue (catalogue.c): every term class, in --list order. */
extern const sl_term_class *const sl_term_classes[];
extern const int sl_term_class_count;
const sl_term_class *sl_term_class_find(const char *name);

/* ---- shared pieces used by several losses ----------------------------------- */

/* Resolves class weights for a forward: w[0..C) from the list, or from the
 * batch's label frequencies (inverse: w_c = total / (C · count_c), median:
 * median frequency / frequency; a class absent from the batch gets weight
 * 0 with inverse/median). Returns SL_ESHAPE when a list has the wrong length.
 * Without weights fills 1. */
sl_status sl_class_weights(const sl_ctx *cx, const sl_params *p, double *w, char *msg, size_t msglen);
/* Class counts of the batch: freq[c] = Σ over valid voxels (not p's
 * ignore_index) of the mask weight times g_c (a label map: the voxels
 * labelled c; one sigmoid channel: labelled 1), *total = Σ of the weights.
 * What weight=inverse|median and the cross-entropy's denominator take.
 * SL_ENOMEM only. */
sl_status sl_class_counts(const sl_ctx *cx, const sl_params *p, double *freq, double *total);

/* Resolves a number-or-list parameter to one value per class (focal alpha). */

/*
 * Region statistics: per group soft counts over valid voxels, where a group
 * is (sample, class), or (class) with batch=true.
 *   tp = Σ p·g, sp = Σ p, sg = Σ g, sp2 = Σ p², sg2 = Σ g², cnt = number of voxels
 * With soft_label (Wang & Blaschko 2023, MONAI's soft_label=True) also
 * sad = Σ |p − g|, and sl_region_eval hands the loss tp = (Σp + Σg − sad)/2
 * instead of Σ p·g (equal for hard targets; for a soft target it makes
 * the Dice/IoU/Tversky score 1 at p = g); the gradient then gets a term
 * d_sad·sign(p − g).
 * Each summand weighted by the voxel weight sl_vw (0 at ignore_index, the
 * mask's weight, 1 otherwise; cnt = Σ weights).
 * The region losses are functions of these sums; their gradient with
 * respect to p at a voxel is d_tp·g + d_sp + 2·d_sp2·p, applied by
 * sl_region_backprop. This makes one pass for the sums and one for the
 * gradient, whatever the loss.
 */
struct sl_region {
    int64_t G;       /* number of groups: N*C, or C when pooled over the batch */
    int pooled;      /* 1 when batch=true */
    double *tp, *sp, *sg, *sp2, *sg2, *cnt; /* each [G] */
    double *d_tp, *d_sp, *d_sp2;            /* each [G], filled by the loss */
    double *sad, *d_sad; /* each [G]: Σ |p − g| and its coefficient (soft_label; 0 otherwise) */
};

/* Group index of (n, c). */
static inline int64_t sl_region_group(const sl_region *r, const sl_ctx *cx, int64_t n, int64_t c)
{
    return r->pooled ? c : n * cx->C + c;
}

sl_status sl_region_compute(const sl_ctx *cx, const sl_params *p, int want_squares, sl_region *r);
/* Allocates a region of G zeroed groups (pooled or not) without computing sums. */
sl_status sl_region_alloc(sl_region *r, int64_t G, int pooled);
/* eval for losses with region_finalize: sums (squares included), finalize,
 * back-propagation. */
sl_status sl_region_eval(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen);
void sl_region_backprop(const sl_ctx *cx, const sl_params *p, const sl_region *r);
void sl_region_free(sl_region *r);

/*
 * Averaging over groups as the region losses do (MONAI's convention):
 * the mean over included groups of w_c·L_g, where a group is included
 * unless it is class 0 with include_background=false (and C > 1).
 * loss_g[G] in; returns the mean and writes d(mean)/d(loss_g) to dl[G].
 */
sl_status sl_region_mean(const sl_ctx *cx, const sl_params *p, const sl_region *r, const double *loss_g,
                         double *dl, double *mean, char *msg, size_t msglen);

#endif
