/*
 * The colin3d source: Colin27 (the colin source's T1 and AAL classes, the
 * same normalisation) as volumes, for 3-D networks.
 *
 * The split. There is one brain, and neighbouring slices of it are nearly
 * copies, so any split that interleaves slices or blocks along an axis
 * leaks. Disjoint slabs along z or y would leave structures out of a split
 * (the hippocampus lies in a few centimetres of z); the two hemispheres
 * are the only cut where both sides hold every class: the training volume
 * is the low-x half of the brain's bounding box, the test volume the
 * high-x half mirrored along x (so that both have the midline at the same
 * end), with `gap` sagittal slices at the middle left out. One training
 * and one test volume; no validation split (a third slab would take a
 * class away from one of the others), so per-epoch validation Dice is NaN.
 * Both are cropped to the bounding box of the brain (T1 > 0) in z and y.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sources.h"

/* Sample (split, 0): a copy of the stored volume. */
static sl_status colin3d_generate(const sl_dataset *ds, int split, int64_t index, float *img, int32_t *lab)
{
    const sld_slice *v = &ds->slices[split][index];
    const size_t n = (size_t)(ds->D * ds->H * ds->W);
    if (img) memcpy(img, v->img, n * sizeof *img);
    if (lab) memcpy(lab, v->lab, n * sizeof *lab);
    return SL_OK;
}

sl_status sld_open_colin3d(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen)
{
    (void)arg;
    sld_colin_vol cv;
    sl_status st = sld_colin_load(o, &cv, msg, msglen);
    if (st != SL_OK) return st;
    sl_dataset *ds = NULL;
    const int64_t Z = cv.t1.shape[0], Y = cv.t1.shape[1], X = cv.t1.shape[2];
    const float *tv = cv.t1.data;
    const int32_t *av = cv.aal.data;
    /* the brain's bounding box, [lo, hi) per axis */
    int64_t lo[3] = {Z, Y, X}, hi[3] = {0, 0, 0};
    for (int64_t z = 0; z < Z; z++)
        for (int64_t y = 0; y < Y; y++)
            for (int64_t x = 0; x < X; x++) {
                if (!(tv[(z * Y + y) * X + x] > 0)) continue;
                const int64_t p[3] = {z, y, x};
                for (int a = 0; a < 3; a++) {
                    if (p[a] < lo[a]) lo[a] = p[a];
                    if (p[a] + 1 > hi[a]) hi[a] = p[a] + 1;
                }
            }
    const int64_t D = hi[0] - lo[0], H = hi[1] - lo[1], W = (hi[2] - lo[2] - o->gap) / 2;
    if (D < 8 || H < 8 || W < 8) {
        st = sl_errf(msg, msglen, SL_EEMPTY, "colin3d: the brain's hemispheres (%lldx%lldx%lld after a gap of %d) are below 8 a side",
                     (long long)D, (long long)H, (long long)W, o->gap);
        goto done;
    }
    const int64_t V = D * H * W;
    if (sld_mb(2 * V) > o->max_memory_mb) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "colin3d: two volumes of %lldx%lldx%lld need %.0f MB, more than max_memory_mb = %g",
                     (long long)D, (long long)H, (long long)W, sld_mb(2 * V), o->max_memory_mb);
        goto done;
    }
    if (!(ds = sld_alloc(SLD_COLIN, o))) goto nomem;
    snprintf(ds->source, sizeof ds->source, "colin3d");
    static const char *const names[3] = {"background", "deep_grey", "hippocampus_amygdala"};
    if (sld_set_classes(ds, 3, names) != SL_OK) goto nomem;
    float *img = sl_malloc(2 * V, sizeof *img);
    if (!img || sld_own(ds, img) != SL_OK) goto nomem; /* sld_own frees it on failure */
    int32_t *lab = sl_malloc(2 * V, sizeof *lab);
    if (!lab || sld_own(ds, lab) != SL_OK) goto nomem;
    for (int s = 0; s < 2; s++) {
        const int split = s == 0 ? SL_SPLIT_TRAIN : SL_SPLIT_TEST;
        float *di = img + s * V;
        int32_t *dl = lab + s * V;
        for (int64_t z = 0; z < D; z++)
            for (int64_t y = 0; y < H; y++)
                for (int64_t x = 0; x < W; x++) {
                    /* train: the low-x half; test: the high-x half, mirrored */
                    const int64_t sx = s == 0 ? lo[2] + x : hi[2] - 1 - x;
                    const int64_t at = ((lo[0] + z) * Y + lo[1] + y) * X + sx;
                    const float v = tv[at];
                    const int64_t k = (z * H + y) * W + x;
                    di[k] = v > 0 ? (float)(((double)v - cv.mean) / cv.sd) : 0.0f;
                    dl[k] = v > 0 ? cv.table[av[at]] : 0;
                }
        if (!(ds->slices[split] = calloc(1, sizeof(sld_slice)))) goto nomem;
        ds->slices[split][0] = (sld_slice){di, dl, H, W, 0, -1};
        ds->n[split] = 1;
    }
    ds->generate = colin3d_generate;
    ds->ndim = 3;
    ds->D = D;
    ds->H = H;
    ds->W = W;
    st = sld_finish(ds, msg, msglen);
    goto done;
nomem:
    st = sl_errf(msg, msglen, SL_ENOMEM, "colin3d: out of memory");
done:
    if (st == SL_OK) *out = ds;
    else sl_dataset_free(ds);
    sld_colin_free(&cv);
    return st;
}
