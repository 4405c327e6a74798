/*
 * The predictor: preprocessing as in training, padded forward passes with
 * optional flip test-time augmentation, and whole images (2-D slices or
 * 3-D volumes cut along the training axis).
 *
 * Padding. The U-Net needs sides divisible by 2^(depth-1); a slice of
 * another size is zero-padded, centred (floor of the excess before), and
 * the output cropped back. Zero is the mean of a z-scored image and the
 * background of a masked one, so the pad looks like background.
 *
 * TTA (nnU-Net's mirroring): the softmax probabilities of the slice and of
 * its mirrorings along y, x and both are mapped back and averaged. The
 * rotations and random draws (--tta rot, aug:N) are in tta.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "train_internal.h"

/* ------------------------------------------------------------ preprocessing */

sl_status sl_preproc_from_config(sl_preproc *pp, const sl_train_config *cfg, int64_t sample_h, int64_t sample_w,
                                 char *msg, size_t msglen)
{
    if (!pp || !cfg) return sl_errf(msg, msglen, SL_EINVAL, "preproc: NULL argument");
    const sl_data_opts *d = &cfg->data_opts;
    memset(pp, 0, sizeof *pp);
    pp->clip_lo = d->clip_lo;
    pp->clip_hi = d->clip_hi;
    pp->axis = 'z';
    pp->resize = d->resize;
    pp->size[0] = sample_h > 0 ? sample_h : d->height;
    pp->size[1] = sample_w > 0 ? sample_w : d->width;
    if (strcmp(cfg->data, "phantom") == 0) {
        /* the generator z-scores each image over all its pixels */
        pp->norm = SL_INTENSITY_ZSCORE;
        pp->mask = SL_PREPROC_ALL;
        pp->per_slice = 1;
        pp->resize = SL_RESIZE_CROP_PAD;
        if (pp->size[0] <= 0) pp->size[0] = pp->size[1] = 128;
    } else if (strcmp(cfg->data, "phantom3d") == 0) {
        /* the generator z-scores each volume over all its voxels */
        pp->norm = SL_INTENSITY_ZSCORE;
        pp->mask = SL_PREPROC_ALL;
        pp->per_slice = 0;
        pp->resize = SL_RESIZE_CROP_PAD;
    } else if (strcmp(cfg->data, "colin") == 0 || strcmp(cfg->data, "colin3d") == 0) {
        /* z-score over the brain (T1 > 0) of the volume, the rest 0 */
        pp->norm = SL_INTENSITY_ZSCORE;
        pp->mask = SL_PREPROC_POSITIVE;
        pp->per_slice = 0;
        if (cfg->data[5] == '3') pp->resize = SL_RESIZE_CROP_PAD; /* colin3d: volumes at their own size */
    } else if (strncmp(cfg->data, "nifti:", 6) == 0) {
        pp->norm = d->norm;
        pp->mask = d->norm_nonzero ? SL_PREPROC_NONZERO : SL_PREPROC_ALL;
        pp->per_slice = 0;
        pp->axis = d->axis;
    } else {
        return sl_errf(msg, msglen, SL_EINVAL, "preproc: unknown data source '%s'", cfg->data);
    }
    if (pp->resize != SL_RESIZE_CROP_PAD && (pp->size[0] <= 0 || pp->size[1] <= 0))
        return sl_errf(msg, msglen, SL_EINVAL, "preproc: resize mode needs the sample size");
    if (pp->size[0] <= 0) pp->size[0] = pp->size[1] = 0;
    return SL_OK;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* numpy's linear percentile of a sorted array (the nifti source's rule) */
static double percentile_sorted(const float *v, int64_t n, double q)
{
    double pos = q / 100.0 * (double)(n - 1);
    int64_t i = (int64_t)floor(pos);
    if (i >= n - 1) return v[n - 1];
    double t = pos - (double)i;
    return (double)v[i] + t * ((double)v[i + 1] - (double)v[i]);
}

static int in_mask(sl_preproc_mask m, float v)
{
    return m == SL_PREPROC_ALL || (m == SL_PREPROC_NONZERO && v != 0.0f) || (m == SL_PREPROC_POSITIVE && v > 0.0f);
}

