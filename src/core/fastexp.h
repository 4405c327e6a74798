/*
 * exp(x) for x <= 0 in single precision, written so that compilers
 * vectorise loops that call it (plain arithmetic and a bit cast; libm's
 * expf is a call per element that no loop can vectorise without
 * -ffast-math, which the library does not use).
 *
 * Method: Cody–Waite reduction x = n·ln2 + r with |r| <= ln2/2, e^r from
 * the degree-5 minimax polynomial of Cephes' expf (coefficients are the
 * published ones), scaled by 2^n through the exponent bits. The polynomial
 * is evaluated in Estrin's scheme (pairs of terms, then powers of r²), not
 * Horner's: 8 dependent operations deep instead of 14, which is what bounds
 * a kernel with few independent exponentials in flight (bce: 0.80× the time
 * in an A/B), at the same accuracy. The rounding to nearest uses the
 * 1.5·2^23 trick, exact in IEEE single precision without -ffast-math.
 * Inputs below −87 return e^−87 ≈ 1.6e−38 (the smallest normal range),
 * which only matters as an absolute error of that size. tests/unit/test_fastexp.c measures the error against expf over the
 * whole range: at most 2 ulp.
 */
#ifndef SL_FASTEXP_H
#define SL_FASTEXP_H

#include <stdint.h>
#include <string.h>

static inline float sl_exp_nonpos(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float round_magic = 12582912.0f; /* 1.5 * 2^23 */
    x = x < -87.0f ? -87.0f : x;
    x = x > 0.0f ? 0.0f : x;
    const float t = x * log2e + round_magic;
    float n = t - round_magic;
    float r = x - n * ln2_hi;
    r = r - n * ln2_lo;
    const float r2 = r * r;
    const float a = 1.6666665459e-1f * r + 5.0000001201e-1f, b = 8.3334519073e-3f * r + 4.1665795894e-2f,
                c = 1.9875691500e-4f * r + 1.3981999507e-3f;
    float p = a + (b * r2 + c * (r2 * r2));
    p = p * r2 + r + 1.0f;
    /* 2^n from t's bits, n + 127 in the exponent field: t = 1.5·2^23 + n holds n in its low
     * mantissa bits, so t's bits shifted left by 23 are n·2^23 (mod 2^32), no conversion */
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits << 23) + 0x3f800000u;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/*
 * log(x) for positive, finite, normal x in single precision, vectorisable
 * like sl_exp_nonpos (the fused loss path takes log Σ exp of every voxel).
 *
 * Method: x = m·2^e with m in [√½, √2) read from the bits, log(m) from
 * the degree-9 polynomial of Cephes' logf in t = m − 1 (published
 * coefficients, evaluated in Estrin's scheme like the exponential's), e·ln2
 * added in two parts (Cody–Waite). The branch of the
 * reference code is a select here. Zero, negative, subnormal, infinite or
 * NaN inputs give meaningless results: callers pass a sum of exponentials
 * that is >= 1. tests/unit/test_fastlog.c measures the error against log
 * over [2^-126, 2^128): at most 2 ulp.
 */
static inline float sl_log_pos(float x)
{
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t e = (int32_t)(bits >> 23) - 126; /* x = m · 2^e, m in [0.5, 1) */
    bits = (bits & 0x007fffffu) | 0x3f000000u;
    float m;
    memcpy(&m, &bits, sizeof m);
    const int small = m < 0.707106781186547524f;
    e = small ? e - 1 : e;
    float t = small ? m + m - 1.0f : m - 1.0f; /* t in [√½ − 1, √2 − 1) */
    float fe = (float)e;
    float z = t * t;
    const float z2 = z * z;
    const float a0 = -2.4999993993e-1f * t + 3.3333331174e-1f, a1 = -1.6668057665e-1f * t + 2.0000714765e-1f,
                a2 = -1.2420140846e-1f * t + 1.4249322787e-1f, a3 = -1.1514610310e-1f * t + 1.1676998740e-1f;
    float y = (a0 + a1 * z) + z2 * ((a2 + a3 * z) + 7.0376836292e-2f * z2);
    y = y * t * z;
    y = y + fe * ln2_lo;
    y = y - 0.5f * z;
    return t + y + fe * ln2_hi;
}

/*
 * log1p(e) for e in [0, 1] (e = exp(−|x|) in the binary cross-entropies'
 * softplus), vectorisable: with u = 1 + e rounded, log(u)·e/(u − 1) corrects
 * the rounding of u (Goldberg's identity), and u = 1 (e below half an ulp of
 * 1) gives e itself, so a tiny softplus keeps its relative accuracy where
 * log(1 + e) would be 0.
 */
