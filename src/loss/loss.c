/*
 * The loss framework: building a loss from term descriptions, and one
 * forward pass:
 *
 *   1. validate dims, scores (finite), target (labels in range / soft in
 *      [0, 1], finite);
 *   2. for each activation the terms use (softmax, sigmoid, none), compute
 *      p (and log p where a term needs it) once, into buffers the loss keeps
 *      between calls;
 *   3. let each term add weight × its value to the total and its gradient
 *      to dp (w.r.t. probabilities) or dx (w.r.t. the scores);
 *   4. back-propagate each activation's dp through the activation into the
 *      output gradient: softmax  dx_c += p_c (dp_c − Σ_k p_k dp_k),
 *      sigmoid dx += dp·p(1 − p), none dx += dp.
 *
 * Buffers are (N, C, S) floats; all loops are parallel over (sample, chunk
 * of voxels) and have no reductions, so the threads change nothing here.
 */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fastexp.h"
#include "fused.h"
#include "params.h"
#include "reduce.h"
#include "term.h"

#define NACT 3 /* softmax, sigmoid, none */

struct sl_loss {
    int nterms;
    sl_term *terms;
    /* per-activation scratch, reused across forwards; index act - 1 */
    float *p[NACT], *logp[NACT], *log1mp[NACT], *dp[NACT];
    int64_t cap; /* elements each buffer can hold */
    int fused;   /* 1: use the two-pass fused path when the spec allows it */
    sl_reducer red; /* sums across processes (reduce.c); red.fn NULL = none */
};

/* ---- construction -------------------------------------------------------- */

sl_status sl_loss_create_terms(const sl_term_desc *terms, int nterms, sl_loss **out, char *msg, size_t msglen)
{
    if (out) *out = NULL;
    if (!terms || !out || nterms < 1) return sl_errf(msg, msglen, SL_EINVAL, "loss: no terms");
    sl_loss *L = calloc(1, sizeof *L);
    if (!L) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    L->terms = calloc((size_t)nterms, sizeof *L->terms);
    if (!L->terms) {
        free(L);
        return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    }
    L->nterms = nterms;
    L->fused = 1;
    for (int i = 0; i < nterms; i++) {
        const sl_term_desc *d = &terms[i];
        const sl_term_class *cls = d->name ? sl_term_class_find(d->name) : NULL;
        sl_status st = SL_OK;
        if (!cls) {
            st = sl_errf(msg, msglen, SL_EUNKNOWN, "unknown loss '%s' (segloss loss --list shows them all)",
                         d->name ? d->name : "(null)");
        } else if (!isfinite(d->weight) || d->weight < 0) {
            st = sl_errf(msg, msglen, SL_EINVAL, "%s: weight %g must be finite and >= 0", cls->info.name, d->weight);
        } else {
            L->terms[i].cls = cls;
            L->terms[i].weight = d->weight;
            L->terms[i].last_value = NAN;
            st = sl_params_apply(cls, d->params, d->nparams, &L->terms[i].prm, msg, msglen);
        }
        if (st != SL_OK) {
            sl_loss_free(L);
            return st;
        }
    }
    *out = L;
    return SL_OK;
}

void sl_loss_free(sl_loss *L)
{
    if (!L) return;
    for (int a = 0; a < NACT; a++) {
        free(L->p[a]);
        free(L->logp[a]);
        free(L->log1mp[a]);
        free(L->dp[a]);
    }
    if (L->terms)
        for (int i = 0; i < L->nterms; i++) free(L->terms[i].state), free(L->terms[i].scratch);
    sl_reducer_release(&L->red);
    free(L->terms);
    free(L);
}

void *sl_term_scratch(sl_term *t, size_t bytes)
{
    if (t->scratch && t->scratch_bytes >= bytes) return t->scratch;
    free(t->scratch);
    t->scratch = sl_malloc(1, bytes > 0 ? bytes : 1);
    t->scratch_bytes = t->scratch ? bytes : 0;
    return t->scratch;
}

int sl_loss_num_terms(const sl_loss *L) { return L ? L->nterms : 0; }

const char *sl_loss_term_name(const sl_loss *L, int i)
{
    return L && i >= 0 && i < L->nterms ? L->terms[i].cls->info.name : NULL;
}

double sl_loss_term_weight(const sl_loss *L, int i)
{
    return L && i >= 0 && i < L->nterms ? L->terms[i].weight : NAN;
}

double sl_loss_term_value(const sl_loss *L, int i)
{
    return L && i >= 0 && i < L->nterms ? L->terms[i].last_value : NAN;
}

sl_status sl_loss_set_term_weight(sl_loss *L, int i, double w)
{
    if (!L || i < 0 || i >= L->nterms || !isfinite(w) || w < 0) return SL_EINVAL;
    L->terms[i].weight = w;
    return SL_OK;
}