/* One block (a slice or a volume) of n values. */
static sl_status normalise_block(const sl_preproc *pp, float *x, int64_t n)
{
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) m += in_mask(pp->mask, x[i]);
    if (m == 0) return SL_OK;
    double lo = -INFINITY, hi = INFINITY;
    if (pp->norm == SL_INTENSITY_PERCENTILE) {
        float *v = sl_malloc(m, sizeof *v);
        if (!v) return SL_ENOMEM;
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++)
            if (in_mask(pp->mask, x[i])) v[k++] = x[i];
        qsort(v, (size_t)m, sizeof *v, cmp_float);
        lo = percentile_sorted(v, m, pp->clip_lo);
        hi = percentile_sorted(v, m, pp->clip_hi);
        free(v);
    }
    double s = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (in_mask(pp->mask, x[i])) s += fmin(fmax((double)x[i], lo), hi);
    const double mean = s / (double)m;
    for (int64_t i = 0; i < n; i++)
        if (in_mask(pp->mask, x[i])) {
            double d = fmin(fmax((double)x[i], lo), hi) - mean;
            ss += d * d;
        }
    double sd = sqrt(ss / (double)m);
    if (!(sd > 0)) sd = 1.0;
    for (int64_t i = 0; i < n; i++) {
        if (in_mask(pp->mask, x[i])) x[i] = (float)((fmin(fmax((double)x[i], lo), hi) - mean) / sd);
        else x[i] = 0.0f; /* zeros stay 0; negatives outside a positive mask become 0 */
    }
    return SL_OK;
}

sl_status sl_preproc_normalise(const sl_preproc *pp, float *x, int64_t n, int64_t h, int64_t w)
{
    if (!pp || (!x && n > 0) || n < 0 || h < 1 || w < 1) return SL_EINVAL;
    if (pp->norm == SL_INTENSITY_NONE) return SL_OK;
    if ((unsigned)pp->norm > SL_INTENSITY_NONE || (unsigned)pp->mask > SL_PREPROC_POSITIVE) return SL_EINVAL;
    int64_t hw, all;
    if (sl_mul_size(h, w, &hw) || sl_mul_size(hw, n, &all)) return SL_EOVERFLOW;
    if (!pp->per_slice) return normalise_block(pp, x, all);
    for (int64_t k = 0; k < n; k++) {
        sl_status st = normalise_block(pp, x + k * hw, hw);
        if (st != SL_OK) return st;
    }
    return SL_OK;
}

/* ------------------------------------------------------------- forward pass */

void slt_argmax(const float *probs, int64_t n, int64_t C, int64_t hw, int32_t *labels)
{
    for (int64_t k = 0; k < n; k++)
        for (int64_t p = 0; p < hw; p++) {
            const float *q = probs + k * C * hw + p;
            int32_t best = 0;
            float bv = q[0];
            for (int64_t c = 1; c < C; c++)
                if (q[c * hw] > bv) {
                    bv = q[c * hw];
                    best = (int32_t)c;
                }
            labels[k * hw + p] = best;
        }
}

