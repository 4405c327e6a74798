/*
 * The colin3d source (Colin27 as volumes, split by hemisphere), when
 * Debian's mricron-data is installed (skipped with a message otherwise):
 *   - info: 3-D, one training and one test volume, no validation, the
 *     colin classes; the size is the brain's bounding box in z and y and
 *     half of it (less the gap) in x;
 *   - every voxel of both volumes against a reference built here from the
 *     NIfTI files by scanning the source grid (bounding box, the two
 *     halves, the mirror of the test half, the brain z-score over the
 *     whole volume, the AAL table): exact labels, images to 1e-6;
 *   - the halves are disjoint with at least `gap` columns between them,
 *     and both hold every class in similar amounts (left/right);
 *   - a missing colin_dir gives SL_EIO naming mricron-data.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "segloss/data.h"
#include "segloss/io.h"
#include "test_util.h"

static const char *const DIR_ = "/usr/share/mricron/templates";

static void test_colin3d(void)
{
    char msg[512], path[512];
    snprintf(path, sizeof path, "%s/ch2bet.nii.gz", DIR_);
    if (access(path, R_OK) != 0) {
        printf("skip colin3d tests: %s missing (install Debian's mricron-data: apt-get install mricron-data)\n", path);
        return;
    }
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    o.threads = 2;
    sl_dataset *ds = NULL;
    CHECK(sl_dataset_open(&ds, "colin3d", &o, msg, sizeof msg) == SL_OK, "open colin3d: %s", msg);
    if (!ds) return;
    sl_dataset_info info;
    sl_dataset_get_info(ds, &info);
    const int64_t D = info.size[0], H = info.size[1], W = info.size[2], V = D * H * W;
    printf("colin3d: volumes %lldx%lldx%lld, train %lld val %lld test %lld\n", (long long)D, (long long)H, (long long)W,
           (long long)info.n[0], (long long)info.n[1], (long long)info.n[2]);
    CHECK(info.spatial_ndim == 3 && info.n[0] == 1 && info.n[1] == 0 && info.n[2] == 1 && info.num_classes == 3,
          "info: 3-D, one train and one test volume, no validation, 3 classes");
    CHECK(strcmp(sl_dataset_class_name(ds, 1), "deep_grey") == 0 && strcmp(sl_dataset_class_name(ds, 2), "hippocampus_amygdala") == 0,
          "class names as colin");

    /* the reference, from the files */
    sl_array t1 = SL_ARRAY_EMPTY, aal = SL_ARRAY_EMPTY, t1f = SL_ARRAY_EMPTY, aali = SL_ARRAY_EMPTY;
    snprintf(path, sizeof path, "%s/ch2bet.nii.gz", DIR_);
    CHECK(sl_nifti_read(path, 0, &t1, NULL, msg, sizeof msg) == SL_OK, "read %s: %s", path, msg);
    snprintf(path, sizeof path, "%s/aal.nii.gz", DIR_);
    CHECK(sl_nifti_read(path, 0, &aal, NULL, msg, sizeof msg) == SL_OK, "read %s: %s", path, msg);
    int32_t table[256];
    CHECK(sl_colin_label_table(DIR_, table, 256, msg, sizeof msg) == SL_OK, "table: %s", msg);
    if (sl_array_to_f32(&t1, &t1f) != SL_OK || sl_array_to_i32(&aal, &aali) != SL_OK) {
        CHECK(0, "convert the volumes");
        goto out;
    }
    const int64_t Z = t1f.shape[0], Y = t1f.shape[1], X = t1f.shape[2], N = Z * Y * X;
    const float *tv = t1f.data;
    const int32_t *av = aali.data;
    double sum = 0, ss = 0, nb = 0;
    int64_t zlo = Z, zhi = -1, ylo = Y, yhi = -1, xlo = X, xhi = -1;
    for (int64_t i = 0; i < N; i++)
        if (tv[i] > 0) {
            const int64_t z = i / (Y * X), y = i / X % Y, x = i % X;
            sum += tv[i];
            nb++;
            zlo = z < zlo ? z : zlo;
            zhi = z > zhi ? z : zhi;
            ylo = y < ylo ? y : ylo;
            yhi = y > yhi ? y : yhi;
            xlo = x < xlo ? x : xlo;
            xhi = x > xhi ? x : xhi;
        }
    const double mean = sum / nb;
    for (int64_t i = 0; i < N; i++)
        if (tv[i] > 0) ss += (tv[i] - mean) * (tv[i] - mean);
    const double sd = sqrt(ss / nb);
    const int64_t bw = xhi - xlo + 1, half = (bw - o.gap) / 2;
    CHECK(D == zhi - zlo + 1 && H == yhi - ylo + 1 && W == half, "size %lldx%lldx%lld = bounding box %lldx%lldx(%lld - gap %d) / 2",
          (long long)D, (long long)H, (long long)W, (long long)(zhi - zlo + 1), (long long)(yhi - ylo + 1), (long long)bw, o.gap);
    CHECK(xlo + half - 1 + o.gap < xhi - half + 1, "the halves are disjoint with the gap between them");

    float *img = malloc((size_t)V * sizeof *img), *rimg = malloc((size_t)V * sizeof *rimg);
    int32_t *lab = malloc((size_t)V * sizeof *lab), *rlab = malloc((size_t)V * sizeof *rlab);
    if (!img || !rimg || !lab || !rlab || D != zhi - zlo + 1 || H != yhi - ylo + 1 || W != half) {
        CHECK(0, "out of memory or wrong size");
        goto out2;
    }
    int64_t count[2][3] = {{0}};
    for (int s = 0; s < 2; s++) {
        const sl_split split = s == 0 ? SL_SPLIT_TRAIN : SL_SPLIT_TEST;
        CHECK(sl_dataset_get(ds, split, 0, img, lab, msg, sizeof msg) == SL_OK, "get: %s", msg);
        /* scan the source grid; a column x of the half lands at x - xlo
         * (train) or xhi - x (test, mirrored) */
        memset(rimg, 0, (size_t)V * sizeof *rimg);
        memset(rlab, 0, (size_t)V * sizeof *rlab);
        const int64_t x0 = s == 0 ? xlo : xhi - half + 1, x1 = x0 + half;
        for (int64_t z = zlo; z <= zhi; z++)
            for (int64_t y = ylo; y <= yhi; y++)
                for (int64_t x = x0; x < x1; x++) {
                    const int64_t src = (z * Y + y) * X + x, dx = s == 0 ? x - xlo : xhi - x;
                    const int64_t dst = ((z - zlo) * H + (y - ylo)) * W + dx;
                    rimg[dst] = tv[src] > 0 ? (float)((tv[src] - mean) / sd) : 0.0f;
                    rlab[dst] = tv[src] > 0 ? table[av[src]] : 0;
                }
        double maxd = 0;
        int64_t labdiff = 0;
        for (int64_t i = 0; i < V; i++) {
            const double d = fabs((double)img[i] - (double)rimg[i]);
            maxd = d > maxd ? d : maxd;
            labdiff += lab[i] != rlab[i];
            if (lab[i] >= 0 && lab[i] < 3) count[s][lab[i]]++;
        }
        printf("max colin3d %s volume vs the reference: image %.3g (tolerance 1e-6), labels %lld differ\n", s ? "test" : "train", maxd,
               (long long)labdiff);
        CHECK(maxd <= 1e-6 && labdiff == 0, "%s volume equals the reference", s ? "test" : "train");
    }
    printf("colin3d voxels deep_grey %lld / %lld, hippocampus_amygdala %lld / %lld (train / test)\n", (long long)count[0][1],
           (long long)count[1][1], (long long)count[0][2], (long long)count[1][2]);
    for (int c = 1; c < 3; c++)
        CHECK(count[0][c] > 1000 && count[1][c] > 1000 && fabs((double)count[0][c] / (double)count[1][c] - 1) < 0.2,
              "class %d in both halves, within 20 %% of each other", c);
out2:
    free(img);
    free(rimg);
    free(lab);
    free(rlab);
out:
    sl_array_free(&t1);
    sl_array_free(&aal);
    sl_array_free(&t1f);
    sl_array_free(&aali);
    sl_dataset_free(ds);

    /* no data: one message naming the package */
    snprintf(o.colin_dir, sizeof o.colin_dir, "%s", "/nowhere");
    ds = NULL;
    CHECK(sl_dataset_open(&ds, "colin3d", &o, msg, sizeof msg) == SL_EIO && strstr(msg, "mricron-data") && ds == NULL,
          "missing colin_dir: SL_EIO naming mricron-data (%s)", msg);
}

int main(void)
{
    TEST_RUN(test_colin3d);
    return test_report("colin3d");
}
