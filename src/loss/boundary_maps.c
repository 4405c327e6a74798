/*
 * Shared pieces of the boundary- and distance-based losses; see
 * boundary_maps.h and docs/losses-boundary.md.
 */
#include <stdlib.h>
#include <string.h>
#include "boundary_maps.h"

sl_grid slb_grid(const sl_ctx *cx)
{
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = cx->dims.spatial_ndim;
    for (int a = 0; a < g.ndim; a++) {
        g.shape[a] = cx->dims.spatial[a];
        g.spacing[a] = cx->opts->spacing[a];
    }
    return g;
}

int64_t slb_target_mask(const sl_ctx *cx, int64_t n, int64_t c, uint8_t *m)
{
    const int64_t S = cx->S;
    int64_t count = 0;
    if (cx->target->kind == SL_TARGET_SOFT) {
        const float *g = cx->target->soft + (n * cx->C + c) * S;
        for (int64_t s = 0; s < S; s++) count += (m[s] = g[s] > 0.5f);
    } else {
        const int32_t *lab = cx->target->labels + n * S;
        const int32_t want = cx->C == 1 ? 1 : (int32_t)c;
        for (int64_t s = 0; s < S; s++) count += (m[s] = lab[s] == want);
    }
    return count;
}

void slb_hard_labels(const sl_ctx *cx, int64_t n, int64_t channel, int32_t *lab)
{
    const int64_t S = cx->S, C = cx->C;
    if (channel >= 0) {
        if (cx->target->kind == SL_TARGET_SOFT) {
            const float *g = cx->target->soft + (n * C + channel) * S;
            for (int64_t s = 0; s < S; s++) lab[s] = 1 + (g[s] > 0.5f);
        } else {
            const int32_t *y = cx->target->labels + n * S;
            const int32_t want = C == 1 ? 1 : (int32_t)channel;
            for (int64_t s = 0; s < S; s++) lab[s] = 1 + (y[s] == want);
        }
        return;
    }
    if (cx->target->kind == SL_TARGET_LABELS) {
        const int32_t *y = cx->target->labels + n * S;
        for (int64_t s = 0; s < S; s++) lab[s] = y[s] + 1;
        return;
    }
    const float *g = cx->target->soft + n * C * S;
    for (int64_t s = 0; s < S; s++) {
        int32_t best = 0;
        float bv = g[s];
        for (int64_t c = 1; c < C; c++)
            if (g[c * S + s] > bv) {
                bv = g[c * S + s];
                best = (int32_t)c;
            }
        lab[s] = best + 1;
    }
}

int slb_label_distance(const int32_t *lab, const sl_grid *grid, int threads, float *d, sl_status *st)
{
    const int64_t S = sl_grid_voxels(grid);
    *st = SL_OK;
    int64_t s = 1;
    while (s < S && lab[s] == lab[0]) s++;
    if (s == S) {
        for (int64_t i = 0; i < S; i++) d[i] = INFINITY;
        return 0;
    }
    sl_edt_opts o = {SL_EDT_MULTILABEL, threads};
    *st = sl_edt(lab, SL_DT_I32, grid, &o, d, SL_DT_F32, NULL, 0);
    return 1;
}

sl_status slb_run_jobs(int64_t njobs, int threads, size_t scratch_bytes, slb_job_fn fn, void *user, char *msg,
                       size_t msglen)
{
    if (njobs <= 0) return SL_OK;
    const int nt = sl_threads(threads);
    const int outer = nt > 1 && njobs >= nt;
    const int nrun = outer ? nt : 1;
    int64_t bad = njobs;
    sl_status bad_st = SL_OK;
    char bad_msg[512] = "";
#pragma omp parallel num_threads(nrun)
    {
        /* One scratch block per running thread, allocated by that thread (a
         * block per thread rather than one big block keeps each below
         * glibc's mmap threshold, so repeated forwards reuse heap pages
         * instead of faulting fresh ones in). Jobs overwrite what they use. */
        char *scratch = scratch_bytes ? sl_malloc((int64_t)scratch_bytes, 1) : NULL;
        char lmsg[512];
#pragma omp for schedule(dynamic, 1)
        for (int64_t j = 0; j < njobs; j++) {
            lmsg[0] = 0;
            sl_status st = scratch_bytes && !scratch
                               ? sl_errf(lmsg, sizeof lmsg, SL_ENOMEM, "out of memory for distance-map scratch buffers")
                               : fn(user, j, outer ? 1 : nt, scratch, lmsg, sizeof lmsg);
            if (st != SL_OK) {
                /* Unnamed: a named critical section makes GCC export a
                 * global lock symbol (.gomp_critical_user_NAME) from the
                 * library. This one is taken only on the error path. */
#pragma omp critical
                if (j < bad) {
                    bad = j;
                    bad_st = st;
                    memcpy(bad_msg, lmsg, sizeof bad_msg);
                }
            }
        }
        free(scratch);
    }
    if (bad_st != SL_OK) return sl_errf(msg, msglen, bad_st, "%s", bad_msg[0] ? bad_msg : sl_strerror(bad_st));
    return SL_OK;
}

