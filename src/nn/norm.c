/*
 * Instance and batch normalisation fused with LeakyReLU, and LeakyReLU alone.
 *
 * Instance norm (Ulyanov et al. 2016) normalises each (sample, channel) over
 * its pixels; batch norm (Ioffe & Szegedy 2015) each channel over the batch
 * and the pixels. Both then apply a per-channel affine map gamma * x + beta
 * and, here, the LeakyReLU of the U-Net block, so the activations are
 * written once and read once per pass instead of three times.
 *
 * Backward, with xhat = (x - mean) * rstd, n = gamma * xhat + beta,
 * dn = dout * lrelu'(n) and N values per statistic:
 *     dbeta  = sum dn,   dgamma = sum dn * xhat,
 *     dx     = gamma * rstd * (dn - mean(dn) - xhat * mean(dn * xhat)).
 * The LeakyReLU mask comes from the saved output: out > 0 exactly when
 * n > 0 (slope >= 0), matching PyTorch's `input > 0` test, also at n = 0.
 *
 * Sums run in blocks (float lanes inside, double across blocks; see
 * sum_f): the order depends only on the length, never on the thread count,
 * and the independent lanes let the compiler vectorise the loops.
 */
#include <math.h>
#include <string.h>
#include "internal.h"
#include "layers.h"

/*
 * Hot loops get an AVX2 clone next to the baseline x86-64 one, picked at
 * load time (GCC/Clang target_clones). Both clones perform the same
 * operations in the same order -- the lanes below are explicit, and ISO C
 * mode compiles without FMA contraction -- so results do not depend on
 * which one runs. Not under AddressSanitizer (its ifunc handling is fragile).
 */
#if defined(__has_feature) /* Clang names its sanitizers this way */
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define SL_NO_CLONES 1
#endif
#endif
#if defined(__GNUC__) && defined(__x86_64__) && defined(__has_attribute) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(SL_NO_CLONES)
#if __has_attribute(target_clones)
#define SL_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef SL_CLONES
#define SL_CLONES
#endif

/* Sums are formed in blocks of BLOCK values: eight float lanes within a
 * block (each lane adds BLOCK / 8 = 8 values, a relative error below 1e-6),
 * the block totals added in double. Vectorisable and of fixed order. */
#define LANES 8
#define BLOCK 64

static inline float combine8(const float *a)
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* sum of x[0..n) */
SL_CLONES static double sum_f(const float *x, int64_t n)
{
    double s = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        const int64_t e = i0 + BLOCK < n ? i0 + BLOCK : n;
        float a[LANES] = {0};
        int64_t i = i0;
        for (; i + LANES <= e; i += LANES)
            for (int j = 0; j < LANES; j++) a[j] += x[i + j];
        float t = 0.0f;
        for (; i < e; i++) t += x[i];
        s += (double)(combine8(a) + t);
    }
    return s;
}

/* sum of (x - m)^2 */
SL_CLONES static double sum_sqdev(const float *x, int64_t n, float m)
{
    double s = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        const int64_t e = i0 + BLOCK < n ? i0 + BLOCK : n;
        float a[LANES] = {0};
        int64_t i = i0;
        for (; i + LANES <= e; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float d = x[i + j] - m;
                a[j] += d * d;
            }
        float t = 0.0f;
        for (; i < e; i++) t += (x[i] - m) * (x[i] - m);
        s += (double)(combine8(a) + t);
    }
    return s;
}

/* s1 = sum dn, s2 = sum dn * (x - m) (times rstd by the caller), where
 * dn = dout * (out > 0 ? 1 : slope). */
SL_CLONES static void sum_dn(const float *dout, const float *out, const float *x, int64_t n,
                             float m, float slope, double *s1, double *s2)
{
    double r1 = 0.0, r2 = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        const int64_t e = i0 + BLOCK < n ? i0 + BLOCK : n;
        float a[LANES] = {0}, c[LANES] = {0};
        int64_t i = i0;
        for (; i + LANES <= e; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float dn = out[i + j] > 0.0f ? dout[i + j] : dout[i + j] * slope;
                a[j] += dn;
                c[j] += dn * (x[i + j] - m);
            }
        float ta = 0.0f, tc = 0.0f;
        for (; i < e; i++) {
            float dn = out[i] > 0.0f ? dout[i] : dout[i] * slope;
            ta += dn;
            tc += dn * (x[i] - m);
        }
        r1 += (double)(combine8(a) + ta);
        r2 += (double)(combine8(c) + tc);
    }
    *s1 = r1;
    *s2 = r2;
}

