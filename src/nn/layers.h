/*
 * src/nn/layers.h — the hand-written layer kernels of the U-Net (2-D).
 *
 * Internal, not installed. The functions are also the library's *test entry
 * points*: they have external linkage so that tests/ref/test_nn_layers.py
 * can call them through ctypes on libsegloss.so and compare every forward
 * and backward with PyTorch autograd. Their signatures may change with the
 * network; they are not part of the public API (include/segloss/nn.h).
 *
 * Conventions (the llm.c style, applied to images):
 * - Every tensor is float32, C-contiguous, channels first: (B, C, H, W).
 *   The shapes are stated in a comment at the top of each kernel.
 * - x_forward(out..., inp..., params..., sizes) writes its outputs.
 * - x_backward(dinp..., dparams..., dout, cache...) ADDS parameter gradients
 *   into dparams (so gradients accumulate over calls, as in PyTorch) and
 *   writes or adds the input gradient: with acc = 1 it adds into dinp, with
 *   acc = 0 it overwrites dinp (saves zeroing a buffer that has one writer).
 *   A NULL dinp skips the input gradient (the first layer needs none).
 * - `threads` is the OpenMP thread count (>= 1). Work is split over samples,
 *   channels or fixed image tiles whose boundaries depend only on the shape,
 *   and every reduction over the batch goes through one partial per sample
 *   added in sample order; so outputs and gradients are bit-identical for
 *   any thread count.
 * - Kernels that call BLAS set OpenBLAS to one thread while they run (their
 *   own OpenMP threads call sgemm concurrently) and restore the previous
 *   setting before returning: see sl_nn_blas_enter().
 * - `work` is scratch memory of at least the bytes the matching *_work_bytes
 *   function returns, 64-byte aligned (sl_nn_alloc_aligned gives such).
 */
#ifndef SL_NN_LAYERS_H
#define SL_NN_LAYERS_H

#include <stddef.h>
#include <stdint.h>
#include "segloss/core.h"

/* ---- BLAS threads -------------------------------------------------------
 * OpenBLAS's thread count is process-wide. sl_nn_blas_enter() sets it to 1
 * and returns the previous value, sl_nn_blas_leave() restores it. */
int sl_nn_blas_enter(void);
void sl_nn_blas_leave(int previous);
/* Checks that the BLAS can take its per-thread work buffers for `threads`
 * calling threads (SL_ENOMEM with a message otherwise): OpenBLAS would
 * retry a failed allocation forever. Call before kernels first run. */
sl_status sl_nn_blas_reserve(int threads, char *msg, size_t msglen);

/* 64-byte aligned allocation of `bytes` (NULL on failure or 0 bytes);
 * release with free(). */
void *sl_nn_alloc_aligned(size_t bytes);

/* ---- convolution, 2-D or 3-D (per-axis kernel, stride, padding) --------
 * Spatial axes are (D, H, W); a 2-D layer has D = 1, kernel 1, stride 1
 * and pad 0 along the first axis (sl_conv_shape_2d). The input is the
 * channel concatenation of inp1 (C1 channels) and inp2 (C2 channels, or
 * none when C2 = 0): convolving a concatenation this way means the decoder
 * never copies its skip connection. */
typedef struct sl_conv_shape {
    int64_t B;      /* batch */
    int64_t C1;     /* channels of inp1 */
    int64_t C2;     /* channels of inp2 (0 = single input) */
    int64_t Cout;   /* output channels */
    int64_t in[3];  /* input extent (D, H, W) */
    int k[3];       /* kernel extent per axis (Kd, Kh, Kw) */
    int stride[3];
    int pad[3];     /* zero padding on both sides of each axis */
} sl_conv_shape;

/* Output extent (in + 2 pad - k) / stride + 1 along axis 0..2, or -1 if
 * the shape is invalid. */
int64_t sl_conv_out(const sl_conv_shape *s, int axis);
/* Scratch bytes for forward and backward with `threads` threads; 0 when
 * the shape is invalid or the size overflows. */
size_t sl_conv_work_bytes(const sl_conv_shape *s, int threads);
/* out is (B, Cout, Do, Ho, Wo); inp1 is (B, C1, D, H, W); inp2 is
 * (B, C2, D, H, W) or NULL; weight is (Cout, C1 + C2, Kd, Kh, Kw); bias is
 * (Cout) or NULL. */
void sl_conv_forward(float *out, const float *inp1, const float *inp2, const float *weight,
                     const float *bias, const sl_conv_shape *s, void *work, int threads);
/* dout is (B, Cout, Do, Ho, Wo); dinp1/dinp2 like inp1/inp2 (either may
 * be NULL); dweight like weight (accumulated); dbias (Cout) or NULL
 * (accumulated). inp1, inp2, weight as given to the forward. */
void sl_conv_backward(float *dinp1, float *dinp2, float *dweight, float *dbias, const float *dout,
                      const float *inp1, const float *inp2, const float *weight,
                      const sl_conv_shape *s, int acc, void *work, int threads);

