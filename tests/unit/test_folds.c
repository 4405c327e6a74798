/*
 * k-fold views of a dataset (sl_dataset_fold): the validation folds
 * partition the pool (training + validation split; every pool sample in
 * exactly one validation fold, no test sample in any), fold k trains on
 * the pool minus fold k, sizes differ by at most one, the test split is
 * the dataset's own; a view's samples, class counts and origins are the
 * dataset's at the mapped split and index (phantom and stored arrays);
 * the assignment depends on the data seed only; a sampler and a training
 * batch run on a view; bad arguments are refused.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/data.h"
#include "test_util.h"

static char msg[512];

/* origin stream of a phantom sample: its split << 56 | index in the dataset */
static uint64_t key(const sl_dataset *ds, sl_split s, int64_t i)
{
    sl_sample_origin o;
    EXPECT(sl_dataset_origin(ds, s, i, &o) == SL_OK);
    return o.stream;
}

static void check_folds(sl_dataset *ds, int K)
{
    sl_dataset_info bi;
    sl_dataset_get_info(ds, &bi);
    const int64_t n0 = bi.n[0], P = bi.n[0] + bi.n[1], HW = bi.size[0] * bi.size[1];
    int *seen = calloc((size_t)P, sizeof *seen);
    float *a = malloc((size_t)HW * sizeof *a), *b = malloc((size_t)HW * sizeof *b);
    int32_t *la = malloc((size_t)HW * sizeof *la), *lb = malloc((size_t)HW * sizeof *lb);
    int64_t cv[SL_DATA_MAX_CLASSES], cb[SL_DATA_MAX_CLASSES];
    for (int k = 0; k < K; k++) {
        sl_dataset *v = NULL;
        sl_status st = sl_dataset_fold(&v, ds, K, k, msg, sizeof msg);
        CHECK(st == SL_OK, "fold %d of %d: %s", k, K, msg);
        if (st != SL_OK) continue;
        sl_dataset_info vi;
        sl_dataset_get_info(v, &vi);
        CHECK(vi.n[1] == P / K || vi.n[1] == P / K + 1, "fold %d of %d: %lld validation samples of %lld", k, K, (long long)vi.n[1],
              (long long)P);
        EXPECT(vi.n[0] + vi.n[1] == P && vi.n[2] == bi.n[2]);
        int *in_train = calloc((size_t)P, sizeof *in_train);
        for (int s = 0; s < SL_NUM_SPLITS; s++)
            for (int64_t i = 0; i < vi.n[s]; i++) {
                const uint64_t kk = key(v, (sl_split)s, i);
                const int bs = (int)(kk >> 56);
                const int64_t bi_ = (int64_t)(kk & 0xffffffffffffffULL);
                if (s == SL_SPLIT_TEST) {
                    CHECK(bs == SL_SPLIT_TEST && bi_ == i, "fold %d: test sample %lld is not the dataset's", k, (long long)i);
                } else {
                    CHECK(bs != SL_SPLIT_TEST, "fold %d: a test sample in the %s split", k, sl_split_name((sl_split)s));
                    const int64_t j = bs == SL_SPLIT_TRAIN ? bi_ : n0 + bi_;
                    if (s == SL_SPLIT_VAL) seen[j]++;
                    else in_train[j]++;
                }
                /* the same pixels and counts as the dataset's sample */
                EXPECT(sl_dataset_get(v, (sl_split)s, i, a, la, msg, sizeof msg) == SL_OK);
                EXPECT(sl_dataset_get(ds, (sl_split)bs, bi_, b, lb, msg, sizeof msg) == SL_OK);
                sl_dataset_class_counts(v, (sl_split)s, i, cv);
                sl_dataset_class_counts(ds, (sl_split)bs, bi_, cb);
                CHECK(!memcmp(a, b, (size_t)HW * sizeof *a) && !memcmp(la, lb, (size_t)HW * sizeof *la) &&
                          !memcmp(cv, cb, (size_t)bi.num_classes * sizeof *cv),
                      "fold %d: %s sample %lld differs from the dataset's", k, sl_split_name((sl_split)s), (long long)i);
            }
        /* training = the pool minus this fold's validation */
        int bad = 0;
        for (int64_t j = 0; j < P; j++) bad += in_train[j] > 1;
        CHECK(!bad, "fold %d: %d pool samples twice in training", k, bad);
        free(in_train);
        sl_dataset_free(v);
    }
    int bad = 0;
    for (int64_t j = 0; j < P; j++) bad += seen[j] != 1;
    CHECK(!bad, "%d folds: %d pool samples not in exactly one validation fold", K, bad);
    free(seen);
    free(a);
    free(b);
    free(la);
    free(lb);
}

