/*
 * Shared machinery of the region losses: soft counts per group, their
 * back-propagation to the probabilities, the average over groups, and class
 * weights.
 *
 * Every region loss (Dice, IoU, Tversky, MCC, generalized Dice, ...) is a
 * function of a handful of sums per (sample, class) — or per class when the
 * batch is pooled —:
 *     tp = Σ p·g    sp = Σ p    sg = Σ g    sp2 = Σ p²    sg2 = Σ g²
 * so d(loss)/d(p) at a voxel is  d_tp·g + d_sp + 2·d_sp2·p, with the three
 * coefficients constant per group. One pass computes the sums, the loss
 * computes its value and the coefficients from them, one pass writes the
 * gradient.
 *
 * The sums are deterministic: voxels are cut into SL_CHUNK-sized chunks
 * whatever the thread count, each chunk sums into its own slot, and the
 * slots are added in order.
 */
#include <stdlib.h>
#include <string.h>
#include "fastexp.h"
#include "reduce.h"
#include "term.h"

#define NSUM 7 /* tp, sp, sg, sp2, sg2, cnt, sad */

void sl_region_free(sl_region *r)
{
    if (!r) return;
    free(r->tp); /* one block holds all arrays */
    memset(r, 0, sizeof *r);
}

sl_status sl_region_alloc(sl_region *r, int64_t G, int pooled)
{
    memset(r, 0, sizeof *r);
    r->pooled = pooled;
    r->G = G;
    double *block = sl_calloc(11 * G, sizeof(double));
    if (!block) return SL_ENOMEM;
    r->tp = block;
    r->sp = block + r->G;
    r->sg = block + 2 * r->G;
    r->sp2 = block + 3 * r->G;
    r->sg2 = block + 4 * r->G;
    r->cnt = block + 5 * r->G;
    r->d_tp = block + 6 * r->G;
    r->d_sp = block + 7 * r->G;
    r->d_sp2 = block + 8 * r->G;
    r->sad = block + 9 * r->G;
    r->d_sad = block + 10 * r->G;
    return SL_OK;
}

sl_status sl_region_compute(const sl_ctx *cx, const sl_params *pr, int want_squares, sl_region *r)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S;
    if (sl_region_alloc(r, pr->batch ? C : N * C, pr->batch) != SL_OK) return SL_ENOMEM;

    const int64_t nch = sl_nchunks(S);
    double *part = sl_calloc(N * nch * C * NSUM, sizeof(double));
    if (!part) {
        sl_region_free(r);
        return SL_ENOMEM;
    }
    const int weighted = sl_weighted(cx, pr), want_sad = pr->soft_label;
#pragma omp parallel for num_threads(cx->threads) schedule(dynamic, 4) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            double *out = part + ((n * nch + ch) * C) * NSUM;
            for (int64_t c = 0; c < C; c++) {
                const float *p = cx->p + (n * C + c) * S;
                double tp = 0, sp = 0, sg = 0, sp2 = 0, sg2 = 0, cnt = 0, sad = 0;
                for (int64_t s = a; s < b; s++) {
                    double w = 1;
                    if (weighted && (w = sl_vw(cx, pr, n, s)) == 0) continue;
                    double pv = p[s], gv = sl_g(cx, n, c, s);
                    tp += w * pv * gv;
                    sp += w * pv;
                    sg += w * gv;
                    if (want_squares) {
                        sp2 += w * pv * pv;
                        sg2 += w * gv * gv;
                    }
                    cnt += w;
                    if (want_sad) sad += w * fabs(pv - gv);
                }
                double *o = out + c * NSUM;
                o[0] = tp, o[1] = sp, o[2] = sg, o[3] = sp2, o[4] = sg2, o[5] = cnt, o[6] = sad;
            }
        }
    /* Ordered combination: sample by sample, chunk by chunk. */
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++)
            for (int64_t c = 0; c < C; c++) {
                const double *o = part + ((n * nch + ch) * C + c) * NSUM;
                int64_t g = sl_region_group(r, cx, n, c);
                r->tp[g] += o[0];
                r->sp[g] += o[1];
                r->sg[g] += o[2];
                r->sp2[g] += o[3];
                r->sg2[g] += o[4];
                r->cnt[g] += o[5];
                r->sad[g] += o[6];
            }
    free(part);
    return SL_OK;
}

