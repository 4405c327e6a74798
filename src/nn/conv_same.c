/*
 * Same convolutions as implicit matrix products with AVX-512 (conv_same.h
 * says why and what the operands are).
 *
 * A block is 8 output channels by 32 output voxels (two vectors of 16): 16
 * accumulators that stay in registers while k runs over every (ci, tap);
 * each step loads the two input vectors of that tap (masked at the
 * padding) and broadcasts 8 packed weights: 16 fused multiply-adds. The
 * masks depend on the voxels and the tap only, so they are formed once per
 * 32 voxels and reused by every block of output channels.
 */
#include "conv_same.h"
#include "internal.h"
#if SL_X86
#include <immintrin.h>
#endif

#define MR SL_CS_MR
#define NR SL_CS_NR

static int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

int sl_conv_same_ready(const sl_conv_shape *s)
{
    if (!SL_X86 || sl_isa() < SL_ISA_AVX512) return 0;
    for (int a = 0; a < 3; a++)
        if (s->stride[a] != 1 || !(s->k[a] & 1) || s->pad[a] != (s->k[a] - 1) / 2) return 0;
    return (s->in[1] * s->in[2]) % 16 == 0 && s->k[0] * s->k[1] * s->k[2] <= SL_CS_MAX_TAPS;
}

int64_t sl_conv_same_packed_floats(int64_t M, int64_t K) { return round_up(M, MR) * K; }

void sl_conv_same_pack(float *ap, const float *a, int64_t lda, int64_t M, int64_t K)
{
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
        float *panel = ap + i0 * K;
        for (int64_t k = 0; k < K; k++)
            for (int64_t r = 0; r < MR; r++) panel[k * MR + r] = i0 + r < M ? a[(i0 + r) * lda + k] : 0.0f;
    }
}

#if SL_X86
#define CS_AVX512 __attribute__((target("avx512f")))

/* The taps of one block: per tap the input offset from the output voxel,
 * and per vector of 16 voxels the lanes whose tap is inside the input. */
typedef struct taps {
    int64_t kv;
    int64_t off[SL_CS_MAX_TAPS];
    __mmask16 mask[2][SL_CS_MAX_TAPS];
} taps;

static void tap_offsets(taps *t, const sl_conv_shape *s)
{
    const int64_t H = s->in[1], W = s->in[2];
    int64_t i = 0;
    for (int kz = 0; kz < s->k[0]; kz++)
        for (int ky = 0; ky < s->k[1]; ky++)
            for (int kx = 0; kx < s->k[2]; kx++)
                t->off[i++] = ((int64_t)(kz - s->pad[0]) * H + (ky - s->pad[1])) * W + (kx - s->pad[2]);
    t->kv = i;
}

/* Masks of vector g (voxels q .. q + 15 of one depth slice; none when
 * q >= p1): the product of per-axis masks. */
static void tap_masks(taps *t, int g, const sl_conv_shape *s, int64_t q, int64_t p1)
{
    const int64_t D = s->in[0], H = s->in[1], W = s->in[2];
    unsigned my[SL_CS_MAX_TAPS], mx[SL_CS_MAX_TAPS];
    int vz[SL_CS_MAX_TAPS];
    const int64_t od = q / (H * W);
    for (int kz = 0; kz < s->k[0]; kz++) {
        const int64_t z = od + kz - s->pad[0];
        vz[kz] = q < p1 && z >= 0 && z < D;
    }
    for (int ky = 0; ky < s->k[1]; ky++) my[ky] = 0;
    for (int kx = 0; kx < s->k[2]; kx++) mx[kx] = 0;
    for (int l = 0; l < 16; l++) {
        const int64_t oh = (q + l) / W % H, ox = (q + l) % W;
        for (int ky = 0; ky < s->k[1]; ky++) {
            const int64_t y = oh + ky - s->pad[1];
            if (y >= 0 && y < H) my[ky] |= 1u << l;
        }
        for (int kx = 0; kx < s->k[2]; kx++) {
            const int64_t x = ox + kx - s->pad[2];
            if (x >= 0 && x < W) mx[kx] |= 1u << l;
        }
    }
    int64_t i = 0;
    for (int kz = 0; kz < s->k[0]; kz++)
        for (int ky = 0; ky < s->k[1]; ky++)
            for (int kx = 0; kx < s->k[2]; kx++) t->mask[g][i++] = (__mmask16)(vz[kz] ? my[ky] & mx[kx] : 0);
}

/* out rows [0, m) (stride n), voxels q .. q + 31 (the second vector only
 * when has2) (+)= the packed panel ap (MR x K) applied to the input. */
CS_AVX512 static void block(float *out, int64_t n, const float *ap, int m, const float *in1,
                            const float *in2, int64_t C1, int64_t C2, int64_t q, int has2,
                            const taps *t, int accumulate)
{
    __m512 lo[MR], hi[MR];
    const __mmask16 keep2 = has2 ? (__mmask16)0xffff : 0;
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        if (accumulate && r < m) {
            lo[r] = _mm512_loadu_ps(out + r * n + q);
            hi[r] = _mm512_maskz_loadu_ps(keep2, out + r * n + q + 16);
        } else {
            lo[r] = hi[r] = _mm512_setzero_ps();
        }
    }
    const int64_t kv = t->kv;
    for (int64_t ci = 0; ci < C1 + C2; ci++) {
        const float *src = (ci < C1 ? in1 + ci * n : in2 + (ci - C1) * n) + q;
        for (int64_t i = 0; i < kv; i++, ap += MR) {
            const __m512 b0 = _mm512_maskz_loadu_ps(t->mask[0][i], src + t->off[i]);
            const __m512 b1 = _mm512_maskz_loadu_ps(t->mask[1][i], src + 16 + t->off[i]);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                const __m512 a = _mm512_set1_ps(ap[r]);
                lo[r] = _mm512_fmadd_ps(a, b0, lo[r]);
                hi[r] = _mm512_fmadd_ps(a, b1, hi[r]);
            }
        }
    }
    /* constant bounds, unrolled: a variable index would keep lo and hi in
     * memory instead of registers */
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        if (r >= m) break;
        _mm512_storeu_ps(out + r * n + q, lo[r]);
        _mm512_mask_storeu_ps(out + r * n + q + 16, keep2, hi[r]);
    }
}

