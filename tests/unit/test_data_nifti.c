/*
 * The nifti:DIR source: pairing of images and labels (nnU-Net _0000 names
 * included), clear errors for a missing counterpart or differing grids
 * (both files named), slicing along x, y and z against the volume, the
 * normalisations and slice filters, labels (integer and float files,
 * num_classes, out of range), the split by case (deterministic from the
 * seed, fractions, no case in two splits), dataset.json class names, sizes.
 * Cases are written with sl_nifti_write into a temporary folder.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "segloss/data.h"
#include "segloss/io.h"
#include "test_util.h"

static char msg[512];
static char root[64];

/* volume value of case c at (z, y, x): distinct per voxel and case */
static float value(int c, int64_t z, int64_t y, int64_t x) { return (float)(1000 * c + 100 * z + 10 * y + x) + 0.5f; }
static int32_t label_of(int c, int64_t z, int64_t y, int64_t x) { return (int32_t)((z + y + x + c) % 3 == 0 ? 1 + (x % 2) : 0); }

static void write_case(const char *dir, const char *img_name, const char *lab_name, int c, int64_t D, int64_t H,
                       int64_t W, sl_dtype lab_dtype, const double *spacing)
{
    int64_t sh[3] = {D, H, W};
    sl_array a = SL_ARRAY_EMPTY, l = SL_ARRAY_EMPTY;
    sl_array_alloc(&a, SL_DT_F32, 3, sh);
    sl_array_alloc(&l, lab_dtype, 3, sh);
    float *av = a.data;
    for (int64_t z = 0; z < D; z++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++) {
                int64_t i = (z * H + y) * W + x;
                av[i] = value(c, z, y, x);
                int32_t v = label_of(c, z, y, x);
                if (lab_dtype == SL_DT_U8) ((uint8_t *)l.data)[i] = (uint8_t)v;
                else if (lab_dtype == SL_DT_F32) ((float *)l.data)[i] = (float)v;
                else ((int32_t *)l.data)[i] = v;
            }
    char p[512];
    if (img_name) {
        snprintf(p, sizeof p, "%s/images/%s", dir, img_name);
        CHECK(sl_nifti_write(p, &a, spacing, NULL, msg, sizeof msg) == SL_OK, "write %s: %s", p, msg);
    }
    if (lab_name) {
        snprintf(p, sizeof p, "%s/labels/%s", dir, lab_name);
        CHECK(sl_nifti_write(p, &l, spacing, NULL, msg, sizeof msg) == SL_OK, "write %s: %s", p, msg);
    }
    sl_array_free(&a);
    sl_array_free(&l);
}

static void make_dir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", root, name);
    mkdir(out, 0700);
    char p[512];
    snprintf(p, sizeof p, "%s/images", out);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/labels", out);
    mkdir(p, 0700);
}

static void rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup %s", dir);
}

static sl_dataset *open_dir(const char *dir, const sl_data_opts *o, sl_status want)
{
    char src[600];
    snprintf(src, sizeof src, "nifti:%s", dir);
    sl_dataset *ds = NULL;
    sl_status st = sl_dataset_open(&ds, src, o, msg, sizeof msg);
    CHECK(st == want, "open %s: %s, want %s (%s)", dir, sl_strerror(st), sl_strerror(want), msg);
    if (st != SL_OK) {
        CHECK(ds == NULL, "failed open leaves NULL");
        return NULL;
    }
    return ds;
}

/* the main fixture: 10 cases of 3x4x5, names case00..case09 (images with
 * nnU-Net's _0000 suffix for the even ones) */
static void make_main(char *dir, size_t n)
{
    make_dir(dir, n, "main");
    double sp[3] = {2.0, 1.0, 1.0};
    for (int c = 0; c < 10; c++) {
        char in[64], ln[64];
        snprintf(in, sizeof in, c % 2 ? "case%02d.nii.gz" : "case%02d_0000.nii.gz", c);
        snprintf(ln, sizeof ln, "case%02d.nii.gz", c);
        write_case(dir, in, ln, c, 3, 4, 5, c == 3 ? SL_DT_F32 : SL_DT_U8, sp);
    }
}

