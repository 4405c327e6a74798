/*
 * Sliding-window inference with Gaussian importance weighting, as nnU-Net
 * v2 does it (nnunetv2/inference/sliding_window_prediction.py and
 * predict_from_raw_data.py: compute_steps_for_sliding_window,
 * compute_gaussian, the accumulation of predict_sliding_window_return_logits).
 *
 * Independent of the network: the caller gives a forward callback that maps
 * one window (Cin, patch) to (Cout, patch); the aggregation is
 *     out = sum_w g * f(window_w) / sum_w g
 * over the windows covering a voxel, g the importance map placed at the
 * window. With one window covering the volume this is f itself (up to the
 * float rounding of g * f / g).
 *
 * Window starts along an axis of n voxels, patch p, step fraction s:
 *     k = ceil((n - p) / (p * s)) + 1 windows, start_i = round(i * (n - p) / (k - 1))
 * (round half to even, as numpy), one window at 0 when k = 1.
 *
 * Importance map: nnU-Net filters a delta at the centre floor(p / 2) with
 * scipy.ndimage.gaussian_filter(sigma = p * sigma_scale, mode='constant')
 * and divides by the maximum; that is the product over axes of
 * exp(-d^2 / (2 sigma^2)) for |d| <= floor(4 sigma + 0.5) (the filter's
 * radius), 0 beyond. Zeros (beyond the radius or underflow) become the
 * smallest positive value, so every voxel has a weight.
 *
 * An axis shorter than the patch is zero-padded to the patch (nnU-Net's
 * pad_nd_image: floor(excess / 2) before, the rest after) and the output
 * cropped back; zero is the mean of a z-scored image.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "train_internal.h"

sl_status sl_window_starts(int64_t size, int64_t patch, double step, int64_t *starts, int64_t *count)
{
    if (!count || size < 1 || patch < 1 || !(step > 0.0 && step <= 1.0)) return SL_EINVAL;
    if (size <= patch) {
        /* padded to the patch: one window */
        if (starts) starts[0] = 0;
        *count = 1;
        return SL_OK;
    }
    const double stride = (double)patch * step;
    const int64_t k = (int64_t)ceil((double)(size - patch) / stride) + 1;
    const double actual = (double)(size - patch) / (double)(k - 1);
    for (int64_t i = 0; starts && i < k; i++) starts[i] = (int64_t)nearbyint(actual * (double)i);
    *count = k;
    return SL_OK;
}

sl_status sl_window_gaussian(int ndim, const int64_t *patch, double sigma_scale, float *map)
{
    if (!patch || !map || ndim < 1 || ndim > 3 || !(sigma_scale > 0.0) || !isfinite(sigma_scale)) return SL_EINVAL;
    int64_t p[3] = {1, 1, 1};
    for (int a = 0; a < ndim; a++) {
        if (patch[a] < 1) return SL_EINVAL;
        p[3 - ndim + a] = patch[a];
    }
    double *g[3];
    double *buf = malloc((size_t)(p[0] + p[1] + p[2]) * sizeof *buf);
    if (!buf) return SL_ENOMEM;
    g[0] = buf;
    g[1] = buf + p[0];
    g[2] = buf + p[0] + p[1];
    for (int a = 0; a < 3; a++) {
        const int padded = a < 3 - ndim; /* an axis the caller does not have: weight 1 */
        const double s = (double)p[a] * sigma_scale, c = (double)(p[a] / 2);
        const double radius = floor(4.0 * s + 0.5);
        for (int64_t i = 0; i < p[a]; i++) {
            const double d = (double)i - c;
            g[a][i] = padded ? 1.0 : fabs(d) <= radius ? exp(-d * d / (2.0 * s * s)) : 0.0;
        }
    }
    float minpos = INFINITY;
    const int64_t n = p[0] * p[1] * p[2];
    for (int64_t z = 0, i = 0; z < p[0]; z++)
        for (int64_t y = 0; y < p[1]; y++)
            for (int64_t x = 0; x < p[2]; x++, i++) {
                map[i] = (float)(g[0][z] * g[1][y] * g[2][x]);
                if (map[i] > 0.0f && map[i] < minpos) minpos = map[i];
            }
    for (int64_t i = 0; i < n; i++)
        if (map[i] == 0.0f) map[i] = minpos;
    free(buf);
    return SL_OK;
}

