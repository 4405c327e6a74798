/*
 * 3-D resampling kernels of the data module (the volumetric counterparts
 * of warp.c): one affine (+ displacement) warp for every spatial
 * augmentation of a 3-D patch, a separable Gaussian blur, and the elastic
 * displacement field. Conventions as in 2-D: a point is inside when its
 * nearest voxel floor(c + 0.5 + 1e-9) lies in the input; inside points
 * interpolate (trilinear with neighbour indices clamped, or nearest),
 * outside points get 0 in the image and the label; labels are always
 * nearest, so image and labels are sampled at the same coordinates.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

static inline int64_t clampi(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

void sld_warp3d(const float *img, const int32_t *lab, const int64_t in[3], const double m[3][4], const float *disp,
                const int64_t out[3], sl_interp img_interp, float *out_img, int32_t *out_lab)
{
    /* img (D, H, W), out (od, oh, ow), disp (3, od, oh, ow):
     * input = m[:, :3] . (zo, yo, xo) + m[:, 3] + disp[:, o] */
    const int64_t D = in[0], H = in[1], W = in[2], no = out[0] * out[1] * out[2];
    for (int64_t zo = 0, o = 0; zo < out[0]; zo++)
        for (int64_t yo = 0; yo < out[1]; yo++)
            for (int64_t xo = 0; xo < out[2]; xo++, o++) {
                double p[3];
                for (int a = 0; a < 3; a++) {
                    p[a] = m[a][0] * (double)zo + m[a][1] * (double)yo + m[a][2] * (double)xo + m[a][3];
                    if (disp) p[a] += disp[a * no + o];
                }
                const int64_t nz = (int64_t)floor(p[0] + 0.5 + 1e-9), ny = (int64_t)floor(p[1] + 0.5 + 1e-9),
                              nx = (int64_t)floor(p[2] + 0.5 + 1e-9);
                const int inside = nz >= 0 && nz < D && ny >= 0 && ny < H && nx >= 0 && nx < W;
                if (out_lab) out_lab[o] = inside ? lab[(nz * H + ny) * W + nx] : 0;
                if (!out_img) continue;
                if (!inside) {
                    out_img[o] = 0.0f;
                    continue;
                }
                if (img_interp == SL_INTERP_NEAREST) {
                    out_img[o] = img[(nz * H + ny) * W + nx];
                    continue;
                }
                const int64_t z0 = (int64_t)floor(p[0]), y0 = (int64_t)floor(p[1]), x0 = (int64_t)floor(p[2]);
                const double tz = p[0] - (double)z0, ty = p[1] - (double)y0, tx = p[2] - (double)x0;
                double acc = 0.0;
                for (int dz = 0; dz < 2; dz++)
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            const double wgt = (dz ? tz : 1 - tz) * (dy ? ty : 1 - ty) * (dx ? tx : 1 - tx);
                            if (wgt == 0.0) continue;
                            const int64_t z = clampi(z0 + dz, 0, D - 1), y = clampi(y0 + dy, 0, H - 1),
                                          x = clampi(x0 + dx, 0, W - 1);
                            acc += wgt * img[(z * H + y) * W + x];
                        }
                out_img[o] = (float)acc;
            }
}

sl_status sld_blur3d(float *v, const int64_t n3[3], double sigma)
{
    if (sigma <= 0.0) return SL_OK;
    const int64_t D = n3[0], H = n3[1], W = n3[2];
    const int64_t rad = (int64_t)floor(4.0 * sigma + 0.5);
    const int64_t ext[3] = {D, H, W}, stride[3] = {H * W, W, 1};
    int64_t maxn = D > H ? D : H;
    if (W > maxn) maxn = W;
    double *k = malloc((size_t)(2 * rad + 1) * sizeof *k), *line = malloc((size_t)maxn * sizeof *line);
    if (!k || !line) {
        free(k);
        free(line);
        return SL_ENOMEM;
    }
    double ks = 0.0;
    for (int64_t j = -rad; j <= rad; j++) ks += k[j + rad] = exp(-(double)(j * j) / (2.0 * sigma * sigma));
    for (int64_t j = 0; j <= 2 * rad; j++) k[j] /= ks;
    for (int a = 0; a < 3; a++) {
        const int64_t n = ext[a], s = stride[a], nlines = D * H * W / n;
        for (int64_t l = 0; l < nlines; l++) {
            /* the first voxel of line l along axis a */
            const int64_t base = a == 0 ? l : a == 1 ? (l / W) * H * W + l % W : l * W;
            for (int64_t i = 0; i < n; i++) line[i] = v[base + i * s];
            for (int64_t i = 0; i < n; i++) {
                double acc = 0.0;
                for (int64_t j = -rad; j <= rad; j++) {
                    int64_t t = i + j;
                    /* scipy's reflect (d c b a | a b c d | d c b a), repeated for short lines */
                    while (t < 0 || t >= n) t = t < 0 ? -t - 1 : 2 * n - t - 1;
                    acc += k[j + rad] * line[t];
                }
                v[base + i * s] = (float)acc;
            }
        }
    }
    free(k);
    free(line);
    return SL_OK;
}

sl_status sld_elastic_field3d(sl_rng *r, const int64_t n3[3], double alpha, double sigma, float *disp)
{
    const int64_t n = n3[0] * n3[1] * n3[2];
    for (int64_t i = 0; i < 3 * n; i++) disp[i] = (float)(2.0 * sl_rng_uniform(r) - 1.0);
    for (int a = 0; a < 3; a++) {
        sl_status st = sld_blur3d(disp + a * n, n3, sigma);
        if (st != SL_OK) return st;
    }
    /* RMS vector length alpha */
    double ss = 0.0;
    for (int64_t i = 0; i < 3 * n; i++) ss += (double)disp[i] * disp[i];
    const double rms = sqrt(ss / (double)n);
    if (rms > 0)
        for (int64_t i = 0; i < 3 * n; i++) disp[i] = (float)(disp[i] * alpha / rms);
    return SL_OK;
}
