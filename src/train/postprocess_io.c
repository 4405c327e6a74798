/*
 * The post-processing rule as a file (postprocess.json of a run folder),
 * on label arrays as read from image files, and chosen for a finished run
 * from its validation split.
 *
 * postprocess.json:
 *   {"num_classes": C, "connectivity": "full",
 *    "classes": [{"class": 1, "keep_largest": false, "min_size": 0,
 *                 "val_dice_before": 0.81, "val_dice_after": 0.83}, ...]}
 * One object per foreground class; the val_dice_* fields are informative
 * (null when the rule was not chosen on validation) and not read back.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "jsonfile.h"
#include "train_internal.h"

sl_status sl_postprocess_save(const sl_postprocess *pp, const char *path, char *msg, size_t msglen)
{
    if (!pp || !path || pp->num_classes < 2 || pp->num_classes > SL_DATA_MAX_CLASSES)
        return sl_errf(msg, msglen, SL_EINVAL, "postprocess: bad rule or path");
    cJSON *root = cJSON_CreateObject(), *a = cJSON_CreateArray();
    int ok = root && a && cJSON_AddNumberToObject(root, "num_classes", pp->num_classes) &&
             cJSON_AddStringToObject(root, "connectivity", "full");
    if (ok) cJSON_AddItemToObject(root, "classes", a);
    else cJSON_Delete(a);
    for (int c = 1; ok && c < pp->num_classes; c++) {
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(a, o) && cJSON_AddNumberToObject(o, "class", c) &&
             cJSON_AddBoolToObject(o, "keep_largest", pp->keep_largest[c]) &&
             cJSON_AddNumberToObject(o, "min_size", (double)pp->min_size[c]);
        for (int k = 0; ok && k < 2; k++) {
            double v = k ? pp->dice_after[c] : pp->dice_before[c];
            const char *key = k ? "val_dice_after" : "val_dice_before";
            ok = isfinite(v) ? cJSON_AddNumberToObject(o, key, v) != NULL : cJSON_AddNullToObject(o, key) != NULL;
        }
    }
    sl_status st = sl_json_file_write(path, ok ? root : NULL, 1, "postprocess", msg, msglen);
    cJSON_Delete(root);
    return st;
}

static int json_int(const cJSON *it, int64_t lo, int64_t hi, int64_t *v)
{
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= (double)lo && it->valuedouble <= (double)hi) ||
        it->valuedouble != floor(it->valuedouble))
        return 0;
    *v = (int64_t)it->valuedouble;
    return 1;
}

/* One entry of "classes" into pp. */
static sl_status load_class(const cJSON *o, sl_postprocess *pp, const char *path, int i, char *msg, size_t msglen)
{
    int64_t c = 0, ms = 0;
    const cJSON *kc = cJSON_GetObjectItemCaseSensitive(o, "class"), *kl = cJSON_GetObjectItemCaseSensitive(o, "keep_largest"),
                *km = cJSON_GetObjectItemCaseSensitive(o, "min_size");
    if (!cJSON_IsObject(o) || !json_int(kc, 1, pp->num_classes - 1, &c))
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: classes[%d] needs \"class\" in 1..%d", path, i, pp->num_classes - 1);
    if ((kl && !cJSON_IsBool(kl)) || (km && !json_int(km, 0, INT64_MAX / 2, &ms)))
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: classes[%d]: keep_largest must be true/false, min_size an integer >= 0", path, i);
    for (const cJSON *k = o->child; k; k = k->next)
        if (strcmp(k->string, "class") && strcmp(k->string, "keep_largest") && strcmp(k->string, "min_size") &&
            strcmp(k->string, "val_dice_before") && strcmp(k->string, "val_dice_after"))
            return sl_errf(msg, msglen, SL_EUNKNOWN, "%s: classes[%d]: unknown key '%s'", path, i, k->string);
    pp->keep_largest[c] = kl && cJSON_IsTrue(kl);
    pp->min_size[c] = ms;
    return SL_OK;
}

