/*
 * Datasets, augmentation and the sampler (include/segloss/data.h):
 * options and their errors, the phantom (determinism, disjoint splits,
 * realised class fractions, every generator option), the resampling
 * kernels (exact flips and 90-degree rotations, resize modes, blur against
 * a brute-force convolution), the sampler (bit-identical batches for any
 * thread count, label/image alignment under every spatial augmentation,
 * valid labels, foreground oversampling, copy-paste, each augmentation's
 * effect), and the colin source when mricron-data is installed.
 * The nifti:DIR source is tested in test_data_nifti.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data/data_internal.h"
#include "segloss/data.h"
#include "segloss/geometry.h"
#include "test_util.h"

static char msg[512];

static sl_data_opts small_phantom(void)
{
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    o.height = o.width = 64;
    o.n_train = 24;
    o.n_val = 8;
    o.n_test = 8;
    o.seed = 11;
    return o;
}

static sl_dataset *open_ok(const char *src, const sl_data_opts *o)
{
    sl_dataset *ds = NULL;
    sl_status st = sl_dataset_open(&ds, src, o, msg, sizeof msg);
    CHECK(st == SL_OK && ds, "open %s: %s (%s)", src, sl_strerror(st), msg);
    return ds;
}

/* ------------------------------------------------------------ options */

static void test_options(void)
{
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    /* every key takes a valid value; numbers outside the range fail */
    static const char *good[][2] = {
        {"seed", "12345"}, {"height", "32"}, {"width", "40"}, {"resize", "fit"}, {"threads", "2"},
        {"val_fraction", "0.1"}, {"test_fraction", "0.3"}, {"max_memory_mb", "100"}, {"ratio", "50:5:1"},
        {"small_fraction", "0.01"}, {"n_train", "5"}, {"n_val", "0"}, {"n_test", "3"}, {"contrast", "2"},
        {"noise", "0.1"}, {"blur", "0"}, {"bias", "0.5"}, {"texture", "0"}, {"irregularity", "0.2"},
        {"size_jitter", "0"}, {"p_inside", "1"}, {"max_lesions", "4"}, {"distractors", "0"},
        {"colin_dir", "/nowhere"}, {"min_brain_fraction", "0.2"}, {"block", "4"}, {"gap", "3"},
        {"axis", "y"}, {"norm", "percentile"}, {"norm_nonzero", "1"}, {"clip_lo", "1"}, {"clip_hi", "99"},
        {"num_classes", "4"}, {"slices", "labelled"}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        sl_status st = sl_data_opts_set(&o, good[i][0], good[i][1], msg, sizeof msg);
        CHECK(st == SL_OK, "opts_set %s=%s: %s", good[i][0], good[i][1], msg);
    }
    CHECK(o.seed == 12345 && o.height == 32 && o.width == 40 && o.resize == SL_RESIZE_FIT && o.threads == 2 &&
              o.val_fraction == 0.1 && o.test_fraction == 0.3 && o.max_memory_mb == 100 &&
              strcmp(o.ratio, "50:5:1") == 0 && o.small_fraction == 0.01 && o.n_train == 5 && o.n_val == 0 &&
              o.n_test == 3 && o.contrast == 2 && o.noise == 0.1 && o.blur == 0 && o.bias == 0.5 &&
              o.texture == 0 && o.irregularity == 0.2 && o.size_jitter == 0 && o.p_inside == 1 &&
              o.max_lesions == 4 && o.distractors == 0 && strcmp(o.colin_dir, "/nowhere") == 0 &&
              o.min_brain_fraction == 0.2 && o.block == 4 && o.gap == 3 && o.axis == 'y' &&
              o.norm == SL_INTENSITY_PERCENTILE && o.norm_nonzero == 1 && o.clip_lo == 1 && o.clip_hi == 99 &&
              o.num_classes == 4 && o.slices == SL_SLICES_LABELLED,
          "opts_set did not store every value");
    CHECK(sl_data_opts_set(&o, "resize", "crop_pad", msg, sizeof msg) == SL_OK && o.resize == SL_RESIZE_CROP_PAD, "resize crop_pad");
    CHECK(sl_data_opts_set(&o, "resize", "resample", msg, sizeof msg) == SL_OK && o.resize == SL_RESIZE_RESAMPLE, "resize resample");
    CHECK(sl_data_opts_set(&o, "norm", "none", msg, sizeof msg) == SL_OK && o.norm == SL_INTENSITY_NONE, "norm none");
    CHECK(sl_data_opts_set(&o, "slices", "nonzero", msg, sizeof msg) == SL_OK && o.slices == SL_SLICES_NONZERO, "slices nonzero");

    CHECK(sl_data_opts_set(&o, "colour", "1", msg, sizeof msg) == SL_EUNKNOWN && strstr(msg, "colour"), "unknown key: %s", msg);
    CHECK(sl_data_opts_set(&o, "noise", "abc", msg, sizeof msg) == SL_EFORMAT && strstr(msg, "noise"), "bad number: %s", msg);
    CHECK(sl_data_opts_set(&o, "noise", "1e999", msg, sizeof msg) == SL_EFORMAT, "overflowing number");
    CHECK(sl_data_opts_set(&o, "p_inside", "1.5", msg, sizeof msg) == SL_ERANGE && strstr(msg, "p_inside"), "range: %s", msg);
    CHECK(sl_data_opts_set(&o, "n_train", "0", msg, sizeof msg) == SL_ERANGE, "n_train 0");
    CHECK(sl_data_opts_set(&o, "n_train", "2.5", msg, sizeof msg) == SL_EFORMAT, "n_train 2.5");
    CHECK(sl_data_opts_set(&o, "seed", "-1", msg, sizeof msg) == SL_EFORMAT, "seed -1");
    CHECK(sl_data_opts_set(&o, "resize", "stretch", msg, sizeof msg) == SL_EFORMAT, "resize stretch");
    CHECK(sl_data_opts_set(&o, "norm", "minmax", msg, sizeof msg) == SL_EFORMAT, "norm minmax");
    CHECK(sl_data_opts_set(&o, "slices", "some", msg, sizeof msg) == SL_EFORMAT, "slices some");
    CHECK(sl_data_opts_set(&o, "axis", "w", msg, sizeof msg) == SL_EFORMAT, "axis w");
    char longs[700];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    CHECK(sl_data_opts_set(&o, "colin_dir", longs, msg, sizeof msg) == SL_ERANGE, "overlong string");
    CHECK(sl_data_opts_set(NULL, "noise", "1", msg, sizeof msg) == SL_EINVAL, "NULL opts");

    sl_data_opts p = SL_DATA_OPTS_DEFAULT;
    CHECK(sl_data_opts_parse(&p, "ratio=100:20:2,n_train=7,noise=0.25", msg, sizeof msg) == SL_OK &&
              strcmp(p.ratio, "100:20:2") == 0 && p.n_train == 7 && p.noise == 0.25,
          "parse list: %s", msg);
    CHECK(sl_data_opts_parse(&p, "", msg, sizeof msg) == SL_OK, "empty list");
    CHECK(sl_data_opts_parse(&p, "noise", msg, sizeof msg) == SL_EFORMAT, "item without =");
    CHECK(sl_data_opts_parse(&p, "n_val=3,bogus=1", msg, sizeof msg) == SL_EUNKNOWN && p.n_val == 3,
          "error keeps earlier items");

    /* a struct filled in by hand is range-checked at open */
    sl_dataset *ds = NULL;
    sl_data_opts q = small_phantom();
    q.noise = -1;
    CHECK(sl_dataset_open(&ds, "phantom", &q, msg, sizeof msg) == SL_ERANGE && !ds && strstr(msg, "noise"), "noise -1: %s", msg);
    q = small_phantom();
    q.val_fraction = 0.6;
    q.test_fraction = 0.5;
    CHECK(sl_dataset_open(&ds, "phantom", &q, msg, sizeof msg) == SL_ERANGE, "val + test >= 1");
    q = small_phantom();
    q.width = 0;
    CHECK(sl_dataset_open(&ds, "phantom", &q, msg, sizeof msg) == SL_EINVAL, "height without width");
    q = small_phantom();
    q.clip_lo = 50;
    q.clip_hi = 40;
    CHECK(sl_dataset_open(&ds, "phantom", &q, msg, sizeof msg) == SL_ERANGE, "clip_lo > clip_hi");
    q = small_phantom();
    q.axis = 'q';
    CHECK(sl_dataset_open(&ds, "phantom", &q, msg, sizeof msg) == SL_EINVAL, "axis q");
    q = small_phantom();
    q.resize = (sl_resize_mode)7;
    CHECK(sl_dataset_open(&ds, "phantom", &q, msg, sizeof msg) == SL_EINVAL, "resize 7");
    CHECK(sl_dataset_open(&ds, "mnist", NULL, msg, sizeof msg) == SL_EUNKNOWN && strstr(msg, "mnist"), "unknown source");
    CHECK(sl_dataset_open(&ds, "nifti:", NULL, msg, sizeof msg) == SL_EINVAL, "nifti: without folder");
    CHECK(sl_dataset_open(NULL, "phantom", NULL, msg, sizeof msg) == SL_EINVAL, "NULL out");
    CHECK(sl_dataset_open(&ds, NULL, NULL, msg, sizeof msg) == SL_EINVAL, "NULL source");
    CHECK(strcmp(sl_split_name(SL_SPLIT_VAL), "val") == 0 && sl_split_name((sl_split)5) == NULL, "split names");
}

/* ------------------------------------------------------------ phantom */

