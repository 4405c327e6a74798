/*
 * k-fold cross-validation views of a dataset.
 *
 * The pool is the dataset's training split followed by its validation
 * split (n_train + n_val samples); the test split is left out and stays
 * the view's test split, so every fold is tested on the same held-out
 * cases. The pool is shuffled once by a generator seeded from the data
 * options' seed alone (not a run's seed), so every loss and seed of a
 * benchmark sees the same folds; shuffled position j goes to fold j mod K,
 * which makes the folds differ in size by at most one. The unit shuffled
 * is a case: a sample (phantom, arrays, colin slices), or for nifti:DIR a
 * case with all its slices, so that no case is in two folds. Fold k's view
 * validates on fold k and trains on the other folds, each split in pool
 * order.
 *
 * A view copies the dataset's fields (sources, buffers, class names are
 * borrowed) and maps its samples to the dataset's (data_internal.h,
 * sld_resolve), so a generated sample (the phantom) is the very image the
 * dataset gives at its own split and index.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

/* A fixed stream of the data seed: the fold permutation is unrelated to
 * the streams the generators draw images from. */
#define FOLD_STREAM 0x666f6c6473ULL /* "folds" */

sl_status sl_dataset_fold_assign(const sl_dataset *ds, int folds, int *fold_of)
{
    if (!ds || !fold_of || folds < 2 || ds->view) return SL_EINVAL;
    const int64_t P = ds->n[SL_SPLIT_TRAIN] + ds->n[SL_SPLIT_VAL];
    if (P < folds) return SL_ERANGE;
    /* groups: the cases of nifti:DIR (a case's slices stay in one fold),
     * else every sample alone; numbered in pool order */
    int64_t *group = sl_malloc(P, sizeof *group), *perm = sl_malloc(P, sizeof *perm), *first = NULL;
    const int by_case = ds->case_names != NULL && ds->ncases > 0;
    if (by_case) first = sl_malloc(ds->ncases, sizeof *first);
    if (!group || !perm || (by_case && !first)) {
        free(group);
        free(perm);
        free(first);
        return SL_ENOMEM;
    }
    for (int64_t k = 0; by_case && k < ds->ncases; k++) first[k] = -1;
    const int64_t n0 = ds->n[SL_SPLIT_TRAIN];
    int64_t G = 0;
    for (int64_t j = 0; j < P; j++) {
        if (!by_case) {
            group[j] = G++;
            continue;
        }
        const sld_slice *sl = j < n0 ? &ds->slices[SL_SPLIT_TRAIN][j] : &ds->slices[SL_SPLIT_VAL][j - n0];
        if (first[sl->case_index] < 0) first[sl->case_index] = G++;
        group[j] = first[sl->case_index];
    }
    free(first);
    sl_status st = G < folds ? SL_ERANGE : SL_OK;
    if (st == SL_OK) {
        for (int64_t g = 0; g < G; g++) perm[g] = g;
        sl_rng r;
        sl_rng_seed_stream(&r, ds->opts.seed, FOLD_STREAM);
        for (int64_t g = G - 1; g > 0; g--) { /* Fisher-Yates over the groups */
            const int64_t i = (int64_t)sl_rng_below(&r, (uint64_t)g + 1);
            const int64_t t = perm[i];
            perm[i] = perm[g];
            perm[g] = t;
        }
        /* the group at shuffled position q is in fold q mod folds */
        int *gf = malloc((size_t)G * sizeof *gf);
        if (!gf) st = SL_ENOMEM;
        for (int64_t q = 0; gf && q < G; q++) gf[perm[q]] = (int)(q % folds);
        for (int64_t j = 0; gf && j < P; j++) fold_of[j] = gf[group[j]];
        free(gf);
    }
    free(perm);
    free(group);
    return st;
}

/* The smallest non-empty foreground class of the view's training split, as
 * sld_finish chooses it. */
