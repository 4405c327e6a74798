/*
 * How fast any one-pass softmax cross-entropy can be on this machine: a
 * stripped kernel for the value and gradient of the mean CE on hard labels,
 * timed on the benchmark's shape with its thread count. It does the least
 * work the loss needs and nothing the library adds for its users:
 *   - 16 voxels in registers, C a compile-time constant (2..8), as the
 *     library's kernel (src/loss/fused_dce.c);
 *   - the library's exponential and logarithm (fastexp.h), but contracted
 *     into fused multiply-adds (fp-contract=fast below), which the library
 *     does not do so that every instruction set gives the same bits;
 *   - no ignore index, class weights, finiteness check, remainder handling,
 *     error paths or dispatch per call;
 *   - log Σexp of the value as logs of per-class products, as the library.
 * Same memory traffic as the library's ce: one read of the logits and of
 * the labels, one write of the gradient. perf/bench_losses.py prints the
 * time next to the ce row, against the time that 10x PyTorch would need.
 *
 *   usage: ce_floor N C S [THREADS]   (C in 2..8, S a multiple of 256)
 * Prints "SECONDS ISA": the best of 15 rounds; exits 1 when the value or the
 * gradient is off double precision by more than 1e-5 (relative).
 */
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fastexp.h"

#define VB 256 /* voxels per block, as the library's: at most 16 factors per lane in each product */
#define CMAX 8
#define INLINE static inline __attribute__((always_inline))
typedef sl_v16f vf;
typedef sl_v16i vi;

/* One block of VB voxels from s0: writes its gradient k·(p − onehot) and
 * returns its share of the value's sum, Σ log Σexp + mx − x_y. */
INLINE double block(const float *xn, const int32_t *yn, float *gn, int64_t S, int64_t s0, float k, const int C)
{
    const vf zero = {0}, one = zero + 1.0f;
    vf acc = zero, prod[CMAX];
    for (int c = 0; c < C; c++) prod[c] = one;
    for (int64_t s = s0; s < s0 + VB; s += 16) {
        vf x[CMAX], e[CMAX], sum = zero, xy = zero;
        vi y;
        for (int c = 0; c < C; c++) memcpy(&x[c], xn + c * S + s, sizeof x[c]);
        memcpy(&y, yn + s, sizeof y);
        vf m = x[0];
        for (int c = 1; c < C; c++) m = sl_v16_sel(x[c] > m, x[c], m);
        for (int c = 0; c < C; c++) e[c] = sl_exp_nonpos_v16_unclamped(x[c] - m), sum += e[c];
        const vf r = k / sum;
        for (int c = 0; c < C; c++) {
            const vi hit = y == c;
            xy = sl_v16_sel(hit, x[c], xy);
            prod[c] *= sl_v16_sel(hit, sum, one);
            const vf o = e[c] * r - sl_v16_sel(hit, zero + k, zero);
            memcpy(gn + c * S + s, &o, sizeof o);
        }
        acc += m - xy;
    }
    for (int c = 0; c < C; c++) acc += sl_log_pos_v16(prod[c]);
    float l[16];
    memcpy(l, &acc, sizeof l);
    double t = 0;
    for (int i = 0; i < 16; i++) t += l[i];
    return t;
}

typedef double (*block_fn)(const float *, const int32_t *, float *, int64_t, int64_t, float);
#define BLOCKS(isa, ATTR)                                                                                  \
    BLOCK(isa, ATTR, 2) BLOCK(isa, ATTR, 3) BLOCK(isa, ATTR, 4) BLOCK(isa, ATTR, 5) BLOCK(isa, ATTR, 6) \
    BLOCK(isa, ATTR, 7) BLOCK(isa, ATTR, 8)                                                              \
    static const block_fn blocks_##isa[CMAX + 1] = {NULL,        NULL,        block_##isa##_2,             \
                                                    block_##isa##_3, block_##isa##_4, block_##isa##_5,   \
                                                    block_##isa##_6, block_##isa##_7, block_##isa##_8};
