/*
 * The dataset object: opening by source name, the option table, sample
 * access with resizing, per-sample class counts, and the in-memory source.
 *
 * Each opener does all of its reading and checking up front and ends with
 * sld_finish, which computes the class counts of every sample at the sample
 * size. After that the dataset is read-only, so sl_dataset_get is a pure
 * function that any number of threads may call at once.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

const char *sl_split_name(sl_split split)
{
    switch (split) {
    case SL_SPLIT_TRAIN: return "train";
    case SL_SPLIT_VAL: return "val";
    case SL_SPLIT_TEST: return "test";
    }
    return NULL;
}

/* ------------------------------------------------------------ parsing */

int sld_parse_double(const char *s, double *out)
{
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

int sld_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno == ERANGE) return 0;
    *out = (int64_t)v;
    return 1;
}

int sld_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-') return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end || errno == ERANGE) return 0;
    *out = (uint64_t)v;
    return 1;
}

void sld_mean_std(const float *x, int64_t n, double *mean, double *std)
{
    double s = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    double m = n > 0 ? s / (double)n : 0.0;
    for (int64_t i = 0; i < n; i++) ss += ((double)x[i] - m) * ((double)x[i] - m);
    *mean = m;
    *std = n > 0 ? sqrt(ss / (double)n) : 0.0;
}

/* The option table: every field sl_data_opts_set knows, with its type and
 * range. The same ranges are checked again at open (check_opts), so a
 * struct filled in by hand gets the same errors. */
typedef enum { OT_U64, OT_I64, OT_INT, OT_DBL, OT_STR, OT_RESIZE, OT_NORM, OT_SLICES, OT_AXIS } opt_type;

typedef struct opt_field {
    const char *name;
    opt_type type;
    size_t offset;
    size_t size;      /* OT_STR: capacity */
    double lo, hi;    /* inclusive range for numbers */
} opt_field;

#define F(name, type, lo, hi) {#name, type, offsetof(sl_data_opts, name), sizeof(((sl_data_opts *)0)->name), lo, hi}
static const opt_field fields[] = {
    F(seed, OT_U64, 0, 0),
    F(height, OT_I64, 0, 1 << 20),
    F(width, OT_I64, 0, 1 << 20),
    F(resize, OT_RESIZE, 0, 0),
    F(threads, OT_INT, 0, 4096),
    F(val_fraction, OT_DBL, 0, 0.99),
    F(test_fraction, OT_DBL, 0, 0.99),
    F(max_memory_mb, OT_DBL, 1, 1e9),
    F(ratio, OT_STR, 0, 0),
    F(small_fraction, OT_DBL, 0, 0.5),
    F(n_train, OT_I64, 1, 1e9),
    F(n_val, OT_I64, 0, 1e9),
    F(n_test, OT_I64, 0, 1e9),
    F(contrast, OT_DBL, 0, 100),
    F(noise, OT_DBL, 0, 100),
    F(blur, OT_DBL, 0, 20),
    F(bias, OT_DBL, 0, 5),
    F(texture, OT_DBL, 0, 100),
    F(irregularity, OT_DBL, 0, 0.9),
    F(size_jitter, OT_DBL, 0, 2),
    F(p_inside, OT_DBL, 0, 1),
    F(max_lesions, OT_INT, 1, 64),
    F(distractors, OT_DBL, 0, 64),
    F(colin_dir, OT_STR, 0, 0),
    F(min_brain_fraction, OT_DBL, 0, 1),
    F(block, OT_INT, 1, 100000),
    F(gap, OT_INT, 0, 100000),
    F(axis, OT_AXIS, 0, 0),
    F(norm, OT_NORM, 0, 0),
    F(norm_nonzero, OT_INT, 0, 1),
    F(clip_lo, OT_DBL, 0, 100),
    F(clip_hi, OT_DBL, 0, 100),
    F(num_classes, OT_INT, 0, SL_DATA_MAX_CLASSES),
    F(slices, OT_SLICES, 0, 0),
    F(depth, OT_I64, 0, 1 << 20),
    F(volumes, OT_INT, 0, 1),
};
#undef F
#define NFIELDS (sizeof fields / sizeof fields[0])