void sl_region_backprop(const sl_ctx *cx, const sl_params *pr, const sl_region *r)
{
    if (!cx->dp) return;
    const int64_t N = cx->N, C = cx->C, S = cx->S;
    const int weighted = sl_weighted(cx, pr);
    const double scale = cx->scale;
    const int64_t nch = sl_nchunks(S);
#pragma omp parallel for num_threads(cx->threads) schedule(static) collapse(2)
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < S ? a + SL_CHUNK : S;
            for (int64_t c = 0; c < C; c++) {
                int64_t g = sl_region_group(r, cx, n, c);
                const double ktp = scale * r->d_tp[g], ksp = scale * r->d_sp[g], ksp2 = 2 * scale * r->d_sp2[g];
                const double ksad = scale * r->d_sad[g];
                if (ktp == 0 && ksp == 0 && ksp2 == 0 && ksad == 0) continue;
                const float *p = cx->p + (n * C + c) * S;
                float *dp = cx->dp + (n * C + c) * S;
                for (int64_t s = a; s < b; s++) {
                    double w = 1;
                    if (weighted && (w = sl_vw(cx, pr, n, s)) == 0) continue;
                    double gv = sl_g(cx, n, c, s), d = ktp * gv + ksp + ksp2 * p[s];
                    if (ksad != 0) d += p[s] > gv ? ksad : p[s] < gv ? -ksad : 0.0; /* sign(p − g); 0 at p = g */
                    dp[s] += (float)(w * d);
                }
            }
        }
}

/* soft_label: the loss sees tp = (Σp + Σg − Σ|p − g|)/2, so its d/dtp goes
 * to Σp (×½) and to Σ|p − g| (×−½). The squared Dice form is already
 * minimised at p = g (MONAI leaves it alone too). */
static void soft_tp(const sl_params *pr, sl_region *r)
{
    if (!pr->soft_label || pr->squared) return;
    for (int64_t g = 0; g < r->G; g++) r->tp[g] = 0.5 * (r->sp[g] + r->sg[g] - r->sad[g]);
}

static void soft_tp_grad(const sl_params *pr, sl_region *r)
{
    if (!pr->soft_label || pr->squared) return;
    for (int64_t g = 0; g < r->G; g++) {
        r->d_sp[g] += 0.5 * r->d_tp[g];
        r->d_sad[g] = -0.5 * r->d_tp[g];
        r->d_tp[g] = 0;
    }
}

/*
 * pool_classes: the sums of the included classes are added per sample (or
 * over the batch) before the loss forms its ratio, so the loss sees one
 * group per sample: a context with C = 1 and N samples (or one pooled
 * group). Its coefficients then apply to every included class of the
 * sample; excluded classes get none.
 */
static sl_status region_eval_pooled(sl_term *t, const sl_ctx *cx, sl_region *r, double *value, char *msg,
                                    size_t msglen)
{
    const sl_params *pr = &t->prm;
    const int64_t C = cx->C, first = (!pr->include_background && C > 1) ? 1 : 0;
    const int64_t nsamp = r->pooled ? 1 : cx->N;
    if (pr->weight_mode != SL_WEIGHT_NONE)
        return sl_errf(msg, msglen, SL_EINVAL, "%s: class weights have no meaning with pool_classes=true",
                       t->cls->info.name);
    sl_region q;
    if (sl_region_alloc(&q, nsamp, r->pooled) != SL_OK)
        return sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", t->cls->info.name);
    for (int64_t n = 0; n < nsamp; n++)
        for (int64_t c = first; c < C; c++) {
            const int64_t g = n * C + c; /* pooled r: n == 0, g == c */
            q.tp[n] += r->tp[g], q.sp[n] += r->sp[g], q.sg[n] += r->sg[g];
            q.sp2[n] += r->sp2[g], q.sg2[n] += r->sg2[g], q.cnt[n] += r->cnt[g], q.sad[n] += r->sad[g];
        }
    soft_tp(pr, &q);
    sl_ctx c1 = *cx;
    c1.C = 1;
    sl_status st = t->cls->region_finalize(t, &c1, &q, value, msg, msglen);
    soft_tp_grad(pr, &q);
    for (int64_t n = 0; st == SL_OK && n < nsamp; n++)
        for (int64_t c = first; c < C; c++) {
            const int64_t g = n * C + c;
            r->d_tp[g] = q.d_tp[n], r->d_sp[g] = q.d_sp[n], r->d_sp2[g] = q.d_sp2[n], r->d_sad[g] = q.d_sad[n];
        }
    sl_region_free(&q);
    return st;
}

