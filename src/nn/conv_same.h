/*
 * src/nn/conv_same.h — "same" convolutions (stride 1, odd kernel, padding
 * (k - 1) / 2 on every axis) as implicit matrix products with AVX-512
 * (internal, not installed).
 *
 * Why: im2col + sgemm moves every input value kernel-volume times through
 * memory (27x in 3-D) before the product, and Debian's OpenBLAS 0.3.21 runs
 * its AVX2 kernels on CPUs it does not know (AMD Zen 4/5) even where AVX-512
 * is there. Here the product reads the input in place: output voxels p are
 * taken 16 at a time, and for tap (kz, ky, kx) of channel ci the 16 input
 * values under them are one load from channel ci at p + the tap's offset,
 * with the lanes whose tap falls in the padding masked to zero. conv.c uses
 * it for the forward and for the input gradient (itself a same convolution)
 * of every 3x3 and 3x3x3 convolution of the U-Nets when the CPU has AVX-512.
 *
 * The weight is packed once per call in panels of SL_CS_MR output channels:
 * element (co, k) of the (Cout, K) weight, K = Cin * Kd * Kh * Kw, at
 * ap[(co / MR) * K * MR + k * MR + co % MR], rows past Cout zero.
 *
 * Every output value is one chain of fused multiply-adds over k in order
 * (ci, kz, ky, kx), starting from 0 or from the output's value when
 * accumulating; taps in the padding add a zero. So the result does not
 * depend on how callers split the output among threads.
 */
#ifndef SL_NN_CONV_SAME_H
#define SL_NN_CONV_SAME_H

#include <stdint.h>
#include "layers.h"

#define SL_CS_MR 8
/* Output voxels per block (two vectors of 16), and the largest kernel
 * volume (taps) the per-block masks are kept for. */
#define SL_CS_NR 32
#define SL_CS_MAX_TAPS 125

/* Whether shape s can run here: a same convolution whose H * W is a
 * multiple of 16 (a vector of voxels stays in one depth slice) and whose
 * kernel has at most SL_CS_MAX_TAPS taps, on a CPU with AVX-512 (sl_isa()). */
int sl_conv_same_ready(const sl_conv_shape *s);

/* Floats of a packed (M, K) weight; packs a (M rows of stride lda, K
 * columns) into ap. */
int64_t sl_conv_same_packed_floats(int64_t M, int64_t K);
void sl_conv_same_pack(float *ap, const float *a, int64_t lda, int64_t M, int64_t K);

/* out (M, n) (+)= packed weight ap (M, Cin * Kd * Kh * Kw) convolved with
 * the input, for output voxels [p0, p1) of one sample (multiples of 16, or
 * p1 = n): the input is channels in1 (C1 of them) then in2 (C2), each of
 * n = D * H * W voxels; the kernel extents are s->k; out's channel stride
 * is n. accumulate: add to out instead of overwriting it. */
void sl_conv_same_run(float *out, const float *ap, int64_t M, const float *in1, const float *in2,
                      int64_t C1, int64_t C2, const sl_conv_shape *s, int64_t p0, int64_t p1,
                      int accumulate);

/* The weight gradient of a same convolution for one sample:
 * dw (M, (C1 + C2) * Kd * Kh * Kw) = dout (M, n) . col^T, where col is the
 * im2col matrix of the input (in1 then in2), formed on the fly as in
 * sl_conv_same_run. Written, not added. Each element is a 16-lane dot
 * product over the voxels in chunks whose size depends on the shape only,
 * each chunk's lanes added in a fixed order and the chunks in voxel order. */
void sl_conv_same_dweight(float *dw, const float *dout, int64_t M, const float *in1,
                          const float *in2, int64_t C1, int64_t C2, const sl_conv_shape *s,
                          uint16_t *masks);

/* Voxels per chunk of sl_conv_same_dweight, and the uint16_t entries of
 * its `masks` scratch (per thread): the tap masks of one chunk. */
#define SL_CS_DW_CHUNK 2048
#define SL_CS_DW_MASKS (SL_CS_DW_CHUNK / 16 * SL_CS_MAX_TAPS)

#endif