static const char *resize_names[] = {"crop_pad", "resample", "fit"};
static const char *norm_names[] = {"zscore", "percentile", "none"};
static const char *slice_names[] = {"all", "nonzero", "labelled"};

static int name_index(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) return i;
    return -1;
}

sl_status sl_data_opts_set(sl_data_opts *opts, const char *key, const char *value, char *msg,
                           size_t msglen)
{
    if (!opts || !key || !value) return sl_errf(msg, msglen, SL_EINVAL, "data options: NULL argument");
    const opt_field *f = NULL;
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].name, key) == 0) f = &fields[i];
    if (!f) return sl_errf(msg, msglen, SL_EUNKNOWN, "data option '%s' is unknown", key);
    char *p = (char *)opts + f->offset;
    double d;
    int64_t i64;
    int k;
    switch (f->type) {
    case OT_U64:
        if (!sld_parse_u64(value, (uint64_t *)(void *)p))
            return sl_errf(msg, msglen, SL_EFORMAT, "data option %s: '%s' is not an unsigned integer", key, value);
        return SL_OK;
    case OT_I64:
    case OT_INT:
        if (!sld_parse_i64(value, &i64))
            return sl_errf(msg, msglen, SL_EFORMAT, "data option %s: '%s' is not an integer", key, value);
        if ((double)i64 < f->lo || (double)i64 > f->hi)
            return sl_errf(msg, msglen, SL_ERANGE, "data option %s = %s is outside [%g, %g]", key, value, f->lo, f->hi);
        if (f->type == OT_I64) *(int64_t *)(void *)p = i64;
        else *(int *)(void *)p = (int)i64;
        return SL_OK;
    case OT_DBL:
        if (!sld_parse_double(value, &d))
            return sl_errf(msg, msglen, SL_EFORMAT, "data option %s: '%s' is not a number", key, value);
        if (d < f->lo || d > f->hi)
            return sl_errf(msg, msglen, SL_ERANGE, "data option %s = %s is outside [%g, %g]", key, value, f->lo, f->hi);
        *(double *)(void *)p = d;
        return SL_OK;
    case OT_STR:
        if (strlen(value) >= f->size)
            return sl_errf(msg, msglen, SL_ERANGE, "data option %s: value longer than %zu characters", key, f->size - 1);
        memcpy(p, value, strlen(value) + 1);
        return SL_OK;
    case OT_RESIZE:
        if ((k = name_index(value, resize_names, 3)) < 0)
            return sl_errf(msg, msglen, SL_EFORMAT, "data option resize: '%s' is not crop_pad, resample or fit", value);
        opts->resize = (sl_resize_mode)k;
        return SL_OK;
    case OT_NORM:
        if ((k = name_index(value, norm_names, 3)) < 0)
            return sl_errf(msg, msglen, SL_EFORMAT, "data option norm: '%s' is not zscore, percentile or none", value);
        opts->norm = (sl_intensity_norm)k;
        return SL_OK;
    case OT_SLICES:
        if ((k = name_index(value, slice_names, 3)) < 0)
            return sl_errf(msg, msglen, SL_EFORMAT, "data option slices: '%s' is not all, nonzero or labelled", value);
        opts->slices = (sl_slice_filter)k;
        return SL_OK;
    case OT_AXIS:
        if (strlen(value) != 1 || !strchr("xyz", value[0]))
            return sl_errf(msg, msglen, SL_EFORMAT, "data option axis: '%s' is not x, y or z", value);
        opts->axis = value[0];
        return SL_OK;
    }
    return SL_EINVAL;
}

sl_status sl_data_opts_parse(sl_data_opts *opts, const char *list, char *msg, size_t msglen)
{
    if (!opts || !list) return sl_errf(msg, msglen, SL_EINVAL, "data options: NULL argument");
    char *copy = strdup(list);
    if (!copy) return sl_errf(msg, msglen, SL_ENOMEM, "data options: out of memory");
    sl_status st = SL_OK;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "data options: '%s' is not key=value", item);
            break;
        }
        *eq = '\0';
        if ((st = sl_data_opts_set(opts, item, eq + 1, msg, msglen)) != SL_OK) break;
    }
    free(copy);
    return st;
}