static void test_phantom_basics(void)
{
    sl_data_opts o = small_phantom();
    sl_dataset *ds = open_ok("phantom", &o);
    if (!ds) return;
    sl_dataset_info info;
    CHECK(sl_dataset_get_info(ds, &info) == SL_OK, "info");
    CHECK(info.n[0] == 24 && info.n[1] == 8 && info.n[2] == 8 && info.size[0] == 64 && info.size[1] == 64 &&
              info.num_classes == 3 && info.in_channels == 1 && info.spatial_ndim == 2 && info.small_class == 2,
          "phantom info");
    CHECK(strcmp(sl_dataset_class_name(ds, 0), "background") == 0 && strcmp(sl_dataset_class_name(ds, 1), "large") == 0 &&
              strcmp(sl_dataset_class_name(ds, 2), "core") == 0 && sl_dataset_class_name(ds, 3) == NULL &&
              sl_dataset_class_name(NULL, 0) == NULL,
          "phantom class names");
    const int64_t n = 64 * 64;
    float *img = malloc(n * sizeof *img);
    int32_t *lab = malloc(n * sizeof *lab);
    /* per-sample counts agree with the labels; image is z-scored */
    int count_ok = 1, z_ok = 1, range_ok = 1;
    for (int s = 0; s < 3; s++)
        for (int64_t i = 0; i < info.n[s]; i++) {
            sl_dataset_get(ds, (sl_split)s, i, img, lab, NULL, 0);
            int64_t c[3] = {0}, got[3];
            for (int64_t p = 0; p < n; p++) {
                if (lab[p] < 0 || lab[p] > 2) range_ok = 0;
                else c[lab[p]]++;
            }
            sl_dataset_class_counts(ds, (sl_split)s, i, got);
            if (c[0] != got[0] || c[1] != got[1] || c[2] != got[2]) count_ok = 0;
            double mean, sd;
            sld_mean_std(img, n, &mean, &sd);
            if (fabs(mean) > 1e-4 || fabs(sd - 1) > 1e-4) z_ok = 0;
        }
    CHECK(count_ok, "class counts match the labels");
    CHECK(z_ok, "phantom images are z-scored");
    CHECK(range_ok, "phantom labels in [0, 3)");
    /* the label alone equals the label generated with the image */
    int32_t *lab2 = malloc(n * sizeof *lab2);
    sl_dataset_get(ds, SL_SPLIT_TRAIN, 5, img, lab, NULL, 0);
    sl_dataset_get(ds, SL_SPLIT_TRAIN, 5, NULL, lab2, NULL, 0);
    CHECK(memcmp(lab, lab2, n * sizeof *lab) == 0, "label without image");
    /* errors */
    CHECK(sl_dataset_get(ds, SL_SPLIT_TRAIN, 24, img, lab, msg, sizeof msg) == SL_ERANGE && strstr(msg, "24"), "index range: %s", msg);
    CHECK(sl_dataset_get(ds, SL_SPLIT_TRAIN, -1, img, lab, msg, sizeof msg) == SL_ERANGE, "index -1");
    CHECK(sl_dataset_get(ds, (sl_split)3, 0, img, lab, msg, sizeof msg) == SL_EINVAL, "bad split");
    CHECK(sl_dataset_get(NULL, SL_SPLIT_TRAIN, 0, img, lab, msg, sizeof msg) == SL_EINVAL, "NULL ds");
    int64_t cnt[3];
    CHECK(sl_dataset_class_counts(ds, SL_SPLIT_VAL, 8, cnt) == SL_ERANGE, "counts index range");
    CHECK(sl_dataset_class_counts(ds, SL_SPLIT_VAL, 0, NULL) == SL_EINVAL, "counts NULL");
    CHECK(sl_dataset_get_info(NULL, &info) == SL_EINVAL, "info NULL");
    /* get_at: another size, every mode */
    float *big = malloc(96 * 80 * sizeof *big);
    int32_t *bl = malloc(96 * 80 * sizeof *bl);
    for (int mode = 0; mode < 3; mode++) {
        CHECK(sl_dataset_get_at(ds, SL_SPLIT_TRAIN, 2, 96, 80, (sl_resize_mode)mode, big, bl, msg, sizeof msg) == SL_OK,
              "get_at mode %d: %s", mode, msg);
        int ok = 1;
        for (int64_t p = 0; p < 96 * 80; p++) ok &= bl[p] >= 0 && bl[p] < 3;
        CHECK(ok, "get_at labels valid (mode %d)", mode);
    }
    /* crop_pad at a larger size pads: the centre equals the sample */
    sl_dataset_get(ds, SL_SPLIT_TRAIN, 2, img, lab, NULL, 0);
    sl_dataset_get_at(ds, SL_SPLIT_TRAIN, 2, 96, 80, SL_RESIZE_CROP_PAD, big, bl, NULL, 0);
    int centre = 1;
    for (int64_t y = 0; y < 64; y++)
        for (int64_t x = 0; x < 64; x++)
            centre &= big[(y + 16) * 80 + x + 8] == img[y * 64 + x] && bl[(y + 16) * 80 + x + 8] == lab[y * 64 + x];
    CHECK(centre && big[0] == 0.0f && bl[0] == 0, "get_at crop_pad pads around the sample");
    CHECK(sl_dataset_get_at(ds, SL_SPLIT_TRAIN, 2, 0, 80, SL_RESIZE_FIT, big, bl, msg, sizeof msg) == SL_EINVAL, "get_at size 0");
    CHECK(sl_dataset_get_at(ds, SL_SPLIT_TRAIN, 2, 9, 9, (sl_resize_mode)9, big, bl, msg, sizeof msg) == SL_EINVAL, "get_at mode 9");
    sl_sample_origin org;
    CHECK(sl_dataset_origin(ds, SL_SPLIT_TEST, 3, &org) == SL_OK && org.stream == ((2ull << 56) | 3) &&
              org.case_index == -1 && strcmp(org.name, "phantom") == 0,
          "phantom origin");
    free(big);
    free(bl);
    free(img);
    free(lab);
    free(lab2);
    sl_dataset_free(ds);
    sl_dataset_free(NULL);
}

/* FNV-1a over a sample's image and label bytes */
static uint64_t sample_hash(const sl_dataset *ds, int s, int64_t i, int64_t n)
{
    float *x = malloc((size_t)n * sizeof *x);
    int32_t *l = malloc((size_t)n * sizeof *l);
    sl_dataset_get(ds, (sl_split)s, i, x, l, NULL, 0);
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *p = (const unsigned char *)x;
    for (size_t k = 0; k < (size_t)n * sizeof *x; k++) h = (h ^ p[k]) * 1099511628211ULL;
    p = (const unsigned char *)l;
    for (size_t k = 0; k < (size_t)n * sizeof *l; k++) h = (h ^ p[k]) * 1099511628211ULL;
    free(x);
    free(l);
    return h;
}

static void test_phantom_determinism(void)
{
    sl_data_opts o = small_phantom();
    o.height = o.width = 32;
    o.n_train = 8;
    o.threads = 1;
    sl_dataset *a = open_ok("phantom", &o);
    o.threads = 2;
    sl_dataset *b = open_ok("phantom", &o);
    o.seed = 12;
    sl_dataset *c = open_ok("phantom", &o);
    if (!a || !b || !c) return;
    const int64_t n = 32 * 32;
    uint64_t ha[3][8];
    int same = 1, differ = 0;
    for (int s = 0; s < 3; s++)
        for (int64_t i = 0; i < 8; i++) {
            ha[s][i] = sample_hash(a, s, i, n);
            same &= ha[s][i] == sample_hash(b, s, i, n);
            differ += ha[s][i] != sample_hash(c, s, i, n);
        }
    CHECK(same, "same seed, 1 vs 2 threads: identical samples");
    CHECK(differ == 24, "another seed: every sample differs (%d of 24)", differ);
    int64_t ca[3], cb[3];
    sl_dataset_class_counts(a, SL_SPLIT_TRAIN, -1, ca);
    sl_dataset_class_counts(b, SL_SPLIT_TRAIN, -1, cb);
    CHECK(memcmp(ca, cb, sizeof ca) == 0, "class counts independent of threads");
    /* splits from disjoint streams: no stream or sample shared across splits */
    int cross = 0;
    for (int s = 0; s < 3; s++)
        for (int t = s + 1; t < 3; t++)
            for (int64_t i = 0; i < 8; i++)
                for (int64_t j = 0; j < 8; j++) {
                    sl_sample_origin oi, oj;
                    sl_dataset_origin(a, (sl_split)s, i, &oi);
                    sl_dataset_origin(a, (sl_split)t, j, &oj);
                    cross += oi.stream == oj.stream;
                    cross += ha[s][i] == ha[t][j];
                }
    CHECK(cross == 0, "train/val/test streams and samples are disjoint (%d collisions)", cross);
    /* a larger dataset keeps the first samples: sample i depends on i only */
    o.seed = 11;
    o.n_train = 12;
    o.n_val = 9;
    sl_dataset *d = open_ok("phantom", &o);
    if (d) {
        CHECK(sample_hash(d, 0, 7, n) == ha[0][7] && sample_hash(d, 1, 3, n) == ha[1][3],
              "sample i does not depend on the split sizes");
        sl_dataset_free(d);
    }
    sl_dataset_free(a);
    sl_dataset_free(b);
    sl_dataset_free(c);
}

/* realised fractions of the training split vs the requested ones */
static void check_fractions(const char *opts, int size, int n, double rel_tol)
{
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    o.height = o.width = size;
    o.n_train = n;
    o.n_val = o.n_test = 1;
    o.seed = 3;
    CHECK(sl_data_opts_parse(&o, opts, msg, sizeof msg) == SL_OK, "%s: %s", opts, msg);
    sl_dataset *ds = open_ok("phantom", &o);
    if (!ds) return;
    double want[8], got[8];
    int K;
    sld_parse_ratio(o.ratio, want, &K, NULL, 0);
    if (o.small_fraction > 0) {
        double rest = 0;
        for (int c = 0; c < K - 1; c++) rest += want[c];
        for (int c = 0; c < K - 1; c++) want[c] *= (1 - o.small_fraction) / rest;
        want[K - 1] = o.small_fraction;
    }
    sl_dataset_class_fractions(ds, SL_SPLIT_TRAIN, got);
    double worst = 0;
    char line[256] = "";
    for (int c = 0; c < K; c++) {
        double rel = fabs(got[c] - want[c]) / want[c];
        if (rel > worst) worst = rel;
        snprintf(line + strlen(line), sizeof line - strlen(line), " %.4f/%.4f", got[c], want[c]);
    }
    printf("max rel. error of class fractions %-32s %.3f  (realised/requested:%s)\n", opts, worst, line);
    CHECK(worst <= rel_tol, "%s: realised fractions off by %.3f (tol %.3f):%s", opts, worst, rel_tol, line);
    sl_dataset_free(ds);
}