sl_status sl_predict_slices(sl_unet *net, const float *images, int64_t n, int64_t h, int64_t w,
                            const sl_predict_opts *opts, float *probs, int32_t *labels, char *msg, size_t msglen)
{
    if (!net || (!images && n > 0)) return sl_errf(msg, msglen, SL_EINVAL, "predict: NULL argument");
    if (n < 0 || h < 1 || w < 1) return sl_errf(msg, msglen, SL_EINVAL, "predict: bad size %lld x %lld x %lld", (long long)n, (long long)h, (long long)w);
    sl_predict_opts o = SL_PREDICT_OPTS_DEFAULT;
    if (opts) o = *opts;
    if ((unsigned)o.tta > SL_TTA_AUG || o.threads < 0 || o.batch < 0)
        return sl_errf(msg, msglen, SL_EINVAL, "predict: bad options (tta %d, threads %d, batch %lld)", (int)o.tta, o.threads,
                       (long long)o.batch);
    sl_status cst = slt_tta_check(&o, msg, msglen);
    if (cst != SL_OK) return cst;
    if (o.batch == 0) o.batch = 8;
    if (n == 0) return SL_OK;
    sl_unet_config uc;
    sl_unet_get_config(net, &uc);
    if (uc.num_classes > SL_DATA_MAX_CLASSES)
        return sl_errf(msg, msglen, SL_EUNSUPPORTED, "predict: %d classes (at most %d)", uc.num_classes, SL_DATA_MAX_CLASSES);
    if (uc.in_channels != 1)
        return sl_errf(msg, msglen, SL_ESHAPE, "predict: the model takes %d input channels; images have 1", uc.in_channels);
    const int64_t C = uc.num_classes, mult = (int64_t)1 << (uc.depth - 1);
    const int64_t Hp = (h + mult - 1) / mult * mult, Wp = (w + mult - 1) / mult * mult;
    const int64_t py = (Hp - h) / 2, px = (Wp - w) / 2, hw = h * w;
    const int64_t B = o.batch < n ? o.batch : n;
    int64_t tmp;
    if (sl_mul3_size(B, C, Hp, &tmp) || sl_mul_size(tmp, Wp, &tmp) || sl_mul3_size(n, C, hw, &tmp))
        return sl_errf(msg, msglen, SL_EOVERFLOW, "predict: sizes overflow");
    if (o.tta == SL_TTA_ROT || o.tta == SL_TTA_AUG) /* tta.c: transformed slices through this function */
        return slt_predict_slices_tta(net, images, n, h, w, &o, C, probs, labels, msg, msglen);
    const int threads = sl_threads(o.threads);
    if (o.threads > 0) sl_unet_set_threads(net, o.threads);
    sl_unet_set_training(net, 0);

    float *in = sl_malloc(B * Hp * Wp, sizeof *in);
    float *logits = sl_malloc(B * C * Hp * Wp, sizeof *logits);
    float *pr = probs ? probs : sl_malloc(B * C * hw, sizeof *pr);
    /* without a caller's probs, a batch's probabilities go to a scratch
     * block and are reduced to labels before the next batch */
    const int own = probs == NULL;
    sl_status st = SL_OK;
    if (!in || !logits || !pr) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "predict: out of memory");
        goto done;
    }
    const int nflip = o.tta == SL_TTA_FLIP ? 4 : 1;
    for (int64_t k0 = 0; k0 < n; k0 += B) {
        const int64_t b = n - k0 < B ? n - k0 : B;
        float *pb = own ? pr : pr + k0 * C * hw;
        memset(pb, 0, (size_t)(b * C * hw) * sizeof *pb);
        for (int f = 0; f < nflip; f++) {
            const int fy = f & 1, fx = (f >> 1) & 1;
            /* padded (and mirrored) input */
            memset(in, 0, (size_t)(b * Hp * Wp) * sizeof *in);
            for (int64_t k = 0; k < b; k++)
                for (int64_t y = 0; y < h; y++)
                    for (int64_t x = 0; x < w; x++) {
                        int64_t Y = y + py, X = x + px;
                        if (fy) Y = Hp - 1 - Y;
                        if (fx) X = Wp - 1 - X;
                        in[(k * Hp + Y) * Wp + X] = images[(k0 + k) * hw + y * w + x];
                    }
            sl_dims d = {b, 1, 2, {Hp, Wp, 0}};
            if ((st = sl_unet_forward(net, in, &d, logits, msg, msglen)) != SL_OK) goto done;
            /* softmax at each kept pixel, mapped back through the mirroring */
            const float scale = 1.0f / (float)nflip;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
            for (int64_t k = 0; k < b; k++)
                for (int64_t y = 0; y < h; y++) {
                    float e[SL_DATA_MAX_CLASSES];
                    for (int64_t x = 0; x < w; x++) {
                        int64_t Y = y + py, X = x + px;
                        if (fy) Y = Hp - 1 - Y;
                        if (fx) X = Wp - 1 - X;
                        const float *z = logits + k * C * Hp * Wp + Y * Wp + X;
                        float mx = z[0];
                        for (int64_t c = 1; c < C; c++) mx = z[c * Hp * Wp] > mx ? z[c * Hp * Wp] : mx;
                        double s = 0.0;
                        for (int64_t c = 0; c < C; c++) {
                            e[c] = expf(z[c * Hp * Wp] - mx);
                            s += e[c];
                        }
                        const float inv = (float)(1.0 / s) * scale;
                        float *q = pb + k * C * hw + y * w + x;
                        for (int64_t c = 0; c < C; c++) q[c * hw] += e[c] * inv;
                    }
                }
        }
        if (labels) slt_argmax(pb, b, C, hw, labels + k0 * hw);
    }
done:
    free(in);
    free(logits);
    if (own) free(pr);
    return st;
}

/* ------------------------------------------------------------ whole images */