/* out = lrelu((x - m) * scale + shift) over n values */
SL_CLONES static void affine_lrelu(float *out, const float *x, int64_t n, float m, float scale,
                                   float shift, float slope)
{
    for (int64_t i = 0; i < n; i++) {
        float v = (x[i] - m) * scale + shift;
        out[i] = v > 0.0f ? v : v * slope;
    }
}

/* dx (+)= k * (dn - a - (x - m) * c), dn as in sum_dn, where the caller
 * folds the means and rstd into k, a and c. */
SL_CLONES static void norm_dx(float *dx, const float *dout, const float *out, const float *x,
                              int64_t n, float m, float k, float a, float c, float slope, int acc)
{
    if (acc) {
        for (int64_t i = 0; i < n; i++) {
            float dn = out[i] > 0.0f ? dout[i] : dout[i] * slope;
            dx[i] += k * (dn - a - (x[i] - m) * c);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            float dn = out[i] > 0.0f ? dout[i] : dout[i] * slope;
            dx[i] = k * (dn - a - (x[i] - m) * c);
        }
    }
}

size_t sl_norm_work_bytes(int64_t B, int64_t C)
{
    size_t bytes;
    int64_t n;
    if (B < 1 || C < 1 || sl_mul3_size(B, C, 2, &n) || sl_bytes(n, sizeof(double), &bytes))
        return 0;
    return bytes;
}

void sl_instnorm_lrelu_forward(float *out, float *mean, float *rstd, const float *inp,
                               const float *gamma, const float *beta, int64_t B, int64_t C,
                               int64_t HW, float eps, float slope, int threads)
{
    // out, inp are (B, C, HW); gamma, beta are (C); mean, rstd are (B, C)
    const int64_t BC = B * C;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bc = 0; bc < BC; bc++) {
        const int64_t c = bc % C;
        const float *x = inp + bc * HW;
        const float m = (float)(sum_f(x, HW) / (double)HW);
        /* deviations from the rounded mean the output uses: the variance
         * is then that of exactly the values being normalised */
        double var = sum_sqdev(x, HW, m) / (double)HW;
        double rs = 1.0 / sqrt(var + (double)eps);
        mean[bc] = m;
        rstd[bc] = (float)rs;
        affine_lrelu(out + bc * HW, x, HW, m, (float)((double)gamma[c] * rs), beta[c], slope);
    }
}

void sl_instnorm_lrelu_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                const float *out, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, int64_t B, int64_t C,
                                int64_t HW, float slope, int acc, void *work, int threads)
{
    // dout, out, inp, dinp are (B, C, HW); gamma, dgamma, dbeta are (C);
    // mean, rstd are (B, C); work holds 2 (B, C) double partials
    const int64_t BC = B * C;
    double *p1 = (double *)work, *p2 = p1 + BC;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bc = 0; bc < BC; bc++) {
        const int64_t c = bc % C;
        const int64_t o = bc * HW;
        double s1, s2;
        sum_dn(dout + o, out + o, inp + o, HW, mean[bc], slope, &s1, &s2);
        const double rs = rstd[bc];
        p1[bc] = s1;      /* dbeta part */
        p2[bc] = s2 * rs; /* dgamma part: sum dn * xhat */
        if (dinp) {
            /* dx = g rs (dn - s1/N - (x - m) rs * (s2 rs)/N) */
            float k = (float)((double)gamma[c] * rs);
            float a = (float)(s1 / (double)HW);
            float cc = (float)(s2 * rs * rs / (double)HW);
            norm_dx(dinp + o, dout + o, out + o, inp + o, HW, mean[bc], k, a, cc, slope, acc);
        }
    }
    for (int64_t c = 0; c < C; c++) {
        double g = 0.0, bsum = 0.0;
        for (int64_t b = 0; b < B; b++) {
            g += p2[b * C + c];
            bsum += p1[b * C + c];
        }
        dgamma[c] += (float)g;
        dbeta[c] += (float)bsum;
    }
}