/* Range checks of a struct however it was filled (the table's ranges, the
 * enums, and the relations between fields). */
static sl_status check_opts(const sl_data_opts *o, char *msg, size_t msglen)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        const opt_field *f = &fields[i];
        const char *p = (const char *)o + f->offset;
        double v;
        switch (f->type) {
        case OT_I64: v = (double)*(const int64_t *)(const void *)p; break;
        case OT_INT: v = (double)*(const int *)(const void *)p; break;
        case OT_DBL: v = *(const double *)(const void *)p; break;
        case OT_STR:
            if (!memchr(p, '\0', f->size))
                return sl_errf(msg, msglen, SL_EINVAL, "data option %s is not NUL-terminated", f->name);
            continue;
        default: continue;
        }
        if (!(v >= f->lo && v <= f->hi))
            return sl_errf(msg, msglen, SL_ERANGE, "data option %s = %g is outside [%g, %g]", f->name, v, f->lo, f->hi);
    }
    if ((unsigned)o->resize > SL_RESIZE_FIT) return sl_errf(msg, msglen, SL_EINVAL, "data option resize: unknown mode %d", (int)o->resize);
    if ((unsigned)o->norm > SL_INTENSITY_NONE) return sl_errf(msg, msglen, SL_EINVAL, "data option norm: unknown mode %d", (int)o->norm);
    if ((unsigned)o->slices > SL_SLICES_LABELLED) return sl_errf(msg, msglen, SL_EINVAL, "data option slices: unknown filter %d", (int)o->slices);
    if (o->axis != 'x' && o->axis != 'y' && o->axis != 'z') return sl_errf(msg, msglen, SL_EINVAL, "data option axis must be 'x', 'y' or 'z'");
    if (o->val_fraction + o->test_fraction >= 1.0)
        return sl_errf(msg, msglen, SL_ERANGE, "data options val_fraction + test_fraction = %g must be < 1", o->val_fraction + o->test_fraction);
    if (!(o->clip_lo < o->clip_hi)) return sl_errf(msg, msglen, SL_ERANGE, "data options clip_lo (%g) must be < clip_hi (%g)", o->clip_lo, o->clip_hi);
    if ((o->height == 0) != (o->width == 0))
        return sl_errf(msg, msglen, SL_EINVAL, "data options height and width must both be set or both be 0");
    return SL_OK;
}

/* ------------------------------------------------------------ object */

sl_dataset *sld_alloc(sld_kind kind, const sl_data_opts *opts)
{
    sl_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    static const char *names[] = {"phantom", "colin", "nifti", "arrays"};
    ds->kind = kind;
    snprintf(ds->source, sizeof ds->source, "%s", names[kind]);
    ds->opts = *opts;
    ds->small_class = -1;
    ds->ndim = 2;
    ds->D = 1;
    for (int a = 0; a < 3; a++) ds->spacing[a] = 1.0;
    return ds;
}

sl_status sld_own(sl_dataset *ds, void *buf)
{
    if (ds->nbufs == ds->capbufs) {
        int64_t cap = ds->capbufs ? 2 * ds->capbufs : 16;
        void **nb = realloc(ds->bufs, (size_t)cap * sizeof *nb);
        if (!nb) {
            free(buf);
            return SL_ENOMEM;
        }
        ds->bufs = nb;
        ds->capbufs = cap;
    }
    ds->bufs[ds->nbufs++] = buf;
    return SL_OK;
}

