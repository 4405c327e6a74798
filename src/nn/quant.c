/*
 * INT8 post-training quantisation of the U-Net's convolutions.
 *
 * The scheme (docs/nn.md, "INT8 inference"), the one PyTorch's fbgemm
 * backend uses for static quantisation:
 *   weights      int8, symmetric, one scale per output channel:
 *                s_w[m] = max|w[m, :]| / 127, q = clamp(round(w / s_w), -127, 127);
 *   activations  int8, affine, one scale and zero point per convolution
 *                input, from the range [lo, hi] seen in calibration
 *                (widened to contain 0, so that zero padding is exact):
 *                s = (hi - lo) / 255, zp = -128 - round(lo / s),
 *                q = clamp(round(x / s) + zp, -128, 127);
 *   accumulation int32: acc[m] = sum_k w_q[m,k] (x_q[k] - zp)
 *                              = sum_k w_q x_q - zp * sum_k w_q[m,k];
 *   output       float32: out = s * s_w[m] * acc + bias[m].
 * The range is the minimum and maximum of the calibration inputs (PyTorch's
 * MinMaxObserver). A clipping range chosen to minimise the squared
 * quantisation error (as HistogramObserver does) was tried and lowered
 * the Dice of a Colin27 model further: the background pixels dominate
 * that error, while the rare large values carry the structures.
 * Normalisation, LeakyReLU, max-pooling and the softmax stay in float32:
 * InstanceNorm needs each image's own statistics, and a deployment keeps
 * it in float (or folds a BatchNorm into the weights).
 *
 * Rounding is to nearest, ties to even (nearbyintf in the default mode),
 * of x times the float32 reciprocal of the scale, as torch's
 * fake_quantize_per_*_affine compute it: tests/ref/test_nn_int8.py checks
 * every integer against PyTorch.
 *
 * Integer sums are exact, so results are bit-identical for any thread
 * count. They fit in int32 while a convolution sums K < SL_QUANT_MAX_K
 * products: |sum w_q x_q| and |zp sum w_q| are each at most 128 * 127 * K,
 * and their difference is formed in int32 too (sl_unet_quantize refuses
 * larger K). The kernels are plain C loops the compiler vectorises; they aim
 * at being right and reasonably fast, not at beating sgemm.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "layers.h"
#include "nn_internal.h"

#ifdef _OPENMP
#define THREAD_ID() omp_get_thread_num()
#else
#define THREAD_ID() 0
#endif

/* ---------------------------------------------------------- parameters */

void sl_quant_act_params(float lo, float hi, float *scale, int *zero_point)
{
    if (lo > 0.0f) lo = 0.0f;
    if (hi < 0.0f) hi = 0.0f;
    float s = (hi - lo) / 255.0f;
    if (!(s > 0.0f) || !isfinite(s)) s = 1.0f; /* a constant-zero input */
    float z = -128.0f - nearbyintf(lo / s);
    if (z < -128.0f) z = -128.0f;
    if (z > 127.0f) z = 127.0f;
    *scale = s;
    *zero_point = (int)z;
}

static inline int8_t quant_act(float x, float inv_scale, int zp)
{
    float q = nearbyintf(x * inv_scale) + (float)zp;
    if (!(q >= -128.0f)) q = -128.0f; /* also NaN: it has no int8 value */
    if (q > 127.0f) q = 127.0f;
    return (int8_t)q;
}

void sl_quant_weights(int8_t *wq, float *scale, int32_t *rowsum, const float *w, int64_t M, int64_t K)
{
    for (int64_t m = 0; m < M; m++) {
        const float *r = w + m * K;
        float mx = 0.0f;
        for (int64_t k = 0; k < K; k++) mx = fmaxf(mx, fabsf(r[k]));
        float s = mx / 127.0f;
        if (!(s > 0.0f)) s = 1.0f; /* an all-zero channel */
        const float inv = 1.0f / s;
        int32_t sum = 0;
        for (int64_t k = 0; k < K; k++) {
            float q = nearbyintf(r[k] * inv);
            if (q < -127.0f) q = -127.0f;
            if (q > 127.0f) q = 127.0f;
            wq[m * K + k] = (int8_t)q;
            sum += (int32_t)q;
        }
        scale[m] = s;
        rowsum[m] = sum;
    }
}

/* --------------------------------------------------------------- kernels */

/* acc (M, N) = A (M, K) x Bm (K, N), int8 x int8 -> int32. The inner loop
 * over N widens and multiplies in vector registers. */
static void qgemm(int32_t *restrict acc, const int8_t *restrict A, const int8_t *restrict Bm, int64_t M, int64_t K,
                  int64_t N)
{
    for (int64_t m = 0; m < M; m++) {
        int32_t *restrict row = acc + m * N;
        memset(row, 0, (size_t)N * sizeof *row);
        for (int64_t k = 0; k < K; k++) {
            const int32_t a = A[m * K + k];
            if (a == 0) continue;
            const int8_t *restrict b = Bm + k * N;
            for (int64_t n = 0; n < N; n++) row[n] += a * (int32_t)b[n];
        }
    }
}