static inline float sl_log1p_unit(float e)
{
    const float u = 1.0f + e;
    return u == 1.0f ? e : sl_log_pos(u) * (e / (u - 1.0f));
}

/*
 * The same two functions on 16 floats at once (GCC/clang vector extensions):
 * the same operations in the same order, lane by lane, so each lane's result
 * has the bits of the scalar function's for that input
 * (tests/unit/test_fastexp.c and test_fastlog.c check it). The compiler maps
 * a 16-float vector onto one AVX-512 register, two AVX2 registers or four
 * SSE ones, whatever the function being compiled targets: kernels written
 * with these keep their registers across a whole voxel's arithmetic, which
 * loop vectorisation of the scalar functions does not guarantee.
 */
#if defined(__GNUC__) || defined(__clang__)
#define SL_HAVE_V16 1
/* Always inlined: no 64-byte vector crosses a real call, so the compilers'
 * note that such calls differ with and without AVX-512 (the psABI) does not
 * apply to these, nor to the kernels' own always_inline helpers. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float sl_v16f __attribute__((vector_size(64)));
typedef int32_t sl_v16i __attribute__((vector_size(64)));
typedef uint32_t sl_v16u __attribute__((vector_size(64)));
#define SL_V16_INLINE static inline __attribute__((always_inline))

/* Lanes of a where the comparison mask m is true (all ones), of b elsewhere. */
SL_V16_INLINE sl_v16f sl_v16_sel(sl_v16i m, sl_v16f a, sl_v16f b)
{
    return (sl_v16f)((m & (sl_v16i)a) | (~m & (sl_v16i)b));
}

/* exp(x) for x <= 0 or NaN (no clamp at 0): sl_exp_nonpos_v16's bits for
 * those, two operations fewer (the softmax's x − max is such an x). */
SL_V16_INLINE sl_v16f sl_exp_nonpos_v16_unclamped(sl_v16f x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float round_magic = 12582912.0f;
    const sl_v16f zero = {0};
    x = sl_v16_sel(x < zero - 87.0f, zero - 87.0f, x);
    const sl_v16f t = x * log2e + round_magic;
    sl_v16f n = t - round_magic;
    sl_v16f r = x - n * ln2_hi;
    r = r - n * ln2_lo;
    const sl_v16f r2 = r * r;
    const sl_v16f a = 1.6666665459e-1f * r + 5.0000001201e-1f, b = 8.3334519073e-3f * r + 4.1665795894e-2f,
                  c = 1.9875691500e-4f * r + 1.3981999507e-3f;
    sl_v16f p = a + (b * r2 + c * (r2 * r2));
    p = p * r2 + r + 1.0f;
    return p * (sl_v16f)(((sl_v16u)t << 23) + 0x3f800000u);
}

SL_V16_INLINE sl_v16f sl_exp_nonpos_v16(sl_v16f x)
{
    const sl_v16f zero = {0};
    return sl_exp_nonpos_v16_unclamped(sl_v16_sel(x > zero, zero, x));
}
SL_V16_INLINE sl_v16f sl_log_pos_v16(sl_v16f x)
{
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const sl_v16f zero = {0};
    sl_v16u bits = (sl_v16u)x;
    sl_v16i e = (sl_v16i)(bits >> 23) - 126;
    const sl_v16f m = (sl_v16f)((bits & 0x007fffffu) | 0x3f000000u);
    const sl_v16i small = m < zero + 0.707106781186547524f;
    e = e + small; /* the mask is −1 where small */
    const sl_v16f t = sl_v16_sel(small, m + m - 1.0f, m - 1.0f);
    const sl_v16f fe = __builtin_convertvector(e, sl_v16f);
    const sl_v16f z = t * t;
    const sl_v16f z2 = z * z;
    const sl_v16f a0 = -2.4999993993e-1f * t + 3.3333331174e-1f, a1 = -1.6668057665e-1f * t + 2.0000714765e-1f,
                  a2 = -1.2420140846e-1f * t + 1.4249322787e-1f, a3 = -1.1514610310e-1f * t + 1.1676998740e-1f;
    sl_v16f y = (a0 + a1 * z) + z2 * ((a2 + a3 * z) + 7.0376836292e-2f * z2);
    y = y * t * z;
    y = y + fe * ln2_lo;
    y = y - 0.5f * z;
    return t + y + fe * ln2_hi;
}
#endif

#endif