#define BLOCK(isa, ATTR, Cn)                                                                               \
    ATTR static double block_##isa##_##Cn(const float *xn, const int32_t *yn, float *gn, int64_t S,       \
                                          int64_t s0, float k)                                           \
    {                                                                                                      \
        return block(xn, yn, gn, S, s0, k, Cn);                                                            \
    }
BLOCKS(base, )
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define X86 1
BLOCKS(avx2, __attribute__((target("avx2,fma"))))
#if defined(__clang__)
BLOCKS(avx512, __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))))
#else
BLOCKS(avx512, __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512"))))
#endif
#else
#define X86 0
#endif

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ce_floor N C S [THREADS]\n");
        return 2;
    }
    const int64_t N = atoll(argv[1]), C = atoll(argv[2]), S = atoll(argv[3]);
    const int threads = argc > 4 ? atoi(argv[4]) : 2;
    if (N < 1 || C < 2 || C > CMAX || S < VB || S % VB || threads < 1) {
        fprintf(stderr, "ce_floor: needs N >= 1, C in 2..%d, S a positive multiple of %d, THREADS >= 1\n", CMAX, VB);
        return 2;
    }
    const block_fn *fn = blocks_base;
    const char *isa = "baseline";
#if X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) fn = blocks_avx2, isa = "avx2";
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        fn = blocks_avx512, isa = "avx512";
#endif
    const block_fn run = fn[C];
    const size_t n = (size_t)(N * C * S);
    float *x = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    int32_t *y = malloc((size_t)(N * S) * sizeof(int32_t));
    if (!x || !g || !y) {
        fprintf(stderr, "ce_floor: out of memory\n");
        return 1;
    }
    uint32_t st = 12345; /* scores in [-4, 4) and labels from a fixed LCG; every page touched before timing */
    for (size_t i = 0; i < n; i++) st = st * 1664525u + 1013904223u, x[i] = (float)(st >> 8) * 0x1p-21f - 4.0f;
    for (int64_t i = 0; i < N * S; i++) st = st * 1664525u + 1013904223u, y[i] = (int32_t)((st >> 16) % C);
    memset(g, 0, n * sizeof(float));
    const int64_t nb = N * S / VB;
    const float k = 1.0f / (float)(N * S);
    double best = 1e30, value = 0;
    for (int rep = 0; rep < 15; rep++) {
        double t0 = omp_get_wtime(), sum = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : sum)
        for (int64_t b = 0; b < nb; b++) {
            const int64_t i = b * VB, s = i % S, smp = i / S;
            sum += run(x + smp * C * S, y + smp * S, g + smp * C * S, S, s, k);
        }
        const double t = omp_get_wtime() - t0;
        if (t < best) best = t;
        value = sum / (double)(N * S);
    }
    /* a floor from a wrong kernel means nothing: value and gradient against double precision */
    double ref = 0, gerr = 0;
    for (int64_t v = 0; v < N * S; v++) {
        const int64_t smp = v / S, s = v % S;
        const float *xv = x + smp * C * S + s;
        double mx = xv[0], se = 0;
        for (int64_t c = 1; c < C; c++) mx = xv[c * S] > mx ? xv[c * S] : mx;
        for (int64_t c = 0; c < C; c++) se += exp(xv[c * S] - mx);
        ref += log(se) + mx - xv[y[v] * S];
        if (v % 97 == 0)
            for (int64_t c = 0; c < C; c++) {
                const double gr = k * (exp(xv[c * S] - mx) / se - (c == y[v]));
                const double d = fabs(g[smp * C * S + c * S + s] - gr) / k;
                gerr = d > gerr ? d : gerr;
            }
    }
    ref /= (double)(N * S);
    if (!(fabs(value - ref) <= 1e-5 * ref) || !(gerr <= 1e-5)) {
        fprintf(stderr, "ce_floor: wrong kernel: value %.9g against %.9g, gradient off by %.3g of 1/(N·S)\n", value,
                ref, gerr);
        return 1;
    }
    printf("%.6f %s\n", best, isa);
    free(x), free(g), free(y);
    return 0;
}