static void test_phantom(void)
{
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    o.height = o.width = 32;
    o.n_train = 9;
    o.n_val = 4;
    o.n_test = 3;
    o.seed = 5;
    o.threads = 1;
    sl_dataset *ds = NULL;
    CHECK(sl_dataset_open(&ds, "phantom", &o, msg, sizeof msg) == SL_OK, "%s", msg);
    if (!ds) return;
    check_folds(ds, 2);
    check_folds(ds, 5);
    /* the assignment is a function of the data seed */
    int f1[13], f2[13], f3[13];
    EXPECT(sl_dataset_fold_assign(ds, 5, f1) == SL_OK && sl_dataset_fold_assign(ds, 5, f2) == SL_OK);
    EXPECT(!memcmp(f1, f2, sizeof f1));
    sl_dataset *d2 = NULL;
    o.seed = 6;
    CHECK(sl_dataset_open(&d2, "phantom", &o, msg, sizeof msg) == SL_OK, "%s", msg);
    EXPECT(sl_dataset_fold_assign(d2, 5, f3) == SL_OK);
    CHECK(memcmp(f1, f3, sizeof f1) != 0, "data seeds 5 and 6 gave the same folds");
    /* a sampler draws training batches from a view */
    sl_dataset *v = NULL;
    EXPECT(sl_dataset_fold(&v, ds, 3, 1, msg, sizeof msg) == SL_OK);
    sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;
    so.batch_size = 2;
    so.threads = 1;
    sl_sampler *sp = NULL;
    CHECK(sl_sampler_create(&sp, v, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_OK, "sampler on a view: %s", msg);
    float img[2 * 32 * 32];
    int32_t lab[2 * 32 * 32];
    if (sp) CHECK(sl_sampler_batch(sp, 0, img, lab, NULL, msg, sizeof msg) == SL_OK, "a batch from a view: %s", msg);
    sl_sampler_free(sp);
    /* bad arguments */
    sl_dataset *x = NULL;
    EXPECT(sl_dataset_fold(&x, ds, 1, 0, msg, sizeof msg) == SL_ERANGE && !x);
    EXPECT(sl_dataset_fold(&x, ds, 11, 0, msg, sizeof msg) == SL_ERANGE && !x);
    EXPECT(sl_dataset_fold(&x, ds, 3, 3, msg, sizeof msg) == SL_ERANGE && !x);
    EXPECT(sl_dataset_fold(&x, v, 2, 0, msg, sizeof msg) == SL_EINVAL && !x);
    o.seed = 5;
    o.n_train = 1;
    o.n_val = 1;
    sl_dataset *tiny = NULL;
    EXPECT(sl_dataset_open(&tiny, "phantom", &o, msg, sizeof msg) == SL_OK);
    CHECK(sl_dataset_fold(&x, tiny, 3, 0, msg, sizeof msg) == SL_ERANGE && strstr(msg, "cannot make 3 folds"), "%s", msg);
    sl_dataset_free(tiny);
    sl_dataset_free(v);
    sl_dataset_free(d2);
    sl_dataset_free(ds);
}

/* stored slices: the arrays source (origins are positions in the input) */
static void test_arrays(void)
{
    enum { N = 14, H = 4, W = 5 };
    float img[N * H * W];
    int32_t lab[N * H * W];
    for (int i = 0; i < N * H * W; i++) {
        img[i] = (float)i;
        lab[i] = (i / (H * W) + i) % 3 == 0;
    }
    sl_dataset *ds = NULL;
    CHECK(sl_dataset_from_arrays(&ds, img, lab, 8, 3, 3, H, W, 2, NULL, msg, sizeof msg) == SL_OK, "%s", msg);
    if (!ds) return;
    int fold_of[11];
    EXPECT(sl_dataset_fold_assign(ds, 4, fold_of) == SL_OK);
    for (int k = 0; k < 4; k++) {
        sl_dataset *v = NULL;
        if (sl_dataset_fold(&v, ds, 4, k, msg, sizeof msg) != SL_OK) {
            CHECK(0, "fold %d: %s", k, msg);
            continue;
        }
        sl_dataset_info vi;
        sl_dataset_get_info(v, &vi);
        for (int64_t i = 0; i < vi.n[1]; i++) {
            sl_sample_origin o;
            sl_dataset_origin(v, SL_SPLIT_VAL, i, &o);
            CHECK(o.case_index >= 0 && o.case_index < 11 && fold_of[o.case_index] == k,
                  "fold %d: validation sample %lld is input slice %lld", k, (long long)i, (long long)o.case_index);
        }
        float x[H * W];
        sl_dataset_get(v, SL_SPLIT_TEST, 0, x, NULL, msg, sizeof msg);
        EXPECT(x[0] == (float)(11 * H * W));
        sl_dataset_free(v);
    }
    sl_dataset_free(ds);
}

int main(void)
{
    TEST_RUN(test_phantom);
    TEST_RUN(test_arrays);
    return test_report("test_folds");
}