void sl_batchnorm_lrelu_forward(float *out, float *mean, float *rstd, float *running_mean,
                                float *running_var, const float *inp, const float *gamma,
                                const float *beta, int64_t B, int64_t C, int64_t HW, float eps,
                                float momentum, float slope, int training, void *work,
                                int threads)
{
    // out, inp are (B, C, HW); gamma, beta, mean, rstd, running_* are (C);
    // work holds 2 (B, C) double partials
    const int64_t BC = B * C;
    if (training) {
        double *p = (double *)work;
        const double N = (double)B * (double)HW;
        /* pass 1: per (b, c) sums, then the mean of each channel in b order */
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t bc = 0; bc < BC; bc++) p[bc] = sum_f(inp + bc * HW, HW);
        for (int64_t c = 0; c < C; c++) {
            double s = 0.0;
            for (int64_t b = 0; b < B; b++) s += p[b * C + c];
            mean[c] = (float)(s / N);
        }
        /* pass 2: squared deviations from the (float) mean */
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t bc = 0; bc < BC; bc++) p[bc] = sum_sqdev(inp + bc * HW, HW, mean[bc % C]);
        for (int64_t c = 0; c < C; c++) {
            double s = 0.0;
            for (int64_t b = 0; b < B; b++) s += p[b * C + c];
            double var = s / N;
            rstd[c] = (float)(1.0 / sqrt(var + (double)eps));
            /* PyTorch keeps the unbiased variance in the running estimate */
            double unbiased = N > 1 ? s / (N - 1.0) : var;
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
        }
    } else {
        for (int64_t c = 0; c < C; c++) {
            mean[c] = running_mean[c];
            rstd[c] = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
        }
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bc = 0; bc < BC; bc++) {
        const int64_t c = bc % C;
        affine_lrelu(out + bc * HW, inp + bc * HW, HW, mean[c], gamma[c] * rstd[c], beta[c],
                     slope);
    }
}

void sl_batchnorm_lrelu_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                 const float *out, const float *inp, const float *mean,
                                 const float *rstd, const float *gamma, int64_t B, int64_t C,
                                 int64_t HW, float slope, int training, int acc, void *work,
                                 int threads)
{
    // dout, out, inp, dinp are (B, C, HW); gamma, dgamma, dbeta, mean, rstd
    // are (C); work holds 2 (B, C) double partials
    const int64_t BC = B * C;
    const double N = (double)B * (double)HW;
    double *p1 = (double *)work, *p2 = p1 + BC;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bc = 0; bc < BC; bc++) {
        const int64_t o = bc * HW;
        sum_dn(dout + o, out + o, inp + o, HW, mean[bc % C], slope, &p1[bc], &p2[bc]);
    }
    /* per-channel totals, samples added in order; reuse p1[c], p2[c] after
     * reading them (index c <= b * C + c, so nothing unread is overwritten) */
    for (int64_t c = 0; c < C; c++) {
        double s1 = 0.0, s2 = 0.0;
        for (int64_t b = 0; b < B; b++) {
            s1 += p1[b * C + c];
            s2 += p2[b * C + c];
        }
        s2 *= rstd[c]; /* sum dn * xhat */
        dbeta[c] += (float)s1;
        dgamma[c] += (float)s2;
        p1[c] = s1;
        p2[c] = s2;
    }
    if (!dinp) return;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bc = 0; bc < BC; bc++) {
        const int64_t c = bc % C, o = bc * HW;
        const double rs = rstd[c];
        float k = (float)((double)gamma[c] * rs);
        /* in eval mode the statistics are constants: dx = gamma rstd dn */
        float a = training ? (float)(p1[c] / N) : 0.0f;
        float cc = training ? (float)(p2[c] * rs / N) : 0.0f;
        norm_dx(dinp + o, dout + o, out + o, inp + o, HW, mean[c], k, a, cc, slope, acc);
    }
}

void sl_lrelu_forward(float *out, const float *inp, int64_t n, float slope, int threads)
{
    // out, inp are (n)
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t ch = 0; ch < sl_nchunks(n); ch++) {
        int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < n ? a + SL_CHUNK : n;
        for (int64_t i = a; i < b; i++) out[i] = inp[i] > 0.0f ? inp[i] : inp[i] * slope;
    }
}

void sl_lrelu_backward(float *dinp, const float *dout, const float *inp, int64_t n, float slope,
                       int acc, int threads)
{
    // dinp, dout, inp are (n)
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t ch = 0; ch < sl_nchunks(n); ch++) {
        int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < n ? a + SL_CHUNK : n;
        if (acc)
            for (int64_t i = a; i < b; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : dout[i] * slope;
        else
            for (int64_t i = a; i < b; i++) dinp[i] = inp[i] > 0.0f ? dout[i] : dout[i] * slope;
    }
}