static int small_class(const sl_dataset *v)
{
    const int C = v->num_classes;
    int64_t tot[SL_DATA_MAX_CLASSES] = {0};
    for (int64_t i = 0; i < v->n[SL_SPLIT_TRAIN]; i++)
        for (int c = 0; c < C; c++) tot[c] += v->counts[SL_SPLIT_TRAIN][i * C + c];
    int sc = -1;
    for (int c = 1; c < C; c++)
        if (tot[c] > 0 && (sc < 0 || tot[c] <= tot[sc])) sc = c;
    return sc;
}

sl_status sl_dataset_fold(sl_dataset **out, const sl_dataset *ds, int folds, int fold, char *msg, size_t msglen)
{
    if (out) *out = NULL;
    if (!out || !ds) return sl_errf(msg, msglen, SL_EINVAL, "dataset fold: NULL argument");
    if (ds->view) return sl_errf(msg, msglen, SL_EINVAL, "dataset fold: the dataset is already a fold view");
    if (folds < 2 || folds > SL_DATA_MAX_FOLDS || fold < 0 || fold >= folds)
        return sl_errf(msg, msglen, SL_ERANGE, "dataset fold: fold %d of %d (folds: 2 to %d)", fold, folds, SL_DATA_MAX_FOLDS);
    const int64_t n0 = ds->n[SL_SPLIT_TRAIN], P = n0 + ds->n[SL_SPLIT_VAL];
    if (P < folds)
        return sl_errf(msg, msglen, SL_ERANGE, "dataset fold: %lld training and validation samples cannot make %d folds",
                       (long long)P, folds);
    const int C = ds->num_classes;
    int *fold_of = sl_malloc(P, sizeof *fold_of);
    sl_dataset *v = malloc(sizeof *v);
    if (!fold_of || !v) {
        free(fold_of);
        free(v);
        return sl_errf(msg, msglen, SL_ENOMEM, "dataset fold: out of memory");
    }
    sl_status st = sl_dataset_fold_assign(ds, folds, fold_of);
    if (st != SL_OK) {
        free(fold_of);
        free(v);
        if (st == SL_ERANGE)
            return sl_errf(msg, msglen, st, "dataset fold: the training and validation cases of %s cannot make %d folds",
                           ds->source, folds);
        return sl_errf(msg, msglen, st, "dataset fold: out of memory");
    }
    *v = *ds;
    v->view = 1;
    memset(v->counts, 0, sizeof v->counts);
    memset(v->map, 0, sizeof v->map);
    int64_t nval = 0;
    for (int64_t j = 0; j < P; j++) nval += fold_of[j] == fold;
    v->n[SL_SPLIT_TRAIN] = P - nval;
    v->n[SL_SPLIT_VAL] = nval;
    for (int s = 0; s < SL_NUM_SPLITS; s++) {
        if (v->n[s] == 0) continue;
        v->counts[s] = sl_malloc(v->n[s] * C, sizeof(int64_t));
        if (s != SL_SPLIT_TEST) v->map[s] = sl_malloc(v->n[s], sizeof(int64_t));
        if (!v->counts[s] || (s != SL_SPLIT_TEST && !v->map[s])) goto nomem;
    }
    if (v->n[SL_SPLIT_TEST])
        memcpy(v->counts[SL_SPLIT_TEST], ds->counts[SL_SPLIT_TEST], (size_t)(v->n[SL_SPLIT_TEST] * C) * sizeof(int64_t));
    int64_t k[2] = {0, 0};
    for (int64_t j = 0; j < P; j++) {
        const int s = fold_of[j] == fold ? SL_SPLIT_VAL : SL_SPLIT_TRAIN;
        const int bs = j < n0 ? SL_SPLIT_TRAIN : SL_SPLIT_VAL;
        const int64_t bi = j < n0 ? j : j - n0;
        v->map[s][k[s]] = ((int64_t)bs << 56) | bi;
        memcpy(v->counts[s] + k[s] * C, ds->counts[bs] + bi * C, (size_t)C * sizeof(int64_t));
        k[s]++;
    }
    v->small_class = small_class(v);
    free(fold_of);
    *out = v;
    return SL_OK;
nomem:
    free(fold_of);
    sl_dataset_free(v);
    return sl_errf(msg, msglen, SL_ENOMEM, "dataset fold: out of memory");
}