static void test_slicing_and_split(const char *dir)
{
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    o.norm = SL_INTENSITY_NONE;
    o.seed = 5;
    sl_dataset *ds = open_dir(dir, &o, SL_OK);
    if (!ds) return;
    sl_dataset_info info;
    sl_dataset_get_info(ds, &info);
    CHECK(info.n[0] + info.n[1] + info.n[2] == 30, "10 cases x 3 z-slices = 30 samples (%lld)",
          (long long)(info.n[0] + info.n[1] + info.n[2]));
    CHECK(info.size[0] == 4 && info.size[1] == 5 && info.num_classes == 3, "z slices are 4x5, 3 classes");
    /* 10 cases: 2 test, 2 val, 6 train; no case in two splits; the
     * samples equal the volume's planes */
    int case_split[10];
    for (int c = 0; c < 10; c++) case_split[c] = -1;
    int planes_ok = 1, one_split = 1;
    float img[20];
    int32_t lab[20];
    for (int s = 0; s < 3; s++)
        for (int64_t i = 0; i < info.n[s]; i++) {
            sl_sample_origin org;
            sl_dataset_origin(ds, (sl_split)s, i, &org);
            int c = (int)org.case_index;
            if (case_split[c] >= 0 && case_split[c] != s) one_split = 0;
            case_split[c] = s;
            char want[32];
            snprintf(want, sizeof want, c % 2 ? "case%02d.nii.gz" : "case%02d_0000.nii.gz", c);
            planes_ok &= strcmp(org.name, want) == 0;
            sl_dataset_get(ds, (sl_split)s, i, img, lab, NULL, 0);
            for (int64_t y = 0; y < 4; y++)
                for (int64_t x = 0; x < 5; x++)
                    planes_ok &= img[y * 5 + x] == value(c, org.slice, y, x) && lab[y * 5 + x] == label_of(c, org.slice, y, x);
        }
    int cnt[3] = {0};
    for (int c = 0; c < 10; c++) cnt[case_split[c] < 0 ? 0 : case_split[c]] += case_split[c] >= 0;
    CHECK(planes_ok, "z slices equal the volume planes (names with _0000 matched)");
    CHECK(one_split, "no case in two splits");
    CHECK(cnt[0] == 6 && cnt[1] == 2 && cnt[2] == 2, "cases per split 6/2/2 (%d/%d/%d)", cnt[0], cnt[1], cnt[2]);
    /* the same seed gives the same split, another seed another */
    sl_dataset *again = open_dir(dir, &o, SL_OK);
    o.seed = 6;
    sl_dataset *other = open_dir(dir, &o, SL_OK);
    if (again && other) {
        int same = 1, differ = 0;
        for (int64_t i = 0; i < info.n[1]; i++) {
            sl_sample_origin a, b, c;
            sl_dataset_origin(ds, SL_SPLIT_VAL, i, &a);
            sl_dataset_origin(again, SL_SPLIT_VAL, i, &b);
            same &= a.case_index == b.case_index && a.slice == b.slice;
            if (sl_dataset_origin(other, SL_SPLIT_VAL, i, &c) == SL_OK) differ |= c.case_index != a.case_index;
        }
        CHECK(same, "same seed, same split");
        CHECK(differ, "another seed, another split");
    }
    sl_dataset_free(again);
    sl_dataset_free(other);
    sl_dataset_free(ds);

    /* y and x slicing */
    for (int ax = 0; ax < 2; ax++) {
        o = (sl_data_opts)SL_DATA_OPTS_DEFAULT;
        o.norm = SL_INTENSITY_NONE;
        o.axis = ax == 0 ? 'y' : 'x';
        ds = open_dir(dir, &o, SL_OK);
        if (!ds) continue;
        sl_dataset_get_info(ds, &info);
        int64_t h = 3, w = ax == 0 ? 5 : 4, ns = ax == 0 ? 4 : 5;
        CHECK(info.size[0] == h && info.size[1] == w && info.n[0] + info.n[1] + info.n[2] == 10 * ns,
              "axis %c: %lldx%lld slices, %lld of them", o.axis, (long long)info.size[0], (long long)info.size[1],
              (long long)(info.n[0] + info.n[1] + info.n[2]));
        int ok = 1;
        for (int64_t i = 0; i < info.n[0]; i++) {
            sl_sample_origin org;
            sl_dataset_origin(ds, SL_SPLIT_TRAIN, i, &org);
            sl_dataset_get(ds, SL_SPLIT_TRAIN, i, img, lab, NULL, 0);
            for (int64_t u = 0; u < h; u++)
                for (int64_t v = 0; v < w; v++) {
                    float want = ax == 0 ? value((int)org.case_index, u, org.slice, v) : value((int)org.case_index, u, v, org.slice);
                    ok &= img[u * w + v] == want;
                }
        }
        CHECK(ok, "axis %c slices equal the volume planes", o.axis);
        sl_dataset_free(ds);
    }
}