/* Quantises n floats with one scale and zero point. */
static void quant_block(int8_t *q, const float *x, int64_t n, float scale, int zp)
{
    const float inv = 1.0f / scale;
    for (int64_t i = 0; i < n; i++) q[i] = quant_act(x[i], inv, zp);
}

/* Output pixels of a tile: a few thousand columns keep the int8 column
 * block and the int32 accumulators in cache. */
static int64_t tile_rows(int64_t Wo)
{
    int64_t r = 4096 / (Wo > 0 ? Wo : 1);
    return r < 1 ? 1 : r;
}

void sl_qconv2d_forward(float *out, const float *inp1, const float *inp2, const int8_t *wq, const float *wscale,
                        const int32_t *wsum, const float *bias, float in_scale, int in_zp, const sl_conv2d_shape *s,
                        int threads)
{
    const int64_t B = s->B, C1 = s->C1, C2 = s->C2, Cin = C1 + C2, Cout = s->Cout, H = s->H, W = s->W;
    const int K = s->K, st = s->stride, pad = s->pad;
    const int64_t Ho = sl_conv2d_out_h(s), Wo = sl_conv2d_out_w(s), HW = H * W;
    const int64_t ck2 = Cin * K * K, rows = tile_rows(Wo), ntiles = (Ho + rows - 1) / rows;
    const int64_t ncol = rows * Wo;
    /* the quantised input, then per thread a column block and accumulators */
    int8_t *xq = malloc((size_t)(B * Cin * HW));
    int8_t *cols = malloc((size_t)(threads * ck2 * ncol));
    int32_t *accs = malloc((size_t)(threads * Cout * ncol) * sizeof *accs);
    if (!xq || !cols || !accs) {
        /* out of memory: NaN output rather than a silent wrong answer */
        for (int64_t i = 0; i < B * Cout * Ho * Wo; i++) out[i] = NAN;
        free(xq), free(cols), free(accs);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        quant_block(xq + b * Cin * HW, inp1 + b * C1 * HW, C1 * HW, in_scale, in_zp);
        if (C2) quant_block(xq + b * Cin * HW + C1 * HW, inp2 + b * C2 * HW, C2 * HW, in_scale, in_zp);
    }
    const int8_t pad_q = (int8_t)in_zp; /* the int8 value of a real 0 */
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t job = 0; job < B * ntiles; job++) {
        const int tid = THREAD_ID();
        const int64_t b = job / ntiles, y0 = (job % ntiles) * rows;
        const int64_t y1 = y0 + rows < Ho ? y0 + rows : Ho, nt = (y1 - y0) * Wo;
        int8_t *col = cols + (int64_t)tid * ck2 * ncol;
        int32_t *acc = accs + (int64_t)tid * Cout * ncol;
        const int8_t *x = xq + b * Cin * HW;
        for (int64_t ci = 0; ci < Cin; ci++)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++) {
                    int8_t *dst = col + ((ci * K + ky) * K + kx) * nt;
                    for (int64_t oy = y0; oy < y1; oy++) {
                        const int64_t iy = oy * st - pad + ky;
                        int8_t *d = dst + (oy - y0) * Wo;
                        if (iy < 0 || iy >= H) {
                            memset(d, pad_q, (size_t)Wo);
                            continue;
                        }
                        const int8_t *srow = x + ci * HW + iy * W;
                        for (int64_t ox = 0; ox < Wo; ox++) {
                            const int64_t ix = ox * st - pad + kx;
                            d[ox] = ix >= 0 && ix < W ? srow[ix] : pad_q;
                        }
                    }
                }
        qgemm(acc, wq, col, Cout, ck2, nt);
        for (int64_t m = 0; m < Cout; m++) {
            const float sc = in_scale * wscale[m], bm = bias ? bias[m] : 0.0f;
            const int32_t zc = in_zp * wsum[m];
            float *o = out + (b * Cout + m) * Ho * Wo + y0 * Wo;
            const int32_t *a = acc + m * nt;
            for (int64_t p = 0; p < nt; p++) o[p] = sc * (float)(a[p] - zc) + bm;
        }
    }
    free(xq);
    free(cols);
    free(accs);
}

