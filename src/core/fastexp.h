/*
 * exp(x) for x <= 0 in single precision, written so that compilers
 * vectorise loops that call it (plain arithmetic and a bit cast; libm's
 * expf is a call per element that no loop can vectorise without
 * -ffast-math, which the library does not use).
 *
 * Method: Cody–Waite reduction x = n·ln2 + r with |r| <= ln2/2, e^r from
 * the degree-5 minimax polynomial of Cephes' expf (coefficients are the
 * published ones), scaled by 2^n through the exponent bits. The rounding
 * to nearest uses the 1.5·2^23 trick, exact in IEEE single precision
 * without -ffast-math. Inputs below −87 return e^−87 ≈ 1.6e−38 (the
 * smallest normal range), which only matters as an absolute error of that
 * size. tests/unit/test_fastexp.c measures the error against expf over the
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
    float n = (x * log2e + round_magic) - round_magic;
    float r = x - n * ln2_hi;
    r = r - n * ln2_lo;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = (int32_t)n + 127;
    uint32_t bits = (uint32_t)e << 23;
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
 * coefficients), e·ln2 added in two parts (Cody–Waite). The branch of the
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
    float y = 7.0376836292e-2f;
    y = y * t - 1.1514610310e-1f;
    y = y * t + 1.1676998740e-1f;
    y = y * t - 1.2420140846e-1f;
    y = y * t + 1.4249322787e-1f;
    y = y * t - 1.6668057665e-1f;
    y = y * t + 2.0000714765e-1f;
    y = y * t - 2.4999993993e-1f;
    y = y * t + 3.3333331174e-1f;
    y = y * t * z;
    y = y + fe * ln2_lo;
    y = y - 0.5f * z;
    return t + y + fe * ln2_hi;
}

#endif
