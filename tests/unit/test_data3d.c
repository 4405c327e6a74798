/*
 * The 3-D data path: the phantom3d source and 3-D batches of the sampler.
 *   - phantom3d: shape and info; realised class fractions of a split
 *     against the requested ratio (stated tolerance); determinism (same
 *     volume twice, any thread count); the small structure has 1..max
 *     components; bad sizes give one line;
 *   - sampler: a patch without augmentation is an exact sub-block of its
 *     volume; forced slots hold foreground; a patch larger than the volume
 *     is the volume zero-padded, centred; flips and 90-degree rotations are
 *     permutations that keep every (image, label) pair together; the batch
 *     is the same for 1 and 2 threads; crop / copypaste refused in 3-D.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/data.h"
#include "segloss/geometry.h"
#include "test_util.h"

static sl_dataset *open3d(const char *opts, char *msg, size_t msglen)
{
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    if (sl_data_opts_parse(&o, opts, msg, msglen) != SL_OK) return NULL;
    sl_dataset *ds = NULL;
    if (sl_dataset_open(&ds, "phantom3d", &o, msg, msglen) != SL_OK) return NULL;
    return ds;
}

static void test_phantom3d(void)
{
    char msg[256];
    sl_dataset *ds = open3d("ratio=100:10:1,height=24,width=24,depth=20,n_train=24,n_val=2,n_test=2,seed=3", msg,
                            sizeof msg);
    CHECK(ds != NULL, "open: %s", msg);
    if (!ds) return;
    sl_dataset_info info;
    sl_dataset_get_info(ds, &info);
    EXPECT(info.spatial_ndim == 3 && info.size[0] == 20 && info.size[1] == 24 && info.size[2] == 24);
    EXPECT(info.num_classes == 3 && info.small_class == 2);
    double frac[3];
    sl_dataset_class_fractions(ds, SL_SPLIT_TRAIN, frac);
    const double want[3] = {100.0 / 111, 10.0 / 111, 1.0 / 111};
    /* lognormal size jitter (sigma 0.25) over 24 volumes: the mean is within
     * ~5 % of the target; 20 % relative is the stated tolerance */
    for (int c = 1; c < 3; c++) {
        double rel = fabs(frac[c] - want[c]) / want[c];
        printf("phantom3d class %d: realised %.5f, requested %.5f (relative %.3f)\n", c, frac[c], want[c], rel);
        CHECK(rel < 0.2, "class %d fraction %g vs %g", c, frac[c], want[c]);
    }
    const int64_t n = 20 * 24 * 24;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    int32_t *la = malloc(n * sizeof *la), *lb = malloc(n * sizeof *lb);
    CHECK(sl_dataset_get(ds, SL_SPLIT_TRAIN, 5, a, la, msg, sizeof msg) == SL_OK, "get");
    CHECK(sl_dataset_get(ds, SL_SPLIT_TRAIN, 5, b, lb, msg, sizeof msg) == SL_OK, "get again");
    EXPECT(memcmp(a, b, n * sizeof *a) == 0 && memcmp(la, lb, n * sizeof *la) == 0);
    /* z-scored image; the small class has between 1 and max_lesions (3) components */
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += a[i], ss += (double)a[i] * a[i];
    CHECK(fabs(s / n) < 1e-4 && fabs(ss / n - 1) < 1e-3, "z-score: mean %g, var %g", s / n, ss / n);
    int ncomp_max = 0;
    for (int64_t v = 0; v < 24; v++) {
        sl_dataset_get(ds, SL_SPLIT_TRAIN, v, NULL, la, msg, sizeof msg);
        uint8_t *m = malloc(n);
        for (int64_t i = 0; i < n; i++) m[i] = la[i] == 2;
        sl_grid g = SL_GRID_DEFAULT;
        g.ndim = 3;
        g.shape[0] = 20, g.shape[1] = 24, g.shape[2] = 24;
        int32_t *cc = malloc(n * sizeof *cc);
        sl_components comp = SL_COMPONENTS_EMPTY;
        if (sl_components_label(m, &g, 26, cc, &comp, msg, sizeof msg) == SL_OK && comp.count > ncomp_max)
            ncomp_max = (int)comp.count;
        sl_components_free(&comp);
        free(m);
        free(cc);
    }
    CHECK(ncomp_max >= 1 && ncomp_max <= 6, "small-structure components: max %d", ncomp_max);
    /* refusals: one line each */
    CHECK(open3d("depth=4", msg, sizeof msg) == NULL && strstr(msg, "at least"), "small depth: %s", msg);
    CHECK(sl_dataset_get_at(ds, SL_SPLIT_TRAIN, 0, 8, 8, SL_RESIZE_CROP_PAD, a, la, msg, sizeof msg) == SL_EUNSUPPORTED,
          "get_at on volumes: %s", msg);
    free(a);
    free(b);
    free(la);
    free(lb);
    sl_dataset_free(ds);
}