void sl_qconvt2x2_forward(float *out, const float *inp, const int8_t *wq, const float *wscale, const int32_t *wsum,
                          const float *bias, float in_scale, int in_zp, int64_t B, int64_t Cin, int64_t Cout, int64_t H,
                          int64_t W, int threads)
{
    /* wq is (Cout * 4, Cin): row co*4 + dy*2 + dx holds weight[:, co, dy, dx];
     * wscale and wsum are per row (the 4 rows of a channel share a scale) */
    const int64_t HW = H * W, ntile = 4096, ntiles = (HW + ntile - 1) / ntile, M = Cout * 4;
    int8_t *xq = malloc((size_t)(B * Cin * HW));
    int8_t *cols = malloc((size_t)(threads * Cin * ntile));
    int32_t *accs = malloc((size_t)(threads * M * ntile) * sizeof *accs);
    if (!xq || !cols || !accs) {
        for (int64_t i = 0; i < B * Cout * 4 * HW; i++) out[i] = NAN;
        free(xq), free(cols), free(accs);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < B; b++) quant_block(xq + b * Cin * HW, inp + b * Cin * HW, Cin * HW, in_scale, in_zp);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t job = 0; job < B * ntiles; job++) {
        const int tid = THREAD_ID();
        const int64_t b = job / ntiles, p0 = (job % ntiles) * ntile;
        const int64_t p1 = p0 + ntile < HW ? p0 + ntile : HW, nt = p1 - p0;
        int8_t *col = cols + (int64_t)tid * Cin * ntile;
        int32_t *acc = accs + (int64_t)tid * M * ntile;
        for (int64_t ci = 0; ci < Cin; ci++) memcpy(col + ci * nt, xq + (b * Cin + ci) * HW + p0, (size_t)nt);
        qgemm(acc, wq, col, M, Cin, nt);
        for (int64_t r = 0; r < M; r++) {
            const int64_t co = r / 4, dy = (r / 2) % 2, dx = r % 2;
            const float sc = in_scale * wscale[r], bm = bias ? bias[co] : 0.0f;
            const int32_t zc = in_zp * wsum[r];
            float *o = out + (b * Cout + co) * 4 * HW;
            const int32_t *a = acc + r * nt;
            for (int64_t p = p0; p < p1; p++) {
                const int64_t y = p / W, x = p % W;
                o[(2 * y + dy) * 2 * W + 2 * x + dx] = sc * (float)(a[p - p0] - zc) + bm;
            }
        }
    }
    free(xq);
    free(cols);
    free(accs);
}

/* ----------------------------------------------------- the net's state */

void sl_quant_free(sl_quant *q)
{
    if (!q) return;
    for (int i = 0; i < q->nsites; i++) {
        free(q->site[i].wq);
        free(q->site[i].wscale);
        free(q->site[i].wsum);
    }
    free(q);
}

sl_quant *sl_quant_new(int nsites)
{
    sl_quant *q = calloc(1, sizeof *q + (size_t)nsites * sizeof q->site[0]);
    if (!q) return NULL;
    q->nsites = nsites;
    for (int i = 0; i < nsites; i++) {
        q->site[i].lo = INFINITY;
        q->site[i].hi = -INFINITY;
    }
    return q;
}

void sl_quant_observe(sl_qsite *qs, const float *x, int64_t n)
{
    float lo = qs->lo, hi = qs->hi;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue; /* NaN/Inf have no int8 value */
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    qs->lo = lo;
    qs->hi = hi;
    qs->seen = 1;
}

sl_status sl_quant_site_weights(sl_qsite *qs, const float *w, int64_t M, int64_t K, int transposed)
{
    for (int64_t i = 0; i < M * K; i++)
        if (!isfinite(w[i])) return SL_ENONFINITE;
    qs->M = M;
    qs->K = K;
    free(qs->wq); /* from an earlier sl_unet_quantize that failed on a later site */
    free(qs->wscale);
    free(qs->wsum);
    qs->wq = malloc((size_t)(M * K));
    qs->wscale = malloc((size_t)M * sizeof *qs->wscale);
    qs->wsum = malloc((size_t)M * sizeof *qs->wsum);
    if (!qs->wq || !qs->wscale || !qs->wsum) return SL_ENOMEM;
    if (!transposed) {
        sl_quant_weights(qs->wq, qs->wscale, qs->wsum, w, M, K);
    } else {
        /* PyTorch's (Cin, Cout, 2, 2) to rows (Cout*4, Cin) with the scale
         * of output channel co shared by its 4 rows: quantise a channel's
         * 4*Cin weights as one row, then split it */
        const int64_t Cout = M / 4, Cin = K;
        float *chan = malloc((size_t)(4 * Cin) * sizeof *chan);
        int8_t *cq = malloc((size_t)(4 * Cin));
        if (!chan || !cq) {
            free(chan), free(cq);
            return SL_ENOMEM;
        }
        for (int64_t co = 0; co < Cout; co++) {
            for (int64_t r = 0; r < 4; r++)
                for (int64_t ci = 0; ci < Cin; ci++) chan[r * Cin + ci] = w[(ci * Cout + co) * 4 + r];
            float sc;
            int32_t sum;
            sl_quant_weights(cq, &sc, &sum, chan, 1, 4 * Cin);
            for (int64_t r = 0; r < 4; r++) {
                int32_t rs = 0;
                for (int64_t ci = 0; ci < Cin; ci++) rs += (qs->wq[(co * 4 + r) * Cin + ci] = cq[r * Cin + ci]);
                qs->wscale[co * 4 + r] = sc;
                qs->wsum[co * 4 + r] = rs;
            }
        }
        free(chan);
        free(cq);
    }
    if (!isfinite(qs->lo) || !isfinite(qs->hi)) return SL_ENONFINITE; /* only non-finite inputs seen */
    sl_quant_act_params(qs->lo, qs->hi, &qs->scale, &qs->zp);
    return SL_OK;
}
