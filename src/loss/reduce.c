/*
 * Batch statistics across processes: the sum reducer of a loss
 * (sl_loss_set_reducer, loss.h).
 *
 * Under data parallelism every rank evaluates the loss on its shard. The
 * fused path (fused.c) already reduces a forward to a few sums before it
 * takes any ratio: per sample, 6 region sums per class (tp, Σp, Σg, Σp²,
 * Σg², count) and a numerator/denominator per cross-entropy term. Summing
 * them over the ranks between the two passes gives every rank the ratios of
 * the global batch, and the second pass, which only applies coefficients
 * per voxel, then writes d(global loss)/d(local scores). What needs care:
 *
 *   - terms pooled over the batch (batch=true) and cross-entropy take the
 *     reduced sums as they are: their value is the global one;
 *   - terms that are a mean over samples (batch=false) keep their samples'
 *     own sums; their ratios are local, only the divisor N becomes the
 *     global sample count: the local mean times n_local / n_global is this
 *     rank's share and the coefficients are scaled the same way. Their
 *     ratios need nothing global, so they are taken before the sums call
 *     and their sums over samples travel in it: one call for the value;
 *     a training adaptive_dice (below) is the exception, its share is
 *     summed in one last call;
 *   - class weights from frequencies (weight=inverse|median) enter the first
 *     pass (cross-entropy weighs every voxel by w_y), so the class counts are
 *     reduced before it, from the target alone;
 *   - adaptive_dice's running average of per-sample Dice losses is reduced
 *     by adaptive_dice itself (overlap.c), so that every rank keeps the same
 *     state.
 * The layout of the vectors is private: the reducer only sums them.
 */
#include <stdlib.h>
#include <string.h>
#include "reduce.h"

sl_status sl_reducer_call(sl_reducer *red, double *v, int64_t n, const char *what, char *msg, size_t msglen)
{
    int rc = red->fn(v, n, red->user);
    if (rc != 0) return sl_errf(msg, msglen, SL_EIO, "loss: the sum reducer failed (it returned %d) on the %s", rc, what);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return sl_errf(msg, msglen, SL_ENONFINITE, "loss: the reduced %s are not finite", what);
    return SL_OK;
}

static int uses_class_freq(const sl_term *t)
{
    return t->prm.weight_mode == SL_WEIGHT_INVERSE || t->prm.weight_mode == SL_WEIGHT_MEDIAN;
}