/* Is patch (pd, ph, pw) an exact sub-block of the volume? Returns the
 * number of offsets where it is. */
static int find_block(const float *vol, const int64_t in[3], const float *patch, const int64_t p[3])
{
    int hits = 0;
    for (int64_t oz = 0; oz + p[0] <= in[0]; oz++)
        for (int64_t oy = 0; oy + p[1] <= in[1]; oy++)
            for (int64_t ox = 0; ox + p[2] <= in[2]; ox++) {
                int ok = 1;
                for (int64_t z = 0; z < p[0] && ok; z++)
                    for (int64_t y = 0; y < p[1] && ok; y++)
                        ok = memcmp(patch + (z * p[1] + y) * p[2], vol + ((oz + z) * in[1] + oy + y) * in[2] + ox,
                                    (size_t)p[2] * sizeof *patch) == 0;
                hits += ok;
            }
    return hits;
}

static int cmp_pair(const void *a, const void *b)
{
    const float *x = a, *y = b;
    for (int k = 0; k < 2; k++)
        if (x[k] != y[k]) return x[k] < y[k] ? -1 : 1;
    return 0;
}

static void test_sampler3d(void)
{
    char msg[256];
    sl_dataset *ds = open3d("ratio=100:10:1,height=16,width=16,depth=12,n_train=6,n_val=0,n_test=0,seed=9", msg,
                            sizeof msg);
    CHECK(ds != NULL, "open: %s", msg);
    if (!ds) return;
    const int64_t in[3] = {12, 16, 16}, nin = 12 * 16 * 16;
    float *vol = malloc(nin * sizeof *vol);
    int32_t *vlab = malloc(nin * sizeof *vlab);
    /* plain windows */
    sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;
    so.batch_size = 4;
    so.patch_depth = 8;
    so.patch[0] = so.patch[1] = 8;
    so.seed = 4;
    so.threads = 1;
    sl_sampler *sp = NULL;
    CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_OK, "sampler: %s", msg);
    int64_t p3[3];
    sl_sampler_patch3(sp, p3);
    EXPECT(p3[0] == 8 && p3[1] == 8 && p3[2] == 8);
    const int64_t pn = 512;
    float *x = malloc(4 * pn * sizeof *x), *x2 = malloc(4 * pn * sizeof *x2);
    int32_t *y = malloc(4 * pn * sizeof *y), *y2 = malloc(4 * pn * sizeof *y2);
    sl_batch_meta meta[4];
    for (int64_t step = 0; step < 3; step++) {
        CHECK(sl_sampler_batch(sp, step, x, y, meta, msg, sizeof msg) == SL_OK, "batch: %s", msg);
        for (int b = 0; b < 4; b++) {
            sl_dataset_get(ds, SL_SPLIT_TRAIN, meta[b].index, vol, vlab, msg, sizeof msg);
            CHECK(find_block(vol, in, x + b * pn, p3) >= 1, "step %lld slot %d: not a sub-block", (long long)step, b);
            if (meta[b].forced) CHECK(meta[b].fg_pixels > 0, "forced slot %d without foreground", b);
        }
        EXPECT(meta[3].forced && !meta[0].forced); /* ceil(4/3) = 2 forced: the last two */
    }
    /* thread count does not matter */
    sl_sampler_free(sp);
    so.threads = 2;
    sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg);
    sl_sampler_batch(sp, 2, x2, y2, NULL, msg, sizeof msg);
    EXPECT(memcmp(x, x2, 4 * pn * sizeof *x) == 0 && memcmp(y, y2, 4 * pn * sizeof *y) == 0);
    sl_sampler_free(sp);

    /* padding: patch 16 deep for a 12-deep volume: 2 zero slices each side */
    so.patch_depth = 16;
    so.patch[0] = so.patch[1] = 16;
    so.fg_fraction = 0;
    CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_OK, "sampler: %s", msg);
    float *xp = malloc(4 * 4096 * sizeof *xp);
    int32_t *yp = malloc(4 * 4096 * sizeof *yp);
    CHECK(sl_sampler_batch(sp, 0, xp, yp, meta, msg, sizeof msg) == SL_OK, "batch: %s", msg);
    sl_dataset_get(ds, SL_SPLIT_TRAIN, meta[0].index, vol, vlab, msg, sizeof msg);
    int pad_ok = 1;
    for (int64_t z = 0; z < 16; z++)
        for (int64_t i = 0; i < 256; i++) {
            float v = xp[z * 256 + i];
            int32_t l = yp[z * 256 + i];
            if (z < 2 || z >= 14) pad_ok &= v == 0.0f && l == 0;
            else pad_ok &= v == vol[(z - 2) * 256 + i] && l == vlab[(z - 2) * 256 + i];
        }
    CHECK(pad_ok, "zero padding, centred");
    sl_sampler_free(sp);

    /* flips and 90-degree rotations: permutations of the whole (cube) volume */
    sl_dataset *dc = open3d("ratio=100:10:1,height=12,width=12,depth=12,n_train=3,n_val=0,n_test=0,seed=2", msg,
                            sizeof msg);
    so.patch_depth = 12;
    so.patch[0] = so.patch[1] = 12;
    so.batch_size = 3;
    CHECK(sl_aug_parse(&so.aug, "none,flip,rotate,rotate_deg=0,p_rotate=1", msg, sizeof msg) == SL_OK, "%s", msg);
    CHECK(sl_sampler_create(&sp, dc, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_OK, "sampler: %s", msg);
    float *xr = malloc(3 * 1728 * sizeof *xr);
    int32_t *yr = malloc(3 * 1728 * sizeof *yr);
    float *pa = malloc(1728 * 2 * sizeof *pa), *pb = malloc(1728 * 2 * sizeof *pb);
    int permuted = 0, moved = 0;
    for (int64_t step = 0; step < 4; step++) {
        sl_sampler_batch(sp, step, xr, yr, meta, msg, sizeof msg);
        for (int b = 0; b < 3; b++) {
            sl_dataset_get(dc, SL_SPLIT_TRAIN, meta[b].index, vol, vlab, msg, sizeof msg);
            for (int64_t i = 0; i < 1728; i++) {
                pa[2 * i] = vol[i], pa[2 * i + 1] = (float)vlab[i];
                pb[2 * i] = xr[b * 1728 + i], pb[2 * i + 1] = (float)yr[b * 1728 + i];
            }
            moved += memcmp(vol, xr + b * 1728, 1728 * sizeof *vol) != 0;
            qsort(pa, 1728, 2 * sizeof *pa, cmp_pair);
            qsort(pb, 1728, 2 * sizeof *pb, cmp_pair);
            permuted += memcmp(pa, pb, 1728 * 2 * sizeof *pa) == 0;
        }
    }
    CHECK(permuted == 12, "flips/rot90 keep (image, label) pairs: %d of 12 patches", permuted);
    CHECK(moved >= 10, "flips/rot90 changed %d of 12 patches", moved);
    sl_sampler_free(sp);
    /* 2-D only augmentations refused */
    sl_aug_parse(&so.aug, "copypaste", msg, sizeof msg);
    CHECK(sl_sampler_create(&sp, dc, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_EUNSUPPORTED && strstr(msg, "2-D only"),
          "copypaste in 3-D: %s", msg);
    /* the full augmentation set runs and forced slots keep foreground */
    so.fg_fraction = 1.0;
    CHECK(sl_aug_parse(&so.aug, "none,flip,rotate,scale,elastic,gamma,noise,blur,contrast,p_rotate=1,p_scale=1,"
                                "p_elastic=1,elastic_sigma=3", msg, sizeof msg) == SL_OK, "%s", msg);
    CHECK(sl_sampler_create(&sp, dc, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_OK, "sampler: %s", msg);
    CHECK(sl_sampler_batch(sp, 1, xr, yr, meta, msg, sizeof msg) == SL_OK, "batch: %s", msg);
    for (int b = 0; b < 3; b++) CHECK(meta[b].fg_pixels > 0, "full augmentation: slot %d lost its foreground", b);
    sl_sampler_free(sp);
    sl_dataset_free(dc);
    free(xr), free(yr), free(pa), free(pb), free(xp), free(yp);
    free(x), free(x2), free(y), free(y2), free(vol), free(vlab);
    sl_dataset_free(ds);
}

int main(void)
{
    TEST_RUN(test_phantom3d);
    TEST_RUN(test_sampler3d);
    return test_report("data3d");
}