static void test_normalisation(const char *dir)
{
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    o.val_fraction = o.test_fraction = 0; /* every case in train */
    sl_dataset *ds = open_dir(dir, &o, SL_OK);
    if (!ds) return;
    /* z-score per case: the 3 slices of a case together have mean 0, std 1 */
    float img[20];
    double s[10] = {0}, ss[10] = {0}, n[10] = {0};
    sl_dataset_info info;
    sl_dataset_get_info(ds, &info);
    CHECK(info.n[0] == 30 && info.n[1] == 0 && info.n[2] == 0, "val = test = 0: all 30 in train");
    for (int64_t i = 0; i < info.n[0]; i++) {
        sl_sample_origin org;
        sl_dataset_origin(ds, SL_SPLIT_TRAIN, i, &org);
        sl_dataset_get(ds, SL_SPLIT_TRAIN, i, img, NULL, NULL, 0);
        for (int p = 0; p < 20; p++) {
            s[org.case_index] += img[p];
            ss[org.case_index] += (double)img[p] * img[p];
            n[org.case_index]++;
        }
    }
    int z_ok = 1;
    for (int c = 0; c < 10; c++) {
        double m = s[c] / n[c], sd = sqrt(ss[c] / n[c] - m * m);
        z_ok &= fabs(m) < 1e-5 && fabs(sd - 1) < 1e-4;
    }
    CHECK(z_ok, "zscore: each case has mean 0, std 1");
    sl_dataset_free(ds);
    /* percentile: values clipped to the [10, 90] percentiles, then z-scored;
     * the extremes of a case become equal (clipped) */
    o.norm = SL_INTENSITY_PERCENTILE;
    o.clip_lo = 10;
    o.clip_hi = 90;
    ds = open_dir(dir, &o, SL_OK);
    if (ds) {
        float a[20], b[20];
        sl_sample_origin org;
        sl_dataset_origin(ds, SL_SPLIT_TRAIN, 0, &org);
        sl_dataset_get(ds, SL_SPLIT_TRAIN, 0, a, NULL, NULL, 0); /* lowest z slice of the first case */
        CHECK(org.slice == 0, "first sample is slice 0");
        CHECK(a[0] == a[1] && a[1] < a[19], "percentile: the lowest values are clipped together");
        sl_dataset_get(ds, SL_SPLIT_TRAIN, 2, b, NULL, NULL, 0);
        CHECK(b[19] == b[18] && b[18] > b[0], "percentile: the highest values are clipped together");
        sl_dataset_free(ds);
    }
    /* percentile values as numpy.percentile (linear): 0..99 in a shuffled
     * order, clip at the 10th and 90th percentiles = 9.9 and 89.1 */
    {
        char pdir[256];
        make_dir(pdir, sizeof pdir, "pct");
        int64_t sh1[3] = {1, 10, 10};
        sl_array a1 = SL_ARRAY_EMPTY, l1 = SL_ARRAY_EMPTY;
        sl_array_alloc(&a1, SL_DT_F32, 3, sh1);
        sl_array_alloc(&l1, SL_DT_U8, 3, sh1);
        float *v1 = a1.data;
        for (int i = 0; i < 100; i++) v1[i] = (float)((i * 37) % 100);
        char p1[512];
        snprintf(p1, sizeof p1, "%s/images/p.nii.gz", pdir);
        sl_nifti_write(p1, &a1, NULL, NULL, msg, sizeof msg);
        snprintf(p1, sizeof p1, "%s/labels/p.nii.gz", pdir);
        sl_nifti_write(p1, &l1, NULL, NULL, msg, sizeof msg);
        sl_data_opts po = SL_DATA_OPTS_DEFAULT;
        po.norm = SL_INTENSITY_PERCENTILE;
        po.clip_lo = 10;
        po.clip_hi = 90;
        sl_dataset *pd = open_dir(pdir, &po, SL_OK);
        if (pd) {
            float got[100];
            sl_dataset_get(pd, SL_SPLIT_TRAIN, 0, got, NULL, NULL, 0);
            double c[100], m = 0, var = 0, worst = 0;
            for (int i = 0; i < 100; i++) {
                c[i] = fmin(fmax(v1[i], 9.9), 89.1);
                m += c[i] / 100;
            }
            for (int i = 0; i < 100; i++) var += (c[i] - m) * (c[i] - m) / 100;
            for (int i = 0; i < 100; i++) worst = fmax(worst, fabs(got[i] - (c[i] - m) / sqrt(var)));
            printf("max |percentile normalisation - numpy rule| %.3g\n", worst);
            CHECK(worst < 1e-5, "percentile clip at numpy's 10th/90th percentiles (%g)", worst);
            sl_dataset_free(pd);
        }
        sl_array_free(&a1);
        sl_array_free(&l1);
    }
    /* nonzero statistics: zeros stay zero */
    char zdir[256];
    make_dir(zdir, sizeof zdir, "zeros");
    int64_t sh[3] = {2, 3, 3};
    sl_array a = SL_ARRAY_EMPTY, l = SL_ARRAY_EMPTY;
    sl_array_alloc(&a, SL_DT_F32, 3, sh);
    sl_array_alloc(&l, SL_DT_U8, 3, sh);
    float *av = a.data;
    for (int i = 0; i < 18; i++) av[i] = i < 9 ? 0.0f : (float)(10 + i);
    ((uint8_t *)l.data)[12] = 1;
    char p[512];
    snprintf(p, sizeof p, "%s/images/z.nii", zdir);
    sl_nifti_write(p, &a, NULL, NULL, msg, sizeof msg);
    snprintf(p, sizeof p, "%s/labels/z.nii", zdir);
    sl_nifti_write(p, &l, NULL, NULL, msg, sizeof msg);
    o = (sl_data_opts)SL_DATA_OPTS_DEFAULT;
    o.norm_nonzero = 1;
    ds = open_dir(zdir, &o, SL_OK);
    if (ds) {
        float x0[9], x1[9];
        sl_dataset_get(ds, SL_SPLIT_TRAIN, 0, x0, NULL, NULL, 0);
        sl_dataset_get(ds, SL_SPLIT_TRAIN, 1, x1, NULL, NULL, 0);
        double m = 0, v = 0;
        for (int i = 0; i < 9; i++) m += x1[i] / 9.0;
        for (int i = 0; i < 9; i++) v += (x1[i] - m) * (x1[i] - m) / 9.0;
        int zeros = 1;
        for (int i = 0; i < 9; i++) zeros &= x0[i] == 0.0f;
        CHECK(zeros && fabs(m) < 1e-5 && fabs(sqrt(v) - 1) < 1e-4, "norm_nonzero: zeros stay 0, the rest z-scored");
        sl_dataset_free(ds);
    }
    /* slice filters */
    o = (sl_data_opts)SL_DATA_OPTS_DEFAULT;
    o.slices = SL_SLICES_NONZERO;
    ds = open_dir(zdir, &o, SL_OK);
    if (ds) {
        sl_dataset_get_info(ds, &info);
        sl_sample_origin org;
        sl_dataset_origin(ds, SL_SPLIT_TRAIN, 0, &org);
        CHECK(info.n[0] == 1 && org.slice == 1, "slices=nonzero drops the all-zero slice");
        sl_dataset_free(ds);
    }
    o.slices = SL_SLICES_LABELLED;
    o.axis = 'x';
    ds = open_dir(zdir, &o, SL_OK);
    if (ds) {
        sl_dataset_get_info(ds, &info);
        sl_sample_origin org;
        sl_dataset_origin(ds, SL_SPLIT_TRAIN, 0, &org);
        CHECK(info.n[0] == 1 && org.slice == 0, "slices=labelled keeps the one labelled x slice (voxel 12 = x 0)");
        sl_dataset_free(ds);
    }
    /* one case cannot be split three ways: train keeps it */
    o = (sl_data_opts)SL_DATA_OPTS_DEFAULT;
    o.val_fraction = 0.45;
    o.test_fraction = 0.45;
    ds = open_dir(zdir, &o, SL_OK);
    if (ds) {
        sl_dataset_get_info(ds, &info);
        CHECK(info.n[0] == 2 && info.n[1] == 0 && info.n[2] == 0, "a single case goes to train");
        sl_dataset_free(ds);
    }
    sl_array_free(&a);
    sl_array_free(&l);
}