static void test_phantom_fractions(void)
{
    check_fractions("ratio=100:10:1", 80, 100, 0.10);
    check_fractions("ratio=100:10:1,small_fraction=0.05", 80, 100, 0.10);
    check_fractions("ratio=100:10:1,small_fraction=0.01", 80, 100, 0.10);
    check_fractions("ratio=100:10:1,small_fraction=0.002", 96, 100, 0.12);
    check_fractions("ratio=99:1", 80, 100, 0.10);
    check_fractions("ratio=1:1", 64, 60, 0.10);
    check_fractions("ratio=100:20:5:1", 80, 100, 0.10);
    /* without jitter every sample hits its target to the pixel */
    sl_data_opts o = small_phantom();
    o.size_jitter = 0;
    sl_dataset *ds = open_ok("phantom", &o);
    if (ds) {
        int exact = 1;
        for (int64_t i = 0; i < 24; i++) {
            int64_t c[3];
            sl_dataset_class_counts(ds, SL_SPLIT_TRAIN, i, c);
            exact &= llabs(c[1] - llround(4096.0 * 10 / 111)) <= 3 && llabs(c[2] - llround(4096.0 / 111)) <= 3;
        }
        CHECK(exact, "size_jitter=0: each sample's areas hit the targets");
        sl_dataset_free(ds);
    }
    /* bad ratios and sizes */
    static const struct {
        const char *ratio;
        sl_status st;
    } bad[] = {{"100:10:", SL_EFORMAT}, {"100:-1", SL_ERANGE}, {"5", SL_EFORMAT}, {"a:b", SL_EFORMAT},
               {"1:1:1:1:1:1:1:1:1", SL_ERANGE}, {"1:20", SL_ERANGE}, {"", SL_EFORMAT}, {"1:0", SL_ERANGE}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_data_opts q = small_phantom();
        snprintf(q.ratio, sizeof q.ratio, "%s", bad[i].ratio);
        sl_dataset *x = NULL;
        sl_status st = sl_dataset_open(&x, "phantom", &q, msg, sizeof msg);
        CHECK(st == bad[i].st && !x, "ratio '%s': got %s (%s)", bad[i].ratio, sl_strerror(st), msg);
    }
    sl_data_opts q = small_phantom();
    q.height = q.width = 8;
    sl_dataset *x = NULL;
    CHECK(sl_dataset_open(&x, "phantom", &q, msg, sizeof msg) == SL_ERANGE, "phantom 8x8 refused");
}

/* 4-adjacency counts between two classes over a split */
static void adjacency(const sl_dataset *ds, int64_t n, int64_t *core_bg, int64_t *core_large, int64_t *ncomp)
{
    const int64_t H = 64, W = 64;
    int32_t *lab = malloc(H * W * sizeof *lab);
    uint8_t *mask = malloc(H * W);
    *core_bg = *core_large = *ncomp = 0;
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = 2;
    g.shape[0] = H;
    g.shape[1] = W;
    for (int64_t i = 0; i < n; i++) {
        sl_dataset_get(ds, SL_SPLIT_TRAIN, i, NULL, lab, NULL, 0);
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++) {
                mask[y * W + x] = lab[y * W + x] == 2;
                if (lab[y * W + x] != 2) continue;
                static const int d[4][2] = {{-1, 0}, {1, 0}, {0, -1}, {0, 1}};
                for (int k = 0; k < 4; k++) {
                    int64_t yy = y + d[k][0], xx = x + d[k][1];
                    if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                    *core_bg += lab[yy * W + xx] == 0;
                    *core_large += lab[yy * W + xx] == 1;
                }
            }
        sl_components cc = SL_COMPONENTS_EMPTY;
        sl_components_label(mask, &g, 8, NULL, &cc, NULL, 0);
        *ncomp += cc.count;
        sl_components_free(&cc);
    }
    free(lab);
    free(mask);
}

static double mean_abs_diff(const sl_dataset *a, const sl_dataset *b, int64_t n, int *labels_same)
{
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    int32_t *l = malloc(n * sizeof *l), *m = malloc(n * sizeof *m);
    double d = 0;
    *labels_same = 1;
    for (int64_t i = 0; i < 6; i++) {
        sl_dataset_get(a, SL_SPLIT_TRAIN, i, x, l, NULL, 0);
        sl_dataset_get(b, SL_SPLIT_TRAIN, i, y, m, NULL, 0);
        for (int64_t p = 0; p < n; p++) d += fabs((double)x[p] - y[p]);
        *labels_same &= memcmp(l, m, n * sizeof *l) == 0;
    }
    free(x);
    free(y);
    free(l);
    free(m);
    return d / (6.0 * (double)n);
}

static void test_phantom_options(void)
{
    sl_data_opts base = small_phantom();
    base.n_train = 8;
    base.n_val = base.n_test = 1;
    sl_dataset *ref = open_ok("phantom", &base);
    if (!ref) return;
    /* intensity options change the image but not the labels */
    static const struct {
        const char *kv;
        int labels_change;
    } opts[] = {{"noise=0", 0}, {"blur=0", 0}, {"bias=1", 0}, {"texture=0", 0}, {"contrast=3", 0},
                {"distractors=0", 0}, {"irregularity=0", 1}, {"size_jitter=0.5", 1}, {"p_inside=0", 1},
                {"max_lesions=1", 1}};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        sl_data_opts o = base;
        sl_data_opts_parse(&o, opts[i].kv, msg, sizeof msg);
        sl_dataset *ds = open_ok("phantom", &o);
        if (!ds) continue;
        int same_lab;
        double d = mean_abs_diff(ref, ds, 64 * 64, &same_lab);
        CHECK(d > 1e-3, "%s changes the images (mean |diff| %g)", opts[i].kv, d);
        CHECK(same_lab == !opts[i].labels_change, "%s: labels %s", opts[i].kv,
              opts[i].labels_change ? "should change" : "should not change");
        sl_dataset_free(ds);
    }
    /* p_inside = 1: cores never touch background; p_inside = 0: they touch
     * both the background and the large region (beside it) */
    int64_t cb, cl, nc1, nc5;
    sl_data_opts o = base;
    o.n_train = 30;
    o.p_inside = 1;
    o.max_lesions = 5;
    sl_dataset *ds = open_ok("phantom", &o);
    if (ds) {
        adjacency(ds, 30, &cb, &cl, &nc5);
        CHECK(cb == 0 && cl > 0, "p_inside=1: core-background contacts %lld (want 0), core-large %lld", (long long)cb, (long long)cl);
        sl_dataset_free(ds);
    }
    o.p_inside = 0;
    ds = open_ok("phantom", &o);
    if (ds) {
        adjacency(ds, 30, &cb, &cl, &nc5);
        CHECK(cb > 0 && cl > 0, "p_inside=0: cores beside the large region (bg %lld, large %lld)", (long long)cb, (long long)cl);
        sl_dataset_free(ds);
    }
    o.max_lesions = 1;
    ds = open_ok("phantom", &o);
    if (ds) {
        adjacency(ds, 30, &cb, &cl, &nc1);
        CHECK(nc1 < nc5, "max_lesions=1 gives fewer core components than 5 (%lld vs %lld)", (long long)nc1, (long long)nc5);
        sl_dataset_free(ds);
    }
    /* distractors: bright elongated blobs in the background; with 0 the
     * background's brightest pixels are dimmer */
    o = base;
    o.noise = 0;
    o.texture = 0;
    o.bias = 0;
    o.distractors = 0;
    sl_dataset *d0 = open_ok("phantom", &o);
    o.distractors = 6;
    sl_dataset *d6 = open_ok("phantom", &o);
    if (d0 && d6) {
        float *img = malloc(4096 * sizeof *img);
        int32_t *lab = malloc(4096 * sizeof *lab);
        double mx0 = 0, mx6 = 0;
        for (int64_t i = 0; i < 10; i++) {
            double m0 = -1e9, m6 = -1e9;
            sl_dataset_get(d0, SL_SPLIT_TRAIN, i, img, lab, NULL, 0);
            double bg0 = 0;
            for (int p = 0; p < 4096; p++) bg0 += lab[p] == 0 ? img[p] : 0;
            for (int p = 0; p < 4096; p++)
                if (lab[p] == 0 && img[p] > m0) m0 = img[p];
            sl_dataset_get(d6, SL_SPLIT_TRAIN, i, img, lab, NULL, 0);
            for (int p = 0; p < 4096; p++)
                if (lab[p] == 0 && img[p] > m6) m6 = img[p];
            mx0 += m0;
            mx6 += m6;
            (void)bg0;
        }
        CHECK(mx6 > mx0 + 5.0, "distractors put bright pixels into the background (%g vs %g)", mx6 / 10, mx0 / 10);
        free(img);
        free(lab);
    }
    sl_dataset_free(d0);
    sl_dataset_free(d6);
    /* names of other class counts */
    o = base;
    snprintf(o.ratio, sizeof o.ratio, "100:20:5:1");
    ds = open_ok("phantom", &o);
    if (ds) {
        CHECK(strcmp(sl_dataset_class_name(ds, 1), "region1") == 0 && strcmp(sl_dataset_class_name(ds, 3), "core") == 0,
              "4-class names");
        sl_dataset_free(ds);
    }
    snprintf(o.ratio, sizeof o.ratio, "99:1");
    ds = open_ok("phantom", &o);
    if (ds) {
        sl_dataset_info info;
        sl_dataset_get_info(ds, &info);
        CHECK(info.num_classes == 2 && info.small_class == 1 && strcmp(sl_dataset_class_name(ds, 1), "lesion") == 0,
              "2-class phantom");
        sl_dataset_free(ds);
    }
    sl_dataset_free(ref);
}

/* ------------------------------------------------------------ kernels */