sl_status sl_region_eval(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    sl_region r;
    if (sl_region_compute(cx, &t->prm, 1, &r) != SL_OK)
        return sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", t->cls->info.name);
    sl_status st;
    if (t->prm.pool_classes) {
        st = region_eval_pooled(t, cx, &r, value, msg, msglen);
    } else {
        soft_tp(&t->prm, &r);
        st = t->cls->region_finalize(t, cx, &r, value, msg, msglen);
        soft_tp_grad(&t->prm, &r);
    }
    if (st == SL_OK) sl_region_backprop(cx, &t->prm, &r);
    sl_region_free(&r);
    return st;
}

#if SL_HAVE_V16
/* count_block for C = 1..8 (a compile-time constant): one pass over the
 * block, 16 labels at a time, a vector of 16 counters per class and one for
 * the ignored label (a vector compare is −1 where it holds; at most
 * len/16 <= 256 per lane for label_counts' blocks of 4096). One pass
 * instead of one per class and one for the ignored: the counting alone
 * took 0.20x the time in a microbenchmark on 2x128^3 labels and 4
 * classes, wce 0.91x in an A/B. */
static inline __attribute__((always_inline)) void count_block_few(const int32_t *l, int64_t len, const int C,
                                                                  int32_t ig, int64_t *h)
{
    sl_v16i cnt[9] = {{0}};
    const sl_v16i vig = (sl_v16i){0} + ig;
    int64_t i = 0;
    for (; i + 16 <= len; i += 16) {
        sl_v16i v;
        memcpy(&v, l + i, sizeof v);
        cnt[C] -= v == vig;
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) cnt[c] -= v == (sl_v16i){0} + (C == 1 ? 1 : c); /* one sigmoid channel: label 1 */
    }
    int32_t tot[9] = {0};
    for (int c = 0; c <= C; c++)
        for (int q = 0; q < 16; q++) tot[c] += cnt[c][q];
    for (; i < len; i++) {
        tot[C] += l[i] == ig;
        for (int c = 0; c < C; c++) tot[c] += l[i] == (C == 1 ? 1 : c);
    }
    h[C] += len - tot[C];
    for (int c = 0; c < C; c++)
        if ((C == 1 ? 1 : c) != ig) h[c] += tot[c]; /* the ignored label's voxels count for no class */
}
#endif

/* One block of labels into the counts h (per class, then valid), each
 * class counted by a compare-and-add that vectorises: for a few classes
 * that beats a histogram, whose increments of one counter chain through
 * memory. Compiled for each instruction set (the baseline's 4-lane compares
 * made label_counts a fifth of wce's time; the counts are integers, the
 * same on every one). */
static inline __attribute__((always_inline)) void count_block(const int32_t *l, int64_t len, int64_t C, int32_t ig,
                                                              int64_t *h)
{
#if SL_HAVE_V16
    switch (C) {
    case 1: count_block_few(l, len, 1, ig, h); return;
    case 2: count_block_few(l, len, 2, ig, h); return;
    case 3: count_block_few(l, len, 3, ig, h); return;
    case 4: count_block_few(l, len, 4, ig, h); return;
    case 5: count_block_few(l, len, 5, ig, h); return;
    case 6: count_block_few(l, len, 6, ig, h); return;
    case 7: count_block_few(l, len, 7, ig, h); return;
    case 8: count_block_few(l, len, 8, ig, h); return;
    default: break;
    }
#endif
    int32_t skip = 0;
    for (int64_t i = 0; i < len; i++) skip += l[i] == ig;
    h[C] += len - skip;
    if (C <= 32)
        for (int64_t c = 0; c < C; c++) {
            const int32_t want = C == 1 ? 1 : (int32_t)c; /* one sigmoid channel: label 1 */
            if (want == ig) continue;                     /* its voxels are ignored */
            int32_t k = 0;
            for (int64_t i = 0; i < len; i++) k += l[i] == want;
            h[c] += k;
        }
    else
        for (int64_t i = 0; i < len; i++)
            if (l[i] != ig) h[l[i]]++; /* labels are checked to be in [0, C) */
}

