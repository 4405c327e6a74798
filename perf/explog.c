/*
 * The exp/log throughput of this machine for the fused softmax kernels: the
 * library's own primitives (src/core/fastexp.h: the cheapest exponential,
 * sl_exp_nonpos_v16_unclamped that the softmax of fused_dce.c takes, and
 * sl_log_pos) over a cache-resident buffer, compiled for the best
 * instruction set the CPU has, as the kernels are (AVX-512, AVX2 or the
 * baseline). No memory traffic to wait for and no other arithmetic: what
 * the loss's exponentials and logarithms cost at best, the compute half of
 * the bound perf/bench_losses.py prints (perf/stream gives the other half).
 *
 * Each thread times its own buffer with its own CPU clock (a shared machine's
 * waits for a core are not the arithmetic's), best of several rounds.
 * Prints "EXP_NS LOG_NS ISA": nanoseconds of one thread per element.
 *   usage: explog [THREADS]
 */
#pragma GCC optimize("no-trapping-math") /* as the library is built (CMakeLists.txt: SL_FPFLAGS) */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fastexp.h"

#define LEN 2048 /* 8 KB in, 8 KB out: L1-resident */
#define ROUNDS 2000

static double thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define KERNELS(suffix, ATTR)                                                                          \
    ATTR static void exp_##suffix(const float *in, float *out)                                        \
    {                                                                                                  \
        for (int i = 0; i < LEN; i += 16) {                                                            \
            sl_v16f v;                                                                                 \
            memcpy(&v, in + i, sizeof v);                                                              \
            v = sl_exp_nonpos_v16_unclamped(v);                                                        \
            memcpy(out + i, &v, sizeof v);                                                             \
        }                                                                                              \
    }                                                                                                  \
    ATTR static void log_##suffix(const float *in, float *out)                                        \
    {                                                                                                  \
        for (int i = 0; i < LEN; i++) out[i] = sl_log_pos(in[i]);                                     \
    }
KERNELS(base, )
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define X86 1
KERNELS(avx2, __attribute__((target("avx2"))))
#if defined(__clang__)
KERNELS(avx512, __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))))
#else
KERNELS(avx512, __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512"))))
#endif
#else
#define X86 0
#endif

typedef void (*kernel)(const float *, float *);

/* Best seconds per element of one thread for k over its own buffers. */
static double per_element(kernel k, const float *in, float *out)
{
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = thread_cpu();
        for (int r = 0; r < ROUNDS; r++) {
            k(in, out);
            __asm__ volatile("" ::"r"(out) : "memory"); /* every round's stores happen */
        }
        double t = (thread_cpu() - t0) / ((double)ROUNDS * LEN);
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    kernel ke = exp_base, kl = log_base;
    const char *isa = "baseline";
#if X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) ke = exp_avx2, kl = log_avx2, isa = "avx2";
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        ke = exp_avx512, kl = log_avx512, isa = "avx512";
#endif
    double te = 1e30, tl = 1e30;
#pragma omp parallel num_threads(threads) reduction(min : te, tl)
    {
        float *in = malloc(2 * LEN * sizeof(float)), *out = malloc(LEN * sizeof(float));
        if (in && out) {
            /* exp: the range of x − max x of a softmax; log: sums of exponentials, [1, C] */
            for (int i = 0; i < LEN; i++) in[i] = -20.0f * (float)i / LEN, in[LEN + i] = 1.0f + 7.0f * (float)i / LEN;
            te = per_element(ke, in, out);
            tl = per_element(kl, in + LEN, out);
        }
        free(in), free(out);
    }
    if (te >= 1e30) {
        fprintf(stderr, "explog: out of memory\n");
        return 1;
    }
    printf("%.4f %.4f %s\n", te * 1e9, tl * 1e9, isa);
    return 0;
}