static void test_warp(void)
{
    enum { H = 6, W = 6 };
    float img[H * W], out[H * W];
    int32_t lab[H * W], ol[H * W];
    for (int i = 0; i < H * W; i++) {
        img[i] = (float)(i * 7 % 11) + 0.25f * (float)i;
        lab[i] = i % 4;
    }
    /* 90-degree multiples, flips and their products are pixel permutations */
    for (int k = 0; k < 4; k++)
        for (int fy = 0; fy < 2; fy++)
            for (int fx = 0; fx < 2; fx++) {
                sl_spatial2d sp = {{2.5, 2.5}, {W, W}, 90.0 * k - (k == 3 ? 360.0 : 0.0), 1.0, {fy, fx}};
                double m[2][3];
                CHECK(sl_spatial2d_matrix(&sp, H, W, m) == SL_OK, "matrix");
                sl_warp2d(img, lab, H, W, (const double(*)[3])m, NULL, H, W, SL_INTERP_LINEAR, out, ol);
                int exact = 1;
                for (int yo = 0; yo < H; yo++)
                    for (int xo = 0; xo < W; xo++) {
                        /* u = flipped centred output coords, v = R u */
                        double uy = yo - 2.5, ux = xo - 2.5;
                        if (fy) uy = -uy;
                        if (fx) ux = -ux;
                        /* R = [[c, -s], [s, c]] on (y, x): vy = c uy - s ux, vx = s uy + c ux */
                        double vy, vx;
                        switch (k) {
                        case 0: vy = uy; vx = ux; break;
                        case 1: vy = -ux; vx = uy; break;
                        case 2: vy = -uy; vx = -ux; break;
                        default: vy = ux; vx = -uy; break;
                        }
                        int iy = (int)(vy + 2.5), ix = (int)(vx + 2.5);
                        exact &= out[yo * W + xo] == img[iy * W + ix] && ol[yo * W + xo] == lab[iy * W + ix];
                    }
                CHECK(exact, "rotation %d x 90 with flips (%d, %d) is an exact permutation", k, fy, fx);
            }
    /* nearest image sampling sees the same coordinates as the labels */
    float limg[H * W];
    for (int i = 0; i < H * W; i++) limg[i] = (float)lab[i];
    sl_spatial2d sp = {{2.3, 2.9}, {5.0, 7.0}, 23.0, 1.3, {1, 0}};
    double m[2][3];
    sl_spatial2d_matrix(&sp, 9, 8, m);
    float disp[2 * 9 * 8], o2[9 * 8];
    int32_t l2[9 * 8];
    for (int i = 0; i < 2 * 9 * 8; i++) disp[i] = (float)sin(i * 0.7);
    sl_warp2d(limg, lab, H, W, (const double(*)[3])m, disp, 9, 8, SL_INTERP_NEAREST, o2, l2);
    int aligned = 1;
    for (int i = 0; i < 9 * 8; i++) aligned &= o2[i] == (float)l2[i];
    CHECK(aligned, "nearest image equals label under rotation+zoom+flip+displacement");
    /* linear: inside pixels interpolate, a constant image stays constant */
    float ones[H * W];
    for (int i = 0; i < H * W; i++) ones[i] = 3.0f;
    sl_warp2d(ones, NULL, H, W, (const double(*)[3])m, disp, 9, 8, SL_INTERP_LINEAR, o2, NULL);
    int constant = 1;
    for (int i = 0; i < 9 * 8; i++) constant &= o2[i] == 3.0f || o2[i] == 0.0f;
    CHECK(constant, "constant image stays constant (or 0 outside)");
    /* errors */
    double bad[2][3] = {{NAN, 0, 0}, {0, 1, 0}};
    CHECK(sl_warp2d(img, lab, H, W, (const double(*)[3])bad, NULL, H, W, SL_INTERP_LINEAR, out, ol) == SL_EINVAL, "NaN matrix");
    CHECK(sl_warp2d(img, lab, H, W, NULL, NULL, H, W, SL_INTERP_LINEAR, out, ol) == SL_EINVAL, "NULL matrix");
    CHECK(sl_warp2d(NULL, lab, H, W, (const double(*)[3])m, NULL, H, W, SL_INTERP_LINEAR, out, ol) == SL_EINVAL, "out without in");
    CHECK(sl_warp2d(img, lab, H, W, (const double(*)[3])m, NULL, H, W, (sl_interp)4, out, ol) == SL_EINVAL, "bad interp");
    sl_spatial2d bs = {{0, 0}, {0, 4}, 0, 1, {0, 0}};
    CHECK(sl_spatial2d_matrix(&bs, 4, 4, m) == SL_EINVAL, "extent 0");
    bs.extent[0] = 4;
    bs.scale = 0;
    CHECK(sl_spatial2d_matrix(&bs, 4, 4, m) == SL_EINVAL, "scale 0");
    bs.scale = INFINITY;
    CHECK(sl_spatial2d_matrix(&bs, 4, 4, m) == SL_EINVAL, "scale inf");

    /* resize modes */
    float r1[4 * 5];
    int32_t rl[4 * 5];
    CHECK(sl_resize2d(img, lab, H, W, 4, 5, SL_RESIZE_CROP_PAD, r1, rl) == SL_OK, "crop");
    int crop = 1;
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 5; x++) crop &= r1[y * 5 + x] == img[(y + 1) * W + x] && rl[y * 5 + x] == lab[(y + 1) * W + x];
    CHECK(crop, "crop_pad crops at floor((in - out) / 2)");
    float same[H * W];
    int32_t sl[H * W];
    sl_resize2d(img, lab, H, W, H, W, SL_RESIZE_RESAMPLE, same, sl);
    CHECK(memcmp(same, img, sizeof img) == 0 && memcmp(sl, lab, sizeof lab) == 0, "resample to the same size is exact");
    sl_resize2d(img, lab, H, W, H, W, SL_RESIZE_FIT, same, sl);
    CHECK(memcmp(same, img, sizeof img) == 0, "fit to the same size is exact");
    /* 2x upsampling (align_corners=False): output pixel 1 sits at 0.25 */
    float up[12 * 12];
    int32_t ul[12 * 12];
    sl_resize2d(img, lab, H, W, 12, 12, SL_RESIZE_RESAMPLE, up, ul);
    double want = img[0] + 0.25 * (img[1] - img[0]);
    CHECK_NEAR(up[1], want, 1e-5, "bilinear upsampling at x = 0.25");
    CHECK(ul[1] == lab[0] && ul[2] == lab[1], "nearest-exact labels on upsampling");
    /* fit keeps the aspect: 6x6 into 6x12 leaves 3 columns of padding each side */
    float fit[6 * 12];
    int32_t fl[6 * 12];
    sl_resize2d(img, lab, H, W, 6, 12, SL_RESIZE_FIT, fit, fl);
    CHECK(fit[0] == 0 && fit[2] == 0 && fit[3] == img[0] && fit[8] == img[5] && fit[9] == 0, "fit pads left and right");
    CHECK(sl_resize2d(img, lab, H, W, 0, 5, SL_RESIZE_FIT, r1, rl) == SL_EINVAL, "resize to 0");
    CHECK(sl_resize2d(img, lab, H, W, 4, 5, (sl_resize_mode)3, r1, rl) == SL_EINVAL, "resize mode 3");
}

static void test_blur(void)
{
    enum { H = 13, W = 17 };
    float in[H * W], out[H * W];
    for (int i = 0; i < H * W; i++) in[i] = (float)((i * 37) % 23) - 5.0f;
    /* brute force: 2-D sum over the separable kernel with reflected indices */
    const double sy = 1.3, sx = 0.8;
    int ry = (int)(4 * sy + 0.5), rx = (int)(4 * sx + 0.5);
    double ky[64], kx[64], sumy = 0, sumx = 0;
    for (int i = -ry; i <= ry; i++) sumy += ky[i + ry] = exp(-0.5 * i * i / (sy * sy));
    for (int i = -rx; i <= rx; i++) sumx += kx[i + rx] = exp(-0.5 * i * i / (sx * sx));
    CHECK(sl_blur2d(in, out, H, W, sy, sx) == SL_OK, "blur");
    double worst = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double acc = 0;
            for (int a = -ry; a <= ry; a++)
                for (int b = -rx; b <= rx; b++) {
                    int yy = y + a, xx = x + b;
                    /* reflect: d c b a | a b c d | d c b a */
                    while (yy < 0 || yy >= H) yy = yy < 0 ? -yy - 1 : 2 * H - yy - 1;
                    while (xx < 0 || xx >= W) xx = xx < 0 ? -xx - 1 : 2 * W - xx - 1;
                    acc += ky[a + ry] / sumy * kx[b + rx] / sumx * in[yy * W + xx];
                }
            worst = fmax(worst, fabs(acc - out[y * W + x]));
        }
    printf("max |blur - brute-force reflect convolution| %.3g\n", worst);
    CHECK(worst < 1e-5, "blur matches the brute-force convolution (%g)", worst);
    float cp[H * W];
    memcpy(cp, in, sizeof in);
    CHECK(sl_blur2d(cp, cp, H, W, 0, 0) == SL_OK && memcmp(cp, in, sizeof in) == 0, "sigma 0 is the identity");
    CHECK(sl_blur2d(in, out, H, W, -1, 1) == SL_EINVAL, "negative sigma");
    CHECK(sl_blur2d(in, out, H, W, NAN, 1) == SL_EINVAL, "NaN sigma");
    CHECK(sl_blur2d(NULL, out, H, W, 1, 1) == SL_EINVAL, "NULL input");
}

/* ------------------------------------------------------------ augmentation options */

