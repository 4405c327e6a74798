/*
 * Dense CRF after a prediction (sl_predict_crf, segloss predict --crf).
 *
 * The CRF's appearance kernel compares intensities, so it must see the
 * image in the units its theta_beta is stated in: the normalised image the
 * network saw. This file redoes the predictor's normalisation (whole
 * volume, or each slice for per-slice runs such as phantom) and runs
 * sl_crf where the network ran: on each 2-D slice along the training axis
 * for a 2-D model (a slice's CRF must not smooth across slices the model
 * never related), on the whole volume for a 3-D model.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "train_internal.h"

/* The slices of a (D, H, W) volume along axis a (0, 1, 2): slice s, in-slice
 * (u, v) is at s * st[a] + u * st[ua] + v * st[va] with ua < va the other
 * two axes. */
typedef struct slicing {
    int64_t ns, sh, sw;      /* slices, in-slice extents */
    int64_t ss, su, sv;      /* strides */
    double spu, spv;         /* in-slice spacing */
} slicing;

static slicing make_slicing(const int64_t shape[3], const double sp[3], int axis)
{
    const int a = axis == 'z' ? 0 : (axis == 'y' ? 1 : 2);
    const int ua = a == 0 ? 1 : 0, va = a == 2 ? 1 : 2;
    const int64_t st[3] = {shape[1] * shape[2], shape[2], 1};
    slicing s = {shape[a], shape[ua], shape[va], st[a], st[ua], st[va], sp[ua], sp[va]};
    return s;
}

static sl_status check_args(const sl_preproc *pp, int model_ndim, const sl_array *image, const sl_array *probs,
                            char *msg, size_t msglen)
{
    if (!pp || !image || !image->data || !probs || !probs->data)
        return sl_errf(msg, msglen, SL_EINVAL, "crf: NULL argument");
    if (model_ndim != 2 && model_ndim != 3) return sl_errf(msg, msglen, SL_EINVAL, "crf: model_ndim must be 2 or 3");
    if (image->ndim != 2 && image->ndim != 3)
        return sl_errf(msg, msglen, SL_ESHAPE, "crf: the image has %d axes; expected 2 (H, W) or 3 (D, H, W)", image->ndim);
    if (model_ndim == 3 && image->ndim != 3) return sl_errf(msg, msglen, SL_ESHAPE, "crf: a 3-D model's image must be a volume");
    if (model_ndim == 2 && pp->axis != 'x' && pp->axis != 'y' && pp->axis != 'z')
        return sl_errf(msg, msglen, SL_EINVAL, "crf: axis must be x, y or z");
    int ok = probs->dtype == SL_DT_F32 && probs->ndim == image->ndim + 1 && probs->shape[0] >= 1;
    for (int a = 0; ok && a < image->ndim; a++) ok = probs->shape[a + 1] == image->shape[a];
    if (!ok) return sl_errf(msg, msglen, SL_ESHAPE, "crf: the probabilities must be float32 (C, image shape...)");
    return SL_OK;
}

/* The CRF on each slice of the volume (normalising each when per slice). */
static sl_status crf_slices(const sl_preproc *pp, const slicing *s, float *img, float *prob, int64_t C, int64_t N,
                            const sl_crf_params *cp, char *msg, size_t msglen)
{
    const int64_t hw = s->sh * s->sw;
    float *si = sl_malloc(hw, sizeof *si), *sp = sl_malloc(C * hw, sizeof *sp);
    sl_status st = SL_OK;
    if (!si || !sp) st = sl_errf(msg, msglen, SL_ENOMEM, "crf: out of memory");
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = 2;
    g.shape[0] = s->sh, g.shape[1] = s->sw;
    g.spacing[0] = s->spu, g.spacing[1] = s->spv;
    for (int64_t k = 0; k < s->ns && st == SL_OK; k++) {
        for (int64_t u = 0; u < s->sh; u++)
            for (int64_t v = 0; v < s->sw; v++) {
                const int64_t at = k * s->ss + u * s->su + v * s->sv;
                si[u * s->sw + v] = img[at];
                for (int64_t c = 0; c < C; c++) sp[c * hw + u * s->sw + v] = prob[c * N + at];
            }
        if (pp->per_slice && (st = sl_preproc_normalise(pp, si, 1, s->sh, s->sw)) != SL_OK) {
            st = sl_errf(msg, msglen, st, "crf: normalising slice %lld failed", (long long)k);
            break;
        }
        if ((st = sl_crf(sp, C, si, 1, &g, cp, sp, msg, msglen)) != SL_OK) break;
        for (int64_t u = 0; u < s->sh; u++)
            for (int64_t v = 0; v < s->sw; v++)
                for (int64_t c = 0; c < C; c++) prob[c * N + k * s->ss + u * s->su + v * s->sv] = sp[c * hw + u * s->sw + v];
    }
    free(si);
    free(sp);
    return st;
}