sl_status sld_set_classes(sl_dataset *ds, int num_classes, const char *const *names)
{
    ds->names = calloc((size_t)num_classes, sizeof *ds->names);
    if (!ds->names) return SL_ENOMEM;
    ds->num_classes = num_classes;
    for (int c = 0; c < num_classes; c++) {
        char buf[32];
        const char *nm = names ? names[c] : NULL;
        if (!nm) {
            snprintf(buf, sizeof buf, c == 0 ? "background" : "class%d", c);
            nm = buf;
        }
        if (!(ds->names[c] = strdup(nm))) return SL_ENOMEM;
    }
    return SL_OK;
}

double sld_mb(int64_t voxels) { return (double)voxels * 8.0 / (1024.0 * 1024.0); }

void sl_dataset_free(sl_dataset *ds)
{
    if (!ds) return;
    for (int s = 0; s < SL_NUM_SPLITS; s++) {
        free(ds->counts[s]);
        free(ds->map[s]);
        if (!ds->view) free(ds->slices[s]);
    }
    if (ds->view) { /* the rest is the viewed dataset's */
        free(ds);
        return;
    }
    for (int64_t i = 0; i < ds->nbufs; i++) free(ds->bufs[i]);
    free(ds->bufs);
    if (ds->names)
        for (int c = 0; c < ds->num_classes; c++) free(ds->names[c]);
    free(ds->names);
    if (ds->case_names)
        for (int64_t i = 0; i < ds->ncases; i++) free(ds->case_names[i]);
    free(ds->case_names);
    free(ds);
}

/* Sample (split, index) at the sample size into img/lab (NULL to skip). */
static sl_status get_sample(const sl_dataset *ds, int split, int64_t index, float *img,
                            int32_t *lab)
{
    sld_resolve(ds, &split, &index);
    if (ds->generate) return ds->generate(ds, split, index, img, lab);
    const sld_slice *sl = &ds->slices[split][index];
    if (sl->h == ds->H && sl->w == ds->W) {
        size_t n = (size_t)(ds->H * ds->W);
        if (img) memcpy(img, sl->img, n * sizeof *img);
        if (lab) memcpy(lab, sl->lab, n * sizeof *lab);
        return SL_OK;
    }
    return sl_resize2d(sl->img, sl->lab, sl->h, sl->w, ds->H, ds->W, ds->opts.resize, img, lab);
}

sl_status sld_finish(sl_dataset *ds, char *msg, size_t msglen)
{
    const int C = ds->num_classes;
    const int64_t HW = ds->D * ds->H * ds->W; /* voxels of a sample */
    sl_status st = SL_OK;
    for (int s = 0; s < SL_NUM_SPLITS && st == SL_OK; s++) {
        int64_t n = ds->n[s];
        if (n == 0) continue;
        ds->counts[s] = sl_calloc(n * C, sizeof(int64_t));
        if (!ds->counts[s]) return sl_errf(msg, msglen, SL_ENOMEM, "dataset: out of memory for class counts");
        int64_t *cnt = ds->counts[s];
        int failed = 0;
#pragma omp parallel num_threads(sl_threads(ds->opts.threads))
        {
            int32_t *lab = sl_malloc(HW, sizeof *lab);
            if (!lab) {
#pragma omp atomic write
                failed = 1;
            }
            /* each sample writes its own row of counts: no shared sums */
#pragma omp for schedule(dynamic, 1)
            for (int64_t i = 0; i < n; i++) {
                if (!lab || get_sample(ds, s, i, NULL, lab) != SL_OK) {
#pragma omp atomic write
                    failed = 1;
                    continue;
                }
                int64_t *row = cnt + i * C;
                for (int64_t p = 0; p < HW; p++) row[lab[p]]++;
            }
            free(lab);
        }
        if (failed) st = sl_errf(msg, msglen, SL_ENOMEM, "dataset: out of memory while counting classes");
    }
    if (st != SL_OK) return st;
    /* the smallest non-empty foreground class of the training split */
    int64_t *tot = calloc((size_t)C, sizeof *tot);
    if (!tot) return sl_errf(msg, msglen, SL_ENOMEM, "dataset: out of memory");
    for (int64_t i = 0; i < ds->n[0]; i++)
        for (int c = 0; c < C; c++) tot[c] += ds->counts[0][i * C + c];
    ds->small_class = -1;
    for (int c = 1; c < C; c++)
        if (tot[c] > 0 && (ds->small_class < 0 || tot[c] <= tot[ds->small_class])) ds->small_class = c;
    free(tot);
    return SL_OK;
}