static void test_aug_options(void)
{
    sl_aug_opts a = SL_AUG_OPTS_DEFAULT;
    CHECK(a.enabled == 0 && sl_aug_check(&a, msg, sizeof msg) == SL_OK, "default: nothing enabled, valid");
    CHECK(sl_aug_parse(&a, "flip,rotate,scale,crop,gamma,contrast,noise,blur,elastic,copypaste", msg, sizeof msg) == SL_OK &&
              a.enabled == SL_AUG_ALL,
          "every name: %s", msg);
    CHECK(sl_aug_parse(&a, "-elastic,-crop", msg, sizeof msg) == SL_OK &&
              a.enabled == (SL_AUG_ALL & ~SL_AUG_ELASTIC & ~SL_AUG_CROP),
          "-name disables");
    CHECK(sl_aug_parse(&a, "none", msg, sizeof msg) == SL_OK && a.enabled == 0, "none");
    CHECK(sl_aug_parse(&a, "default", msg, sizeof msg) == SL_OK && a.enabled == SL_AUG_DEFAULT_SET, "default");
    CHECK(sl_aug_parse(&a, "none,all", msg, sizeof msg) == SL_OK && a.enabled == SL_AUG_ALL, "all");
    CHECK(sl_aug_parse(&a, "none,flip,p_flip=0.25,rotate_deg=45,copypaste_max=3,image_interp=nearest", msg, sizeof msg) == SL_OK &&
              a.enabled == SL_AUG_FLIP && a.p_flip == 0.25 && a.rotate_deg == 45 && a.copypaste_max == 3 &&
              a.image_interp == SL_INTERP_NEAREST,
          "key=value: %s", msg);
    CHECK(sl_aug_opts_set(&a, "image_interp", "linear", msg, sizeof msg) == SL_OK && a.image_interp == SL_INTERP_LINEAR, "linear");
    CHECK(sl_aug_parse(&a, "flip,mixup", msg, sizeof msg) == SL_EUNKNOWN && strstr(msg, "mixup"), "unknown name: %s", msg);
    CHECK(sl_aug_parse(&a, "p_rotate=x", msg, sizeof msg) == SL_EFORMAT, "bad number");
    CHECK(sl_aug_parse(&a, "p_rotate=1.5", msg, sizeof msg) == SL_ERANGE && strstr(msg, "p_rotate"), "range: %s", msg);
    CHECK(sl_aug_parse(&a, "copypaste_max=1.5", msg, sizeof msg) == SL_EFORMAT, "int key");
    CHECK(sl_aug_parse(&a, "copypaste_max=0", msg, sizeof msg) == SL_ERANGE, "int range");
    CHECK(sl_aug_parse(&a, "warp=1", msg, sizeof msg) == SL_EUNKNOWN, "unknown key");
    CHECK(sl_aug_parse(&a, "image_interp=cubic", msg, sizeof msg) == SL_EFORMAT, "interp name");
    CHECK(sl_aug_parse(NULL, "flip", msg, sizeof msg) == SL_EINVAL, "NULL");
    /* every numeric parameter has a key that works */
    static const char *keys[] = {"p_flip", "p_rotate", "rotate_deg", "p_scale", "scale_lo", "scale_hi", "p_crop",
                                 "crop_area_lo", "crop_area_hi", "crop_aspect_lo", "crop_aspect_hi", "p_gamma",
                                 "gamma_lo", "gamma_hi", "gamma_invert", "p_contrast", "brightness", "contrast_lo",
                                 "contrast_hi", "p_noise", "noise_std", "p_blur", "blur_lo", "blur_hi", "p_elastic",
                                 "elastic_alpha_lo", "elastic_alpha_hi", "elastic_sigma", "p_copypaste",
                                 "copypaste_blend"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        sl_aug_opts b = SL_AUG_OPTS_DEFAULT;
        CHECK(sl_aug_opts_set(&b, keys[i], "0.9", msg, sizeof msg) == SL_OK, "key %s: %s", keys[i], msg);
        CHECK(memcmp(&b, &(sl_aug_opts)SL_AUG_OPTS_DEFAULT, sizeof b) != 0, "key %s changed nothing", keys[i]);
    }
    /* check: lo > hi, unknown bits */
    a = (sl_aug_opts)SL_AUG_OPTS_DEFAULT;
    a.scale_lo = 2;
    a.scale_hi = 1;
    CHECK(sl_aug_check(&a, msg, sizeof msg) == SL_ERANGE && strstr(msg, "scale_lo"), "lo > hi: %s", msg);
    a = (sl_aug_opts)SL_AUG_OPTS_DEFAULT;
    a.enabled = 1u << 12;
    CHECK(sl_aug_check(&a, msg, sizeof msg) == SL_EINVAL, "unknown bit");
    a = (sl_aug_opts)SL_AUG_OPTS_DEFAULT;
    a.p_noise = NAN;
    CHECK(sl_aug_check(&a, msg, sizeof msg) == SL_ERANGE, "NaN probability");
    CHECK(strcmp(sl_aug_name(SL_AUG_COPYPASTE), "copypaste") == 0 && sl_aug_name(3) == NULL && sl_aug_name(0) == NULL, "names");
}

static void test_aug_kernels(void)
{
    enum { N = 4096 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    sl_rng r;
    sl_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) x[i] = (float)sl_rng_normal(&r);
    double m0, s0, m1, s1;
    sld_mean_std(x, N, &m0, &s0);
    memcpy(y, x, N * sizeof *x);
    sld_aug_gamma(y, N, 1.5, 0);
    sld_mean_std(y, N, &m1, &s1);
    CHECK(fabs(m1 - m0) < 1e-5 && fabs(s1 - s0) < 1e-5, "gamma keeps mean and std");
    double diff = 0;
    for (int i = 0; i < N; i++) diff += fabs(y[i] - x[i]);
    CHECK(diff / N > 0.01, "gamma changes the image");
    memcpy(y, x, N * sizeof *x);
    sld_aug_gamma(y, N, 1.0, 1);
    diff = 0;
    for (int i = 0; i < N; i++) diff = fmax(diff, fabs(y[i] - x[i]));
    CHECK(diff < 1e-5, "gamma 1 (inverted or not) is the identity (%g)", diff);
    float lo = 1e9f, hi = -1e9f;
    for (int i = 0; i < N; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    memcpy(y, x, N * sizeof *x);
    sld_aug_contrast(y, N, 1.0, 1.5);
    int in_range = 1;
    for (int i = 0; i < N; i++) in_range &= y[i] >= lo && y[i] <= hi;
    sld_mean_std(y, N, &m1, &s1);
    CHECK(in_range && s1 > s0 * 1.2, "contrast 1.5 stretches within the old range (std %g -> %g)", s0, s1);
    memcpy(y, x, N * sizeof *x);
    sld_aug_noise(&r, y, N, 0.5);
    double dd = 0;
    for (int i = 0; i < N; i++) dd += (y[i] - x[i]) * (y[i] - x[i]);
    CHECK(fabs(sqrt(dd / N) - 0.5) < 0.03, "noise std 0.5 (%g)", sqrt(dd / N));
    /* elastic field: RMS length alpha, smooth (neighbour differences small) */
    float *disp = malloc(2 * 64 * 64 * sizeof *disp);
    CHECK(sld_elastic_field(&r, 64, 64, 4.0, 8.0, disp) == SL_OK, "elastic field");
    double ss = 0, grad = 0;
    for (int i = 0; i < 64 * 64; i++) ss += disp[i] * disp[i] + disp[4096 + i] * disp[4096 + i];
    for (int yy = 0; yy < 64; yy++)
        for (int xx = 0; xx < 63; xx++) grad = fmax(grad, fabs(disp[yy * 64 + xx + 1] - disp[yy * 64 + xx]));
    CHECK_NEAR(sqrt(ss / 4096), 4.0, 1e-4, "elastic RMS displacement = alpha");
    CHECK(grad < 2.0, "elastic field is smooth (max step %g px)", grad);
    free(disp);
    free(x);
    free(y);
}

/* ------------------------------------------------------------ sampler */

typedef struct batch {
    int64_t B, h, w;
    float *x;
    int32_t *y;
    sl_batch_meta *m;
} batch;

static batch get_batch(const sl_dataset *ds, const sl_sampler_opts *so, int64_t step)
{
    batch b = {so->batch_size, 0, 0, NULL, NULL, NULL};
    sl_sampler *sp = NULL;
    sl_status st = sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, so, msg, sizeof msg);
    CHECK(st == SL_OK, "sampler_create: %s", msg);
    if (!sp) return b;
    sl_sampler_patch(sp, &b.h, &b.w);
    b.x = malloc((size_t)(b.B * b.h * b.w) * sizeof *b.x);
    b.y = malloc((size_t)(b.B * b.h * b.w) * sizeof *b.y);
    b.m = malloc((size_t)b.B * sizeof *b.m);
    st = sl_sampler_batch(sp, step, b.x, b.y, b.m, msg, sizeof msg);
    CHECK(st == SL_OK, "sampler_batch: %s", msg);
    sl_sampler_free(sp);
    return b;
}

static void free_batch(batch *b)
{
    free(b->x);
    free(b->y);
    free(b->m);
}

static int batch_equal(const batch *a, const batch *b)
{
    size_t n = (size_t)(a->B * a->h * a->w);
    return a->x && b->x && memcmp(a->x, b->x, n * sizeof *a->x) == 0 && memcmp(a->y, b->y, n * sizeof *a->y) == 0;
}

static sl_sampler_opts all_augs(void)
{
    sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;
    so.batch_size = 6;
    so.seed = 9;
    so.aug.enabled = SL_AUG_ALL;
    so.aug.p_rotate = so.aug.p_scale = so.aug.p_crop = so.aug.p_elastic = so.aug.p_gamma = so.aug.p_contrast =
        so.aug.p_noise = so.aug.p_blur = so.aug.p_copypaste = 0.7;
    return so;
}

static void test_sampler_determinism(const sl_dataset *ds)
{
    sl_sampler_opts so = all_augs();
    so.threads = 1;
    batch a = get_batch(ds, &so, 4);
    so.threads = 2;
    batch b = get_batch(ds, &so, 4);
    CHECK(batch_equal(&a, &b), "1 vs 2 threads: bit-identical batches");
    so.seed = 10;
    batch c = get_batch(ds, &so, 4);
    CHECK(!batch_equal(&a, &c), "another seed: another batch");
    so.seed = 9;
    batch d = get_batch(ds, &so, 5);
    CHECK(!batch_equal(&a, &d), "another step: another batch");
    /* a batch does not depend on which batches were made before */
    sl_sampler *sp = NULL;
    sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg);
    if (sp) {
        for (int64_t t = 0; t < 4; t++) sl_sampler_batch(sp, t, c.x, c.y, NULL, msg, sizeof msg);
        sl_sampler_batch(sp, 4, c.x, c.y, NULL, msg, sizeof msg);
        CHECK(batch_equal(&a, &c), "batch 4 after batches 0..3 equals batch 4 alone");
        CHECK(sl_sampler_batch(sp, -1, c.x, c.y, NULL, msg, sizeof msg) == SL_EINVAL, "step -1");
        CHECK(sl_sampler_batch(sp, 0, NULL, c.y, NULL, msg, sizeof msg) == SL_EINVAL, "NULL images");
        sl_sampler_free(sp);
    }
    free_batch(&a);
    free_batch(&b);
    free_batch(&c);
    free_batch(&d);
}