sl_status sl_loss_set_fused(sl_loss *L, int enabled)
{
    if (!L) return SL_EINVAL;
    L->fused = enabled != 0;
    return SL_OK;
}

sl_status sl_loss_set_reducer(sl_loss *L, sl_reduce_fn fn, void *user)
{
    if (!L) return SL_EINVAL;
    L->red.fn = fn;
    L->red.user = fn ? user : NULL;
    return SL_OK;
}

/* ---- activations ----------------------------------------------------------- */

#define VBLOCK 256 /* voxels handled together so that the class loop is inner-vectorisable */

/* x, p, logp are (N, C, S); logp may be NULL. The exponential is
 * sl_exp_nonpos (≤ 2 ulp, vectorised); log p = x − max − log Σ exp is formed
 * in double from one log per voxel. */
static void softmax_forward(const float *x, float *p, float *logp, int64_t N, int64_t C, int64_t S, int threads)
{
    int64_t nb = (S + VBLOCK - 1) / VBLOCK;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < nb; b++) {
            int64_t s0 = b * VBLOCK, len = S - s0 < VBLOCK ? S - s0 : VBLOCK;
            float mx[VBLOCK], sum[VBLOCK];
            const float *xn = x + n * C * S + s0;
            for (int64_t i = 0; i < len; i++) mx[i] = xn[i];
            for (int64_t c = 1; c < C; c++)
                for (int64_t i = 0; i < len; i++) mx[i] = xn[c * S + i] > mx[i] ? xn[c * S + i] : mx[i];
            for (int64_t i = 0; i < len; i++) sum[i] = 0;
            float *pn = p + n * C * S + s0;
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < len; i++) {
                    float e = sl_exp_nonpos(xn[c * S + i] - mx[i]);
                    pn[c * S + i] = e;
                    sum[i] += e;
                }
            if (logp) {
                float *ln = logp + n * C * S + s0;
                double lse[VBLOCK];
                for (int64_t i = 0; i < len; i++) lse[i] = (double)mx[i] + log((double)sum[i]);
                for (int64_t c = 0; c < C; c++)
                    for (int64_t i = 0; i < len; i++) ln[c * S + i] = (float)((double)xn[c * S + i] - lse[i]);
            }
            for (int64_t i = 0; i < len; i++) sum[i] = 1.0f / sum[i];
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < len; i++) pn[c * S + i] *= sum[i];
        }
}

/* log σ(x) = −softplus(−x), computed without overflow. */
static inline double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

static void sigmoid_forward(const float *x, float *p, float *logp, float *log1mp, int64_t total, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < total; i++) {
        float v = x[i], e = sl_exp_nonpos(-fabsf(v)), q = 1.0f / (1.0f + e);
        p[i] = v >= 0 ? q : e * q;
    }
    if (!logp) return;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < total; i++) {
        logp[i] = (float)log_sigmoid(x[i]);
        log1mp[i] = (float)log_sigmoid(-(double)x[i]);
    }
}

static void none_forward(const float *x, float *p, float *logp, float *log1mp, int64_t total, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < total; i++) {
        p[i] = x[i];
        if (logp) {
            logp[i] = (float)log((double)x[i]);
            log1mp[i] = (float)log1p(-(double)x[i]);
        }
    }
}

/* grad (N, C, S) += J_act^T dp */
static void activation_backward(int act, const float *p, const float *dp, float *grad, int64_t N, int64_t C,
                                int64_t S, int threads)
{
    int64_t total = N * C * S;
    if (act == SL_ACT_SIGMOID) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < total; i++) grad[i] += (float)((double)dp[i] * p[i] * (1.0 - (double)p[i]));
        return;
    }
    if (act == SL_ACT_NONE) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < total; i++) grad[i] += dp[i];
        return;
    }
    int64_t nb = (S + VBLOCK - 1) / VBLOCK;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < nb; b++) {
            int64_t s0 = b * VBLOCK, len = S - s0 < VBLOCK ? S - s0 : VBLOCK;
            double dot[VBLOCK];
            const float *pn = p + n * C * S + s0, *dn = dp + n * C * S + s0;
            float *gn = grad + n * C * S + s0;
            for (int64_t i = 0; i < len; i++) dot[i] = 0;
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < len; i++) dot[i] += (double)pn[c * S + i] * dn[c * S + i];
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < len; i++)
                    gn[c * S + i] += (float)((double)pn[c * S + i] * ((double)dn[c * S + i] - dot[i]));
        }
}