static void test_labels_and_names(void)
{
    char dir[256];
    make_dir(dir, sizeof dir, "labels");
    write_case(dir, "a.nii.gz", "a.nii.gz", 0, 2, 3, 4, SL_DT_I32, NULL);
    write_case(dir, "b.nii.gz", "b.nii.gz", 1, 2, 3, 4, SL_DT_F32, NULL);
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    o.num_classes = 5;
    sl_dataset *ds = open_dir(dir, &o, SL_OK);
    if (ds) {
        sl_dataset_info info;
        sl_dataset_get_info(ds, &info);
        CHECK(info.num_classes == 5 && strcmp(sl_dataset_class_name(ds, 0), "background") == 0 &&
                  strcmp(sl_dataset_class_name(ds, 4), "class4") == 0,
              "num_classes 5, default names");
        sl_dataset_free(ds);
    }
    o.num_classes = 2;
    open_dir(dir, &o, SL_ERANGE);
    CHECK(strstr(msg, "label 2") && strstr(msg, ".nii.gz"), "label out of range names the file: %s", msg);
    /* dataset.json names, v2 and v1 */
    char p[512];
    snprintf(p, sizeof p, "%s/dataset.json", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"name\": \"t\", \"labels\": {\"background\": 0, \"edema\": 1, \"core\": 2, \"whole\": [1, 2], \"extra\": 3}}", f);
    fclose(f);
    o.num_classes = 0;
    ds = open_dir(dir, &o, SL_OK);
    if (ds) {
        sl_dataset_info info;
        sl_dataset_get_info(ds, &info);
        CHECK(info.num_classes == 4 && strcmp(sl_dataset_class_name(ds, 1), "edema") == 0 &&
                  strcmp(sl_dataset_class_name(ds, 2), "core") == 0 && strcmp(sl_dataset_class_name(ds, 3), "extra") == 0,
              "dataset.json v2 names (4 classes declared)");
        sl_dataset_free(ds);
    }
    f = fopen(p, "w");
    fputs("{\"labels\": {\"0\": \"bg\", \"1\": \"liver\", \"2\": \"tumour\"}}", f);
    fclose(f);
    ds = open_dir(dir, &o, SL_OK);
    if (ds) {
        CHECK(strcmp(sl_dataset_class_name(ds, 0), "bg") == 0 && strcmp(sl_dataset_class_name(ds, 2), "tumour") == 0,
              "dataset.json v1 names");
        sl_dataset_free(ds);
    }
    f = fopen(p, "w");
    fputs("{\"labels\": {\"0\": \"bg\",", f);
    fclose(f);
    open_dir(dir, &o, SL_EFORMAT);
    CHECK(strstr(msg, "dataset.json") != NULL, "malformed dataset.json named: %s", msg);
    f = fopen(p, "w");
    fputs("{\"labels\": {\"x\": \"bg\"}}", f);
    fclose(f);
    open_dir(dir, &o, SL_EFORMAT);
    remove(p);
    /* a non-integral float label */
    int64_t sh[3] = {1, 2, 2};
    sl_array l = SL_ARRAY_EMPTY;
    sl_array_alloc(&l, SL_DT_F32, 3, sh);
    ((float *)l.data)[3] = 0.5f;
    snprintf(p, sizeof p, "%s/labels/b.nii.gz", dir);
    write_case(dir, "b.nii.gz", NULL, 1, 1, 2, 2, SL_DT_F32, NULL);
    sl_nifti_write(p, &l, NULL, NULL, msg, sizeof msg);
    open_dir(dir, &o, SL_EDTYPE);
    CHECK(strstr(msg, "b.nii.gz") && strstr(msg, "integer"), "non-integral label: %s", msg);
    ((float *)l.data)[3] = -1.0f;
    sl_nifti_write(p, &l, NULL, NULL, msg, sizeof msg);
    open_dir(dir, &o, SL_ERANGE);
    sl_array_free(&l);
    rm_tree(dir);
}