/* Every augmentation alone with p = 1 fires in every slot, and intensity
 * augmentations leave the labels alone. */
static void test_sampler_each_aug(const sl_dataset *ds)
{
    sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;
    so.batch_size = 4;
    so.seed = 2;
    batch ref = get_batch(ds, &so, 0);
    for (int k = 0; k < 10; k++) {
        unsigned bit = 1u << k;
        sl_sampler_opts o = so;
        o.aug.enabled = bit;
        o.aug.p_flip = o.aug.p_rotate = o.aug.p_scale = o.aug.p_crop = o.aug.p_gamma = o.aug.p_contrast = o.aug.p_noise =
            o.aug.p_blur = o.aug.p_elastic = o.aug.p_copypaste = 1.0;
        batch b = get_batch(ds, &o, 0);
        if (!b.x) continue;
        int fired = 1, same_idx = 1;
        for (int64_t i = 0; i < b.B; i++) {
            fired &= (b.m[i].applied & bit) != 0;
            same_idx &= b.m[i].index == ref.m[i].index;
        }
        size_t n = (size_t)(b.B * b.h * b.w);
        int lab_same = memcmp(b.y, ref.y, n * sizeof *b.y) == 0;
        int img_same = memcmp(b.x, ref.x, n * sizeof *b.x) == 0;
        CHECK(fired, "%s with p=1 fires in every slot", sl_aug_name(bit));
        CHECK(same_idx, "%s does not change the sample choice", sl_aug_name(bit));
        CHECK(!img_same, "%s changes the images", sl_aug_name(bit));
        int spatial = bit & (SL_AUG_FLIP | SL_AUG_ROTATE | SL_AUG_SCALE | SL_AUG_CROP | SL_AUG_ELASTIC | SL_AUG_COPYPASTE);
        CHECK(spatial ? !lab_same : lab_same, "%s %s the labels", sl_aug_name(bit), spatial ? "changes" : "keeps");
        /* p = 0: never fires, batch unchanged */
        sl_sampler_opts z = so;
        z.aug.enabled = bit;
        z.aug.p_flip = z.aug.p_rotate = z.aug.p_scale = z.aug.p_crop = z.aug.p_gamma = z.aug.p_contrast = z.aug.p_noise =
            z.aug.p_blur = z.aug.p_elastic = z.aug.p_copypaste = 0.0;
        batch c = get_batch(ds, &z, 0);
        CHECK(batch_equal(&c, &ref), "%s with p=0 changes nothing", sl_aug_name(bit));
        free_batch(&c);
        free_batch(&b);
    }
    free_batch(&ref);
}

/* an arrays dataset whose image is its label map */
static sl_dataset *label_image_dataset(int64_t n, int64_t H, int64_t W)
{
    sl_data_opts o = small_phantom();
    o.height = H;
    o.width = W;
    o.n_train = n;
    o.n_val = o.n_test = 0;
    sl_dataset *ph = open_ok("phantom", &o);
    if (!ph) return NULL;
    float *img = malloc((size_t)(n * H * W) * sizeof *img);
    int32_t *lab = malloc((size_t)(n * H * W) * sizeof *lab);
    for (int64_t i = 0; i < n; i++) sl_dataset_get(ph, SL_SPLIT_TRAIN, i, NULL, lab + i * H * W, NULL, 0);
    for (int64_t p = 0; p < n * H * W; p++) img[p] = (float)lab[p];
    sl_dataset *ds = NULL;
    sl_status st = sl_dataset_from_arrays(&ds, img, lab, n, 0, 0, H, W, 3, NULL, msg, sizeof msg);
    CHECK(st == SL_OK, "from_arrays: %s", msg);
    free(img);
    free(lab);
    sl_dataset_free(ph);
    return ds;
}

static void test_sampler_alignment(void)
{
    sl_dataset *ds = label_image_dataset(12, 48, 48);
    if (!ds) return;
    /* every spatial augmentation and hard copy-paste, nearest image
     * sampling: image == label everywhere, in every slot, at every step */
    sl_sampler_opts so = all_augs();
    so.aug.enabled = SL_AUG_FLIP | SL_AUG_ROTATE | SL_AUG_SCALE | SL_AUG_CROP | SL_AUG_ELASTIC | SL_AUG_COPYPASTE;
    so.aug.image_interp = SL_INTERP_NEAREST;
    so.aug.copypaste_blend = 0;
    so.patch[0] = 32;
    so.patch[1] = 40;
    int aligned = 1, valid = 1;
    unsigned seen = 0;
    for (int64_t t = 0; t < 12; t++) {
        batch b = get_batch(ds, &so, t);
        if (!b.x) break;
        for (int64_t p = 0; p < b.B * b.h * b.w; p++) {
            aligned &= b.x[p] == (float)b.y[p];
            valid &= b.y[p] >= 0 && b.y[p] < 3;
        }
        for (int64_t i = 0; i < b.B; i++) seen |= b.m[i].applied;
        free_batch(&b);
    }
    CHECK(aligned, "image (= label map) and label stay aligned under all spatial augmentations");
    CHECK(valid, "labels stay in [0, C)");
    CHECK(seen == so.aug.enabled, "every spatial augmentation was exercised (0x%x of 0x%x)", seen, so.aug.enabled);
    /* bilinear: the image stays within one pixel's reach of the label */
    so.aug.image_interp = SL_INTERP_LINEAR;
    int near = 1;
    for (int64_t t = 0; t < 6; t++) {
        batch b = get_batch(ds, &so, t);
        if (!b.x) break;
        /* at each pixel the bilinear value lies between the min and max
         * labels of the 3x3 neighbourhood of the nearest-sampled labels */
        for (int64_t i = 0; i < b.B; i++)
            for (int64_t y = 1; y + 1 < b.h; y++)
                for (int64_t x = 1; x + 1 < b.w; x++) {
                    int lo = 99, hi = -1;
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int v = b.y[(i * b.h + y + dy) * b.w + x + dx];
                            lo = v < lo ? v : lo;
                            hi = v > hi ? v : hi;
                        }
                    float v = b.x[(i * b.h + y) * b.w + x];
                    /* zoomed-out content: one output pixel spans up to 1/scale_lo input pixels */
                    if (b.m[i].applied & (SL_AUG_SCALE | SL_AUG_CROP | SL_AUG_ELASTIC)) continue;
                    near &= v >= lo - 1e-5f && v <= hi + 1e-5f;
                }
        free_batch(&b);
    }
    CHECK(near, "bilinear images lie within the neighbouring labels' range");
    sl_dataset_free(ds);
}

static void test_sampler_oversampling(const sl_dataset *ds)
{
    /* patches smaller than the image, all spatial augmentations: the last
     * ceil(B/3) slots contain the small class, every time */
    sl_sampler_opts so = all_augs();
    so.batch_size = 6;
    so.patch[0] = so.patch[1] = 24;
    so.aug.enabled &= ~SL_AUG_COPYPASTE;
    int forced_ok = 1, forced_n = 1, batch_ok = 1;
    int64_t with = 0, slots = 0;
    for (int64_t t = 0; t < 20; t++) {
        batch b = get_batch(ds, &so, t);
        if (!b.x) break;
        int64_t nf = 0, nc = 0;
        for (int64_t i = 0; i < b.B; i++) {
            int64_t c = 0;
            for (int64_t p = 0; p < b.h * b.w; p++) c += b.y[i * b.h * b.w + p] == 2;
            forced_ok &= !b.m[i].forced || c > 0;
            forced_ok &= c == b.m[i].fg_pixels;
            nf += b.m[i].forced;
            forced_n &= b.m[i].forced == (i >= 4);
            nc += c > 0;
        }
        batch_ok &= nc * 3 >= b.B;
        with += nc;
        slots += b.B;
        free_batch(&b);
    }
    printf("max share of 24x24 patches with the small class: %.2f (forced: 1/3 of each batch)\n", (double)with / slots);
    CHECK(forced_ok, "forced slots always contain the small class; fg_pixels counts it");
    CHECK(forced_n, "the last ceil(B/3) = 2 slots of 6 are forced");
    CHECK(batch_ok, "every batch has >= 1/3 of its slots with the small class");
    /* fg_fraction = 0: no forced slot; 1: all */
    so.fg_fraction = 0;
    batch b = get_batch(ds, &so, 0);
    int none = 1;
    for (int64_t i = 0; b.x && i < b.B; i++) none &= !b.m[i].forced;
    CHECK(none, "fg_fraction 0: no forced slot");
    free_batch(&b);
    so.fg_fraction = 1;
    so.batch_size = 5;
    b = get_batch(ds, &so, 0);
    int all = 1;
    for (int64_t i = 0; b.x && i < b.B; i++) all &= b.m[i].forced && b.m[i].fg_pixels > 0;
    CHECK(all, "fg_fraction 1: every slot forced and holding the class");
    free_batch(&b);
    so.fg_fraction = 1.0 / 3.0;
    so.batch_size = 2;
    b = get_batch(ds, &so, 0);
    CHECK(b.x && !b.m[0].forced && b.m[1].forced, "B = 2: one forced slot (ceil(2/3))");
    free_batch(&b);
    /* explicit fg_class */
    so.fg_class = 1;
    sl_sampler *sp = NULL;
    CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_OK && sl_sampler_fg_class(sp) == 1, "fg_class 1");
    sl_sampler_free(sp);
    CHECK(sl_sampler_fg_class(NULL) == -1, "fg_class of NULL");
}