/* Allocates the state of stateful terms on first use ("no history yet"). */
static sl_status ensure_state(sl_loss *L, int64_t C, char *msg, size_t msglen)
{
    for (int i = 0; i < L->nterms; i++) {
        sl_term *t = &L->terms[i];
        if (!t->cls->state_size) continue;
        int64_t want = t->cls->state_size(&t->prm, C);
        if (t->state && t->state_n != want)
            return sl_errf(msg, msglen, SL_ESHAPE, "%s: its state was built for another number of classes",
                           t->cls->info.name);
        if (!t->state) {
            t->state = sl_calloc(want, sizeof(double));
            if (!t->state) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
            t->state_n = want;
            for (int64_t k = 0; k < want; k++) t->state[k] = NAN; /* "no history yet" */
        }
    }
    return SL_OK;
}

/* ---- validation ------------------------------------------------------------- */

static int resolve_act(const sl_term *t, int64_t C)
{
    int a = t->prm.activation;
    if (a == SL_ACT_AUTO) a = C > 1 ? SL_ACT_SOFTMAX : SL_ACT_SIGMOID;
    return a;
}

/* 1 when `lab` equals some term's ignore_index. */
static int ignored_by_some_term(const sl_loss *L, int32_t lab)
{
    for (int i = 0; i < L->nterms; i++)
        if (!isnan(L->terms[i].prm.ignore_index) && (int32_t)L->terms[i].prm.ignore_index == lab) return 1;
    return 0;
}

static sl_status check_target(const sl_loss *L, const sl_target *tg, int64_t N, int64_t C, int64_t S, int threads,
                              char *msg, size_t msglen)
{
    if (tg->kind == SL_TARGET_LABELS) {
        if (!tg->labels) return sl_errf(msg, msglen, SL_EINVAL, "loss: target labels are NULL");
        /* Sigmoid on one channel is binary: labels 0 and 1. */
        int32_t hi = C == 1 ? 2 : (int32_t)C;
        const int64_t total = N * S, nblk = (total + 255) / 256;
        int64_t bad_at = INT64_MAX;
        /* Blocks of 256 labels tested branch-free (vectorises), in parallel; only a
         * block holding a label outside [0, hi) is scanned again for one that no term
         * ignores. The first such label over all blocks is the one reported. */
#pragma omp parallel for num_threads(threads > 0 ? threads : 1) schedule(static) reduction(min : bad_at) \
    if (total >= (1 << 16))
        for (int64_t b = 0; b < nblk; b++) {
            const int64_t i0 = b * 256, i1 = i0 + 256 < total ? i0 + 256 : total;
            int out = 0;
            for (int64_t i = i0; i < i1; i++) out |= (uint32_t)tg->labels[i] >= (uint32_t)hi;
            for (int64_t i = i0; i < i1 && out; i++) {
                int32_t v = tg->labels[i];
                if ((v < 0 || v >= hi) && !ignored_by_some_term(L, v)) {
                    bad_at = i < bad_at ? i : bad_at;
                    break;
                }
            }
        }
        if (bad_at != INT64_MAX)
            return sl_errf(msg, msglen, SL_ERANGE, "loss: label %d at index %lld is outside [0, %d)%s",
                           (int)tg->labels[bad_at], (long long)bad_at, (int)hi,
                           C == 1 ? " (a single sigmoid channel takes labels 0 and 1)" : "");
        return SL_OK;
    }
    if (tg->kind == SL_TARGET_SOFT) {
        if (!tg->soft) return sl_errf(msg, msglen, SL_EINVAL, "loss: soft target is NULL");
        int64_t total = N * C * S;
        if (!sl_all_finite(tg->soft, total, threads))
            return sl_errf(msg, msglen, SL_ENONFINITE, "loss: the target contains NaN or Inf");
        for (int64_t i = 0; i < total; i++)
            if (tg->soft[i] < 0.0f || tg->soft[i] > 1.0f)
                return sl_errf(msg, msglen, SL_ERANGE, "loss: soft target value %g at index %lld is outside [0, 1]",
                               (double)tg->soft[i], (long long)i);
        for (int i = 0; i < L->nterms; i++)
            if (!isnan(L->terms[i].prm.ignore_index))
                return sl_errf(msg, msglen, SL_EINVAL, "%s: ignore_index needs a label-map target",
                               L->terms[i].cls->info.name);
        return SL_OK;
    }
    return sl_errf(msg, msglen, SL_EINVAL, "loss: unknown target kind %d", (int)tg->kind);
}