/* labels (image shape) = argmax over C of prob (C, N), uint8 up to 256 classes */
static sl_status argmax_labels(const float *prob, int64_t C, int64_t N, const sl_array *image, sl_array *labels,
                               char *msg, size_t msglen)
{
    int32_t *lab = sl_malloc(N, sizeof *lab);
    sl_array res = SL_ARRAY_EMPTY;
    const sl_dtype dt = C <= 256 ? SL_DT_U8 : SL_DT_I16;
    if (!lab || sl_array_alloc(&res, dt, image->ndim, image->shape) != SL_OK) {
        free(lab);
        return sl_errf(msg, msglen, SL_ENOMEM, "crf: out of memory");
    }
    slt_argmax(prob, 1, C, N, lab);
    for (int64_t i = 0; i < N; i++) {
        if (dt == SL_DT_U8) ((uint8_t *)res.data)[i] = (uint8_t)lab[i];
        else ((int16_t *)res.data)[i] = (int16_t)lab[i];
    }
    free(lab);
    *labels = res;
    return SL_OK;
}

sl_status sl_predict_crf(const sl_preproc *pp, int model_ndim, const sl_array *image, const double *spacing,
                         const sl_crf_params *params, sl_array *probs, sl_array *labels, char *msg, size_t msglen)
{
    sl_status st = check_args(pp, model_ndim, image, probs, msg, msglen);
    if (st != SL_OK) return st;
    const int nd = image->ndim;
    const int64_t C = probs->shape[0];
    const int64_t shape[3] = {nd == 3 ? image->shape[0] : 1, image->shape[nd - 2], image->shape[nd - 1]};
    double sp[3] = {1.0, 1.0, 1.0};
    for (int a = 0; spacing && a < nd; a++) sp[3 - nd + a] = spacing[a];
    int64_t N;
    if (sl_mul3_size(shape[0], shape[1], shape[2], &N)) return sl_errf(msg, msglen, SL_EOVERFLOW, "crf: image too large");
    sl_array f = SL_ARRAY_EMPTY;
    if ((st = sl_array_to_f32(image, &f)) != SL_OK) return sl_errf(msg, msglen, st, "crf: out of memory");
    float *fv = f.data;
    /* a 2-D model cuts (D, H, W) along its axis; one slice is the 2-D image */
    const int axis = (nd == 2 || shape[0] == 1) ? 'z' : pp->axis;
    const int whole = model_ndim == 3;
    if ((whole || !pp->per_slice) && (st = sl_preproc_normalise(pp, fv, 1, N, 1)) != SL_OK) {
        st = sl_errf(msg, msglen, st, "crf: normalising the image failed");
        goto done;
    }
    if (whole) {
        sl_grid g = SL_GRID_DEFAULT;
        g.ndim = 3;
        for (int a = 0; a < 3; a++) g.shape[a] = shape[a], g.spacing[a] = sp[a];
        st = sl_crf(probs->data, C, fv, 1, &g, params, probs->data, msg, msglen);
    } else {
        const slicing s = make_slicing(shape, sp, axis);
        st = crf_slices(pp, &s, fv, probs->data, C, N, params, msg, msglen);
    }
    if (st == SL_OK && labels) st = argmax_labels(probs->data, C, N, image, labels, msg, msglen);
done:
    sl_array_free(&f);
    return st;
}