/* dw[r][i] (+)= sum over the chunk's vectors of dout row r times the
 * input of tap i (masked), for r < m <= 4 and taps i < nt <= 4: a 4 x 4
 * block of 16-lane dot products, each reduced at the end of the chunk. */
CS_AVX512 static void dw_block(float *dw, int64_t ldw, const float *dy, int64_t n, int m,
                               const float *x, const int64_t *off, const uint16_t *mk, int64_t kv,
                               int nt, int64_t q0, int64_t ng, int accumulate)
{
    __m512 acc[4][4];
    const float *dr[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        dr[r] = dy + (r < m ? r : 0) * n + q0; /* rows past m repeat row 0, not stored */
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) acc[r][i] = _mm512_setzero_ps();
    }
    int64_t o[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) o[i] = i < nt ? off[i] : 0;
    for (int64_t g = 0; g < ng; g++, mk += kv) {
        const float *xq = x + q0 + 16 * g;
        __m512 xv[4], dv[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) xv[i] = _mm512_maskz_loadu_ps(i < nt ? mk[i] : 0, xq + o[i]);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) dv[r] = _mm512_loadu_ps(dr[r] + 16 * g);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) acc[r][i] = _mm512_fmadd_ps(dv[r], xv[i], acc[r][i]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            if (r >= m || i >= nt) continue;
            const float v = _mm512_reduce_add_ps(acc[r][i]);
            dw[r * ldw + i] = accumulate ? dw[r * ldw + i] + v : v;
        }
}

static void dweight_avx512(float *dw, const float *dout, int64_t M, const float *in1,
                           const float *in2, int64_t C1, int64_t C2, const sl_conv_shape *s,
                           uint16_t *masks)
{
    const int64_t n = s->in[0] * s->in[1] * s->in[2], Cin = C1 + C2;
    taps t;
    tap_offsets(&t, s);
    const int64_t kv = t.kv, K = Cin * kv;
    for (int64_t q0 = 0; q0 < n; q0 += SL_CS_DW_CHUNK) {
        const int64_t q1 = q0 + SL_CS_DW_CHUNK < n ? q0 + SL_CS_DW_CHUNK : n, ng = (q1 - q0) / 16;
        for (int64_t g = 0; g < ng; g++) {
            tap_masks(&t, 0, s, q0 + 16 * g, q1);
            for (int64_t i = 0; i < kv; i++) masks[g * kv + i] = t.mask[0][i];
        }
        for (int64_t co = 0; co < M; co += 4)
            for (int64_t ci = 0; ci < Cin; ci++) {
                const float *x = ci < C1 ? in1 + ci * n : in2 + (ci - C1) * n;
                for (int64_t i = 0; i < kv; i += 4)
                    dw_block(dw + co * K + ci * kv + i, K, dout + co * n, n, (int)(M - co < 4 ? M - co : 4),
                             x, t.off + i, masks + i, kv, (int)(kv - i < 4 ? kv - i : 4), q0, ng, q0 > 0);
            }
    }
}

static void run_avx512(float *out, const float *ap, int64_t M, const float *in1, const float *in2,
                       int64_t C1, int64_t C2, const sl_conv_shape *s, int64_t p0, int64_t p1,
                       int accumulate)
{
    const int64_t n = s->in[0] * s->in[1] * s->in[2];
    taps t;
    tap_offsets(&t, s);
    const int64_t K = (C1 + C2) * t.kv;
    for (int64_t q = p0; q < p1; q += NR) {
        tap_masks(&t, 0, s, q, p1);
        tap_masks(&t, 1, s, q + 16, p1);
        for (int64_t i0 = 0; i0 < M; i0 += MR)
            block(out + i0 * n, n, ap + i0 * K, (int)(M - i0 < MR ? M - i0 : MR), in1, in2, C1, C2, q,
                  q + 16 < p1, &t, accumulate);
    }
}
#endif

void sl_conv_same_dweight(float *dw, const float *dout, int64_t M, const float *in1,
                          const float *in2, int64_t C1, int64_t C2, const sl_conv_shape *s,
                          uint16_t *masks)
{
#if SL_X86
    dweight_avx512(dw, dout, M, in1, in2, C1, C2, s, masks);
#else
    (void)dw, (void)dout, (void)M, (void)in1, (void)in2, (void)C1, (void)C2, (void)s, (void)masks;
#endif
}

void sl_conv_same_run(float *out, const float *ap, int64_t M, const float *in1, const float *in2,
                      int64_t C1, int64_t C2, const sl_conv_shape *s, int64_t p0, int64_t p1,
                      int accumulate)
{
#if SL_X86
    run_avx512(out, ap, M, in1, in2, C1, C2, s, p0, p1, accumulate);
#else
    /* sl_conv_same_ready() is 0 here: callers take the cblas path */
    (void)out, (void)ap, (void)M, (void)in1, (void)in2, (void)C1, (void)C2, (void)s, (void)p0, (void)p1,
        (void)accumulate;
#endif
}