/* The voxel mask: finite weights >= 0, and every term must take one. */
static sl_status check_mask(const sl_loss *L, const float *mask, int64_t NS, int threads, char *msg, size_t msglen)
{
    for (int i = 0; i < L->nterms; i++)
        if (!(L->terms[i].cls->flags & SL_TAKES_MASK))
            return sl_errf(msg, msglen, SL_EINVAL, "%s: does not take a voxel mask (docs/losses.md#masks)",
                           L->terms[i].cls->info.name);
    if (!sl_all_finite(mask, NS, threads))
        return sl_errf(msg, msglen, SL_ENONFINITE, "loss: the mask contains NaN or Inf");
    for (int64_t i = 0; i < NS; i++)
        if (!(mask[i] >= 0.0f))
            return sl_errf(msg, msglen, SL_ERANGE, "loss: mask weight %g at index %lld is negative", (double)mask[i],
                           (long long)i);
    return SL_OK;
}

/* Grows the capacity: existing buffers are dropped when too small and
 * reallocated lazily (only those an activation actually uses). */
static void ensure_capacity(sl_loss *L, int64_t total)
{
    if (total <= L->cap) return;
    for (int a = 0; a < NACT; a++) {
        free(L->p[a]);
        free(L->logp[a]);
        free(L->log1mp[a]);
        free(L->dp[a]);
        L->p[a] = L->logp[a] = L->log1mp[a] = L->dp[a] = NULL;
    }
    L->cap = total;
}

static float *lazy(float **buf, int64_t cap)
{
    if (!*buf) *buf = sl_malloc(cap, sizeof(float));
    return *buf;
}

/* ---- forward ---------------------------------------------------------------- */

/* sl_loss_forward with, for reduction=none, one class hook per term (term.h;
 * NULL otherwise): hooks force the plain path and reach the per-class terms. */
static sl_status forward_hooked(sl_loss *L, const float *x, const sl_dims *dims, const sl_target *tg,
                                const sl_forward_opts *opts_in, double *value, float *grad, char *msg, size_t msglen,
                                sl_class_hook *hooks);

sl_status sl_loss_forward(sl_loss *L, const float *x, const sl_dims *dims, const sl_target *tg,
                          const sl_forward_opts *opts_in, double *value, float *grad, char *msg, size_t msglen)
{
    return forward_hooked(L, x, dims, tg, opts_in, value, grad, msg, msglen, NULL);
}