sl_status sl_sliding_window(const float *image, int in_channels, int ndim, const int64_t size[3], int out_channels,
                            const sl_window_opts *opts, sl_window_fn fn, void *user, float *out, char *msg,
                            size_t msglen)
{
    sl_window_opts o = SL_WINDOW_OPTS_DEFAULT;
    if (opts) o = *opts;
    if (!image || !size || !fn || !out || in_channels < 1 || out_channels < 1)
        return sl_errf(msg, msglen, SL_EINVAL, "sliding window: NULL argument or no channels");
    if (ndim < 1 || ndim > 3) return sl_errf(msg, msglen, SL_EINVAL, "sliding window: ndim %d (1, 2 or 3)", ndim);
    if (!(o.step > 0.0 && o.step <= 1.0))
        return sl_errf(msg, msglen, SL_EINVAL, "sliding window: step %g outside (0, 1]", o.step);
    if (o.gaussian && !(o.sigma_scale > 0.0 && isfinite(o.sigma_scale)))
        return sl_errf(msg, msglen, SL_EINVAL, "sliding window: sigma_scale %g must be > 0", o.sigma_scale);
    /* work in 3-D: missing leading axes have extent 1 */
    int64_t n[3] = {1, 1, 1}, p[3] = {1, 1, 1}, pad[3], full[3];
    for (int a = 0; a < ndim; a++) {
        const int b = 3 - ndim + a;
        n[b] = size[a];
        p[b] = o.patch[a];
        if (n[b] < 1 || p[b] < 1)
            return sl_errf(msg, msglen, SL_EINVAL, "sliding window: axis %d: size %lld, patch %lld (both >= 1)", a,
                           (long long)size[a], (long long)o.patch[a]);
    }
    for (int b = 0; b < 3; b++) {
        full[b] = n[b] > p[b] ? n[b] : p[b];
        pad[b] = (full[b] - n[b]) / 2;
    }
    const int64_t fvox = full[0] * full[1] * full[2], pvox = p[0] * p[1] * p[2];
    int64_t cnt[3], *st[3] = {NULL, NULL, NULL};
    float *vol = NULL, *acc = NULL, *wsum = NULL, *g = NULL, *win = NULL, *res = NULL;
    sl_status s = SL_ENOMEM;
    for (int b = 0; b < 3; b++) {
        sl_window_starts(full[b], p[b], o.step, NULL, &cnt[b]);
        if (!(st[b] = malloc((size_t)cnt[b] * sizeof *st[b]))) goto nomem;
        sl_window_starts(full[b], p[b], o.step, st[b], &cnt[b]);
    }
    vol = sl_malloc(in_channels * fvox, sizeof *vol);
    acc = sl_malloc(out_channels * fvox, sizeof *acc);
    wsum = sl_malloc(fvox, sizeof *wsum);
    g = sl_malloc(pvox, sizeof *g);
    win = sl_malloc(in_channels * pvox, sizeof *win);
    res = sl_malloc(out_channels * pvox, sizeof *res);
    if (!vol || !acc || !wsum || !g || !win || !res) goto nomem;
    /* the (padded) volume */
    memset(vol, 0, (size_t)(in_channels * fvox) * sizeof *vol);
    for (int c = 0; c < in_channels; c++)
        for (int64_t z = 0; z < n[0]; z++)
            for (int64_t y = 0; y < n[1]; y++)
                memcpy(vol + ((c * full[0] + z + pad[0]) * full[1] + y + pad[1]) * full[2] + pad[2],
                       image + ((c * n[0] + z) * n[1] + y) * n[2], (size_t)n[2] * sizeof *vol);
    if (o.gaussian) {
        if ((s = sl_window_gaussian(3, p, o.sigma_scale, g)) != SL_OK) goto nomem;
    } else {
        for (int64_t i = 0; i < pvox; i++) g[i] = 1.0f;
    }
    memset(acc, 0, (size_t)(out_channels * fvox) * sizeof *acc);
    memset(wsum, 0, (size_t)fvox * sizeof *wsum);
    /* windows in nnU-Net's order: the first axis outermost */
    for (int64_t i0 = 0; i0 < cnt[0]; i0++)
        for (int64_t i1 = 0; i1 < cnt[1]; i1++)
            for (int64_t i2 = 0; i2 < cnt[2]; i2++) {
                const int64_t s0 = st[0][i0], s1 = st[1][i1], s2 = st[2][i2];
                for (int c = 0; c < in_channels; c++)
                    for (int64_t z = 0; z < p[0]; z++)
                        for (int64_t y = 0; y < p[1]; y++)
                            memcpy(win + ((c * p[0] + z) * p[1] + y) * p[2],
                                   vol + ((c * full[0] + s0 + z) * full[1] + s1 + y) * full[2] + s2,
                                   (size_t)p[2] * sizeof *win);
                if ((s = fn(win, res, user, msg, msglen)) != SL_OK) goto done;
                for (int c = 0; c < out_channels; c++)
                    for (int64_t z = 0; z < p[0]; z++)
                        for (int64_t y = 0; y < p[1]; y++) {
                            float *a = acc + ((c * full[0] + s0 + z) * full[1] + s1 + y) * full[2] + s2;
                            const float *r = res + ((c * p[0] + z) * p[1] + y) * p[2];
                            const float *gw = g + (z * p[1] + y) * p[2];
                            for (int64_t x = 0; x < p[2]; x++) a[x] += r[x] * gw[x];
                        }
                for (int64_t z = 0; z < p[0]; z++)
                    for (int64_t y = 0; y < p[1]; y++) {
                        float *w = wsum + ((s0 + z) * full[1] + s1 + y) * full[2] + s2;
                        const float *gw = g + (z * p[1] + y) * p[2];
                        for (int64_t x = 0; x < p[2]; x++) w[x] += gw[x];
                    }
            }
    /* normalise and crop the padding away */
    for (int c = 0; c < out_channels; c++)
        for (int64_t z = 0; z < n[0]; z++)
            for (int64_t y = 0; y < n[1]; y++) {
                const int64_t f = ((z + pad[0]) * full[1] + y + pad[1]) * full[2] + pad[2];
                const float *a = acc + c * fvox + f, *w = wsum + f;
                float *q = out + ((c * n[0] + z) * n[1] + y) * n[2];
                for (int64_t x = 0; x < n[2]; x++) q[x] = a[x] / w[x];
            }
    s = SL_OK;
    goto done;
nomem:
    s = sl_errf(msg, msglen, SL_ENOMEM, "sliding window: out of memory");
done:
    for (int b = 0; b < 3; b++) free(st[b]);
    free(vol);
    free(acc);
    free(wsum);
    free(g);
    free(win);
    free(res);
    return s;
}