/* Array index of slice s, in-slice (u, v), for a (D, H, W) volume cut along axis. */
static inline int64_t vol_index(int axis, int64_t s, int64_t u, int64_t v, int64_t H, int64_t W)
{
    if (axis == 'z') return (s * H + u) * W + v;
    if (axis == 'y') return (u * H + s) * W + v;
    return (u * H + v) * W + s;
}

sl_status sl_predict_image(sl_unet *net, const sl_preproc *pp, const sl_array *image, const sl_predict_opts *opts,
                           sl_array *out, char *msg, size_t msglen)
{
    return sl_predict_image_probs(net, pp, image, opts, out, NULL, msg, msglen);
}

/* ------------------------------------------------------------ 3-D models */

typedef struct vol_ctx {
    sl_unet *net;
    int64_t p[3], C;
    int tta;
    float *xf, *lg, *lgf; /* a mirrored patch, logits, mirrored-back logits */
    const void *wo;       /* the sl_window_opts (for vol_plain) */
} vol_ctx;

/* dst = src mirrored along the axes of mask (bit a: axis a of (D, H, W)),
 * for c channels of p[0] x p[1] x p[2]. An involution. */
static void mirror3(const float *src, float *dst, int64_t c, const int64_t p[3], int mask)
{
    const int64_t n = p[0] * p[1] * p[2];
    for (int64_t k = 0; k < c; k++)
        for (int64_t z = 0; z < p[0]; z++)
            for (int64_t y = 0; y < p[1]; y++)
                for (int64_t x = 0; x < p[2]; x++) {
                    const int64_t zs = mask & 1 ? p[0] - 1 - z : z, ys = mask & 2 ? p[1] - 1 - y : y,
                                  xs = mask & 4 ? p[2] - 1 - x : x;
                    dst[k * n + (z * p[1] + y) * p[2] + x] = src[k * n + (zs * p[1] + ys) * p[2] + xs];
                }
}

/* out (C, n) += w * softmax(lg (C, n)) over the channels, in double per voxel */
static void add_softmax(const float *lg, float *out, int64_t C, int64_t n, double w)
{
    for (int64_t i = 0; i < n; i++) {
        double mx = lg[i];
        for (int64_t c = 1; c < C; c++) mx = fmax(mx, lg[c * n + i]);
        double z = 0.0;
        for (int64_t c = 0; c < C; c++) z += exp((double)lg[c * n + i] - mx);
        for (int64_t c = 0; c < C; c++) out[c * n + i] += (float)(w * exp((double)lg[c * n + i] - mx) / z);
    }
}

/* The window forward of sl_sliding_window: the softmax of one patch, or
 * the mean softmax of its 8 mirrorings (each mapped back). */
static sl_status vol_window(const float *patch, float *out, void *user, char *msg, size_t msglen)
{
    vol_ctx *v = user;
    const int64_t n = v->p[0] * v->p[1] * v->p[2];
    sl_dims d = {1, 1, 3, {v->p[0], v->p[1], v->p[2]}};
    const int nm = v->tta ? 8 : 1;
    memset(out, 0, (size_t)(v->C * n) * sizeof *out);
    for (int m = 0; m < nm; m++) {
        const float *x = patch;
        if (m) {
            mirror3(patch, v->xf, 1, v->p, m);
            x = v->xf;
        }
        sl_status st = sl_unet_forward(v->net, x, &d, v->lg, msg, msglen);
        if (st != SL_OK) return st;
        const float *lg = v->lg;
        if (m) {
            mirror3(v->lg, v->lgf, v->C, v->p, m);
            lg = v->lgf;
        }
        add_softmax(lg, out, v->C, n, 1.0 / nm);
    }
    return SL_OK;
}

/* A volume of any size through the sliding window without TTA (the
 * prediction tta.c averages over transformed volumes). */
static sl_status vol_plain(const float *vol, const int64_t size[3], float *probs, void *user, char *msg, size_t msglen)
{
    vol_ctx *v = user;
    sl_window_opts wo = *(const sl_window_opts *)v->wo;
    return sl_sliding_window(vol, 1, 3, size, (int)v->C, &wo, vol_window, v, probs, msg, msglen);
}