static sl_status forward_hooked(sl_loss *L, const float *x, const sl_dims *dims, const sl_target *tg,
                                const sl_forward_opts *opts_in, double *value, float *grad, char *msg, size_t msglen,
                                sl_class_hook *hooks)
{
    if (!L || !x || !dims || !tg || !value) return sl_errf(msg, msglen, SL_EINVAL, "loss: NULL argument");
    sl_status st = sl_dims_check(dims);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "loss: invalid dimensions");
    sl_forward_opts defaults = SL_FORWARD_OPTS_DEFAULT;
    const sl_forward_opts *opts = opts_in ? opts_in : &defaults;
    for (int i = 0; i < dims->spatial_ndim; i++)
        if (!(opts->spacing[i] > 0) || !isfinite(opts->spacing[i]))
            return sl_errf(msg, msglen, SL_EINVAL, "loss: spacing %g on axis %d must be positive", opts->spacing[i], i);
    const int64_t N = dims->n, C = dims->c, S = sl_dims_voxels(dims), total = N * C * S;
    const int threads = sl_threads(opts->threads);

    st = check_target(L, tg, N, C, S, threads, msg, msglen);
    if (st == SL_OK && tg->mask) st = check_mask(L, tg->mask, N * S, threads, msg, msglen);
    if (st != SL_OK) return st;

    /* Which activations are needed, and whether any of their terms needs log p. */
    int used[NACT] = {0}, need_log[NACT] = {0};
    for (int i = 0; i < L->nterms; i++) {
        int a = resolve_act(&L->terms[i], C);
        if (a == SL_ACT_SOFTMAX && C == 1)
            return sl_errf(msg, msglen, SL_ESHAPE,
                           "%s: softmax needs C > 1 channels (one channel uses activation=sigmoid)",
                           L->terms[i].cls->info.name);
        used[a - 1] = 1;
        if (L->terms[i].cls->flags & SL_NEEDS_LOGP) need_log[a - 1] = 1;
    }
    if (used[SL_ACT_NONE - 1]) {
        if (!sl_all_finite(x, total, threads)) /* before the range test, which would name Inf */
            return sl_errf(msg, msglen, SL_ENONFINITE, "loss: the scores contain NaN or Inf");
        for (int64_t i = 0; i < total; i++)
            if (x[i] < 0.0f || x[i] > 1.0f)
                return sl_errf(msg, msglen, SL_ERANGE,
                               "loss: activation=none takes probabilities, but input %g at index %lld is outside [0, 1]",
                               (double)x[i], (long long)i);
    }
    /* The fused path: one activation, every term fusable, no stateful term
     * (stateful ones too with a sum reducer, which needs this path). */
    int nused = used[0] + used[1] + used[2];
    int has_state = 0;
    for (int i = 0; i < L->nterms; i++) has_state |= L->terms[i].cls->state_size != NULL;
    /* A mask takes the plain path: the fused kernels do not read it. */
    if (L->fused && nused == 1 && (!has_state || L->red.fn) && !tg->mask && !hooks) {
        int act = used[0] ? SL_ACT_SOFTMAX : used[1] ? SL_ACT_SIGMOID : SL_ACT_NONE;
        if (!L->red.fn && sl_fused_focal_eligible(L->terms, L->nterms, tg, act, C)) {
            sl_ctx cx = {.N = N, .C = C, .S = S, .dims = *dims, .act = act, .x = x, .target = tg, .opts = opts,
                         .threads = threads, .scale = 1.0};
            return sl_fused_focal(&L->terms[0], &cx, value, grad, msg, msglen);
        }
        if (!L->red.fn && sl_fused_focal_sig_eligible(L->terms, L->nterms, tg, act)) {
            sl_ctx cx = {.N = N, .C = C, .S = S, .dims = *dims, .act = act, .x = x, .target = tg, .opts = opts,
                         .threads = threads, .scale = 1.0};
            return sl_fused_focal_sig(&L->terms[0], &cx, value, grad, msg, msglen);
        }
        if (!L->red.fn && sl_fused_hard_eligible(L->terms, L->nterms, tg, act)) { /* topk, ohem */
            sl_ctx cx = {.N = N, .C = C, .S = S, .dims = *dims, .act = act, .x = x, .target = tg, .opts = opts,
                         .threads = threads, .scale = 1.0};
            return sl_fused_hard(&L->terms[0], &cx, value, grad, msg, msglen);
        }
        if (sl_fused_eligible(L->terms, L->nterms, C, act)) {
            sl_ctx cx = {.N = N, .C = C, .S = S, .dims = *dims, .act = act, .x = x, .target = tg, .opts = opts,
                         .threads = threads, .scale = 1.0, .red = L->red.fn ? &L->red : NULL};
            /* The fused path checks the scores' finiteness in its first pass, before
             * it writes anything (a pass of its own would be a third read of them). The
             * gradient is finite by construction then (finite scores, p in [0, 1],
             * finite coefficients), so the final scan of the plain path is skipped too. */
            if (cx.red && ((st = ensure_state(L, C, msg, msglen)) != SL_OK ||
                           (st = sl_reducer_begin(cx.red, L->terms, L->nterms, &cx, msg, msglen)) != SL_OK))
                return st;
            return sl_fused_forward(L->terms, L->nterms, &cx, value, grad, msg, msglen);
        }
    }
    if (L->red.fn)
        return sl_errf(msg, msglen, SL_EUNSUPPORTED,
                       "loss: with a sum reducer (process_group) the spec must take the two fused passes: region losses "
                       "and ce/wce/bce under one activation, one ignore_index, no mask, no soft_label or pool_classes "
                       "(%s%s)", tg->mask ? "a mask was given" : !L->fused ? "the fused path is switched off" :
                       nused != 1 ? "the terms use different activations" : "not so: ",
                       tg->mask || !L->fused || nused != 1 ? "" : sl_reducer_misfit(L->terms, L->nterms));
    if (!sl_all_finite(x, total, threads))
        return sl_errf(msg, msglen, SL_ENONFINITE, "loss: the scores contain NaN or Inf");
    ensure_capacity(L, total);

    /* Stateful terms get their state on first use. */
    if ((st = ensure_state(L, C, msg, msglen)) != SL_OK) return st;

    for (int a = 0; a < NACT; a++) {
        if (!used[a]) continue;
        int act = a + 1;
        float *p = lazy(&L->p[a], L->cap);
        float *lp = need_log[a] ? lazy(&L->logp[a], L->cap) : NULL;
        float *l1 = need_log[a] && act != SL_ACT_SOFTMAX ? lazy(&L->log1mp[a], L->cap) : NULL;
        if (!p || (need_log[a] && !lp) || (need_log[a] && act != SL_ACT_SOFTMAX && !l1) ||
            (grad && !lazy(&L->dp[a], L->cap)))
            return sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory for %lld-element buffers", (long long)total);
        if (act == SL_ACT_SOFTMAX) softmax_forward(x, p, lp, N, C, S, threads);
        else if (act == SL_ACT_SIGMOID) sigmoid_forward(x, p, lp, l1, total, threads);
        else none_forward(x, p, lp, l1, total, threads);
        if (grad) memset(L->dp[a], 0, (size_t)total * sizeof(float));
    }
    if (grad) memset(grad, 0, (size_t)total * sizeof(float));

    double sum = 0;
    for (int i = 0; i < L->nterms; i++) {
        sl_term *t = &L->terms[i];
        int a = resolve_act(t, C) - 1;
        sl_ctx cx = {.N = N, .C = C, .S = S, .dims = *dims, .act = a + 1, .x = x, .p = L->p[a],
                     .logp = L->logp[a], .log1mp = L->log1mp[a], .target = tg, .opts = opts,
                     .threads = threads, .dp = grad ? L->dp[a] : NULL, .dx = grad, .scale = t->weight,
                     .cls = hooks && (t->cls->flags & SL_PER_CLASS) ? &hooks[i] : NULL};
        double v = NAN;
        st = t->cls->eval(t, &cx, &v, msg, msglen);
        if (st != SL_OK) return st;
        if (!isfinite(v))
            return sl_errf(msg, msglen, SL_ENONFINITE, "%s: the loss is not finite (%g)%s", t->cls->info.name, v,
                           a + 1 == SL_ACT_NONE ? "; with activation=none a probability of 0 where the target is 1 gives log(0)" : "");
        t->last_value = v;
        sum += t->weight * v;
    }
    if (grad)
        for (int a = 0; a < NACT; a++)
            if (used[a]) activation_backward(a + 1, L->p[a], L->dp[a], grad, N, C, S, threads);
    if (grad && !sl_all_finite(grad, total, threads))
        return sl_errf(msg, msglen, SL_ENONFINITE, "loss: the gradient is not finite");
    *value = sum;
    return SL_OK;
}

