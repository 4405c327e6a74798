/*
 * The trainer's configuration: names, checks, and config.json.
 *
 * config.json holds the resolved value of every field, not only what a
 * user typed, so a run can be reproduced even if a default changes later.
 * Data options are written from a table of sl_data_opts's fields and read
 * back through sl_data_opts_set (the data module's own parser and range
 * checks), so the two cannot drift apart silently: a key that the data
 * module does not know any more is an error when the file is read.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "jsonfile.h"
#include "train_internal.h"

/* ------------------------------------------------------------------ names */

static const char *const optim_names[] = {"adam", "adamw", "sgd"};
static const char *const sched_names[] = {"constant", "onecycle", "poly"};
static const char *const norm_names[] = {"instance", "batch", "none"};
static const char *const down_names[] = {"maxpool", "strided"};

static int name_find(const char *name, const char *const *names, int n)
{
    if (!name) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

#define NAME_FUNCS(fn_name, fn_parse, type, table)                                       \
    const char *fn_name(type k)                                                          \
    {                                                                                    \
        return (unsigned)k < sizeof table / sizeof *table ? table[k] : NULL;             \
    }                                                                                    \
    sl_status fn_parse(const char *name, type *out)                                      \
    {                                                                                    \
        if (!out) return SL_EINVAL;                                                      \
        int i = name_find(name, table, (int)(sizeof table / sizeof *table));             \
        if (i < 0) return SL_EUNKNOWN;                                                   \
        *out = (type)i;                                                                  \
        return SL_OK;                                                                    \
    }

NAME_FUNCS(sl_train_optim_name, sl_train_optim_parse, sl_optim_kind, optim_names)
NAME_FUNCS(sl_train_sched_name, sl_train_sched_parse, sl_sched_kind, sched_names)
NAME_FUNCS(sl_train_norm_name, sl_train_norm_parse, sl_norm_kind, norm_names)
NAME_FUNCS(sl_train_down_name, sl_train_down_parse, sl_down_kind, down_names)

/* ------------------------------------------------------------------ check */

void slt_optim_config(const sl_train_config *c, sl_optim_config *oc)
{
    sl_optim_config d = SL_OPTIM_CONFIG_DEFAULT;
    *oc = d;
    oc->kind = c->optimizer;
    oc->lr = c->lr;
    oc->weight_decay = c->weight_decay;
    if (c->optimizer == SL_OPTIM_SGD) {
        oc->momentum = c->momentum;
        oc->nesterov = c->momentum > 0;
    }
    oc->clip_norm = c->clip_norm;
    oc->schedule.kind = c->lr_schedule;
    oc->schedule.total_steps = c->epochs * c->steps_per_epoch;
    if (c->pct_start > 0) oc->schedule.pct_start = c->pct_start;
    /* OneCycle rises over pct_start * total - 1 steps; with 3 steps or
     * fewer at the default 0.3 that phase is empty and the schedule is not
     * defined (PyTorch divides by its length). A run that short is a smoke
     * test: it trains at the constant peak rate instead of being refused. */
    if (oc->schedule.kind == SL_SCHED_ONECYCLE && !(oc->schedule.pct_start * (double)oc->schedule.total_steps - 1.0 > 0.0))
        oc->schedule.kind = SL_SCHED_CONSTANT;
}

static int text_ok(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

sl_status sl_train_config_check(const sl_train_config *c, char *msg, size_t msglen)
{
    if (!c) return sl_errf(msg, msglen, SL_EINVAL, "train: NULL configuration");
    if (!text_ok(c->data, sizeof c->data) || !text_ok(c->loss, sizeof c->loss) ||
        !text_ok(c->augment, sizeof c->augment) || !text_ok(c->out_dir, sizeof c->out_dir))
        return sl_errf(msg, msglen, SL_EINVAL, "train: a text field is not NUL-terminated");
    if (!c->data[0]) return sl_errf(msg, msglen, SL_EINVAL, "train: no data source (phantom, phantom3d, colin or nifti:DIR)");
    if (strcmp(c->data, "phantom") && strcmp(c->data, "phantom3d") && strcmp(c->data, "colin") &&
        strcmp(c->data, "colin3d") && strncmp(c->data, "nifti:", 6))
        return sl_errf(msg, msglen, SL_EUNKNOWN, "train: unknown data source '%s' (phantom, phantom3d, colin, colin3d or nifti:DIR)",
                       c->data);
    if (c->depth < 1 || c->depth > 8) return sl_errf(msg, msglen, SL_EINVAL, "train: depth %d is outside [1, 8]", c->depth);
    if (c->base_width < 1 || c->base_width > 4096)
        return sl_errf(msg, msglen, SL_EINVAL, "train: base_width %d is outside [1, 4096]", c->base_width);
    if (c->max_width < 0) return sl_errf(msg, msglen, SL_EINVAL, "train: max_width %d is negative", c->max_width);
    if (!sl_train_norm_name(c->norm)) return sl_errf(msg, msglen, SL_EINVAL, "train: unknown norm %d", (int)c->norm);
    if (!sl_train_down_name(c->down)) return sl_errf(msg, msglen, SL_EINVAL, "train: unknown down %d", (int)c->down);
    if (c->deep_supervision != 0 && c->deep_supervision != 1)
        return sl_errf(msg, msglen, SL_EINVAL, "train: deep_supervision must be 0 or 1");
    if (!sl_train_optim_name(c->optimizer))
        return sl_errf(msg, msglen, SL_EINVAL, "train: unknown optimizer %d", (int)c->optimizer);
    if (!sl_train_sched_name(c->lr_schedule))
        return sl_errf(msg, msglen, SL_EINVAL, "train: unknown lr schedule %d", (int)c->lr_schedule);
    if (!(c->lr > 0) || !isfinite(c->lr)) return sl_errf(msg, msglen, SL_EINVAL, "train: lr %g must be > 0", c->lr);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return sl_errf(msg, msglen, SL_EINVAL, "train: weight_decay %g must be >= 0", c->weight_decay);
    if (!(c->momentum >= 0 && c->momentum < 1))
        return sl_errf(msg, msglen, SL_EINVAL, "train: momentum %g is outside [0, 1)", c->momentum);
    if (!(c->clip_norm >= 0) || !isfinite(c->clip_norm))
        return sl_errf(msg, msglen, SL_EINVAL, "train: clip_norm %g must be >= 0", c->clip_norm);
    if (c->pct_start != 0 && !(c->pct_start > 0 && c->pct_start < 1))
        return sl_errf(msg, msglen, SL_EINVAL, "train: pct_start %g must lie strictly between 0 and 1 (0 = the default 0.3)",
                       c->pct_start);
    if (c->anisotropic != 0 && c->anisotropic != 1)
        return sl_errf(msg, msglen, SL_EINVAL, "train: anisotropic must be 0 or 1");
    if (c->epochs < 1 || c->epochs > 1000000) return sl_errf(msg, msglen, SL_EINVAL, "train: epochs %lld is outside [1, 1e6]", (long long)c->epochs);
    if (c->steps_per_epoch < 1 || c->steps_per_epoch > 100000000)
        return sl_errf(msg, msglen, SL_EINVAL, "train: steps_per_epoch %lld is outside [1, 1e8]", (long long)c->steps_per_epoch);
    if (c->batch_size < 1 || c->batch_size > 4096)
        return sl_errf(msg, msglen, SL_EINVAL, "train: batch_size %lld is outside [1, 4096]", (long long)c->batch_size);
    const int64_t mult = (int64_t)1 << (c->depth - 1);
    for (int a = 0; a < 2; a++) {
        if (c->patch[a] < 0 || c->patch[a] > (1 << 20))
            return sl_errf(msg, msglen, SL_EINVAL, "train: patch %lld is outside [0, 2^20]", (long long)c->patch[a]);
        if (c->patch[a] % mult)
            return sl_errf(msg, msglen, SL_EINVAL, "train: patch %lldx%lld: each side must be a multiple of 2^(depth-1) = %lld",
                           (long long)c->patch[0], (long long)c->patch[1], (long long)mult);
    }
    if ((c->patch[0] == 0) != (c->patch[1] == 0))
        return sl_errf(msg, msglen, SL_EINVAL, "train: patch height and width must both be set or both be 0");
    if (c->patch_depth < 0 || c->patch_depth > (1 << 20) || c->patch_depth % mult)
        return sl_errf(msg, msglen, SL_EINVAL, "train: patch depth %lld: must be a multiple of 2^(depth-1) = %lld in [0, 2^20]",
                       (long long)c->patch_depth, (long long)mult);
    if (c->patch_depth && !c->patch[0])
        return sl_errf(msg, msglen, SL_EINVAL, "train: a patch depth needs the patch height and width too (D,H,W)");
    if (!(c->fg_fraction >= 0 && c->fg_fraction <= 1))
        return sl_errf(msg, msglen, SL_EINVAL, "train: fg_fraction %g is outside [0, 1]", c->fg_fraction);
    if (c->stop_after < 0) return sl_errf(msg, msglen, SL_EINVAL, "train: stop_after must be >= 0");
    if (c->threads < 0) return sl_errf(msg, msglen, SL_EINVAL, "train: threads must be >= 0");
    if (c->resume && c->force) return sl_errf(msg, msglen, SL_EINVAL, "train: resume and force exclude each other");
    if ((c->resume || c->force) && !c->out_dir[0])
        return sl_errf(msg, msglen, SL_EINVAL, "train: resume and force need an output folder");

    /* the parts that other modules parse */
    sl_status st;
    sl_aug_opts aug = SL_AUG_OPTS_DEFAULT;
    if ((st = sl_aug_parse(&aug, c->augment, msg, msglen)) != SL_OK) return st;
    if ((st = sl_aug_check(&aug, msg, msglen)) != SL_OK) return st;
    sl_schedule *s = NULL;
    if ((st = sl_schedule_create(c->loss, &s, msg, msglen)) != SL_OK) return st;
    sl_schedule_free(s);
    sl_unet_config uc = SL_UNET_CONFIG_DEFAULT;
    uc.depth = c->depth;
    uc.base_width = c->base_width;
    uc.max_width = c->max_width;
    uc.norm = c->norm;
    uc.down = c->down;
    uc.deep_supervision = c->deep_supervision;
    uc.num_classes = 2;
    if ((st = sl_unet_config_check(&uc, msg, msglen)) != SL_OK) return st;
    sl_optim_config oc;
    slt_optim_config(c, &oc);
    char sub[300];
    if ((st = sl_optim_config_check(&oc, sub, sizeof sub)) != SL_OK)
        return sl_errf(msg, msglen, st, "train: %s (%lld epochs x %lld steps)", sub, (long long)c->epochs,
                       (long long)c->steps_per_epoch);
    return SL_OK;
}

/* ------------------------------------------------------- data option table */

typedef enum { DT_U64, DT_I64, DT_INT, DT_DBL, DT_STR, DT_RESIZE, DT_NORM, DT_SLICES, DT_AXIS } dtype_t;

typedef struct dfield {
    const char *name;
    dtype_t type;
    size_t offset;
} dfield;

#define F(name, type) {#name, type, offsetof(sl_data_opts, name)}
/* Every field of sl_data_opts except `threads` (speed only). */
static const dfield dfields[] = {
    F(seed, DT_U64), F(height, DT_I64), F(width, DT_I64), F(resize, DT_RESIZE),
    F(val_fraction, DT_DBL), F(test_fraction, DT_DBL), F(max_memory_mb, DT_DBL),
    F(ratio, DT_STR), F(small_fraction, DT_DBL), F(n_train, DT_I64), F(n_val, DT_I64),
    F(n_test, DT_I64), F(contrast, DT_DBL), F(noise, DT_DBL), F(blur, DT_DBL), F(bias, DT_DBL),
    F(texture, DT_DBL), F(irregularity, DT_DBL), F(size_jitter, DT_DBL), F(p_inside, DT_DBL),
    F(max_lesions, DT_INT), F(distractors, DT_DBL), F(colin_dir, DT_STR),
    F(min_brain_fraction, DT_DBL), F(block, DT_INT), F(gap, DT_INT), F(axis, DT_AXIS),
    F(norm, DT_NORM), F(norm_nonzero, DT_INT), F(clip_lo, DT_DBL), F(clip_hi, DT_DBL),
    F(num_classes, DT_INT), F(slices, DT_SLICES), F(depth, DT_I64),
    F(volumes, DT_INT),
};
#undef F
#define NDFIELDS (sizeof dfields / sizeof *dfields)

static const char *const resize_names[] = {"crop_pad", "resample", "fit"};
static const char *const inorm_names[] = {"zscore", "percentile", "none"};
static const char *const slices_names[] = {"all", "nonzero", "labelled"};

static const char *enum_name(const char *const *names, int n, int v)
{
    return v >= 0 && v < n ? names[v] : "?";
}

/* Integers beyond 2^53 do not survive a JSON number: they go as strings. */
static cJSON *add_u64(cJSON *o, const char *key, uint64_t v)
{
    if (v <= ((uint64_t)1 << 53)) return cJSON_AddNumberToObject(o, key, (double)v);
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return cJSON_AddStringToObject(o, key, buf);
}

static cJSON *data_opts_json(const sl_data_opts *d)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (size_t i = 0; i < NDFIELDS; i++) {
        const dfield *f = &dfields[i];
        const void *p = (const char *)d + f->offset;
        cJSON *it = NULL;
        /* depth (3-D sources only) is written when set, so 2-D runs keep
         * the identity they had before it existed */
        if (strcmp(f->name, "depth") == 0 && *(const int64_t *)p == 0) continue;
        if (strcmp(f->name, "volumes") == 0 && *(const int *)p == 0) continue; /* likewise */
        char s[2] = {0, 0};
        switch (f->type) {
        case DT_U64: it = add_u64(o, f->name, *(const uint64_t *)p); break;
        case DT_I64: it = cJSON_AddNumberToObject(o, f->name, (double)*(const int64_t *)p); break;
        case DT_INT: it = cJSON_AddNumberToObject(o, f->name, (double)*(const int *)p); break;
        case DT_DBL: it = cJSON_AddNumberToObject(o, f->name, *(const double *)p); break;
        case DT_STR: it = cJSON_AddStringToObject(o, f->name, (const char *)p); break;
        case DT_RESIZE: it = cJSON_AddStringToObject(o, f->name, enum_name(resize_names, 3, (int)*(const sl_resize_mode *)p)); break;
        case DT_NORM: it = cJSON_AddStringToObject(o, f->name, enum_name(inorm_names, 3, (int)*(const sl_intensity_norm *)p)); break;
        case DT_SLICES: it = cJSON_AddStringToObject(o, f->name, enum_name(slices_names, 3, (int)*(const sl_slice_filter *)p)); break;
        case DT_AXIS:
            s[0] = (char)*(const int *)p;
            it = cJSON_AddStringToObject(o, f->name, s);
            break;
        }
        if (!it) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* The text form of a JSON scalar, as sl_data_opts_set / sl_aug_opts_set take it. */
static int scalar_text(const cJSON *it, char *buf, size_t len)
{
    if (cJSON_IsString(it)) {
        snprintf(buf, len, "%s", it->valuestring);
        return 1;
    }
    if (cJSON_IsBool(it)) {
        snprintf(buf, len, "%d", cJSON_IsTrue(it) ? 1 : 0);
        return 1;
    }
    if (cJSON_IsNumber(it)) {
        double v = it->valuedouble;
        if (v == floor(v) && fabs(v) < 9.0e15) snprintf(buf, len, "%.0f", v);
        else snprintf(buf, len, "%.17g", v);
        return 1;
    }
    return 0;
}

/* ----------------------------------------------------------- to JSON */

cJSON *slt_config_json(const sl_train_config *c)
{
    cJSON *root = cJSON_CreateObject(), *o = NULL;
    if (!root) return NULL;
    int ok = cJSON_AddStringToObject(root, "format", "segloss-train-config") &&
             cJSON_AddNumberToObject(root, "version", 1) && cJSON_AddStringToObject(root, "data", c->data);
    cJSON *dj = ok ? data_opts_json(&c->data_opts) : NULL;
    ok = ok && dj;
    if (dj) cJSON_AddItemToObject(root, "data_opts", dj);
    ok = ok && (o = cJSON_AddObjectToObject(root, "network")) && cJSON_AddNumberToObject(o, "depth", c->depth) &&
         cJSON_AddNumberToObject(o, "base_width", c->base_width) &&
         cJSON_AddNumberToObject(o, "max_width", c->max_width) &&
         cJSON_AddStringToObject(o, "norm", sl_train_norm_name(c->norm) ? sl_train_norm_name(c->norm) : "?") &&
         cJSON_AddStringToObject(o, "down", sl_train_down_name(c->down) ? sl_train_down_name(c->down) : "?") &&
         cJSON_AddBoolToObject(o, "deep_supervision", c->deep_supervision != 0);
    /* written only when off, so runs before the field keep their identity */
    if (ok && !c->anisotropic) ok = cJSON_AddBoolToObject(o, "anisotropic", 0) != NULL;
    ok = ok && cJSON_AddStringToObject(root, "loss", c->loss);
    ok = ok && (o = cJSON_AddObjectToObject(root, "optimizer")) &&
         cJSON_AddStringToObject(o, "kind", sl_train_optim_name(c->optimizer) ? sl_train_optim_name(c->optimizer) : "?") &&
         cJSON_AddNumberToObject(o, "lr", c->lr) && cJSON_AddNumberToObject(o, "weight_decay", c->weight_decay) &&
         cJSON_AddNumberToObject(o, "momentum", c->momentum) && cJSON_AddNumberToObject(o, "clip_norm", c->clip_norm) &&
         cJSON_AddStringToObject(o, "lr_schedule", sl_train_sched_name(c->lr_schedule) ? sl_train_sched_name(c->lr_schedule) : "?");
    if (ok && c->pct_start > 0) ok = cJSON_AddNumberToObject(o, "pct_start", c->pct_start) != NULL; /* only when set */
    cJSON *patch = NULL;
    ok = ok && (o = cJSON_AddObjectToObject(root, "training")) && cJSON_AddNumberToObject(o, "epochs", (double)c->epochs) &&
         cJSON_AddNumberToObject(o, "steps_per_epoch", (double)c->steps_per_epoch) &&
         cJSON_AddNumberToObject(o, "batch_size", (double)c->batch_size) && (patch = cJSON_AddArrayToObject(o, "patch"));
    if (ok) {
        /* [d, h, w] for a 3-D patch; [h, w] otherwise (the identity of 2-D runs) */
        if (c->patch_depth) {
            cJSON *n = cJSON_CreateNumber((double)c->patch_depth);
            ok = n && cJSON_AddItemToArray(patch, n);
        }
        for (int a = 0; a < 2 && ok; a++) {
            cJSON *n = cJSON_CreateNumber((double)c->patch[a]);
            ok = n && cJSON_AddItemToArray(patch, n);
        }
    }
    ok = ok && cJSON_AddNumberToObject(o, "fg_fraction", c->fg_fraction) &&
         cJSON_AddStringToObject(o, "augment", c->augment) && add_u64(o, "seed", c->seed);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

sl_status sl_train_config_to_json(const sl_train_config *cfg, char **json)
{
    if (!cfg || !json) return SL_EINVAL;
    *json = NULL;
    cJSON *root = slt_config_json(cfg);
    if (!root) return SL_ENOMEM;
    *json = cJSON_Print(root);
    cJSON_Delete(root);
    return *json ? SL_OK : SL_ENOMEM;
}

/* ----------------------------------------------------------- from JSON */

static const cJSON *member(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static sl_status want_number(const cJSON *it, const char *path, double lo, double hi, int integral, double *out,
                             char *msg, size_t msglen)
{
    if (!cJSON_IsNumber(it)) return sl_errf(msg, msglen, SL_EFORMAT, "config: %s must be a number", path);
    double v = it->valuedouble;
    if (!isfinite(v) || v < lo || v > hi || (integral && v != floor(v)))
        return sl_errf(msg, msglen, SL_ERANGE, "config: %s = %g is not %s in [%g, %g]", path, v,
                       integral ? "an integer" : "a number", lo, hi);
    *out = v;
    return SL_OK;
}

static sl_status want_text(const cJSON *it, const char *path, char *dst, size_t cap, char *msg, size_t msglen)
{
    if (!cJSON_IsString(it)) return sl_errf(msg, msglen, SL_EFORMAT, "config: %s must be a string", path);
    if (strlen(it->valuestring) >= cap)
        return sl_errf(msg, msglen, SL_ERANGE, "config: %s is longer than %zu characters", path, cap - 1);
    snprintf(dst, cap, "%s", it->valuestring);
    return SL_OK;
}

static sl_status want_u64(const cJSON *it, const char *path, uint64_t *out, char *msg, size_t msglen)
{
    if (cJSON_IsString(it)) {
        char *end;
        unsigned long long v = strtoull(it->valuestring, &end, 10);
        if (!it->valuestring[0] || *end || it->valuestring[0] == '-')
            return sl_errf(msg, msglen, SL_EFORMAT, "config: %s '%s' is not an unsigned integer", path, it->valuestring);
        *out = (uint64_t)v;
        return SL_OK;
    }
    double v = 0.0;
    sl_status st = want_number(it, path, 0, 9007199254740992.0, 1, &v, msg, msglen);
    if (st == SL_OK) *out = (uint64_t)v;
    return st;
}

/* Every member of o must be one of the names. */
static sl_status only_keys(const cJSON *o, const char *section, const char *const *keys, int n, char *msg, size_t msglen)
{
    if (!cJSON_IsObject(o)) return sl_errf(msg, msglen, SL_EFORMAT, "config: %s must be an object", section);
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        if (name_find(it->string, keys, n) < 0)
            return sl_errf(msg, msglen, SL_EUNKNOWN, "config: unknown key %s%s%s", section[0] ? section : "",
                           section[0] ? "." : "", it->string ? it->string : "?");
    }
    return SL_OK;
}

sl_status slt_config_apply(sl_train_config *c, const cJSON *root, char *msg, size_t msglen)
{
    static const char *const top[] = {"format", "version", "segloss_version", "data", "data_opts", "network",
                                      "loss", "optimizer", "training", "dataset", "predict", "run"};
    static const char *const netk[] = {"depth", "base_width", "max_width", "norm", "down", "deep_supervision",
                                       "anisotropic"};
    static const char *const optk[] = {"kind", "lr", "weight_decay", "momentum", "clip_norm", "lr_schedule",
                                       "pct_start"};
    static const char *const trk[] = {"epochs", "steps_per_epoch", "batch_size", "patch", "fg_fraction", "augment", "seed"};
    sl_status st;
    double v = 0.0;
    const cJSON *it, *o;
    if ((st = only_keys(root, "", top, 12, msg, msglen)) != SL_OK) return st;
    if ((it = member(root, "format")) &&
        (!cJSON_IsString(it) || strcmp(it->valuestring, "segloss-train-config") != 0))
        return sl_errf(msg, msglen, SL_EFORMAT, "config: format is not \"segloss-train-config\"");
    if ((it = member(root, "version")) && (!cJSON_IsNumber(it) || it->valuedouble != 1))
        return sl_errf(msg, msglen, SL_EFORMAT, "config: version %g is not 1 (written by a newer segloss?)",
                       cJSON_IsNumber(it) ? it->valuedouble : -1.0);
    if ((it = member(root, "data")) && (st = want_text(it, "data", c->data, sizeof c->data, msg, msglen)) != SL_OK) return st;
    if ((it = member(root, "loss")) && (st = want_text(it, "loss", c->loss, sizeof c->loss, msg, msglen)) != SL_OK) return st;

    if ((o = member(root, "data_opts"))) {
        if (!cJSON_IsObject(o)) return sl_errf(msg, msglen, SL_EFORMAT, "config: data_opts must be an object");
        cJSON_ArrayForEach(it, o)
        {
            char text[1024];
            if (!it->string) continue;
            if (strcmp(it->string, "threads") == 0) continue; /* speed only; not reproduced */
            if (!scalar_text(it, text, sizeof text))
                return sl_errf(msg, msglen, SL_EFORMAT, "config: data_opts.%s must be a number or a string", it->string);
            char sub[384];
            if ((st = sl_data_opts_set(&c->data_opts, it->string, text, sub, sizeof sub)) != SL_OK)
                return sl_errf(msg, msglen, st, "config: %s", sub);
        }
    }
    if ((o = member(root, "network"))) {
        if ((st = only_keys(o, "network", netk, 7, msg, msglen)) != SL_OK) return st;
        if ((it = member(o, "depth"))) {
            if ((st = want_number(it, "network.depth", 1, 8, 1, &v, msg, msglen)) != SL_OK) return st;
            c->depth = (int)v;
        }
        if ((it = member(o, "base_width"))) {
            if ((st = want_number(it, "network.base_width", 1, 4096, 1, &v, msg, msglen)) != SL_OK) return st;
            c->base_width = (int)v;
        }
        if ((it = member(o, "max_width"))) {
            if ((st = want_number(it, "network.max_width", 0, 1 << 20, 1, &v, msg, msglen)) != SL_OK) return st;
            c->max_width = (int)v;
        }
        if ((it = member(o, "norm")) && (!cJSON_IsString(it) || sl_train_norm_parse(it->valuestring, &c->norm)))
            return sl_errf(msg, msglen, SL_EFORMAT, "config: network.norm must be instance, batch or none");
        if ((it = member(o, "down")) && (!cJSON_IsString(it) || sl_train_down_parse(it->valuestring, &c->down)))
            return sl_errf(msg, msglen, SL_EFORMAT, "config: network.down must be maxpool or strided");
        if ((it = member(o, "deep_supervision"))) {
            if (!cJSON_IsBool(it)) return sl_errf(msg, msglen, SL_EFORMAT, "config: network.deep_supervision must be true or false");
            c->deep_supervision = cJSON_IsTrue(it) ? 1 : 0;
        }
        if ((it = member(o, "anisotropic"))) {
            if (!cJSON_IsBool(it)) return sl_errf(msg, msglen, SL_EFORMAT, "config: network.anisotropic must be true or false");
            c->anisotropic = cJSON_IsTrue(it) ? 1 : 0;
        }
    }
    if ((o = member(root, "optimizer"))) {
        if ((st = only_keys(o, "optimizer", optk, 7, msg, msglen)) != SL_OK) return st;
        if ((it = member(o, "kind")) && (!cJSON_IsString(it) || sl_train_optim_parse(it->valuestring, &c->optimizer)))
            return sl_errf(msg, msglen, SL_EFORMAT, "config: optimizer.kind must be adam, adamw or sgd");
        if ((it = member(o, "lr_schedule")) && (!cJSON_IsString(it) || sl_train_sched_parse(it->valuestring, &c->lr_schedule)))
            return sl_errf(msg, msglen, SL_EFORMAT, "config: optimizer.lr_schedule must be constant, onecycle or poly");
        if ((it = member(o, "lr")) && (st = want_number(it, "optimizer.lr", 0, 1e6, 0, &c->lr, msg, msglen)) != SL_OK) return st;
        if ((it = member(o, "weight_decay")) &&
            (st = want_number(it, "optimizer.weight_decay", 0, 1e6, 0, &c->weight_decay, msg, msglen)) != SL_OK)
            return st;
        if ((it = member(o, "momentum")) && (st = want_number(it, "optimizer.momentum", 0, 1, 0, &c->momentum, msg, msglen)) != SL_OK)
            return st;
        if ((it = member(o, "clip_norm")) &&
            (st = want_number(it, "optimizer.clip_norm", 0, 1e30, 0, &c->clip_norm, msg, msglen)) != SL_OK)
            return st;
        if ((it = member(o, "pct_start"))) {
            if ((st = want_number(it, "optimizer.pct_start", 0, 1, 0, &c->pct_start, msg, msglen)) != SL_OK) return st;
            if (!(c->pct_start > 0 && c->pct_start < 1))
                return sl_errf(msg, msglen, SL_ERANGE, "config: optimizer.pct_start %g must lie strictly between 0 and 1",
                               c->pct_start);
        }
    }
    if ((o = member(root, "training"))) {
        if ((st = only_keys(o, "training", trk, 7, msg, msglen)) != SL_OK) return st;
        if ((it = member(o, "epochs"))) {
            if ((st = want_number(it, "training.epochs", 1, 1e6, 1, &v, msg, msglen)) != SL_OK) return st;
            c->epochs = (int64_t)v;
        }
        if ((it = member(o, "steps_per_epoch"))) {
            if ((st = want_number(it, "training.steps_per_epoch", 1, 1e8, 1, &v, msg, msglen)) != SL_OK) return st;
            c->steps_per_epoch = (int64_t)v;
        }
        if ((it = member(o, "batch_size"))) {
            if ((st = want_number(it, "training.batch_size", 1, 4096, 1, &v, msg, msglen)) != SL_OK) return st;
            c->batch_size = (int64_t)v;
        }
        if ((it = member(o, "patch"))) {
            const int np = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : 0;
            if (np != 2 && np != 3)
                return sl_errf(msg, msglen, SL_EFORMAT, "config: training.patch must be [h, w] or [d, h, w]");
            c->patch_depth = 0;
            for (int a = 0; a < np; a++) {
                if ((st = want_number(cJSON_GetArrayItem(it, a), "training.patch", 0, 1 << 20, 1, &v, msg, msglen)) != SL_OK)
                    return st;
                if (np == 3 && a == 0) c->patch_depth = (int64_t)v;
                else c->patch[a - (np - 2)] = (int64_t)v;
            }
        }
        if ((it = member(o, "fg_fraction")) &&
            (st = want_number(it, "training.fg_fraction", 0, 1, 0, &c->fg_fraction, msg, msglen)) != SL_OK)
            return st;
        if ((it = member(o, "augment")) &&
            (st = want_text(it, "training.augment", c->augment, sizeof c->augment, msg, msglen)) != SL_OK)
            return st;
        if ((it = member(o, "seed")) && (st = want_u64(it, "training.seed", &c->seed, msg, msglen)) != SL_OK) return st;
    }
    return SL_OK;
}

sl_status sl_train_config_parse(sl_train_config *cfg, const char *json, char *msg, size_t msglen)
{
    if (!cfg || !json) return sl_errf(msg, msglen, SL_EINVAL, "config: NULL argument");
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        return sl_errf(msg, msglen, SL_EFORMAT, "config: not valid JSON (near '%.20s')", at ? at : "?");
    }
    sl_train_config c = SL_TRAIN_CONFIG_DEFAULT;
    sl_status st = slt_config_apply(&c, root, msg, msglen);
    cJSON_Delete(root);
    if (st == SL_OK) *cfg = c;
    return st;
}

sl_status sl_train_config_load(sl_train_config *cfg, const char *path, char *msg, size_t msglen)
{
    if (!cfg || !path) return sl_errf(msg, msglen, SL_EINVAL, "config: NULL argument");
    unsigned char *data;
    size_t len;
    sl_status st = sl_file_read(path, &data, &len, msg, msglen);
    if (st != SL_OK) return st;
    if (strlen((const char *)data) != len) {
        free(data);
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: not a text file", path);
    }
    char sub[400];
    st = sl_train_config_parse(cfg, (const char *)data, sub, sizeof sub);
    free(data);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "%s: %s", path, sub);
    return SL_OK;
}

/* ----------------------------------------------------------- compare */

int slt_config_diff(const cJSON *a, const cJSON *b, const char *prefix, char *buf, size_t buflen)
{
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, a)
        {
            char path[256];
            snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", it->string);
            const cJSON *o = member(b, it->string);
            if (!o) {
                snprintf(buf, buflen, "%s is missing from one of them", path);
                return 1;
            }
            if (slt_config_diff(it, o, path, buf, buflen)) return 1;
        }
        cJSON_ArrayForEach(it, b)
        {
            if (!member(a, it->string)) {
                snprintf(buf, buflen, "%s%s%s is missing from one of them", prefix, prefix[0] ? "." : "", it->string);
                return 1;
            }
        }
        return 0;
    }
    if (cJSON_Compare(a, b, 1)) return 0;
    char *pa = cJSON_PrintUnformatted(a), *pb = cJSON_PrintUnformatted(b);
    snprintf(buf, buflen, "%s: %.200s vs %.200s", prefix, pa ? pa : "?", pb ? pb : "?");
    free(pa);
    free(pb);
    return 1;
}