/* ---- transposed convolution with kernel = stride = f per axis ----------
 * (the decoder's upsampling: f = 2 or 1 per axis). in = (D, H, W) is the
 * input extent, the output is (D fd, H fh, W fw). */
size_t sl_convt_work_bytes(int64_t B, int64_t Cin, int64_t Cout, const int64_t in[3],
                           const int f[3], int threads);
/* out is (B, Cout, D fd, H fh, W fw); inp is (B, Cin, D, H, W); weight is
 * (Cin, Cout, fd, fh, fw) (PyTorch's ConvTranspose3d layout); bias (Cout) or NULL. */
void sl_convt_forward(float *out, const float *inp, const float *weight, const float *bias,
                      int64_t B, int64_t Cin, int64_t Cout, const int64_t in[3], const int f[3],
                      void *work, int threads);
/* dout like out; dinp like inp or NULL; dweight, dbias accumulated (dbias may be NULL). */
void sl_convt_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *weight, int64_t B, int64_t Cin,
                       int64_t Cout, const int64_t in[3], const int f[3], int acc, void *work,
                       int threads);

/* ---- max-pool with kernel = stride = f per axis ------------------------
 * Extents divisible by f. The first maximum in row-major window order
 * wins, NaN propagates (as PyTorch's CPU kernel). out is (B, C, D/fd,
 * H/fh, W/fw); inp is (B, C, D, H, W). */
void sl_maxpool_forward(float *out, const float *inp, int64_t B, int64_t C, const int64_t in[3],
                        const int f[3], int threads);
/* dinp (B, C, D, H, W) receives dout at the position of each window's
 * maximum (recomputed from inp); other positions get 0 (acc = 0) or keep
 * their value. */
void sl_maxpool_backward(float *dinp, const float *dout, const float *inp, int64_t B, int64_t C,
                         const int64_t in[3], const int f[3], int acc, int threads);

/* ---- 2-D convolution (square kernel, zero padding, optional concat) ----
 * The input is the channel concatenation of inp1 (C1 channels) and inp2
 * (C2 channels, or none when C2 = 0): convolving a concatenation this way
 * means the decoder never copies its skip connection. */
typedef struct sl_conv2d_shape {
    int64_t B;      /* batch */
    int64_t C1;     /* channels of inp1 */
    int64_t C2;     /* channels of inp2 (0 = single input) */
    int64_t Cout;   /* output channels */
    int64_t H, W;   /* input extent */
    int K;          /* kernel size (K x K) */
    int stride;
    int pad;        /* zero padding on every side */
} sl_conv2d_shape;

/* The same convolution as an sl_conv_shape (D = 1). */
sl_conv_shape sl_conv_shape_2d(const sl_conv2d_shape *s);

/* Output extent (H + 2 pad - K) / stride + 1, or -1 if the shape is invalid. */
int64_t sl_conv2d_out_h(const sl_conv2d_shape *s);
int64_t sl_conv2d_out_w(const sl_conv2d_shape *s);
/* Scratch bytes for forward and backward with `threads` threads; 0 when
 * the shape is invalid or the size overflows. */
size_t sl_conv2d_work_bytes(const sl_conv2d_shape *s, int threads);

/* out is (B, Cout, Ho, Wo); inp1 is (B, C1, H, W); inp2 is (B, C2, H, W)
 * or NULL; weight is (Cout, C1 + C2, K, K); bias is (Cout) or NULL. */
void sl_conv2d_forward(float *out, const float *inp1, const float *inp2, const float *weight,
                       const float *bias, const sl_conv2d_shape *s, void *work, int threads);

/* dout is (B, Cout, Ho, Wo); dinp1/dinp2 like inp1/inp2 (either may be
 * NULL); dweight like weight (accumulated); dbias (Cout) or NULL
 * (accumulated). inp1, inp2, weight as given to the forward. */
void sl_conv2d_backward(float *dinp1, float *dinp2, float *dweight, float *dbias,
                        const float *dout, const float *inp1, const float *inp2,
                        const float *weight, const sl_conv2d_shape *s, int acc, void *work,
                        int threads);

/* ---- 2x2 stride-2 transposed convolution (the decoder's upsampling) ---- */
size_t sl_convt2x2_work_bytes(int64_t B, int64_t Cin, int64_t Cout, int64_t H, int64_t W,
                              int threads);
/* out is (B, Cout, 2H, 2W); inp is (B, Cin, H, W); weight is
 * (Cin, Cout, 2, 2) (PyTorch's ConvTranspose2d layout); bias is (Cout) or NULL. */
void sl_convt2x2_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int64_t B, int64_t Cin, int64_t Cout, int64_t H, int64_t W, void *work,
                         int threads);
/* dout is (B, Cout, 2H, 2W); dinp (B, Cin, H, W) or NULL; dweight, dbias
 * accumulated (dbias may be NULL). */