static void test_sampler_copypaste(const sl_dataset *ds)
{
    sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;
    so.batch_size = 8;
    so.seed = 4;
    so.fg_fraction = 0;
    int64_t before = 0, after = 0;
    int never_less = 1, donor_ok = 1;
    for (int64_t t = 0; t < 6; t++) {
        so.aug.enabled = 0;
        batch a = get_batch(ds, &so, t);
        so.aug.enabled = SL_AUG_COPYPASTE;
        so.aug.p_copypaste = 1;
        batch b = get_batch(ds, &so, t);
        if (!a.x || !b.x) break;
        for (int64_t i = 0; i < a.B; i++) {
            int64_t ca = 0, cb = 0;
            for (int64_t p = 0; p < a.h * a.w; p++) {
                ca += a.y[i * a.h * a.w + p] == 2;
                cb += b.y[i * a.h * a.w + p] == 2;
            }
            never_less &= cb >= ca;
            donor_ok &= b.m[i].donor >= 0 && b.m[i].donor != b.m[i].index;
            before += ca;
            after += cb;
        }
        free_batch(&a);
        free_batch(&b);
    }
    printf("max small-class pixels before/after copy-paste: %lld -> %lld\n", (long long)before, (long long)after);
    CHECK(never_less && after > before + before / 4, "copy-paste adds small-class pixels (%lld -> %lld)", (long long)before,
          (long long)after);
    CHECK(donor_ok, "copy-paste donors are other samples");

    /* objects are not pasted onto exactly-zero (masked-out) pixels: the
     * right half of every image is 0, the objects sit in the left half */
    enum { N = 6, S = 32 };
    float *img = calloc(N * S * S, sizeof *img);
    int32_t *lab = calloc(N * S * S, sizeof *lab);
    for (int i = 0; i < N; i++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S / 2; x++) {
                int in = y >= 4 + 3 * i && y < 8 + 3 * i && x >= 3 + i && x < 7 + i;
                lab[(i * S + y) * S + x] = in ? 2 : (y > 20 ? 1 : 0);
                img[(i * S + y) * S + x] = 1.0f + (float)lab[(i * S + y) * S + x];
            }
    sl_dataset *half = NULL;
    CHECK(sl_dataset_from_arrays(&half, img, lab, N, 0, 0, S, S, 3, NULL, msg, sizeof msg) == SL_OK, "arrays: %s", msg);
    if (half) {
        sl_sampler_opts co = SL_SAMPLER_OPTS_DEFAULT;
        co.batch_size = 8;
        co.fg_fraction = 0;
        co.aug.enabled = SL_AUG_COPYPASTE;
        co.aug.p_copypaste = 1;
        int64_t right = 0, pasted = 0, base = 0;
        for (int64_t t = 0; t < 5; t++) {
            batch b = get_batch(half, &co, t);
            if (!b.x) break;
            for (int64_t i = 0; i < b.B; i++)
                for (int64_t y = 0; y < S; y++)
                    for (int64_t x = 0; x < S; x++) {
                        int v = b.y[(i * S + y) * S + x] == 2;
                        pasted += v;
                        right += v && x >= S / 2;
                    }
            for (int64_t i = 0; i < b.B; i++) base += 16;
            free_batch(&b);
        }
        CHECK(pasted > base && right == 0, "copy-paste avoids zero pixels (%lld pasted beyond the originals, %lld on the zero half)",
              (long long)(pasted - base), (long long)right);
        sl_dataset_free(half);
    }
    free(img);
    free(lab);
}

