/*
 * 2-D resampling kernels of the data module: the affine (+ displacement)
 * warp that every spatial augmentation goes through, the resize modes of
 * the datasets, and a scipy-compatible Gaussian blur.
 *
 * One warp for everything spatial: flips, rotation, zoom, crop window and
 * elastic field are composed into one coordinate map and the image is
 * interpolated once, so a stack of augmentations blurs the image no more
 * than one of them, and the image and the label map are sampled at exactly
 * the same coordinates (their alignment cannot drift).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

/* cos and sin of an angle in degrees, exact (0, +-1) at multiples of 90:
 * cos(M_PI / 2) is 6e-17, not 0, and would make a 90-degree rotation
 * interpolate between neighbours instead of permuting pixels. */
static void cos_sin_deg(double deg, double *c, double *s)
{
    double q = deg / 90.0;
    if (q == floor(q) && fabs(q) < 1e15) {
        long long k = ((long long)q % 4 + 4) % 4;
        static const double cs[4][2] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
        *c = cs[k][0];
        *s = cs[k][1];
        return;
    }
    double rad = deg * (3.14159265358979323846 / 180.0);
    *c = cos(rad);
    *s = sin(rad);
}

sl_status sl_spatial2d_matrix(const sl_spatial2d *p, int64_t oh, int64_t ow, double m[2][3])
{
    if (!p || !m || oh < 1 || ow < 1) return SL_EINVAL;
    if (!isfinite(p->center[0]) || !isfinite(p->center[1]) || !isfinite(p->angle_deg) ||
        !(p->extent[0] > 0) || !(p->extent[1] > 0) || !isfinite(p->extent[0]) ||
        !isfinite(p->extent[1]) || !(p->scale > 0) || !isfinite(p->scale))
        return SL_EINVAL;
    double c, s;
    cos_sin_deg(p->angle_deg, &c, &s);
    /* per-axis factor of u before the rotation: window scale, flip, zoom */
    double fy = p->extent[0] / (double)oh / p->scale * (p->flip[0] ? -1.0 : 1.0);
    double fx = p->extent[1] / (double)ow / p->scale * (p->flip[1] ? -1.0 : 1.0);
    double cy = (double)(oh - 1) / 2.0, cx = (double)(ow - 1) / 2.0;
    /* input = center + R * diag(fy, fx) * (yo - cy, xo - cx) */
    m[0][0] = c * fy;
    m[0][1] = -s * fx;
    m[1][0] = s * fy;
    m[1][1] = c * fx;
    m[0][2] = p->center[0] - m[0][0] * cy - m[0][1] * cx;
    m[1][2] = p->center[1] - m[1][0] * cy - m[1][1] * cx;
    return SL_OK;
}

static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