/* ---- persistent state: save and restore (appended; used by schedules) ---------
 *
 * Buffer layout, all integers little-endian, doubles as their IEEE-754 bits
 * (little-endian), so a buffer moves between machines and NaN ("no history
 * yet") survives bit for bit:
 *     "SLLS"  u32 version (1)  u32 nterms
 *     per term:  u32 name length, the name (no terminator),
 *                u64 number of state doubles (0 = no state yet), the doubles
 * Term weights are configuration, not state: they are not saved.
 */

#define STATE_MAGIC "SLLS"
#define STATE_VERSION 1u

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

sl_status sl_loss_state_size(const sl_loss *L, size_t *bytes)
{
    if (!L || !bytes) return SL_EINVAL;
    size_t n = 12;
    for (int i = 0; i < L->nterms; i++) {
        size_t add = 4 + strlen(L->terms[i].cls->info.name) + 8;
        if (L->terms[i].state) {
            size_t sb;
            if (sl_bytes(L->terms[i].state_n, sizeof(double), &sb) != SL_OK || sb > SIZE_MAX - add)
                return SL_EOVERFLOW;
            add += sb;
        }
        if (add > SIZE_MAX - n) return SL_EOVERFLOW;
        n += add;
    }
    *bytes = n;
    return SL_OK;
}

sl_status sl_loss_state_get(const sl_loss *L, void *buf, size_t len, size_t *written)
{
    size_t need;
    if (!L || !buf) return SL_EINVAL;
    sl_status st = sl_loss_state_size(L, &need);
    if (st != SL_OK) return st;
    if (len < need) return SL_EINVAL;
    unsigned char *p = buf;
    memcpy(p, STATE_MAGIC, 4);
    put_u32(p + 4, STATE_VERSION);
    put_u32(p + 8, (uint32_t)L->nterms);
    p += 12;
    for (int i = 0; i < L->nterms; i++) {
        const sl_term *t = &L->terms[i];
        size_t nl = strlen(t->cls->info.name);
        put_u32(p, (uint32_t)nl);
        memcpy(p + 4, t->cls->info.name, nl);
        p += 4 + nl;
        uint64_t ns = t->state ? (uint64_t)t->state_n : 0;
        put_u64(p, ns);
        p += 8;
        for (uint64_t k = 0; k < ns; k++, p += 8) {
            uint64_t bits;
            memcpy(&bits, &t->state[k], 8);
            put_u64(p, bits);
        }
    }
    if (written) *written = need;
    return SL_OK;
}