/* ---- voxel-weighted cross-entropy ------------------------------------------ */

int slb_binary_form(const sl_ctx *cx)
{
    return cx->act == SL_ACT_SIGMOID || (cx->act == SL_ACT_NONE && cx->C == 1);
}

typedef struct {
    double loss, wsum;
} wce_part;

/* A label outside the classes (possible only when another term of the spec
 * declares it its ignore_index) has no class here: it adds nothing to the
 * CE (its one-hot row is zero) but still counts in the denominator. */
static inline int label_ok(const sl_ctx *cx, int64_t n, int64_t s)
{
    if (cx->target->kind != SL_TARGET_LABELS) return 1;
    int32_t y = cx->target->labels[n * cx->S + s];
    return y >= 0 && y < (cx->C == 1 ? 2 : cx->C);
}

sl_status slb_weighted_ce(const sl_ctx *cx, const float *w, int by_weights, double *value)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const int binary = slb_binary_form(cx);
    const int64_t K = binary ? C : 1; /* weight maps per sample */
    wce_part *part = sl_calloc(N * nch, sizeof(wce_part));
    if (!part) return SL_ENOMEM;
    /* the mean over terms: a voxel mask (sl_target.mask) counts each voxel m times */
    double D = cx->target->mask ? (double)K * sl_mask_total(cx) : (double)(N * K * S);
    if (by_weights) {
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
        for (int64_t n = 0; n < N; n++)
            for (int64_t ch = 0; ch < nch; ch++) {
                int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
                double acc = 0;
                for (int64_t k = 0; k < K; k++) {
                    const float *wk = w + (n * K + k) * S;
                    for (int64_t s = a; s < b; s++) acc += wk[s] * sl_mask_w(cx, n, s);
                }
                part[n * nch + ch].wsum = acc;
            }
        D = 0;
        for (int64_t i = 0; i < N * nch; i++) D += part[i].wsum;
    }
    if (!(D > 0)) {
        free(part);
        *value = 0;
        return SL_OK;
    }
    const double k0 = cx->scale / D;
    const int soft = cx->target->kind == SL_TARGET_SOFT;
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            double acc = 0;
            if (binary) {
                for (int64_t c = 0; c < C; c++) {
                    const int64_t off = (n * C + c) * S;
                    const float *wc = w + off;
                    for (int64_t s = a; s < b; s++) {
                        double ws = wc[s] * sl_mask_w(cx, n, s);
                        if (ws == 0 || !label_ok(cx, n, s)) continue;
                        double g = sl_g(cx, n, c, s), p = cx->p[off + s];
                        /* terms with a zero coefficient are skipped so that a
                         * probability of exactly 0 or 1 (activation=none) does
                         * not turn 0·log 0 into NaN */
                        if (g != 0) acc -= ws * g * cx->logp[off + s];
                        if (g != 1) acc -= ws * (1 - g) * cx->log1mp[off + s];
                        if (cx->act == SL_ACT_SIGMOID && cx->dx) {
                            cx->dx[off + s] += (float)(k0 * ws * (p - g));
                        } else if (cx->dp) {
                            double d = 0;
                            if (g != 0) d -= g / p;
                            if (g != 1) d += (1 - g) / (1 - p);
                            cx->dp[off + s] += (float)(k0 * ws * d);
                        }
                    }
                }
            } else {
                const float *wn = w + n * S;
                const int64_t off = n * C * S;
                for (int64_t s = a; s < b; s++) {
                    double ws = wn[s] * sl_mask_w(cx, n, s);
                    if (ws == 0) continue;
                    if (!soft) {
                        int32_t y = cx->target->labels[n * S + s];
                        if (!label_ok(cx, n, s)) continue;
                        acc -= ws * cx->logp[off + y * S + s];
                        if (cx->act == SL_ACT_SOFTMAX && cx->dx) {
                            for (int64_t c = 0; c < C; c++)
                                cx->dx[off + c * S + s] += (float)(k0 * ws * (cx->p[off + c * S + s] - (c == y)));
                        } else if (cx->dp) {
                            cx->dp[off + y * S + s] += (float)(-k0 * ws / cx->p[off + y * S + s]);
                        }
                    } else {
                        double A = 0;
                        for (int64_t c = 0; c < C; c++) {
                            double g = cx->target->soft[off + c * S + s];
                            A += g;
                            if (g != 0) acc -= ws * g * cx->logp[off + c * S + s];
                        }
                        for (int64_t c = 0; c < C; c++) {
                            double g = cx->target->soft[off + c * S + s], p = cx->p[off + c * S + s];
                            if (cx->act == SL_ACT_SOFTMAX && cx->dx) cx->dx[off + c * S + s] += (float)(k0 * ws * (A * p - g));
                            else if (cx->dp && g != 0) cx->dp[off + c * S + s] += (float)(-k0 * ws * g / p);
                        }
                    }
                }
            }
            part[n * nch + ch].loss = acc;
        }
    double L = 0;
    for (int64_t i = 0; i < N * nch; i++) L += part[i].loss;
    free(part);
    *value = L / D;
    return SL_OK;
}