/* ------------------------------------------------------------ public */

sl_status sl_dataset_open(sl_dataset **out, const char *source, const sl_data_opts *opts,
                          char *msg, size_t msglen)
{
    if (out) *out = NULL;
    if (!out || !source) return sl_errf(msg, msglen, SL_EINVAL, "dataset: NULL argument");
    sl_data_opts def = SL_DATA_OPTS_DEFAULT;
    const sl_data_opts *o = opts ? opts : &def;
    sl_status st = check_opts(o, msg, msglen);
    if (st != SL_OK) return st;
    for (int i = 0; i < sld_num_sources; i++) {
        const sld_source *src = &sld_sources[i];
        size_t n = strlen(src->name);
        if (src->has_arg ? strncmp(source, src->name, n) != 0 : strcmp(source, src->name) != 0) continue;
        if (src->has_arg && !source[n])
            return sl_errf(msg, msglen, SL_EINVAL, "dataset: '%s' needs a folder (%sDIR)", src->name, src->name);
        return src->open(out, source + n, o, msg, msglen);
    }
    return sl_errf(msg, msglen, SL_EUNKNOWN, "dataset: unknown source '%s' (phantom, phantom3d, colin or nifti:DIR)", source);
}

sl_status sl_dataset_from_arrays(sl_dataset **out, const float *images, const int32_t *labels,
                                 int64_t n_train, int64_t n_val, int64_t n_test, int64_t height,
                                 int64_t width, int num_classes, const sl_data_opts *opts,
                                 char *msg, size_t msglen)
{
    if (out) *out = NULL;
    if (!out || !images || !labels) return sl_errf(msg, msglen, SL_EINVAL, "dataset arrays: NULL argument");
    if (n_train < 1 || n_val < 0 || n_test < 0 || height < 1 || width < 1)
        return sl_errf(msg, msglen, SL_EINVAL, "dataset arrays: need n_train >= 1, n_val, n_test >= 0, height, width >= 1");
    if (num_classes < 2 || num_classes > SL_DATA_MAX_CLASSES)
        return sl_errf(msg, msglen, SL_EINVAL, "dataset arrays: num_classes %d outside [2, %d]", num_classes, SL_DATA_MAX_CLASSES);
    sl_data_opts def = SL_DATA_OPTS_DEFAULT;
    const sl_data_opts *o = opts ? opts : &def;
    sl_status st = check_opts(o, msg, msglen);
    if (st != SL_OK) return st;
    int64_t N = n_train + n_val + n_test, HW, total;
    if (sl_mul_size(height, width, &HW) || sl_mul_size(N, HW, &total))
        return sl_errf(msg, msglen, SL_EOVERFLOW, "dataset arrays: size overflows");
    for (int64_t i = 0; i < total; i++) {
        if (labels[i] < 0 || labels[i] >= num_classes)
            return sl_errf(msg, msglen, SL_ERANGE, "dataset arrays: label %d at slice %lld pixel %lld is outside [0, %d)",
                           (int)labels[i], (long long)(i / HW), (long long)(i % HW), num_classes);
        if (!isfinite(images[i]))
            return sl_errf(msg, msglen, SL_ENONFINITE, "dataset arrays: non-finite image value at slice %lld pixel %lld",
                           (long long)(i / HW), (long long)(i % HW));
    }
    sl_dataset *ds = sld_alloc(SLD_ARRAYS, o);
    if (!ds) return sl_errf(msg, msglen, SL_ENOMEM, "dataset arrays: out of memory");
    /* sld_own frees the buffer itself when it cannot take it */
    float *img = sl_malloc(total, sizeof *img);
    if (!img || sld_own(ds, img) != SL_OK) goto nomem;
    int32_t *lab = sl_malloc(total, sizeof *lab);
    if (!lab || sld_own(ds, lab) != SL_OK) goto nomem;
    if (sld_set_classes(ds, num_classes, NULL) != SL_OK) goto nomem;
    memcpy(img, images, (size_t)total * sizeof *img);
    memcpy(lab, labels, (size_t)total * sizeof *lab);
    int64_t counts[3] = {n_train, n_val, n_test}, pos = 0;
    for (int s = 0; s < SL_NUM_SPLITS; s++) {
        ds->n[s] = counts[s];
        if (!counts[s]) continue;
        ds->slices[s] = calloc((size_t)counts[s], sizeof(sld_slice));
        if (!ds->slices[s]) goto nomem;
        for (int64_t i = 0; i < counts[s]; i++, pos++) {
            sld_slice *sl = &ds->slices[s][i];
            sl->img = img + pos * HW;
            sl->lab = lab + pos * HW;
            sl->h = height;
            sl->w = width;
            sl->case_index = pos;
            sl->slice = -1;
        }
    }
    ds->H = o->height ? o->height : height;
    ds->W = o->width ? o->width : width;
    if ((st = sld_finish(ds, msg, msglen)) != SL_OK) {
        sl_dataset_free(ds);
        return st;
    }
    *out = ds;
    return SL_OK;
nomem:
    sl_dataset_free(ds);
    return sl_errf(msg, msglen, SL_ENOMEM, "dataset arrays: out of memory");
}