sl_status sl_loss_state_set(sl_loss *L, const void *buf, size_t len, char *msg, size_t msglen)
{
    if (!L || (!buf && len)) return sl_errf(msg, msglen, SL_EINVAL, "loss state: NULL argument");
    const unsigned char *p = buf, *end = p + len;
    if (len < 12 || memcmp(p, STATE_MAGIC, 4) != 0)
        return sl_errf(msg, msglen, SL_EFORMAT, "loss state: not a segloss loss-state buffer");
    if (get_u32(p + 4) != STATE_VERSION)
        return sl_errf(msg, msglen, SL_EFORMAT, "loss state: version %u is not supported", (unsigned)get_u32(p + 4));
    if (get_u32(p + 8) != (uint32_t)L->nterms)
        return sl_errf(msg, msglen, SL_EBADSTATE, "loss state: saved from a loss of %u terms, this one has %d",
                       (unsigned)get_u32(p + 8), L->nterms);
    p += 12;
    /* First pass: check everything, so that a refused buffer changes nothing. */
    const unsigned char *q = p;
    for (int i = 0; i < L->nterms; i++) {
        const sl_term *t = &L->terms[i];
        if (end - q < 4) return sl_errf(msg, msglen, SL_EFORMAT, "loss state: truncated at term %d", i);
        uint32_t nl = get_u32(q);
        if ((size_t)(end - q - 4) < (size_t)nl + 8)
            return sl_errf(msg, msglen, SL_EFORMAT, "loss state: truncated at term %d", i);
        const char *name = t->cls->info.name;
        if (nl != strlen(name) || memcmp(q + 4, name, nl) != 0)
            return sl_errf(msg, msglen, SL_EBADSTATE, "loss state: term %d was '%.*s', this loss has '%s'", i,
                           (int)(nl < 64 ? nl : 64), (const char *)(q + 4), name);
        q += 4 + nl;
        uint64_t ns = get_u64(q);
        q += 8;
        if (ns > (uint64_t)(end - q) / 8)
            return sl_errf(msg, msglen, SL_EFORMAT, "loss state: truncated in the state of term %d (%s)", i, name);
        if (ns && !t->cls->state_size)
            return sl_errf(msg, msglen, SL_EBADSTATE, "loss state: term %d (%s) has no state to restore", i, name);
        q += ns * 8;
    }
    if (q != end)
        return sl_errf(msg, msglen, SL_EFORMAT, "loss state: %lld bytes after the last term", (long long)(end - q));
    /* Second pass: allocate the new states, then swap them in. */
    double **fresh = calloc((size_t)L->nterms, sizeof *fresh);
    if (!fresh) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    q = p;
    for (int i = 0; i < L->nterms; i++) {
        q += 4 + get_u32(q);
        uint64_t ns = get_u64(q);
        q += 8;
        if (ns) {
            fresh[i] = sl_malloc((int64_t)ns, sizeof(double));
            if (!fresh[i]) {
                for (int j = 0; j < i; j++) free(fresh[j]);
                free(fresh);
                return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
            }
            for (uint64_t k = 0; k < ns; k++, q += 8) {
                uint64_t bits = get_u64(q);
                memcpy(&fresh[i][k], &bits, 8);
            }
        }
    }
    q = p;
    for (int i = 0; i < L->nterms; i++) {
        q += 4 + get_u32(q);
        uint64_t ns = get_u64(q);
        q += 8 + ns * 8;
        free(L->terms[i].state);
        L->terms[i].state = fresh[i];
        L->terms[i].state_n = (int64_t)ns;
    }
    free(fresh);
    return SL_OK;
}

/* ---- reduction=none: per-sample and per-class values (appended) ---------------
 *
 * Each sample is evaluated as a batch of one (forward_hooked on the sample's
 * slice), so its values and its gradient come from the same code as the
 * ordinary forward. Class mode (every term per-class, SL_PER_CLASS, with
 * pool_classes off): the terms report w_c·L_c through their hooks and take
 * the upstream weights as their coefficients, so the slice's gradient is
 * directly that of Σ_c u_nc·M_nc. Sample mode: M_n is the sample's loss and
 * its gradient is scaled by u_n. Batch statistics (batch=true) and state
 * (adaptive_dice) have no per-sample value: refused.
 */

/* 1 when term t reports per-class values under reduction=none. */
static int term_per_class(const sl_term *t)
{
    return (t->cls->flags & SL_PER_CLASS) && !t->prm.pool_classes;
}

static sl_status none_columns(const sl_loss *L, const sl_dims *dims, int64_t *cols, int *by_class, char *msg,
                               size_t msglen)
{
    if (!L || !dims || !cols) return sl_errf(msg, msglen, SL_EINVAL, "loss: NULL argument");
    sl_status st = sl_dims_check(dims);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "loss: invalid dimensions");
    int all = 1;
    for (int i = 0; i < L->nterms; i++) {
        const sl_term *t = &L->terms[i];
        if (t->cls->state_size)
            return sl_errf(msg, msglen, SL_EINVAL, "%s: a stateful loss has no per-sample values (reduction=none)",
                           t->cls->info.name);
        if (t->prm.batch)
            return sl_errf(msg, msglen, SL_EINVAL,
                           "%s: batch=true pools the samples, so it has no per-sample values (reduction=none)",
                           t->cls->info.name);
        all &= term_per_class(t);
    }
    *cols = all ? dims->c : 1;
    if (by_class) *by_class = all;
    return SL_OK;
}

