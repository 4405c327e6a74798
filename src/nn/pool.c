/*
 * Max-pooling with kernel = stride = f per axis (2x2 in 2-D; 2x2x2, 1x2x2
 * ... in 3-D).
 *
 * The backward recomputes each window's winner from the saved input rather
 * than storing an index per output: the input is kept anyway (it is the
 * skip connection), and the recomputation is a few comparisons against a
 * memory stream of the same size an index map would need.
 */
#include <math.h>
#include <string.h>
#include "internal.h"
#include "layers.h"

/* The window of output voxel (z, y, x) starts at input offset
 * (z fd, y fh, x fw); its voxels are visited in row-major window order
 * (a, b, c), the first maximum wins and a NaN wins over numbers (the last
 * NaN among several), as in PyTorch's CPU max_pool2d/3d: `val > max ||
 * isnan(val)` in scan order. Returns the winner's offset from the start. */
static inline int64_t window_argmax(const float *x, int64_t H, int64_t W, const int f[3])
{
    int64_t best = 0;
    float m = x[0];
    for (int a = 0; a < f[0]; a++)
        for (int b = 0; b < f[1]; b++)
            for (int c = 0; c < f[2]; c++) {
                int64_t off = ((int64_t)a * H + b) * W + c;
                float v = x[off];
                if (off > 0 && (v > m || isnan(v))) {
                    m = v;
                    best = off;
                }
            }
    return best;
}

void sl_maxpool_forward(float *out, const float *inp, int64_t B, int64_t C, const int64_t in[3],
                        const int f[3], int threads)
{
    // out is (B, C, D/fd, H/fh, W/fw), inp is (B, C, D, H, W)
    const int64_t D = in[0], H = in[1], W = in[2], BC = B * C;
    const int64_t Do = D / f[0], Ho = H / f[1], Wo = W / f[2];
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bc = 0; bc < BC; bc++) {
        const float *x = inp + bc * D * H * W;
        float *o = out + bc * Do * Ho * Wo;
        for (int64_t z = 0; z < Do; z++)
            for (int64_t y = 0; y < Ho; y++)
                for (int64_t w = 0; w < Wo; w++) {
                    const float *win = x + ((z * f[0]) * H + y * f[1]) * W + w * f[2];
                    o[(z * Ho + y) * Wo + w] = win[window_argmax(win, H, W, f)];
                }
    }
}

void sl_maxpool_backward(float *dinp, const float *dout, const float *inp, int64_t B, int64_t C,
                         const int64_t in[3], const int f[3], int acc, int threads)
{
    // dinp, inp are (B, C, D, H, W), dout is (B, C, D/fd, H/fh, W/fw)
    const int64_t D = in[0], H = in[1], W = in[2], BC = B * C;
    const int64_t Do = D / f[0], Ho = H / f[1], Wo = W / f[2];
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bc = 0; bc < BC; bc++) {
        const float *x = inp + bc * D * H * W;
        float *dx = dinp + bc * D * H * W;
        const float *d = dout + bc * Do * Ho * Wo;
        if (!acc) memset(dx, 0, (size_t)(D * H * W) * sizeof(float));
        for (int64_t z = 0; z < Do; z++)
            for (int64_t y = 0; y < Ho; y++)
                for (int64_t w = 0; w < Wo; w++) {
                    const int64_t start = ((z * f[0]) * H + y * f[1]) * W + w * f[2];
                    dx[start + window_argmax(x + start, H, W, f)] += d[(z * Ho + y) * Wo + w];
                }
    }
}

static const int F2x2[3] = {1, 2, 2};

void sl_maxpool2_forward(float *out, const float *inp, int64_t B, int64_t C, int64_t H,
                         int64_t W, int threads)
{
    const int64_t in[3] = {1, H, W};
    sl_maxpool_forward(out, inp, B, C, in, F2x2, threads);
}

void sl_maxpool2_backward(float *dinp, const float *dout, const float *inp, int64_t B, int64_t C,
                          int64_t H, int64_t W, int acc, int threads)
{
    const int64_t in[3] = {1, H, W};
    sl_maxpool_backward(dinp, dout, inp, B, C, in, F2x2, acc, threads);
}