void sl_convt2x2_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int64_t B, int64_t Cin,
                          int64_t Cout, int64_t H, int64_t W, int acc, void *work, int threads);

/* ---- normalisation fused with LeakyReLU --------------------------------
 * out = lrelu(gamma * (inp - mean) * rstd + beta), lrelu(x) = x for x > 0,
 * slope * x otherwise (slope >= 0; slope = 1 gives the bare normalisation).
 * mean and rstd = 1 / sqrt(var + eps) are saved per (b, c) for the
 * backward; var is the biased variance (as PyTorch uses for normalising).
 * Statistics are accumulated in double. HW is the number of pixels or
 * voxels per channel (2-D and 3-D alike). */
size_t sl_norm_work_bytes(int64_t B, int64_t C);

/* Instance norm: statistics per (b, c) over HW.
 * out, inp are (B, C, HW); gamma, beta are (C); mean, rstd are (B, C). */
void sl_instnorm_lrelu_forward(float *out, float *mean, float *rstd, const float *inp,
                               const float *gamma, const float *beta, int64_t B, int64_t C,
                               int64_t HW, float eps, float slope, int threads);
/* dout, out, inp are (B, C, HW); dinp like inp; dgamma, dbeta (C) accumulated. */
void sl_instnorm_lrelu_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                const float *out, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, int64_t B, int64_t C,
                                int64_t HW, float slope, int acc, void *work, int threads);

/* Batch norm: statistics per c over (B, HW) in training mode, with the
 * running statistics updated as PyTorch does (running = (1 - momentum) *
 * running + momentum * batch, the variance unbiased there); in eval mode
 * (training = 0) the running statistics normalise and are not changed.
 * mean, rstd are (C); running_mean, running_var are (C). */
void sl_batchnorm_lrelu_forward(float *out, float *mean, float *rstd, float *running_mean,
                                float *running_var, const float *inp, const float *gamma,
                                const float *beta, int64_t B, int64_t C, int64_t HW, float eps,
                                float momentum, float slope, int training, void *work,
                                int threads);
void sl_batchnorm_lrelu_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                 const float *out, const float *inp, const float *mean,
                                 const float *rstd, const float *gamma, int64_t B, int64_t C,
                                 int64_t HW, float slope, int training, int acc, void *work,
                                 int threads);

/* ---- LeakyReLU on its own (the path without normalisation) ------------ */
/* out, inp are (n) */
void sl_lrelu_forward(float *out, const float *inp, int64_t n, float slope, int threads);
/* dinp, dout, inp are (n); the mask is inp > 0 as in PyTorch */
void sl_lrelu_backward(float *dinp, const float *dout, const float *inp, int64_t n, float slope,
                       int acc, int threads);

/* ---- 2x2 max-pool, stride 2 (H, W even) -------------------------------
 * The first maximum in row-major window order wins, NaN propagates (as
 * PyTorch's CPU kernel). out is (B, C, H/2, W/2); inp is (B, C, H, W). */
void sl_maxpool2_forward(float *out, const float *inp, int64_t B, int64_t C, int64_t H,
                         int64_t W, int threads);
/* dinp (B, C, H, W) receives dout at the position of each window's maximum
 * (recomputed from inp); other positions get 0 (acc = 0) or keep their value. */
void sl_maxpool2_backward(float *dinp, const float *dout, const float *inp, int64_t B,
                          int64_t C, int64_t H, int64_t W, int acc, int threads);

/* ---- INT8 inference (quant.c; the scheme is described there) ---------- */
/* Activation scale and zero point of the range [lo, hi] (widened to 0). */
void sl_quant_act_params(float lo, float hi, float *scale, int *zero_point);
/* Per-row symmetric int8 weights of w (M, K): wq (M, K), scale (M),
 * rowsum (M) = sum of the row's int8 values. */
void sl_quant_weights(int8_t *wq, float *scale, int32_t *rowsum, const float *w, int64_t M, int64_t K);
/* The convolution of sl_conv2d_forward with int8 weights wq (Cout, (C1+C2)
 * K K) and inputs quantised with (in_scale, in_zp); int32 sums, float
 * output. On an allocation failure the output is NaN. */
void sl_qconv2d_forward(float *out, const float *inp1, const float *inp2, const int8_t *wq, const float *wscale,
                        const int32_t *wsum, const float *bias, float in_scale, int in_zp, const sl_conv2d_shape *s,
                        int threads);
/* The transposed convolution of sl_convt2x2_forward; wq is (Cout*4, Cin),
 * row co*4 + dy*2 + dx, with per-row wscale and wsum. */
void sl_qconvt2x2_forward(float *out, const float *inp, const int8_t *wq, const float *wscale, const int32_t *wsum,
                          const float *bias, float in_scale, int in_zp, int64_t B, int64_t Cin, int64_t Cout, int64_t H,
                          int64_t W, int threads);

#endif