static void test_errors(void)
{
    char dir[256];
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    /* missing folders, empty folder */
    snprintf(dir, sizeof dir, "%s/none", root);
    open_dir(dir, &o, SL_EIO);
    CHECK(strstr(msg, "images") != NULL, "missing folder named: %s", msg);
    make_dir(dir, sizeof dir, "empty");
    open_dir(dir, &o, SL_EEMPTY);
    /* image without label, label without image: both files named */
    write_case(dir, "p.nii.gz", NULL, 0, 1, 2, 2, SL_DT_U8, NULL);
    open_dir(dir, &o, SL_EIO);
    CHECK(strstr(msg, "images/p.nii.gz") && strstr(msg, "labels/p.nii.gz"), "missing label: %s", msg);
    write_case(dir, NULL, "p.nii.gz", 0, 1, 2, 2, SL_DT_U8, NULL);
    write_case(dir, NULL, "q.nii", 0, 1, 2, 2, SL_DT_U8, NULL);
    open_dir(dir, &o, SL_EIO);
    CHECK(strstr(msg, "labels/q.nii") && strstr(msg, "images/q.nii.gz"), "missing image: %s", msg);
    rm_tree(dir);
    /* grids differ: shape, spacing */
    make_dir(dir, sizeof dir, "grid");
    write_case(dir, "g.nii.gz", NULL, 0, 2, 3, 4, SL_DT_U8, NULL);
    write_case(dir, NULL, "g.nii.gz", 0, 2, 3, 5, SL_DT_U8, NULL);
    open_dir(dir, &o, SL_ESHAPE);
    CHECK(strstr(msg, "images/g.nii.gz") && strstr(msg, "labels/g.nii.gz") && strstr(msg, "2x3x4") && strstr(msg, "2x3x5"),
          "shape mismatch names both files: %s", msg);
    double s1[3] = {1, 1, 1}, s2[3] = {1, 1, 1.5};
    write_case(dir, "g.nii.gz", NULL, 0, 2, 3, 4, SL_DT_U8, s1);
    write_case(dir, NULL, "g.nii.gz", 0, 2, 3, 4, SL_DT_U8, s2);
    open_dir(dir, &o, SL_ESHAPE);
    CHECK(strstr(msg, "spacing") && strstr(msg, "images/g.nii.gz") && strstr(msg, "labels/g.nii.gz"), "spacing mismatch: %s", msg);
    rm_tree(dir);
    /* a 2-D label file goes with a one-slice 3-D image */
    make_dir(dir, sizeof dir, "twod");
    write_case(dir, "t.nii.gz", NULL, 0, 1, 3, 4, SL_DT_U8, NULL);
    {
        int64_t sh2[2] = {3, 4};
        sl_array l2 = SL_ARRAY_EMPTY;
        sl_array_alloc(&l2, SL_DT_U8, 2, sh2);
        ((uint8_t *)l2.data)[5] = 1;
        char p2[512];
        snprintf(p2, sizeof p2, "%s/labels/t.nii.gz", dir);
        CHECK(sl_nifti_write(p2, &l2, NULL, NULL, msg, sizeof msg) == SL_OK, "write 2-D label: %s", msg);
        sl_array_free(&l2);
        sl_dataset *d2 = open_dir(dir, &o, SL_OK);
        if (d2) {
            int32_t l[12];
            sl_dataset_get(d2, SL_SPLIT_TRAIN, 0, NULL, l, NULL, 0);
            CHECK(l[5] == 1 && l[4] == 0, "2-D label read as the slice of a (1, 3, 4) image");
            sl_dataset_free(d2);
        }
    }
    rm_tree(dir);
    /* slices of different sizes need a sample size */
    make_dir(dir, sizeof dir, "sizes");
    write_case(dir, "a.nii.gz", "a.nii.gz", 0, 2, 3, 4, SL_DT_U8, NULL);
    write_case(dir, "b.nii.gz", "b.nii.gz", 1, 2, 5, 6, SL_DT_U8, NULL);
    open_dir(dir, &o, SL_ESHAPE);
    CHECK(strstr(msg, "height and width") != NULL, "different sizes: %s", msg);
    o.height = 8;
    o.width = 8;
    o.resize = SL_RESIZE_FIT;
    sl_dataset *ds = open_dir(dir, &o, SL_OK);
    if (ds) {
        sl_dataset_info info;
        sl_dataset_get_info(ds, &info);
        CHECK(info.size[0] == 8 && info.size[1] == 8, "height/width 8: every slice resized");
        sl_dataset_free(ds);
    }
    rm_tree(dir);
    /* 4-D images are refused */
    make_dir(dir, sizeof dir, "fourd");
    int64_t sh[4] = {2, 1, 2, 2};
    sl_array a = SL_ARRAY_EMPTY;
    sl_array_alloc(&a, SL_DT_F32, 4, sh);
    char p[512];
    snprintf(p, sizeof p, "%s/images/f.nii", dir);
    sl_nifti_write(p, &a, NULL, NULL, msg, sizeof msg);
    snprintf(p, sizeof p, "%s/labels/f.nii", dir);
    sl_nifti_write(p, &a, NULL, NULL, msg, sizeof msg);
    sl_array_free(&a);
    o = (sl_data_opts)SL_DATA_OPTS_DEFAULT;
    open_dir(dir, &o, SL_EUNSUPPORTED);
    rm_tree(dir);
}

static void test_memory_limit(void)
{
    char dir[256];
    make_dir(dir, sizeof dir, "big");
    write_case(dir, "m.nii.gz", "m.nii.gz", 0, 4, 64, 64, SL_DT_U8, NULL); /* 4 slices x 32 KB */
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    o.max_memory_mb = 1;
    sl_dataset *ds = open_dir(dir, &o, SL_OK);
    sl_dataset_free(ds);
    write_case(dir, "m.nii.gz", "m.nii.gz", 0, 64, 64, 64, SL_DT_U8, NULL); /* 64 slices x 32 KB = 2 MB */
    open_dir(dir, &o, SL_ENOMEM);
    CHECK(strstr(msg, "max_memory_mb") != NULL, "memory limit named: %s", msg);
    rm_tree(dir);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/sl_data_nifti_XXXXXX");
    if (!mkdtemp(root)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    char dir[256];
    make_main(dir, sizeof dir);
    test_slicing_and_split(dir);
    test_normalisation(dir);
    test_labels_and_names();
    test_errors();
    test_memory_limit();
    rm_tree(root);
    return test_report("test_data_nifti");
}