sl_status sl_warp2d(const float *img, const int32_t *lab, int64_t h, int64_t w,
                    const double m[2][3], const float *disp, int64_t oh, int64_t ow,
                    sl_interp img_interp, float *out_img, int32_t *out_lab)
{
    if (!m || h < 1 || w < 1 || oh < 1 || ow < 1) return SL_EINVAL;
    if ((out_img && !img) || (out_lab && !lab)) return SL_EINVAL;
    if (img_interp != SL_INTERP_LINEAR && img_interp != SL_INTERP_NEAREST) return SL_EINVAL;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            if (!isfinite(m[i][j])) return SL_EINVAL;
    const int64_t no = oh * ow;
    /* img is (h, w), out is (oh, ow), disp is (2, oh, ow) */
    for (int64_t yo = 0; yo < oh; yo++) {
        for (int64_t xo = 0; xo < ow; xo++) {
            const int64_t o = yo * ow + xo;
            /* the coordinate formula is spelled out in one order so that a
             * pure translation by an integer gives integer coordinates */
            double y = m[0][0] * (double)yo + m[0][1] * (double)xo + m[0][2];
            double x = m[1][0] * (double)yo + m[1][1] * (double)xo + m[1][2];
            if (disp) {
                y += disp[o];
                x += disp[no + o];
            }
            /* round half up; the 1e-9 makes a coordinate that is a tie in
             * exact arithmetic (2.5 computed as 2.4999999999999996) round
             * up too, so nearest sampling does not depend on how the
             * coordinate happened to be rounded */
            double ry = floor(y + 0.5 + 1e-9), rx = floor(x + 0.5 + 1e-9);
            int inside = isfinite(y) && isfinite(x) && ry >= 0 && ry < (double)h && rx >= 0 &&
                         rx < (double)w;
            if (!inside) {
                if (out_img) out_img[o] = 0.0f;
                if (out_lab) out_lab[o] = 0;
                continue;
            }
            const int64_t ny = (int64_t)ry, nx = (int64_t)rx;
            if (out_lab) out_lab[o] = lab[ny * w + nx];
            if (!out_img) continue;
            if (img_interp == SL_INTERP_NEAREST) {
                out_img[o] = img[ny * w + nx];
                continue;
            }
            double fy0 = floor(y), fx0 = floor(x);
            double ty = y - fy0, tx = x - fx0;
            int64_t y0 = (int64_t)fy0, x0 = (int64_t)fx0;
            int64_t y1 = clamp64(y0 + 1, 0, h - 1), x1 = clamp64(x0 + 1, 0, w - 1);
            y0 = clamp64(y0, 0, h - 1);
            x0 = clamp64(x0, 0, w - 1);
            double a = img[y0 * w + x0], b = img[y0 * w + x1];
            double c = img[y1 * w + x0], d = img[y1 * w + x1];
            /* weights exactly 0 or 1 at integer coordinates: an exact copy */
            double top = tx == 0.0 ? a : a + (b - a) * tx;
            double bot = tx == 0.0 ? c : c + (d - c) * tx;
            out_img[o] = (float)(ty == 0.0 ? top : top + (bot - top) * ty);
        }
    }
    return SL_OK;
}

sl_status sl_resize2d(const float *img, const int32_t *lab, int64_t h, int64_t w, int64_t oh,
                      int64_t ow, sl_resize_mode mode, float *out_img, int32_t *out_lab)
{
    if (h < 1 || w < 1 || oh < 1 || ow < 1) return SL_EINVAL;
    if ((out_img && !img) || (out_lab && !lab)) return SL_EINVAL;
    double m[2][3];
    switch (mode) {
    case SL_RESIZE_CROP_PAD: {
        /* integer offsets: an exact copy of the overlapping pixels */
        int64_t y0 = (h - oh) >= 0 ? (h - oh) / 2 : -((oh - h + 1) / 2);
        int64_t x0 = (w - ow) >= 0 ? (w - ow) / 2 : -((ow - w + 1) / 2);
        for (int64_t yo = 0; yo < oh; yo++) {
            int64_t y = yo + y0;
            for (int64_t xo = 0; xo < ow; xo++) {
                int64_t x = xo + x0, o = yo * ow + xo;
                int in = y >= 0 && y < h && x >= 0 && x < w;
                if (out_img) out_img[o] = in ? img[y * w + x] : 0.0f;
                if (out_lab) out_lab[o] = in ? lab[y * w + x] : 0;
            }
        }
        return SL_OK;
    }
    case SL_RESIZE_RESAMPLE: {
        /* pixel centres: src = (dst + 0.5) * in / out - 0.5 */
        double sy = (double)h / (double)oh, sx = (double)w / (double)ow;
        m[0][0] = sy; m[0][1] = 0; m[0][2] = 0.5 * sy - 0.5;
        m[1][0] = 0; m[1][1] = sx; m[1][2] = 0.5 * sx - 0.5;
        break;
    }
    case SL_RESIZE_FIT: {
        double k = fmin((double)oh / (double)h, (double)ow / (double)w);
        double offy = ((double)oh - (double)h * k) / 2.0, offx = ((double)ow - (double)w * k) / 2.0;
        /* src = (dst - off + 0.5) / k - 0.5 */
        m[0][0] = 1.0 / k; m[0][1] = 0; m[0][2] = (0.5 - offy) / k - 0.5;
        m[1][0] = 0; m[1][1] = 1.0 / k; m[1][2] = (0.5 - offx) / k - 0.5;
        break;
    }
    default:
        return SL_EINVAL;
    }
    return sl_warp2d(img, lab, h, w, (const double(*)[3])m, NULL, oh, ow, SL_INTERP_LINEAR,
                     out_img, out_lab);
}