sl_status sl_dataset_get_info(const sl_dataset *ds, sl_dataset_info *info)
{
    if (!ds || !info) return SL_EINVAL;
    memset(info, 0, sizeof *info);
    for (int s = 0; s < SL_NUM_SPLITS; s++) info->n[s] = ds->n[s];
    info->spatial_ndim = ds->ndim;
    if (ds->ndim == 3) {
        info->size[0] = ds->D;
        info->size[1] = ds->H;
        info->size[2] = ds->W;
    } else {
        info->size[0] = ds->H;
        info->size[1] = ds->W;
    }
    info->in_channels = 1;
    info->num_classes = ds->num_classes;
    info->small_class = ds->small_class;
    for (int a = 0; a < SL_MAX_SPATIAL; a++) info->spacing[a] = a < ds->ndim ? ds->spacing[a] : 0.0;
    return SL_OK;
}

const char *sl_dataset_class_name(const sl_dataset *ds, int c)
{
    if (!ds || c < 0 || c >= ds->num_classes) return NULL;
    return ds->names[c];
}

static sl_status check_index(const sl_dataset *ds, sl_split split, int64_t index, int allow_all,
                             char *msg, size_t msglen)
{
    if (!ds) return sl_errf(msg, msglen, SL_EINVAL, "dataset: NULL argument");
    if ((unsigned)split >= SL_NUM_SPLITS) return sl_errf(msg, msglen, SL_EINVAL, "dataset: unknown split %d", (int)split);
    if ((allow_all && index == -1)) return SL_OK;
    if (index < 0 || index >= ds->n[split])
        return sl_errf(msg, msglen, SL_ERANGE, "dataset: %s index %lld outside [0, %lld)", sl_split_name(split),
                       (long long)index, (long long)ds->n[split]);
    return SL_OK;
}

sl_status sl_dataset_get(const sl_dataset *ds, sl_split split, int64_t index, float *image,
                         int32_t *label, char *msg, size_t msglen)
{
    sl_status st = check_index(ds, split, index, 0, msg, msglen);
    if (st != SL_OK) return st;
    st = get_sample(ds, split, index, image, label);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "dataset: out of memory");
    return SL_OK;
}