sl_status sl_postprocess_load(sl_postprocess *pp, const char *path, char *msg, size_t msglen)
{
    if (!pp || !path) return sl_errf(msg, msglen, SL_EINVAL, "postprocess: NULL argument");
    unsigned char *data = NULL;
    size_t len = 0;
    sl_status st = sl_file_read(path, &data, &len, msg, msglen);
    if (st != SL_OK) return st;
    cJSON *root = cJSON_ParseWithLength((const char *)data, len);
    free(data);
    memset(pp, 0, sizeof *pp);
    for (int c = 0; c < SL_DATA_MAX_CLASSES; c++) pp->dice_before[c] = pp->dice_after[c] = NAN;
    int64_t C = 0;
    const cJSON *cl = root ? cJSON_GetObjectItemCaseSensitive(root, "classes") : NULL,
                *con = root ? cJSON_GetObjectItemCaseSensitive(root, "connectivity") : NULL;
    if (!cJSON_IsObject(root) || !json_int(cJSON_GetObjectItemCaseSensitive(root, "num_classes"), 2, SL_DATA_MAX_CLASSES, &C) ||
        !cJSON_IsArray(cl) || (con && !(cJSON_IsString(con) && !strcmp(con->valuestring, "full")))) {
        cJSON_Delete(root);
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: not a post-processing rule (num_classes, connectivity \"full\", classes)", path);
    }
    pp->num_classes = (int)C;
    int i = 0;
    for (const cJSON *o = cl->child; o && st == SL_OK; o = o->next, i++) st = load_class(o, pp, path, i, msg, msglen);
    cJSON_Delete(root);
    return st;
}

sl_status sl_postprocess_apply_array(const sl_postprocess *pp, sl_array *labels, char *msg, size_t msglen)
{
    if (!labels || !labels->data || (labels->ndim != 2 && labels->ndim != 3) ||
        (labels->dtype != SL_DT_U8 && labels->dtype != SL_DT_I16 && labels->dtype != SL_DT_I32))
        return sl_errf(msg, msglen, SL_EINVAL, "postprocess: needs a 2-D or 3-D uint8/int16/int32 label map");
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = labels->ndim;
    int64_t N = 1;
    for (int a = 0; a < g.ndim; a++) N *= (g.shape[a] = labels->shape[a]);
    int32_t *l = labels->dtype == SL_DT_I32 ? labels->data : sl_malloc(N, sizeof *l);
    if (!l) return sl_errf(msg, msglen, SL_ENOMEM, "postprocess: out of memory");
    for (int64_t i = 0; l != labels->data && i < N; i++)
        l[i] = labels->dtype == SL_DT_U8 ? ((const uint8_t *)labels->data)[i] : ((const int16_t *)labels->data)[i];
    for (int64_t i = 0; i < N; i++)
        if (l[i] < 0 || l[i] >= pp->num_classes) {
            const int bad = (int)l[i];
            if (l != labels->data) free(l);
            return sl_errf(msg, msglen, SL_ERANGE, "postprocess: label %d but the rule has %d classes", bad, pp->num_classes);
        }
    sl_status st = sl_postprocess_apply(pp, l, &g, msg, msglen);
    for (int64_t i = 0; st == SL_OK && l != labels->data && i < N; i++) {
        if (labels->dtype == SL_DT_U8) ((uint8_t *)labels->data)[i] = (uint8_t)l[i];
        else ((int16_t *)labels->data)[i] = (int16_t)l[i];
    }
    if (l != labels->data) free(l);
    return st;
}

/* ------------------------------------------------------------- a run's rule */

/* Validation labels of a finished run: samples as the dataset gives them
 * (normalised as the net saw them), predicted without TTA: 2-D by padded
 * forwards (the trainer's validation), 3-D through sl_predict_image with the
 * normalisation switched off. */