/* scipy's 'reflect' index for a line of n samples: (d c b a | a b c d | d c b a) */
static inline int64_t reflect_index(int64_t i, int64_t n)
{
    if (n == 1) return 0;
    int64_t period = 2 * n;
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - 1 - i;
}

/* Kernel of radius floor(4 sigma + 0.5), normalised (scipy _gaussian_kernel1d). */
static double *gauss_kernel(double sigma, int64_t *radius)
{
    int64_t r = (int64_t)(4.0 * sigma + 0.5);
    double *k = malloc((size_t)(2 * r + 1) * sizeof *k);
    if (!k) return NULL;
    double sum = 0.0;
    for (int64_t i = -r; i <= r; i++) {
        k[i + r] = exp(-0.5 * (double)(i * i) / (sigma * sigma));
        sum += k[i + r];
    }
    for (int64_t i = 0; i <= 2 * r; i++) k[i] /= sum;
    *radius = r;
    return k;
}

/* Convolves n lines of length len (element stride `step`, line stride
 * `lstride`) in place with kernel k of radius r. */
static sl_status blur_lines(float *x, int64_t nlines, int64_t len, int64_t step, int64_t lstride,
                            const double *k, int64_t r)
{
    double *line = malloc((size_t)len * sizeof *line);
    if (!line) return SL_ENOMEM;
    for (int64_t l = 0; l < nlines; l++) {
        float *p = x + l * lstride;
        for (int64_t i = 0; i < len; i++) line[i] = p[i * step];
        for (int64_t i = 0; i < len; i++) {
            double acc = 0.0;
            if (i - r >= 0 && i + r < len) {
                for (int64_t j = -r; j <= r; j++) acc += k[j + r] * line[i + j];
            } else {
                for (int64_t j = -r; j <= r; j++) acc += k[j + r] * line[reflect_index(i + j, len)];
            }
            p[i * step] = (float)acc;
        }
    }
    free(line);
    return SL_OK;
}

sl_status sl_blur2d(const float *in, float *out, int64_t h, int64_t w, double sigma_y,
                    double sigma_x)
{
    if (!in || !out || h < 1 || w < 1) return SL_EINVAL;
    if (!(sigma_y >= 0) || !(sigma_x >= 0) || !isfinite(sigma_y) || !isfinite(sigma_x))
        return SL_EINVAL;
    int64_t n;
    if (sl_mul_size(h, w, &n) != SL_OK) return SL_EINVAL;
    if (out != in) memcpy(out, in, (size_t)n * sizeof *out);
    sl_status st = SL_OK;
    int64_t r;
    /* scipy filters axis 0 first, then axis 1 (float64 intermediate; ours
     * is float32 between the passes, within 1e-6 relative of scipy) */
    if (sigma_y > 0) {
        double *k = gauss_kernel(sigma_y, &r);
        if (!k) return SL_ENOMEM;
        st = blur_lines(out, w, h, w, 1, k, r);
        free(k);
        if (st != SL_OK) return st;
    }
    if (sigma_x > 0) {
        double *k = gauss_kernel(sigma_x, &r);
        if (!k) return SL_ENOMEM;
        st = blur_lines(out, h, w, 1, w, k, r);
        free(k);
    }
    return st;
}