static void test_sampler_errors(const sl_dataset *ds)
{
    sl_sampler *sp = NULL;
    sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;
    so.batch_size = 0;
    CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_EINVAL && !sp, "batch 0");
    so = (sl_sampler_opts)SL_SAMPLER_OPTS_DEFAULT;
    so.patch[0] = 16;
    CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_EINVAL, "patch (16, 0)");
    so = (sl_sampler_opts)SL_SAMPLER_OPTS_DEFAULT;
    so.fg_fraction = 1.5;
    CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_EINVAL, "fg_fraction 1.5");
    so = (sl_sampler_opts)SL_SAMPLER_OPTS_DEFAULT;
    so.fg_class = 0;
    CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_ERANGE, "fg_class 0");
    so.fg_class = 3;
    CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_ERANGE, "fg_class 3");
    so = (sl_sampler_opts)SL_SAMPLER_OPTS_DEFAULT;
    so.aug.p_flip = 2;
    CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_ERANGE && strstr(msg, "p_flip"), "aug checked: %s", msg);
    so = (sl_sampler_opts)SL_SAMPLER_OPTS_DEFAULT;
    so.threads = -1;
    CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_EINVAL, "threads -1");
    CHECK(sl_sampler_create(&sp, ds, (sl_split)4, NULL, msg, sizeof msg) == SL_EINVAL, "bad split");
    CHECK(sl_sampler_create(&sp, NULL, SL_SPLIT_TRAIN, NULL, msg, sizeof msg) == SL_EINVAL, "NULL dataset");
    CHECK(sl_sampler_patch(NULL, NULL, NULL) == SL_EINVAL, "patch NULL");
    sl_sampler_free(NULL);
    /* an empty split; a dataset without foreground */
    sl_data_opts o = small_phantom();
    o.n_val = 0;
    sl_dataset *nv = open_ok("phantom", &o);
    if (nv) {
        CHECK(sl_sampler_create(&sp, nv, SL_SPLIT_VAL, NULL, msg, sizeof msg) == SL_EEMPTY, "empty split");
        sl_dataset_free(nv);
    }
    float img[2 * 16 * 16] = {0};
    int32_t lab[2 * 16 * 16] = {0};
    sl_dataset *bg = NULL;
    CHECK(sl_dataset_from_arrays(&bg, img, lab, 2, 0, 0, 16, 16, 2, NULL, msg, sizeof msg) == SL_OK, "arrays: %s", msg);
    if (bg) {
        sl_dataset_info info;
        sl_dataset_get_info(bg, &info);
        CHECK(info.small_class == -1, "no foreground: small_class -1");
        CHECK(sl_sampler_create(&sp, bg, SL_SPLIT_TRAIN, NULL, msg, sizeof msg) == SL_EEMPTY && strstr(msg, "fg_fraction"),
              "no foreground with fg_fraction > 0: %s", msg);
        so = (sl_sampler_opts)SL_SAMPLER_OPTS_DEFAULT;
        so.fg_fraction = 0;
        CHECK(sl_sampler_create(&sp, bg, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_OK, "fg_fraction 0 works: %s", msg);
        sl_sampler_free(sp);
        sp = NULL;
        so.aug.enabled = SL_AUG_COPYPASTE;
        CHECK(sl_sampler_create(&sp, bg, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_EEMPTY, "copypaste without donors");
        sl_dataset_free(bg);
    }
}

static void test_arrays(void)
{
    enum { H = 10, W = 12 };
    float img[3 * H * W];
    int32_t lab[3 * H * W];
    for (int i = 0; i < 3 * H * W; i++) {
        img[i] = (float)i;
        lab[i] = (i % 7 == 0) + (i % 13 == 0);
    }
    sl_dataset *ds = NULL;
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    o.height = 8;
    o.width = 8;
    CHECK(sl_dataset_from_arrays(&ds, img, lab, 1, 1, 1, H, W, 3, &o, msg, sizeof msg) == SL_OK, "arrays: %s", msg);
    if (ds) {
        sl_dataset_info info;
        sl_dataset_get_info(ds, &info);
        CHECK(info.n[0] == 1 && info.n[1] == 1 && info.n[2] == 1 && info.size[0] == 8 && info.size[1] == 8, "arrays info");
        float x[64];
        int32_t y[64];
        sl_dataset_get(ds, SL_SPLIT_TEST, 0, x, y, NULL, 0);
        CHECK(x[0] == img[2 * H * W + 1 * W + 2] && y[9] == lab[2 * H * W + 2 * W + 3], "arrays test slice, centre crop");
        sl_sample_origin org;
        sl_dataset_origin(ds, SL_SPLIT_VAL, 0, &org);
        CHECK(org.case_index == 1 && org.slice == -1 && strcmp(org.name, "arrays") == 0, "arrays origin");
        double f[3];
        CHECK(sl_dataset_class_fractions(ds, SL_SPLIT_TRAIN, f) == SL_OK && fabs(f[0] + f[1] + f[2] - 1) < 1e-12, "fractions sum to 1");
        CHECK(sl_dataset_class_fractions(ds, (sl_split)7, f) == SL_EINVAL, "fractions bad split");
        sl_dataset_free(ds);
    }
    ds = NULL;
    lab[17] = 3;
    CHECK(sl_dataset_from_arrays(&ds, img, lab, 1, 1, 1, H, W, 3, NULL, msg, sizeof msg) == SL_ERANGE && !ds &&
              strstr(msg, "pixel 17"),
          "label out of range: %s", msg);
    lab[17] = 0;
    img[5] = NAN;
    CHECK(sl_dataset_from_arrays(&ds, img, lab, 1, 1, 1, H, W, 3, NULL, msg, sizeof msg) == SL_ENONFINITE, "NaN image");
    img[5] = 0;
    CHECK(sl_dataset_from_arrays(&ds, img, lab, 0, 1, 1, H, W, 3, NULL, msg, sizeof msg) == SL_EINVAL, "no training slice");
    CHECK(sl_dataset_from_arrays(&ds, img, lab, 1, 1, 1, H, W, 1, NULL, msg, sizeof msg) == SL_EINVAL, "one class");
    CHECK(sl_dataset_from_arrays(&ds, NULL, lab, 1, 1, 1, H, W, 3, NULL, msg, sizeof msg) == SL_EINVAL, "NULL images");
}

/* ------------------------------------------------------------ colin */

static void test_colin(void)
{
    const char *dir = "/usr/share/mricron/templates";
    char path[512];
    snprintf(path, sizeof path, "%s/ch2bet.nii.gz", dir);
    if (access(path, R_OK) != 0) {
        printf("skip colin tests: %s missing (install Debian's mricron-data: apt-get install mricron-data)\n", path);
        return;
    }
    /* the class table read at run time equals the AAL numbers listed in
     * aal.nii.txt for the named regions (and the numbers we document) */
    int32_t table[200];
    CHECK(sl_colin_label_table(dir, table, 200, msg, sizeof msg) == SL_OK, "label table: %s", msg);
    static const int c1[] = {71, 72, 73, 74, 75, 76, 77, 78}, c2[] = {37, 38, 41, 42};
    int tab_ok = 1, n1 = 0, n2 = 0;
    for (int v = 0; v < 200; v++) {
        n1 += table[v] == 1;
        n2 += table[v] == 2;
    }
    for (int i = 0; i < 8; i++) tab_ok &= table[c1[i]] == 1;
    for (int i = 0; i < 4; i++) tab_ok &= table[c2[i]] == 2;
    CHECK(tab_ok && n1 == 8 && n2 == 4, "AAL values: class 1 = 71..78, class 2 = 37, 38, 41, 42");
    snprintf(path, sizeof path, "%s/aal.nii.txt", dir);
    FILE *f = fopen(path, "r");
    int lines_ok = 0;
    if (f) {
        char line[256], name[128];
        int v;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "%d %127s", &v, name) == 2) {
                if (v == 37) lines_ok += strcmp(name, "Hippocampus_L") == 0;
                if (v == 42) lines_ok += strcmp(name, "Amygdala_R") == 0;
                if (v == 71) lines_ok += strcmp(name, "Caudate_L") == 0;
                if (v == 78) lines_ok += strcmp(name, "Thalamus_R") == 0;
            }
        fclose(f);
    }
    CHECK(lines_ok == 4, "aal.nii.txt lists 37 Hippocampus_L, 42 Amygdala_R, 71 Caudate_L, 78 Thalamus_R");

    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    sl_dataset *ds = open_ok("colin", &o);
    if (!ds) return;
    sl_dataset_info info;
    sl_dataset_get_info(ds, &info);
    CHECK(info.num_classes == 3 && info.size[0] == 217 && info.size[1] == 181 && info.small_class == 2,
          "colin info: 3 classes, 217x181 slices, small class 2");
    CHECK(strcmp(sl_dataset_class_name(ds, 1), "deep_grey") == 0 && strcmp(sl_dataset_class_name(ds, 2), "hippocampus_amygdala") == 0,
          "colin class names");
    /* splits: blocks of at most `block` slices, slices of different splits
     * more than `gap` apart, every slice at most once */
    int64_t zs[3][200], nz[3] = {0};
    for (int s = 0; s < 3; s++)
        for (int64_t i = 0; i < info.n[s]; i++) {
            sl_sample_origin org;
            sl_dataset_origin(ds, (sl_split)s, i, &org);
            zs[s][nz[s]++] = org.slice;
        }
    int apart = 1;
    int64_t mind = 1000;
    for (int s = 0; s < 3; s++)
        for (int t = s + 1; t < 3; t++)
            for (int64_t i = 0; i < nz[s]; i++)
                for (int64_t j = 0; j < nz[t]; j++) {
                    int64_t d = llabs(zs[s][i] - zs[t][j]);
                    if (d < mind) mind = d;
                    apart &= d > o.gap;
                }
    printf("max colin slices: train %lld val %lld test %lld, closest slices of different splits %lld apart\n",
           (long long)info.n[0], (long long)info.n[1], (long long)info.n[2], (long long)mind);
    CHECK(apart && mind == o.gap + 1, "different splits are > gap slices apart (closest %lld)", (long long)mind);
    int interleaved = 0;
    for (int64_t i = 1; i < nz[0]; i++) interleaved += zs[0][i] - zs[0][i - 1] > 1;
    CHECK(interleaved >= 5, "training blocks are interleaved with the others (%d jumps)", interleaved);
    CHECK(info.n[1] > 0 && info.n[2] > 0 && info.n[0] > 2 * info.n[1], "split sizes follow the fractions");
    /* brain slices only; z-scored brain; every split sees class 2 */
    const int64_t S = 217 * 181;
    float *img = malloc(S * sizeof *img);
    int32_t *lab = malloc(S * sizeof *lab);
    double sum = 0, ss = 0, nb = 0;
    int brain_ok = 1, lab_in_brain = 1;
    for (int s = 0; s < 3; s++) {
        int64_t with2 = 0;
        for (int64_t i = 0; i < info.n[s]; i++) {
            sl_dataset_get(ds, (sl_split)s, i, img, lab, NULL, 0);
            int64_t c = 0;
            for (int64_t p = 0; p < S; p++) {
                if (img[p] != 0) {
                    c++;
                    sum += img[p];
                    ss += (double)img[p] * img[p];
                    nb++;
                } else {
                    lab_in_brain &= lab[p] == 0;
                }
                with2 += lab[p] == 2;
            }
            brain_ok &= c >= 0.01 * S;
        }
        CHECK(with2 > 0, "the %s split has hippocampus/amygdala pixels", sl_split_name((sl_split)s));
    }
    double mean = sum / nb, sd = sqrt(ss / nb - mean * mean);
    printf("max colin brain intensity after z-score: mean %.3f std %.3f\n", mean, sd);
    CHECK(brain_ok, "every slice has >= 1%% brain");
    CHECK(lab_in_brain, "labels lie inside the brain");
    CHECK(fabs(mean) < 0.1 && fabs(sd - 1) < 0.1, "brain intensities z-scored (mean %g, std %g)", mean, sd);
    double fr[3];
    sl_dataset_class_fractions(ds, SL_SPLIT_TRAIN, fr);
    printf("max colin training fractions: background %.4f deep grey %.4f hippocampus+amygdala %.4f\n", fr[0], fr[1], fr[2]);
    CHECK(fr[2] > 0.001 && fr[2] < 0.01 && fr[1] > fr[2], "class 2 is ~0.3 %% of all brain slices");

    /* oversampling on real data: most slices lack class 2 */
    sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;
    so.batch_size = 6;
    so.patch[0] = so.patch[1] = 96;
    so.seed = 1;
    so.aug.enabled = SL_AUG_DEFAULT_SET;
    int64_t with = 0, total = 0;
    int each = 1;
    for (int64_t t = 0; t < 8; t++) {
        batch b = get_batch(ds, &so, t);
        if (!b.x) break;
        int64_t nc = 0;
        for (int64_t i = 0; i < b.B; i++) nc += b.m[i].fg_pixels > 0;
        each &= nc * 3 >= b.B;
        with += nc;
        total += b.B;
        free_batch(&b);
    }
    printf("max colin share of 96x96 patches with class 2: %.2f\n", (double)with / total);
    CHECK(each, "colin: every batch has >= 1/3 patches with hippocampus/amygdala");

    /* options: a 192x160 crop, brain threshold, block and gap */
    o = (sl_data_opts)SL_DATA_OPTS_DEFAULT;
    o.height = 192;
    o.width = 160;
    o.min_brain_fraction = 0.3;
    o.block = 4;
    o.gap = 5;
    sl_dataset *d3 = open_ok("colin", &o);
    if (d3) {
        sl_dataset_info i3;
        sl_dataset_get_info(d3, &i3);
        CHECK(i3.size[0] == 192 && i3.size[1] == 160, "colin at 192x160");
        /* the brain (y 19..198, x 18..161 of 217x181) fits the centred crop:
         * no labelled pixel is lost */
        int64_t lost = 0;
        int32_t *full = malloc(S * sizeof *full), *crop = malloc(192 * 160 * sizeof *crop);
        for (int64_t i = 0; i < i3.n[0]; i++) {
            int64_t cf[3] = {0}, cc[3];
            sl_dataset_get_at(d3, SL_SPLIT_TRAIN, i, 217, 181, SL_RESIZE_CROP_PAD, NULL, full, NULL, 0);
            for (int64_t p = 0; p < S; p++) cf[full[p]]++;
            sl_dataset_class_counts(d3, SL_SPLIT_TRAIN, i, cc);
            lost += (cf[1] - cc[1]) + (cf[2] - cc[2]);
        }
        free(full);
        free(crop);
        CHECK(lost == 0, "the 192x160 crop keeps every labelled pixel (%lld lost)", (long long)lost);
        int64_t tot = i3.n[0] + i3.n[1] + i3.n[2], tot0 = info.n[0] + info.n[1] + info.n[2];
        CHECK(tot < tot0, "min_brain_fraction 0.3 keeps fewer slices (%lld < %lld)", (long long)tot, (long long)tot0);
        int64_t prev = -100, run = 0, maxrun = 0, mind3 = 1000;
        for (int64_t i = 0; i < i3.n[0]; i++) {
            sl_sample_origin org;
            sl_dataset_origin(d3, SL_SPLIT_TRAIN, i, &org);
            run = org.slice == prev + 1 ? run + 1 : 1;
            if (run > maxrun) maxrun = run;
            prev = org.slice;
            for (int s = 1; s < 3; s++)
                for (int64_t j = 0; j < i3.n[s]; j++) {
                    sl_sample_origin oj;
                    sl_dataset_origin(d3, (sl_split)s, j, &oj);
                    if (llabs(oj.slice - org.slice) < mind3) mind3 = llabs(oj.slice - org.slice);
                }
        }
        CHECK(mind3 == 6, "gap 5: closest slices of train and val/test 6 apart (%lld)", (long long)mind3);
        CHECK(maxrun <= 8, "block 4: runs of training slices are at most two blocks (%lld)", (long long)maxrun);
        sl_dataset_free(d3);
    }
    /* missing data names the package */
    o = (sl_data_opts)SL_DATA_OPTS_DEFAULT;
    snprintf(o.colin_dir, sizeof o.colin_dir, "/nonexistent/templates");
    sl_dataset *dm = NULL;
    CHECK(sl_dataset_open(&dm, "colin", &o, msg, sizeof msg) == SL_EIO && strstr(msg, "mricron-data") &&
              strstr(msg, "apt-get install mricron-data"),
          "missing data: %s", msg);
    CHECK(sl_colin_label_table("/nonexistent", table, 200, msg, sizeof msg) == SL_EIO && strstr(msg, "mricron-data"),
          "missing table: %s", msg);
    free(img);
    free(lab);
    sl_dataset_free(ds);
}

int main(void)
{
    test_options();
    test_phantom_basics();
    test_phantom_determinism();
    test_phantom_fractions();
    test_phantom_options();
    test_warp();
    test_blur();
    test_aug_options();
    test_aug_kernels();
    sl_data_opts o = small_phantom();
    o.height = o.width = 48;
    sl_dataset *ds = open_ok("phantom", &o);
    if (ds) {
        test_sampler_determinism(ds);
        test_sampler_each_aug(ds);
        test_sampler_oversampling(ds);
        test_sampler_copypaste(ds);
        test_sampler_errors(ds);
        sl_dataset_free(ds);
    }
    test_sampler_alignment();
    test_arrays();
    test_colin();
    return test_report("test_data");
}