sl_status sl_loss_none_columns(const sl_loss *L, const sl_dims *dims, int64_t *cols, char *msg, size_t msglen)
{
    return none_columns(L, dims, cols, NULL, msg, msglen);
}

sl_status sl_loss_forward_none(sl_loss *L, const float *x, const sl_dims *dims, const sl_target *tg,
                               const sl_forward_opts *opts_in, double *values, const double *upstream, float *grad,
                               char *msg, size_t msglen)
{
    int64_t K = 1;
    int by_class = 0;
    sl_status st = none_columns(L, dims, &K, &by_class, msg, msglen);
    if (st != SL_OK) return st;
    if (!x || !tg || !values) return sl_errf(msg, msglen, SL_EINVAL, "loss: NULL argument");
    /* Per-sample values are each sample's own (a batch of one): there are no
     * pooled sums to share across processes, so a reducer has nothing exact
     * to do here. */
    if (L->red.fn)
        return sl_errf(msg, msglen, SL_EUNSUPPORTED,
                       "loss: reduction=none cannot be combined with a sum reducer (process_group): per-sample values "
                       "need no statistics from other processes");
    sl_forward_opts defaults = SL_FORWARD_OPTS_DEFAULT;
    const sl_forward_opts *opts = opts_in ? opts_in : &defaults;
    const int64_t N = dims->n, C = dims->c, S = sl_dims_voxels(dims);
    /* The whole batch's target and mask checks first, so that a message names
     * the batch's index, not the sample's. */
    const int threads = sl_threads(opts->threads);
    st = check_target(L, tg, N, C, S, threads, msg, msglen);
    if (st == SL_OK && tg->mask) st = check_mask(L, tg->mask, N * S, threads, msg, msglen);
    if (st != SL_OK) return st;
    if (upstream && grad)
        for (int64_t i = 0; i < N * K; i++)
            if (!isfinite(upstream[i]))
                return sl_errf(msg, msglen, SL_ENONFINITE, "loss: upstream weight %lld is not finite", (long long)i);
    sl_class_hook *hooks = sl_calloc(L->nterms, sizeof(sl_class_hook));
    double *val = sl_calloc((int64_t)L->nterms * C + C, sizeof(double));
    if (!hooks || !val) {
        free(hooks), free(val);
        return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    }
    double *ones = val + (int64_t)L->nterms * C; /* the upstream of a plain sum */
    for (int64_t c = 0; c < C; c++) ones[c] = 1.0;
    for (int64_t n = 0; n < N && st == SL_OK; n++) {
        sl_dims d1 = *dims;
        d1.n = 1;
        sl_target t1 = *tg;
        if (tg->labels) t1.labels = tg->labels + n * S;
        if (tg->soft) t1.soft = tg->soft + n * C * S;
        if (tg->mask) t1.mask = tg->mask + n * S;
        sl_forward_opts o1 = *opts;
        if (opts->dist) o1.dist = opts->dist + n * C * S;
        const double *u = upstream ? upstream + n * K : ones;
        for (int i = 0; i < L->nterms; i++)
            hooks[i] = (sl_class_hook){.C = C, .up = by_class && grad ? u : NULL, .val = val + (int64_t)i * C};
        double v = 0;
        float *g1 = grad ? grad + n * C * S : NULL;
        st = forward_hooked(L, x + n * C * S, &d1, &t1, &o1, &v, g1, msg, msglen, by_class ? hooks : NULL);
        if (st != SL_OK) {
            /* prefix the sample: the message's indices are within it */
            char inner[256];
            snprintf(inner, sizeof inner, "%s", msg && msglen ? msg : "");
            st = sl_errf(msg, msglen, st, "sample %lld: %s", (long long)n, inner);
            break;
        }
        if (by_class) {
            for (int64_t c = 0; c < C; c++) values[n * C + c] = 0;
            for (int i = 0; i < L->nterms; i++) {
                if (!hooks[i].captured) { /* a per-class term that did not report: a framework bug, not bad input */
                    st = sl_errf(msg, msglen, SL_EINVAL, "%s: no per-class values (reduction=none)",
                                 L->terms[i].cls->info.name);
                    break;
                }
                for (int64_t c = 0; c < C; c++) values[n * C + c] += L->terms[i].weight * hooks[i].val[c];
            }
        } else {
            values[n] = v;
            if (g1 && u[0] != 1.0)
                for (int64_t k = 0; k < C * S; k++) g1[k] = (float)(g1[k] * u[0]);
        }
    }
    free(hooks);
    free(val);
    return st;
}