sl_status sl_reducer_begin(sl_reducer *red, const sl_term *terms, int nterms, const sl_ctx *cx, char *msg,
                           size_t msglen)
{
    red->have_freq = 0;
    red->n_local = red->n_global = (double)cx->N;
    const sl_term *ft = NULL;
    for (int i = 0; i < nterms; i++) {
        const sl_term *t = &terms[i];
        /* log cosh of the mean over samples: not a sum of per-rank shares */
        if (sl_reducer_is_share(t) && strcmp(t->cls->info.name, "logcosh_dice") == 0)
            return sl_errf(msg, msglen, SL_EUNSUPPORTED,
                           "logcosh_dice: with a sum reducer (process_group) it needs batch=true: log cosh of a mean "
                           "over samples is not a sum of the ranks' parts");
        if (!ft && uses_class_freq(t)) ft = t;
    }
    if (!ft) return SL_OK;
    /* The class counts sl_class_weights takes (sl_class_counts, region.c).
     * All terms of a fused spec share one ignore_index, so one count serves
     * all. */
    const int64_t C = cx->C;
    if (red->freq_cap < C + 1) {
        free(red->freq);
        red->freq = sl_malloc(C + 1, sizeof(double));
        red->freq_cap = red->freq ? C + 1 : 0;
        if (!red->freq) return sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
    }
    double *f = red->freq;
    if (sl_class_counts(cx, &ft->prm, f, f + C) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
    sl_status st = sl_reducer_call(red, f, C + 1, "class counts", msg, msglen);
    if (st == SL_OK) red->have_freq = 1;
    return st;
}

/* A per-sample term that can be finalised before the sums call: its value
 * depends on its own samples' sums and on the class counts (reduced
 * already). adaptive_dice in training needs the global mean of its Dice
 * losses first (overlap.c reduces it, after n_global is known). */
static int finalised_early(const sl_term *t, const sl_ctx *cx)
{
    return sl_reducer_is_share(t) && !(t->cls->state_size && cx->opts && cx->opts->training);
}

sl_status sl_reducer_sums(sl_reducer *red, sl_term *terms, int nterms, const sl_ctx *cx, const double *sums,
                          int64_t NS, double *K, double **gsum, double *share, char *msg, size_t msglen)
{
    const int64_t N = cx->N, C = cx->C;
    *gsum = NULL;
    if (red->pre_cap < nterms) {
        free(red->pre);
        red->pre = calloc((size_t)nterms, 1);
        red->pre_cap = red->pre ? nterms : 0;
        if (!red->pre) return sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
    }
    int npre = 0;
    for (int i = 0; i < nterms; i++) npre += red->pre[i] = (unsigned char)finalised_early(&terms[i], cx);
    double *v = sl_calloc(NS + 1 + npre, sizeof(double));
    double *Kp = sl_calloc(3 * N * C, sizeof(double)); /* the early terms' weighted coefficients */
    sl_status st = SL_OK;
    if (!v || !Kp) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
        goto done;
    }
    v[0] = (double)N;
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < NS; j++) v[1 + j] += sums[n * NS + j];
    /* The early terms: as fused.c's finalize, per sample; the value slot holds
     * the sum over this rank's samples (mean · n_local). */
    for (int i = 0, j = 0; i < nterms && st == SL_OK; i++) {
        sl_term *t = &terms[i];
        if (!red->pre[i]) continue;
        sl_region r;
        if (sl_region_alloc(&r, N * C, 0) != SL_OK) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
            break;
        }
        for (int64_t g = 0; g < N * C; g++) {
            const double *o = sums + (g / C) * NS + 6 * (g % C);
            r.tp[g] = o[0], r.sp[g] = o[1], r.sg[g] = o[2], r.sp2[g] = o[3], r.sg2[g] = o[4], r.cnt[g] = o[5];
        }
        sl_ctx tcx = *cx;
        tcx.scale = t->weight;
        double val = 0;
        st = t->cls->region_finalize(t, &tcx, &r, &val, msg, msglen);
        for (int64_t g = 0; st == SL_OK && g < N * C; g++) {
            Kp[g] += t->weight * r.d_tp[g];
            Kp[N * C + g] += t->weight * r.d_sp[g];
            Kp[2 * N * C + g] += t->weight * r.d_sp2[g];
        }
        sl_region_free(&r);
        if (st == SL_OK && !isfinite(val))
            st = sl_errf(msg, msglen, SL_ENONFINITE, "%s: the loss is not finite (%g)", t->cls->info.name, val);
        v[1 + NS + j++] = val * (double)N;
    }
    if (st == SL_OK) st = sl_reducer_call(red, v, NS + 1 + npre, "batch sums", msg, msglen);
    if (st == SL_OK && !(v[0] >= (double)N))
        st = sl_errf(msg, msglen, SL_EINVAL, "loss: the sum reducer returned %g samples, fewer than this rank's %lld",
                     v[0], (long long)N);
    if (st != SL_OK) goto done;
    red->n_local = (double)N;
    red->n_global = v[0];
    *share = (double)N / v[0];
    for (int64_t g = 0; g < 3 * N * C; g++) K[g] += *share * Kp[g];
    for (int i = 0, j = 0; i < nterms; i++)
        if (red->pre[i]) terms[i].last_value = v[1 + NS + j++] / v[0];
    memmove(v, v + 1, (size_t)NS * sizeof(double));
    *gsum = v;
    v = NULL;
done:
    free(v);
    free(Kp);
    return st;
}

int sl_reducer_is_share(const sl_term *t) { return t->cls->region_finalize != NULL && !t->prm.batch; }

sl_status sl_reducer_values(sl_reducer *red, sl_term *terms, int nterms, double *total, char *msg, size_t msglen)
{
    int k = 0;
    for (int i = 0; i < nterms; i++) k += sl_reducer_is_share(&terms[i]) && !red->pre[i];
    if (k == 0) return SL_OK;
    double *v = sl_calloc(k, sizeof(double));
    if (!v) return sl_errf(msg, msglen, SL_ENOMEM, "loss: out of memory");
    for (int i = 0, j = 0; i < nterms; i++)
        if (sl_reducer_is_share(&terms[i]) && !red->pre[i]) v[j++] = terms[i].last_value;
    sl_status st = sl_reducer_call(red, v, k, "per-sample means", msg, msglen);
    if (st == SL_OK) {
        double sum = 0;
        for (int i = 0, j = 0; i < nterms; i++) {
            if (sl_reducer_is_share(&terms[i]) && !red->pre[i]) terms[i].last_value = v[j++];
            sum += terms[i].weight * terms[i].last_value;
        }
        *total = sum;
    }
    free(v);
    return st;
}

const char *sl_reducer_misfit(const sl_term *terms, int nterms)
{
    static const char *const ce_names[] = {"ce", "wce", "bce"};
    for (int i = 0; i < nterms; i++) {
        const sl_term *t = &terms[i];
        int ce = 0;
        for (int k = 0; k < 3; k++) ce |= strcmp(t->cls->info.name, ce_names[k]) == 0;
        if (!ce && !t->cls->region_finalize) return t->cls->info.name;
        if (t->prm.soft_label) return "soft_label=true";
        if (t->prm.pool_classes) return "pool_classes=true";
        double a = t->prm.ignore_index, b = terms[0].prm.ignore_index;
        if (isnan(a) != isnan(b) || (!isnan(a) && a != b)) return "two ignore_index values";
    }
    return "activation=none, or ce with label smoothing under a multi-channel sigmoid";
}

void sl_reducer_release(sl_reducer *red)
{
    if (!red) return;
    free(red->freq);
    free(red->pre);
    red->freq = NULL;
    red->pre = NULL;
    red->freq_cap = red->pre_cap = 0;
}