static sl_status predict_val(sl_unet *net, const sl_preproc *pp, const sl_dataset_info *in, const float *img, int64_t vox,
                             int32_t *pred, int threads, char *msg, size_t msglen)
{
    const int64_t nv = in->n[SL_SPLIT_VAL];
    sl_predict_opts po = SL_PREDICT_OPTS_DEFAULT;
    po.threads = threads;
    if (in->spatial_ndim == 2) return sl_predict_slices(net, img, nv, in->size[0], in->size[1], &po, NULL, pred, msg, msglen);
    sl_preproc q = *pp;
    q.norm = SL_INTENSITY_NONE;
    for (int64_t i = 0; i < nv; i++) {
        sl_array a = {SL_DT_F32, 3, {in->size[0], in->size[1], in->size[2]}, (void *)(img + i * vox)}, lab = SL_ARRAY_EMPTY;
        sl_status st = sl_predict_image(net, &q, &a, &po, &lab, msg, msglen);
        if (st != SL_OK) return st;
        for (int64_t v = 0; v < vox; v++)
            pred[i * vox + v] = lab.dtype == SL_DT_U8 ? ((const uint8_t *)lab.data)[v] : ((const int16_t *)lab.data)[v];
        sl_array_free(&lab);
    }
    return SL_OK;
}

sl_status sl_postprocess_fit(sl_unet *net, const sl_preproc *pp, const sl_dataset *ds, int threads, sl_postprocess *out,
                             char *msg, size_t msglen)
{
    if (!net || !pp || !ds || !out) return sl_errf(msg, msglen, SL_EINVAL, "postprocess: NULL argument");
    sl_dataset_info in;
    sl_dataset_get_info(ds, &in);
    const int64_t nv = in.n[SL_SPLIT_VAL];
    int64_t vox = 1;
    for (int a = 0; a < in.spatial_ndim; a++) vox *= in.size[a];
    if (nv < 1) return sl_errf(msg, msglen, SL_EEMPTY, "postprocess: the data has no validation split to choose on");
    float *img = sl_malloc(nv * vox, sizeof *img);
    int32_t *lab = sl_malloc(nv * vox, sizeof *lab), *pred = sl_malloc(nv * vox, sizeof *pred);
    sl_status st = img && lab && pred ? SL_OK : sl_errf(msg, msglen, SL_ENOMEM, "postprocess: out of memory");
    for (int64_t i = 0; i < nv && st == SL_OK; i++) st = sl_dataset_get(ds, SL_SPLIT_VAL, i, img + i * vox, lab + i * vox, msg, msglen);
    if (st == SL_OK) st = predict_val(net, pp, &in, img, vox, pred, threads, msg, msglen);
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = in.spatial_ndim;
    for (int a = 0; a < g.ndim; a++) g.shape[a] = in.size[a];
    if (st == SL_OK) st = sl_postprocess_choose(pred, lab, nv, &g, in.num_classes, out, msg, msglen);
    free(img);
    free(lab);
    free(pred);
    return st;
}

sl_status sl_postprocess_fit_run(const char *run_dir, int threads, sl_postprocess *out, char *msg, size_t msglen)
{
    if (!run_dir || !out) return sl_errf(msg, msglen, SL_EINVAL, "postprocess: NULL argument");
    char pc[SL_TRAIN_TEXT + 32], pm[SL_TRAIN_TEXT + 32], pj[SL_TRAIN_TEXT + 32];
    if (sl_path_join(pc, sizeof pc, run_dir, "config.json") || sl_path_join(pm, sizeof pm, run_dir, "model.bin") ||
        sl_path_join(pj, sizeof pj, run_dir, "postprocess.json"))
        return sl_errf(msg, msglen, SL_EINVAL, "postprocess: run folder path too long");
    sl_train_config cfg;
    sl_preproc pp;
    sl_status st;
    if ((st = sl_train_config_load(&cfg, pc, msg, msglen)) != SL_OK || (st = sl_preproc_load(&pp, NULL, pc, msg, msglen)) != SL_OK)
        return st;
    sl_dataset *ds = NULL;
    sl_unet *net = NULL;
    cfg.data_opts.threads = threads;
    if ((st = sl_dataset_open(&ds, cfg.data, &cfg.data_opts, msg, msglen)) == SL_OK &&
        (st = sl_unet_load(&net, NULL, pm, msg, msglen)) == SL_OK && (st = sl_postprocess_fit(net, &pp, ds, threads, out, msg, msglen)) == SL_OK)
        st = sl_postprocess_save(out, pj, msg, msglen);
    sl_dataset_free(ds);
    sl_unet_free(net);
    return st;
}