sl_status sl_dataset_get_at(const sl_dataset *ds, sl_split split, int64_t index, int64_t h,
                            int64_t w, sl_resize_mode mode, float *image, int32_t *label,
                            char *msg, size_t msglen)
{
    sl_status st = check_index(ds, split, index, 0, msg, msglen);
    if (st != SL_OK) return st;
    if (ds->ndim != 2)
        return sl_errf(msg, msglen, SL_EUNSUPPORTED, "dataset: %s samples are volumes; resizing is for 2-D slices",
                       ds->source);
    if (h < 1 || w < 1 || (unsigned)mode > SL_RESIZE_FIT)
        return sl_errf(msg, msglen, SL_EINVAL, "dataset: bad size %lldx%lld or resize mode", (long long)h, (long long)w);
    int rs = split;
    int64_t ri = index;
    sld_resolve(ds, &rs, &ri);
    if (!ds->generate) {
        const sld_slice *sl = &ds->slices[rs][ri];
        return sl_resize2d(sl->img, sl->lab, sl->h, sl->w, h, w, mode, image, label);
    }
    int64_t HW = ds->H * ds->W;
    float *ti = sl_malloc(HW, sizeof *ti);
    int32_t *tl = sl_malloc(HW, sizeof *tl);
    if (!ti || !tl) st = SL_ENOMEM;
    if (st == SL_OK) st = ds->generate(ds, rs, ri, ti, tl);
    if (st == SL_OK) st = sl_resize2d(ti, tl, ds->H, ds->W, h, w, mode, image, label);
    free(ti);
    free(tl);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "dataset: out of memory");
    return SL_OK;
}

sl_status sl_dataset_class_counts(const sl_dataset *ds, sl_split split, int64_t index,
                                  int64_t *counts)
{
    if (!counts) return SL_EINVAL;
    sl_status st = check_index(ds, split, index, 1, NULL, 0);
    if (st != SL_OK) return st;
    const int C = ds->num_classes;
    if (index >= 0) {
        memcpy(counts, ds->counts[split] + index * C, (size_t)C * sizeof *counts);
        return SL_OK;
    }
    memset(counts, 0, (size_t)C * sizeof *counts);
    for (int64_t i = 0; i < ds->n[split]; i++)
        for (int c = 0; c < C; c++) counts[c] += ds->counts[split][i * C + c];
    return SL_OK;
}

sl_status sl_dataset_class_fractions(const sl_dataset *ds, sl_split split, double *frac)
{
    if (!ds || !frac || (unsigned)split >= SL_NUM_SPLITS) return SL_EINVAL;
    const int C = ds->num_classes;
    int64_t *cnt = calloc((size_t)C, sizeof *cnt);
    if (!cnt) return SL_ENOMEM;
    sl_dataset_class_counts(ds, split, -1, cnt);
    double tot = 0.0;
    for (int c = 0; c < C; c++) tot += (double)cnt[c];
    for (int c = 0; c < C; c++) frac[c] = tot > 0 ? (double)cnt[c] / tot : 0.0;
    free(cnt);
    return SL_OK;
}

sl_status sl_dataset_origin(const sl_dataset *ds, sl_split split, int64_t index,
                            sl_sample_origin *origin)
{
    if (!origin) return SL_EINVAL;
    sl_status st = check_index(ds, split, index, 0, NULL, 0);
    if (st != SL_OK) return st;
    memset(origin, 0, sizeof *origin);
    origin->name = ds->source;
    int rs = split;
    sld_resolve(ds, &rs, &index); /* a fold view's sample is its dataset's */
    split = (sl_split)rs;
    if (ds->generate) {
        origin->case_index = -1;
        origin->slice = -1;
        origin->stream = ((uint64_t)split << 56) | (uint64_t)index;
        return SL_OK;
    }
    const sld_slice *sl = &ds->slices[split][index];
    origin->case_index = sl->case_index;
    origin->slice = sl->slice;
    if (ds->case_names) origin->name = ds->case_names[sl->case_index];
    return SL_OK;
}

int sld_block_split(int64_t b, const double share[SL_NUM_SPLITS], int64_t count[SL_NUM_SPLITS])
{
    int best = 0;
    double bd = -1e300;
    for (int s = 0; s < SL_NUM_SPLITS; s++) {
        if (share[s] <= 0) continue;
        double d = share[s] * (double)(b + 1) - (double)count[s];
        if (d > bd + 1e-12) {
            bd = d;
            best = s;
        }
    }
    count[best]++;
    return best;
}
