/*
 * segloss/rng.h — the project's seeded random number generator.
 *
 * Generator: xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom
 * number generators", ACM TOMS 2021), 256 bits of state, period 2^256 - 1.
 * Seeding: the four state words are the first four outputs of splitmix64
 * (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
 * OOPSLA 2014) started at the seed, as the xoshiro authors recommend; this
 * never yields the all-zero state.
 *
 * Everything here is exactly reproducible across platforms for the integer
 * and uniform outputs. sl_rng_normal uses log/sqrt/cos/sin from libm, whose
 * last bit may differ between C libraries; on one platform it is exact.
 *
 * The generator is a plain value (copy it to fork a sequence, store it in a
 * struct); it holds no pointers and needs no release. Functions take a
 * non-NULL pointer; they cannot fail, so they return values, not sl_status.
 *
 * Usage:
 *     sl_rng r;
 *     sl_rng_seed(&r, 42);
 *     double u = sl_rng_uniform(&r);          // [0, 1)
 *     uint64_t k = sl_rng_below(&r, 10);      // 0..9, unbiased
 *     double z = sl_rng_normal(&r);           // N(0, 1)
 *
 * Independent streams (for example one per training sample, so that data
 * do not depend on the thread count): sl_rng_seed_stream(&r, seed, i).
 */
#ifndef SEGLOSS_RNG_H
#define SEGLOSS_RNG_H

#include <stdint.h>

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

typedef struct sl_rng {
    uint64_t s[4];   /* xoshiro256** state, never all zero */
    double spare;    /* second Box-Muller deviate, valid when has_spare */
    int has_spare;
} sl_rng;

/* One splitmix64 step: advances *state by the golden-ratio increment and
 * returns the mixed value. Useful on its own as a hash of a 64-bit key. */
uint64_t sl_splitmix64(uint64_t *state);

/* Seeds r from a 64-bit seed (any value, 0 included). */
void sl_rng_seed(sl_rng *r, uint64_t seed);

/* Seeds r for stream `stream` of `seed`: the splitmix64 start is
 * seed XOR splitmix64(stream), so streams of one seed are unrelated to each
 * other and stream 0 differs from sl_rng_seed(seed). */
void sl_rng_seed_stream(sl_rng *r, uint64_t seed, uint64_t stream);

/* The next 64 random bits. */
uint64_t sl_rng_u64(sl_rng *r);

/* Uniform double in [0, 1) with 53 random bits (top bits of the output). */
double sl_rng_uniform(sl_rng *r);

/* Uniform float in [0, 1) with 24 random bits. */
float sl_rng_uniformf(sl_rng *r);

/* Uniform integer in [0, n) without modulo bias (rejection of the top
 * 2^64 mod n values). n = 0 returns 0 without consuming output. */
uint64_t sl_rng_below(sl_rng *r, uint64_t n);

/* Standard normal deviate (Box-Muller; the second value of each pair is
 * kept in r and returned by the next call). */
double sl_rng_normal(sl_rng *r);

/* Advances r by 2^128 outputs (the xoshiro256 jump polynomial): calling it
 * k times on copies of one generator gives non-overlapping sequences. Clears
 * the spare normal deviate. */
void sl_rng_jump(sl_rng *r);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