static sl_status predict_volume3d(sl_unet *net, const sl_preproc *pp, const sl_array *image,
                                  const sl_predict_opts *opts, sl_array *out, sl_array *prob_out, char *msg,
                                  size_t msglen)
{
    sl_predict_opts o = SL_PREDICT_OPTS_DEFAULT;
    if (opts) o = *opts;
    if (image->ndim != 3)
        return sl_errf(msg, msglen, SL_ESHAPE, "predict: the model is 3-D (trained on volumes) but the image has %d axes; give a (D, H, W) volume",
                       image->ndim);
    if (pp->patch[0] < 1 || pp->patch[1] < 1 || pp->patch[2] < 1)
        return sl_errf(msg, msglen, SL_EINVAL, "predict: a 3-D model needs its training patch (config.json predict.preprocessing.patch)");
    const double step = o.step > 0 ? o.step : 0.5;
    if (!(step <= 1.0)) return sl_errf(msg, msglen, SL_EINVAL, "predict: window step %g outside (0, 1]", step);
    const int64_t size[3] = {image->shape[0], image->shape[1], image->shape[2]};
    int64_t N;
    if (sl_mul3_size(size[0], size[1], size[2], &N) || N < 1)
        return sl_errf(msg, msglen, SL_ESHAPE, "predict: empty or too large volume");
    sl_unet_config uc;
    sl_unet_get_config(net, &uc);
    const int64_t C = uc.num_classes;
    sl_status st0;
    vol_ctx v = {net, {pp->patch[0], pp->patch[1], pp->patch[2]}, C, o.tta == SL_TTA_FLIP, NULL, NULL, NULL, NULL};
    if ((st0 = slt_tta_check(&o, msg, msglen)) != SL_OK) return st0;
    const int64_t pn = v.p[0] * v.p[1] * v.p[2];
    sl_array f = SL_ARRAY_EMPTY, pa = SL_ARRAY_EMPTY, res = SL_ARRAY_EMPTY;
    float *probs = NULL;
    int32_t *lab = NULL;
    sl_status st = sl_array_to_f32(image, &f);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "predict: out of memory");
    float *fv = f.data;
    for (int64_t i = 0; i < N; i++)
        if (!isfinite(fv[i])) {
            st = sl_errf(msg, msglen, SL_ENONFINITE, "predict: non-finite intensity at voxel %lld", (long long)i);
            goto done;
        }
    if ((st = sl_preproc_normalise(pp, fv, 1, N, 1)) != SL_OK) goto fail;
    v.xf = sl_malloc(pn, sizeof *v.xf);
    v.lg = sl_malloc(C * pn, sizeof *v.lg);
    v.lgf = sl_malloc(C * pn, sizeof *v.lgf);
    probs = sl_malloc(C * N, sizeof *probs);
    lab = sl_malloc(N, sizeof *lab);
    if (!v.xf || !v.lg || !v.lgf || !probs || !lab) goto nomem;
    if (o.threads > 0) sl_unet_set_threads(net, o.threads);
    sl_unet_set_training(net, 0);
    sl_window_opts wo = SL_WINDOW_OPTS_DEFAULT;
    memcpy(wo.patch, v.p, sizeof wo.patch);
    wo.step = step;
    v.wo = &wo;
    if (o.tta == SL_TTA_ROT || o.tta == SL_TTA_AUG) st = slt_predict_volume_tta(fv, size, &o, C, vol_plain, &v, probs, msg, msglen);
    else st = sl_sliding_window(fv, 1, 3, size, (int)C, &wo, vol_window, &v, probs, msg, msglen);
    if (st != SL_OK) goto done;
    slt_argmax(probs, 1, C, N, lab);
    if ((st = sl_array_alloc(&res, C <= 256 ? SL_DT_U8 : SL_DT_I16, 3, size)) != SL_OK) goto nomem;
    for (int64_t i = 0; i < N; i++) {
        if (C <= 256) ((uint8_t *)res.data)[i] = (uint8_t)lab[i];
        else ((int16_t *)res.data)[i] = (int16_t)lab[i];
    }
    if (prob_out) {
        const int64_t pshape[4] = {C, size[0], size[1], size[2]};
        if ((st = sl_array_alloc(&pa, SL_DT_F32, 4, pshape)) != SL_OK) goto nomem;
        memcpy(pa.data, probs, (size_t)(C * N) * sizeof *probs);
        *prob_out = pa;
        pa = (sl_array)SL_ARRAY_EMPTY;
    }
    *out = res;
    res = (sl_array)SL_ARRAY_EMPTY;
    st = SL_OK;
    goto done;
nomem:
    st = sl_errf(msg, msglen, SL_ENOMEM, "predict: out of memory");
    goto done;