typedef void (*count_block_fn)(const int32_t *l, int64_t len, int64_t C, int32_t ig, int64_t *h);
static void count_block_base(const int32_t *l, int64_t len, int64_t C, int32_t ig, int64_t *h)
{
    count_block(l, len, C, ig, h);
}
#if SL_X86
SL_T_AVX2 static void count_block_avx2(const int32_t *l, int64_t len, int64_t C, int32_t ig, int64_t *h)
{
    count_block(l, len, C, ig, h);
}
SL_T_AVX512 static void count_block_avx512(const int32_t *l, int64_t len, int64_t C, int32_t ig, int64_t *h)
{
    count_block(l, len, C, ig, h);
}
#endif

/* A label map without a mask: integer counts per thread, so the doubles are
 * exactly those of the generic loop of sl_class_counts (a sum of ones), at a
 * fraction of its time (wce spent 40 % there). */
static sl_status label_counts(const sl_ctx *cx, const sl_params *pr, double *freq, double *total)
{
    const int64_t C = cx->C, M = cx->N * cx->S, K = C + 1;
    const int threads = cx->threads > 0 ? cx->threads : 1;
    const int32_t ig = isnan(pr->ignore_index) ? INT32_MIN : (int32_t)pr->ignore_index;
    const int32_t *lab = cx->target->labels;
    count_block_fn count = count_block_base;
#if SL_X86
    if (sl_isa() == SL_ISA_AVX512) count = count_block_avx512;
    else if (sl_isa() == SL_ISA_AVX2) count = count_block_avx2;
#endif
    int64_t *cnt = sl_calloc((int64_t)threads * K, sizeof(int64_t)); /* per thread: per class, then valid */
    if (!cnt) return SL_ENOMEM;
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        int64_t *h = cnt + (int64_t)omp_get_thread_num() * K;
#else
        int64_t *h = cnt;
#endif
#pragma omp for schedule(static)
        for (int64_t b0 = 0; b0 < M; b0 += 4096) count(lab + b0, M - b0 < 4096 ? M - b0 : 4096, C, ig, h);
    }
    for (int64_t c = 0; c <= C; c++) {
        int64_t sum = 0;
        for (int t = 0; t < threads; t++) sum += cnt[(int64_t)t * K + c];
        if (c < C) freq[c] = (double)sum;
        else *total = (double)sum;
    }
    free(cnt);
    return SL_OK;
}

sl_status sl_class_counts(const sl_ctx *cx, const sl_params *pr, double *freq, double *total)
{
    if (cx->target->kind == SL_TARGET_LABELS && !cx->target->mask) return label_counts(cx, pr, freq, total);
    const int64_t C = cx->C;
    for (int64_t c = 0; c < C; c++) freq[c] = 0;
    *total = 0;
    for (int64_t n = 0; n < cx->N; n++)
        for (int64_t s = 0; s < cx->S; s++) {
            const double vw = sl_vw(cx, pr, n, s);
            if (vw == 0) continue;
            for (int64_t c = 0; c < C; c++) freq[c] += vw * sl_g(cx, n, c, s);
            *total += vw;
        }
    return SL_OK;
}

