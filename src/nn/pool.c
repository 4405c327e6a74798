/*
 * 2x2 max-pooling with stride 2, and nearest-neighbour downsampling of
 * label maps for deep supervision.
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

/* Index (0..3, row-major in the window) of the maximum of a, b, c, d: the
 * first maximum wins and a NaN wins over numbers (the last NaN among
 * several), as in PyTorch's CPU max_pool2d: `val > max || isnan(val)` in
 * scan order. */
static inline int argmax4(float a, float b, float c, float d)
{
    int k = 0;
    float m = a;
    if (b > m || isnan(b)) { m = b; k = 1; }
    if (c > m || isnan(c)) { m = c; k = 2; }
    if (d > m || isnan(d)) { k = 3; }
    return k;
}

void sl_maxpool2_forward(float *out, const float *inp, int64_t B, int64_t C, int64_t H,
                         int64_t W, int threads)
{
    // out is (B, C, H/2, W/2), inp is (B, C, H, W)
    const int64_t Ho = H / 2, Wo = W / 2, BC = B * C;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bc = 0; bc < BC; bc++) {
        const float *x = inp + bc * H * W;
        float *o = out + bc * Ho * Wo;
        for (int64_t i = 0; i < Ho; i++) {
            const float *r0 = x + 2 * i * W, *r1 = r0 + W;
            for (int64_t j = 0; j < Wo; j++) {
                float v[4] = {r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};
                o[i * Wo + j] = v[argmax4(v[0], v[1], v[2], v[3])];
            }
        }
    }
}

void sl_maxpool2_backward(float *dinp, const float *dout, const float *inp, int64_t B, int64_t C,
                          int64_t H, int64_t W, int acc, int threads)
{
    // dinp, inp are (B, C, H, W), dout is (B, C, H/2, W/2)
    const int64_t Ho = H / 2, Wo = W / 2, BC = B * C;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bc = 0; bc < BC; bc++) {
        const float *x = inp + bc * H * W;
        float *dx = dinp + bc * H * W;
        const float *d = dout + bc * Ho * Wo;
        if (!acc) memset(dx, 0, (size_t)(H * W) * sizeof(float));
        for (int64_t i = 0; i < Ho; i++) {
            const float *r0 = x + 2 * i * W, *r1 = r0 + W;
            float *q0 = dx + 2 * i * W, *q1 = q0 + W;
            for (int64_t j = 0; j < Wo; j++) {
                int k = argmax4(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]);
                float g = d[i * Wo + j];
                switch (k) {
                case 0: q0[2 * j] += g; break;
                case 1: q0[2 * j + 1] += g; break;
                case 2: q1[2 * j] += g; break;
                default: q1[2 * j + 1] += g; break;
                }
            }
        }
    }
}
