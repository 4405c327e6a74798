/*
 * The test-time dense CRF of a benchmark entry ("crf": true): the test
 * cases' softmax, the CRF (segloss/crf.h, default parameters) on it, the
 * argmax. The cached test images are already normalised as the network saw
 * them, which is what the CRF's theta_beta is stated for; the benchmark's
 * images have 1 mm pixels and voxels.
 *
 * 2-D: the slices' softmax in batches (sl_predict_slices), the CRF on each
 * slice. 3-D: each volume as segloss predict --crf predicts it (sliding
 * windows whose softmax, not logits, is aggregated, then the CRF on the
 * volume), so the entry's numbers are those of the CLI.
 */
#include <stdlib.h>
#include <string.h>
#include "bench_internal.h"
#include "train/train_internal.h" /* slt_argmax */

static sl_status crf_slices(sl_unet *net, const sl_predict_opts *po, const float *img, int64_t n, int64_t H, int64_t W,
                            int C, const sl_crf_params *cp, int32_t *pred, char *msg, size_t msglen)
{
    const int64_t hw = H * W, B = po->batch > 0 && po->batch < n ? po->batch : (n < 8 ? n : 8);
    float *pr = sl_malloc(B * C * hw, sizeof *pr);
    if (!pr) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = 2;
    g.shape[0] = H, g.shape[1] = W;
    sl_status st = SL_OK;
    for (int64_t k0 = 0; k0 < n && st == SL_OK; k0 += B) {
        const int64_t b = n - k0 < B ? n - k0 : B;
        if ((st = sl_predict_slices(net, img + k0 * hw, b, H, W, po, pr, NULL, msg, msglen)) != SL_OK) break;
        for (int64_t k = 0; k < b && st == SL_OK; k++) {
            float *q = pr + k * C * hw;
            if ((st = sl_crf(q, C, img + (k0 + k) * hw, 1, &g, cp, q, msg, msglen)) == SL_OK)
                slt_argmax(q, 1, C, hw, pred + (k0 + k) * hw);
        }
    }
    free(pr);
    return st;
}

static sl_status crf_volumes(sl_unet *net, const sl_preproc *pp, const sl_predict_opts *po, const float *img, int64_t n,
                             const int64_t size[3], const sl_crf_params *cp, int32_t *pred, char *msg, size_t msglen)
{
    const int64_t vox = size[0] * size[1] * size[2];
    sl_preproc q = *pp;
    q.norm = SL_INTENSITY_NONE; /* already normalised */
    sl_status st = SL_OK;
    for (int64_t i = 0; i < n && st == SL_OK; i++) {
        /* borrowed: the predictor and the CRF copy the image */
        sl_array im = {SL_DT_F32, 3, {size[0], size[1], size[2]}, (void *)(img + i * vox)};
        sl_array lab = SL_ARRAY_EMPTY, prob = SL_ARRAY_EMPTY;
        if ((st = sl_predict_image_probs(net, &q, &im, po, &lab, &prob, msg, msglen)) == SL_OK &&
            (st = sl_predict_crf(&q, 3, &im, NULL, cp, &prob, NULL, msg, msglen)) == SL_OK)
            slt_argmax(prob.data, 1, prob.shape[0], vox, pred + i * vox);
        sl_array_free(&lab);
        sl_array_free(&prob);
    }
    return st;
}

sl_status slb_predict_crf(sl_unet *net, const sl_preproc *pp, const sl_predict_opts *po, const float *img, int64_t n,
                          int nd, const int64_t size[3], int C, int32_t *pred, char *msg, size_t msglen)
{
    sl_crf_params cp = SL_CRF_PARAMS_DEFAULT;
    cp.threads = po->threads;
    if (nd == 3) return crf_volumes(net, pp, po, img, n, size, &cp, pred, msg, msglen);
    return crf_slices(net, po, img, n, size[1], size[2], C, &cp, pred, msg, msglen);
}