fail:
    if (st == SL_ENOMEM) sl_errf(msg, msglen, SL_ENOMEM, "predict: out of memory");
done:
    sl_array_free(&f);
    sl_array_free(&pa);
    sl_array_free(&res);
    free(v.xf);
    free(v.lg);
    free(v.lgf);
    free(probs);
    free(lab);
    return st;
}

sl_status sl_predict_image_probs(sl_unet *net, const sl_preproc *pp, const sl_array *image,
                                 const sl_predict_opts *opts, sl_array *out, sl_array *prob_out, char *msg,
                                 size_t msglen)
{
    if (!net || !pp || !image || !out || !image->data) return sl_errf(msg, msglen, SL_EINVAL, "predict: NULL argument");
    {
        sl_unet_config nc;
        sl_unet_get_config(net, &nc);
        if (nc.spatial_ndim == 3) return predict_volume3d(net, pp, image, opts, out, prob_out, msg, msglen);
    }
    if (pp->axis != 'x' && pp->axis != 'y' && pp->axis != 'z')
        return sl_errf(msg, msglen, SL_EINVAL, "predict: axis must be x, y or z");
    if (pp->resize != SL_RESIZE_CROP_PAD && (pp->size[0] < 1 || pp->size[1] < 1))
        return sl_errf(msg, msglen, SL_EINVAL, "predict: resize mode without a sample size");
    int64_t D, H, W;
    int axis = pp->axis;
    if (image->ndim == 2) {
        D = 1, H = image->shape[0], W = image->shape[1];
        axis = 'z';
    } else if (image->ndim == 3) {
        D = image->shape[0], H = image->shape[1], W = image->shape[2];
        if (D == 1) axis = 'z'; /* a single slice stored as a volume */
    } else {
        return sl_errf(msg, msglen, SL_ESHAPE, "predict: the image has %d axes; expected 2 (H, W) or 3 (D, H, W)", image->ndim);
    }
    if (D < 1 || H < 1 || W < 1) return sl_errf(msg, msglen, SL_ESHAPE, "predict: empty image");
    const int64_t ns = axis == 'z' ? D : (axis == 'y' ? H : W);
    const int64_t sh = axis == 'z' ? H : D, sw = axis == 'x' ? H : W;
    int64_t N;
    if (sl_mul3_size(D, H, W, &N)) return sl_errf(msg, msglen, SL_EOVERFLOW, "predict: image too large");
    sl_unet_config uc;
    sl_unet_get_config(net, &uc);
    const int64_t C = uc.num_classes;

    sl_array f = SL_ARRAY_EMPTY, pa = SL_ARRAY_EMPTY;
    float *sl = NULL, *rs = NULL, *probs = NULL, *back = NULL;
    int32_t *lab = NULL;
    sl_status st;
    if ((st = sl_array_to_f32(image, &f)) != SL_OK) return sl_errf(msg, msglen, st, "predict: out of memory");
    float *fv = f.data;
    for (int64_t i = 0; i < N; i++)
        if (!isfinite(fv[i])) {
            sl_array_free(&f);
            return sl_errf(msg, msglen, SL_ENONFINITE, "predict: non-finite intensity at voxel %lld", (long long)i);
        }
    /* volume statistics on the whole array; per-slice ones after the cut */
    if (!pp->per_slice && (st = sl_preproc_normalise(pp, fv, 1, N, 1)) != SL_OK) goto fail;
    sl = sl_malloc(N, sizeof *sl);
    lab = sl_malloc(N, sizeof *lab);
    if (!sl || !lab) goto nomem;
    if (prob_out) {
        /* (C, image shape...): the softmax in the image's own layout */
        int64_t pshape[4] = {C, D, H, W};
        if (image->ndim == 2) pshape[1] = H, pshape[2] = W;
        if ((st = sl_array_alloc(&pa, SL_DT_F32, image->ndim + 1, pshape)) != SL_OK) goto nomem;
    }
    for (int64_t s = 0; s < ns; s++)
        for (int64_t u = 0; u < sh; u++)
            for (int64_t v = 0; v < sw; v++) sl[(s * sh + u) * sw + v] = fv[vol_index(axis, s, u, v, H, W)];
    if (pp->per_slice && (st = sl_preproc_normalise(pp, sl, ns, sh, sw)) != SL_OK) goto fail;

    const int64_t th = pp->size[0], tw = pp->size[1];
    if (pp->resize == SL_RESIZE_CROP_PAD || (th == sh && tw == sw)) {
        const int64_t shw = sh * sw;
        if (prob_out && !(probs = sl_malloc(ns * C * shw, sizeof *probs))) goto nomem;
        if ((st = sl_predict_slices(net, sl, ns, sh, sw, opts, probs, lab, msg, msglen)) != SL_OK) goto fail;
        if (prob_out)
            for (int64_t s = 0; s < ns; s++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t u = 0; u < sh; u++)
                        for (int64_t v = 0; v < sw; v++)
                            ((float *)pa.data)[c * N + vol_index(axis, s, u, v, H, W)] =
                                probs[(s * C + c) * shw + u * sw + v];
    } else {
        /* to the training size, predict, probabilities back to the slice grid */
        int64_t thw = th * tw, shw = sh * sw;
        rs = sl_malloc(ns * thw, sizeof *rs);
        probs = sl_malloc(ns * C * thw, sizeof *probs);
        back = sl_malloc(C * shw, sizeof *back);
        if (!rs || !probs || !back) goto nomem;
        for (int64_t s = 0; s < ns; s++)
            if ((st = sl_resize2d(sl + s * shw, NULL, sh, sw, th, tw, pp->resize, rs + s * thw, NULL)) != SL_OK) goto fail;
        if ((st = sl_predict_slices(net, rs, ns, th, tw, opts, probs, NULL, msg, msglen)) != SL_OK) goto fail;
        /* the inverse of sl_resize2d's map: slice pixel -> training-grid coordinate */
        double m[2][3] = {{0}};
        if (pp->resize == SL_RESIZE_RESAMPLE) {
            double ky = (double)th / (double)sh, kx = (double)tw / (double)sw;
            m[0][0] = ky, m[0][2] = 0.5 * ky - 0.5;
            m[1][1] = kx, m[1][2] = 0.5 * kx - 0.5;
        } else {
            double k = fmin((double)th / (double)sh, (double)tw / (double)sw);
            double offy = ((double)th - (double)sh * k) / 2.0, offx = ((double)tw - (double)sw * k) / 2.0;
            m[0][0] = k, m[0][2] = 0.5 * k + offy - 0.5;
            m[1][1] = k, m[1][2] = 0.5 * k + offx - 0.5;
        }
        for (int64_t s = 0; s < ns; s++) {
            for (int64_t c = 0; c < C; c++)
                if ((st = sl_warp2d(probs + (s * C + c) * thw, NULL, th, tw, (const double(*)[3])m, NULL, sh, sw,
                                    SL_INTERP_LINEAR, back + c * shw, NULL)) != SL_OK)
                    goto fail;
            slt_argmax(back, 1, C, shw, lab + s * shw);
            if (prob_out)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t u = 0; u < sh; u++)
                        for (int64_t v = 0; v < sw; v++)
                            ((float *)pa.data)[c * N + vol_index(axis, s, u, v, H, W)] = back[c * shw + u * sw + v];
        }
    }
    /* labels back into the image's layout */
    int64_t oshape[3] = {D, H, W};
    sl_dtype dt = C <= 256 ? SL_DT_U8 : SL_DT_I16;
    sl_array res = SL_ARRAY_EMPTY;
    if ((st = sl_array_alloc(&res, dt, image->ndim, image->ndim == 2 ? oshape + 1 : oshape)) != SL_OK) goto nomem;
    for (int64_t s = 0; s < ns; s++)
        for (int64_t u = 0; u < sh; u++)
            for (int64_t v = 0; v < sw; v++) {
                int64_t i = vol_index(axis, s, u, v, H, W);
                int32_t L = lab[(s * sh + u) * sw + v];
                if (dt == SL_DT_U8) ((uint8_t *)res.data)[i] = (uint8_t)L;
                else ((int16_t *)res.data)[i] = (int16_t)L;
            }
    *out = res;
    if (prob_out) {
        *prob_out = pa;
        pa = (sl_array)SL_ARRAY_EMPTY;
    }
    st = SL_OK;
    goto done;
nomem:
    st = sl_errf(msg, msglen, SL_ENOMEM, "predict: out of memory");
    goto done;
fail:
    if (st == SL_ENOMEM) sl_errf(msg, msglen, SL_ENOMEM, "predict: out of memory");
done:
    sl_array_free(&f);
    sl_array_free(&pa);
    free(sl);
    free(lab);
    free(rs);
    free(probs);
    free(back);
    return st;
}
