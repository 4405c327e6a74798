/*
 * Ensembles of trained models: the softmax probabilities of several models
 * (trainings with other seeds, or the folds of a cross-validation) on one
 * image, averaged, and the argmax of the mean (nnU-Net's ensembling of
 * folds averages softmax, not labels).
 *
 * Each model is predicted by sl_predict_image_probs with its own
 * preprocessing, so models of another training size or 3-D patch can be
 * mixed; what must agree is what makes their probabilities comparable:
 * the classes, the dimensionality and the intensity normalisation.
 *
 * The mean is taken in double and rounded once, so that an ensemble of one
 * model, or of a model with itself, gives that model's probabilities and
 * labels bit for bit.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include "train_internal.h"

static const char *norm_name(sl_intensity_norm n)
{
    return n == SL_INTENSITY_ZSCORE ? "zscore" : n == SL_INTENSITY_PERCENTILE ? "percentile" : "none";
}

static const char *mask_name(sl_preproc_mask m)
{
    return m == SL_PREPROC_ALL ? "all voxels" : m == SL_PREPROC_NONZERO ? "nonzero voxels" : "positive voxels";
}

sl_status sl_ensemble_check(sl_unet *const *nets, const sl_preproc *pps, int nmodels, char *msg, size_t msglen)
{
    if (!nets || !pps || nmodels < 1) return sl_errf(msg, msglen, SL_EINVAL, "ensemble: no models");
    sl_unet_config c0;
    if (!nets[0]) return sl_errf(msg, msglen, SL_EINVAL, "ensemble: NULL model");
    sl_unet_get_config(nets[0], &c0);
    const sl_preproc *p0 = &pps[0];
    for (int k = 1; k < nmodels; k++) {
        sl_unet_config c;
        const sl_preproc *p = &pps[k];
        if (!nets[k]) return sl_errf(msg, msglen, SL_EINVAL, "ensemble: NULL model");
        sl_unet_get_config(nets[k], &c);
        /* numbered from 1 as a user counts the --model options */
        if (c.num_classes != c0.num_classes)
            return sl_errf(msg, msglen, SL_EINVAL, "ensemble: model %d has %d classes, model 1 has %d", k + 1, c.num_classes,
                           c0.num_classes);
        if (c.spatial_ndim != c0.spatial_ndim)
            return sl_errf(msg, msglen, SL_EINVAL, "ensemble: model %d is %d-D, model 1 is %d-D", k + 1, c.spatial_ndim,
                           c0.spatial_ndim);
        if (c.in_channels != c0.in_channels)
            return sl_errf(msg, msglen, SL_EINVAL, "ensemble: model %d takes %d input channels, model 1 takes %d", k + 1,
                           c.in_channels, c0.in_channels);
        if (p->norm != p0->norm || p->mask != p0->mask || p->per_slice != p0->per_slice)
            return sl_errf(msg, msglen, SL_EINVAL,
                           "ensemble: model %d normalises its input otherwise than model 1 (%s over %s%s vs %s over %s%s)",
                           k + 1, norm_name(p->norm), mask_name(p->mask), p->per_slice ? " per slice" : "",
                           norm_name(p0->norm), mask_name(p0->mask), p0->per_slice ? " per slice" : "");
        if (p->norm == SL_INTENSITY_PERCENTILE && (p->clip_lo != p0->clip_lo || p->clip_hi != p0->clip_hi))
            return sl_errf(msg, msglen, SL_EINVAL, "ensemble: model %d clips at percentiles %g-%g, model 1 at %g-%g", k + 1,
                           p->clip_lo, p->clip_hi, p0->clip_lo, p0->clip_hi);
        if (c.spatial_ndim != 3 && p->axis != p0->axis)
            return sl_errf(msg, msglen, SL_EINVAL, "ensemble: model %d slices along %c, model 1 along %c", k + 1, p->axis, p0->axis);
    }
    return SL_OK;
}

sl_status sl_predict_ensemble(sl_unet *const *nets, const sl_preproc *pps, int nmodels, const sl_array *image,
                              const sl_predict_opts *opts, sl_array *out, sl_array *probs, char *msg, size_t msglen)
{
    if (!image || !out) return sl_errf(msg, msglen, SL_EINVAL, "ensemble: NULL argument");
    sl_status st = sl_ensemble_check(nets, pps, nmodels, msg, msglen);
    if (st != SL_OK) return st;
    sl_array pk = SL_ARRAY_EMPTY, lab = SL_ARRAY_EMPTY, mean = SL_ARRAY_EMPTY;
    double *acc = NULL;
    int32_t *arg = NULL;
    int64_t n = 0;
    for (int k = 0; k < nmodels; k++) {
        if ((st = sl_predict_image_probs(nets[k], &pps[k], image, opts, &lab, &pk, msg, msglen)) != SL_OK) goto done;
        if (k == 0) {
            n = 1;
            for (int a = 0; a < pk.ndim; a++) n *= pk.shape[a];
            mean = pk; /* the first model's array holds the mean in the end */
            pk = (sl_array)SL_ARRAY_EMPTY;
            if (!(acc = sl_malloc(n, sizeof *acc))) goto nomem;
            const float *q = mean.data;
            for (int64_t i = 0; i < n; i++) acc[i] = q[i];
        } else {
            const float *q = pk.data;
            for (int64_t i = 0; i < n; i++) acc[i] += q[i];
            sl_array_free(&pk);
        }
        if (k + 1 < nmodels) sl_array_free(&lab); /* the last one's is the output's template */
    }
    float *m = mean.data;
    for (int64_t i = 0; i < n; i++) m[i] = (float)(acc[i] / nmodels);
    /* labels: the argmax of the mean, into the last model's label array
     * (the shape and dtype of the image's label map) */
    const int64_t C = mean.shape[0], N = n / C;
    if (!(arg = sl_malloc(N, sizeof *arg))) goto nomem;
    slt_argmax(m, 1, C, N, arg);
    for (int64_t i = 0; i < N; i++) {
        if (lab.dtype == SL_DT_U8) ((uint8_t *)lab.data)[i] = (uint8_t)arg[i];
        else ((int16_t *)lab.data)[i] = (int16_t)arg[i];
    }
    *out = lab;
    lab = (sl_array)SL_ARRAY_EMPTY;
    if (probs) {
        *probs = mean;
        mean = (sl_array)SL_ARRAY_EMPTY;
    }
    st = SL_OK;
    goto done;
nomem:
    st = sl_errf(msg, msglen, SL_ENOMEM, "ensemble: out of memory");
done:
    sl_array_free(&pk);
    sl_array_free(&lab);
    sl_array_free(&mean);
    free(acc);
    free(arg);
    return st;
}