/* ----------------------------------------------------------- preproc JSON */

static const char *const mask_names[] = {"all", "nonzero", "positive"};

cJSON *slt_preproc_json(const sl_preproc *pp)
{
    cJSON *o = cJSON_CreateObject(), *sz = NULL;
    char ax[2] = {(char)pp->axis, 0};
    int ok = o && cJSON_AddStringToObject(o, "norm", enum_name(inorm_names, 3, (int)pp->norm)) &&
             cJSON_AddStringToObject(o, "mask", enum_name(mask_names, 3, (int)pp->mask)) &&
             cJSON_AddStringToObject(o, "scope", pp->per_slice ? "slice" : "volume") &&
             cJSON_AddNumberToObject(o, "clip_lo", pp->clip_lo) && cJSON_AddNumberToObject(o, "clip_hi", pp->clip_hi) &&
             cJSON_AddStringToObject(o, "axis", ax) &&
             cJSON_AddStringToObject(o, "resize", enum_name(resize_names, 3, (int)pp->resize)) &&
             (sz = cJSON_AddArrayToObject(o, "size"));
    for (int a = 0; ok && a < 2; a++) {
        cJSON *n = cJSON_CreateNumber((double)pp->size[a]);
        ok = n && cJSON_AddItemToArray(sz, n);
    }
    /* the sliding window of a 3-D model; absent for 2-D ones */
    if (ok && pp->patch[0] > 0) {
        cJSON *pa = cJSON_AddArrayToObject(o, "patch");
        ok = pa != NULL;
        for (int a = 0; ok && a < 3; a++) {
            cJSON *n = cJSON_CreateNumber((double)pp->patch[a]);
            ok = n && cJSON_AddItemToArray(pa, n);
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

sl_status slt_preproc_from_json(sl_preproc *pp, const cJSON *o, char *msg, size_t msglen)
{
    const cJSON *it;
    int k;
    memset(pp, 0, sizeof *pp);
    if (!cJSON_IsObject(o)) return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing must be an object");
    if (!(it = member(o, "norm")) || !cJSON_IsString(it) || (k = name_find(it->valuestring, inorm_names, 3)) < 0)
        return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.norm must be zscore, percentile or none");
    pp->norm = (sl_intensity_norm)k;
    if (!(it = member(o, "mask")) || !cJSON_IsString(it) || (k = name_find(it->valuestring, mask_names, 3)) < 0)
        return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.mask must be all, nonzero or positive");
    pp->mask = (sl_preproc_mask)k;
    if (!(it = member(o, "scope")) || !cJSON_IsString(it) ||
        (strcmp(it->valuestring, "slice") && strcmp(it->valuestring, "volume")))
        return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.scope must be slice or volume");
    pp->per_slice = strcmp(it->valuestring, "slice") == 0;
    if (!(it = member(o, "clip_lo")) || !cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble <= 100))
        return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.clip_lo must be a percentile");
    pp->clip_lo = it->valuedouble;
    if (!(it = member(o, "clip_hi")) || !cJSON_IsNumber(it) || !(it->valuedouble > pp->clip_lo && it->valuedouble <= 100))
        return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.clip_hi must be a percentile above clip_lo");
    pp->clip_hi = it->valuedouble;
    if (!(it = member(o, "axis")) || !cJSON_IsString(it) || strlen(it->valuestring) != 1 ||
        !strchr("xyz", it->valuestring[0]))
        return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.axis must be x, y or z");
    pp->axis = it->valuestring[0];
    if (!(it = member(o, "resize")) || !cJSON_IsString(it) || (k = name_find(it->valuestring, resize_names, 3)) < 0)
        return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.resize must be crop_pad, resample or fit");
    pp->resize = (sl_resize_mode)k;
    if (!(it = member(o, "size")) || !cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2)
        return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.size must be [h, w]");
    for (int a = 0; a < 2; a++) {
        const cJSON *n = cJSON_GetArrayItem(it, a);
        if (!cJSON_IsNumber(n) || !(n->valuedouble >= 1 && n->valuedouble <= (1 << 20)) || n->valuedouble != floor(n->valuedouble))
            return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.size must be two positive integers");
        pp->size[a] = (int64_t)n->valuedouble;
    }
    if ((it = member(o, "patch"))) {
        if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3)
            return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.patch must be [d, h, w]");
        for (int a = 0; a < 3; a++) {
            const cJSON *n = cJSON_GetArrayItem(it, a);
            if (!cJSON_IsNumber(n) || !(n->valuedouble >= 1 && n->valuedouble <= (1 << 20)) ||
                n->valuedouble != floor(n->valuedouble))
                return sl_errf(msg, msglen, SL_EFORMAT, "config: predict.preprocessing.patch must be three positive integers");
            pp->patch[a] = (int64_t)n->valuedouble;
        }
    }
    return SL_OK;
}

sl_status sl_preproc_load(sl_preproc *pp, int *num_classes, const char *path, char *msg, size_t msglen)
{
    if (!pp || !path) return sl_errf(msg, msglen, SL_EINVAL, "config: NULL argument");
    if (num_classes) *num_classes = 0;
    cJSON *root;
    sl_status st = sl_json_file_read(path, &root, msg, msglen);
    if (st != SL_OK) return st;
    sl_train_config c = SL_TRAIN_CONFIG_DEFAULT;
    char sub[400];
    if ((st = slt_config_apply(&c, root, sub, sizeof sub)) != SL_OK) goto done;
    const cJSON *ds = member(root, "dataset"), *pr = member(root, "predict"), *it;
    if (num_classes && ds && (it = member(ds, "num_classes")) && cJSON_IsNumber(it) && it->valuedouble >= 1 &&
        it->valuedouble <= 65536)
        *num_classes = (int)it->valuedouble;
    if (pr && (it = member(pr, "preprocessing"))) st = slt_preproc_from_json(pp, it, sub, sizeof sub);
    else st = sl_preproc_from_config(pp, &c, 0, 0, sub, sizeof sub);
    /* a 3-D run's window: the predict section's patch, else the training patch given */
    if (st == SL_OK && pp->patch[0] == 0 && c.patch_depth > 0) {
        pp->patch[0] = c.patch_depth;
        pp->patch[1] = c.patch[0];
        pp->patch[2] = c.patch[1];
    }
done:
    cJSON_Delete(root);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "%s: %s", path, sub);
    return SL_OK;
}
