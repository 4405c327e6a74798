/*
 * xoshiro256** seeded by splitmix64 (see include/segloss/rng.h).
 *
 * Why this pair: xoshiro256** is fast (a few shifts, rotates and one
 * multiply), passes BigCrush and PractRand, and has a jump function for
 * non-overlapping parallel streams; splitmix64 turns any 64-bit seed, even 0
 * or consecutive integers, into well-mixed state words. Both are defined by
 * a handful of published constants, so a Python reference can check the
 * outputs bit for bit (tests/ref/test_nn_rng.py).
 */
#include <math.h>
#include "segloss/rng.h"

static inline uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sl_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void seed_from(sl_rng *r, uint64_t start)
{
    uint64_t sm = start;
    for (int i = 0; i < 4; i++) r->s[i] = sl_splitmix64(&sm);
    /* splitmix64 is a bijection of its counter, so four consecutive outputs
     * cannot all be zero; the guard documents the invariant anyway. */
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) r->s[0] = 1;
    r->spare = 0.0;
    r->has_spare = 0;
}

void sl_rng_seed(sl_rng *r, uint64_t seed) { seed_from(r, seed); }

void sl_rng_seed_stream(sl_rng *r, uint64_t seed, uint64_t stream)
{
    /* Hash the stream index first: seed ^ stream alone would make
     * (seed, stream) and (seed ^ 1, stream ^ 1) the same generator. The
     * extra constant keeps stream 0 apart from plain sl_rng_seed(seed). */
    uint64_t h = stream ^ 0x5851f42d4c957f2dULL;
    seed_from(r, seed ^ sl_splitmix64(&h));
}

uint64_t sl_rng_u64(sl_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double sl_rng_uniform(sl_rng *r)
{
    /* The top 53 bits are the best-mixed ones of the ** scrambler. */
    return (double)(sl_rng_u64(r) >> 11) * 0x1.0p-53;
}

float sl_rng_uniformf(sl_rng *r)
{
    return (float)(sl_rng_u64(r) >> 40) * 0x1.0p-24f;
}

uint64_t sl_rng_below(sl_rng *r, uint64_t n)
{
    if (n == 0) return 0;
    /* 2^64 mod n values at the bottom would be drawn once more often than
     * the rest; reject them. (-n) % n is 2^64 mod n in unsigned arithmetic. */
    const uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = sl_rng_u64(r);
        if (x >= threshold) return x % n;
    }
}

double sl_rng_normal(sl_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    /* u1 in (0, 1] so that log(u1) is finite. */
    double u1 = 1.0 - sl_rng_uniform(r);
    double u2 = sl_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586476925286766559 * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

void sl_rng_jump(sl_rng *r)
{
    /* Coefficients of the jump polynomial for 2^128 steps (from the
     * xoshiro256 paper): the new state is the sum (XOR) of the states
     * reached at the steps where the polynomial has a 1 bit. */
    static const uint64_t jump[4] = {0x180ec6d33cfd0abaULL, 0xd5a61266f0c9392cULL,
                                     0xa9582618e03fc9aaULL, 0x39abdc4529b1661cULL};
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (int i = 0; i < 4; i++)
        for (int bit = 0; bit < 64; bit++) {
            if (jump[i] & (1ULL << bit)) {
                a ^= r->s[0];
                b ^= r->s[1];
                c ^= r->s[2];
                d ^= r->s[3];
            }
            (void)sl_rng_u64(r);
        }
    r->s[0] = a;
    r->s[1] = b;
    r->s[2] = c;
    r->s[3] = d;
    r->has_spare = 0;
    r->spare = 0.0;
}