sl_status sl_class_weights(const sl_ctx *cx, const sl_params *pr, double *w, char *msg, size_t msglen)
{
    const int64_t C = cx->C;
    /* A single sigmoid channel stands for the foreground class: weights are
     * given for that one channel. */
    if (pr->weight_mode == SL_WEIGHT_NONE) {
        for (int64_t c = 0; c < C; c++) w[c] = 1.0;
        return SL_OK;
    }
    if (pr->weight_mode == SL_WEIGHT_LIST) {
        if (pr->weight.n != C)
            return sl_errf(msg, msglen, SL_ESHAPE, "weight has %d values but the scores have C = %lld channels",
                           pr->weight.n, (long long)C);
        for (int64_t c = 0; c < C; c++) w[c] = pr->weight.v[c];
        return SL_OK;
    }
    /* inverse / median: from the batch's class frequencies (valid voxels,
     * weighted by the mask). */
    double *freq = sl_calloc(C, sizeof(double));
    if (!freq) return SL_ENOMEM;
    double total = 0;
    if (cx->red && cx->red->have_freq) { /* the global batch's counts (reduce.c) */
        memcpy(freq, cx->red->freq, (size_t)C * sizeof(double));
        total = cx->red->freq[C];
    } else if (sl_class_counts(cx, pr, freq, &total) != SL_OK) {
        free(freq);
        return SL_ENOMEM;
    }
    if (pr->weight_mode == SL_WEIGHT_INVERSE) {
        /* w_c = total / (C · count_c): "balanced" weights, 1 for every class
         * when the classes are equally frequent. */
        for (int64_t c = 0; c < C; c++) w[c] = freq[c] > 0 ? total / ((double)C * freq[c]) : 0.0;
    } else {
        /* median frequency balancing (Eigen & Fergus 2015): median of the
         * present classes' frequencies divided by each class's frequency. */
        double *sorted = sl_calloc(C, sizeof(double));
        if (!sorted) {
            free(freq);
            return SL_ENOMEM;
        }
        int64_t m = 0;
        for (int64_t c = 0; c < C; c++)
            if (freq[c] > 0) sorted[m++] = freq[c];
        for (int64_t i = 1; i < m; i++) /* insertion sort: C is small */
            for (int64_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
                double t = sorted[j];
                sorted[j] = sorted[j - 1];
                sorted[j - 1] = t;
            }
        double med = m == 0 ? 0 : (m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]));
        for (int64_t c = 0; c < C; c++) w[c] = freq[c] > 0 ? med / freq[c] : 0.0;
        free(sorted);
    }
    free(freq);
    return SL_OK;
}

sl_status sl_region_mean(const sl_ctx *cx, const sl_params *pr, const sl_region *r, const double *loss_g,
                         double *dl, double *mean, char *msg, size_t msglen)
{
    const int64_t C = cx->C;
    double *w = sl_calloc(C, sizeof(double));
    if (!w) return SL_ENOMEM;
    sl_status st = sl_class_weights(cx, pr, w, msg, msglen);
    if (st != SL_OK) {
        free(w);
        return st;
    }
    const int64_t first = (!pr->include_background && C > 1) ? 1 : 0;
    const int64_t nsamp = r->pooled ? 1 : cx->N;
    const double count = (double)(nsamp * (C - first));
    double sum = 0;
    for (int64_t g = 0; g < r->G; g++) dl[g] = 0;
    for (int64_t n = 0; n < nsamp; n++)
        for (int64_t c = first; c < C; c++) {
            int64_t g = n * C + c; /* pooled: n == 0, g == c */
            sum += w[c] * loss_g[g];
            dl[g] = w[c] / count;
        }
    *mean = sum / count;
    sl_class_hook *h = cx->cls;
    if (h && !r->pooled && cx->N == 1 && cx->C == h->C && r->G == C) { /* reduction=none (term.h) */
        double up_sum = 0;
        for (int64_t c = 0; c < C; c++) {
            h->val[c] = c >= first ? w[c] * loss_g[c] : 0.0;
            if (h->up) {
                dl[c] = c >= first ? w[c] * h->up[c] : 0.0;
                up_sum += c >= first ? h->up[c] * w[c] * loss_g[c] : 0.0;
            }
        }
        if (h->up) *mean = up_sum;
        h->captured = 1;
    }
    free(w);
    return SL_OK;
}
