/*
 * Options of the metrics: defaults, validation, the one-line description
 * that every output carries, names and parsers, and label-map helpers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "metrics_internal.h"

sl_status sl_metric_opts_check(const sl_metric_opts *o, char *msg, size_t msglen)
{
    if (!o) return sl_errf(msg, msglen, SL_EINVAL, "metric options are NULL");
    if (o->metrics & ~SL_MET_ALL)
        return sl_errf(msg, msglen, SL_EINVAL, "metrics: unknown group bits 0x%x", o->metrics & ~SL_MET_ALL);
    if ((int)o->hd_mode < 0 || (int)o->hd_mode > (int)SL_HD_MEAN)
        return sl_errf(msg, msglen, SL_EINVAL, "hd_mode: unknown value %d", (int)o->hd_mode);
    if (!(o->percentile >= 0.0 && o->percentile <= 100.0))
        return sl_errf(msg, msglen, SL_EINVAL, "percentile: %g is outside [0, 100]", o->percentile);
    if ((int)o->assd_mode < 0 || (int)o->assd_mode > (int)SL_ASSD_MEAN)
        return sl_errf(msg, msglen, SL_EINVAL, "assd_mode: unknown value %d", (int)o->assd_mode);
    if ((int)o->surface < 0 || (int)o->surface > (int)SL_SURFACE_SURFELS)
        return sl_errf(msg, msglen, SL_EINVAL, "surface: unknown value %d", (int)o->surface);
    if (!(o->nsd_tolerance >= 0.0) || !isfinite(o->nsd_tolerance))
        return sl_errf(msg, msglen, SL_EINVAL, "nsd_tolerance: %g (finite and >= 0 needed)", o->nsd_tolerance);
    if (!(o->biou_width > 0.0) || !isfinite(o->biou_width))
        return sl_errf(msg, msglen, SL_EINVAL, "biou_width: %g (finite and > 0 needed)", o->biou_width);
    if (o->connectivity != 0 && o->connectivity != 2 && o->connectivity != 4 && o->connectivity != 8 &&
        o->connectivity != 6 && o->connectivity != 18 && o->connectivity != 26)
        return sl_errf(msg, msglen, SL_EINVAL, "connectivity: %d (0, 2, 4, 8, 6, 18 or 26)", o->connectivity);
    if ((int)o->lesion_match < 0 || (int)o->lesion_match > (int)SL_LESION_IOU)
        return sl_errf(msg, msglen, SL_EINVAL, "lesion_match: unknown value %d", (int)o->lesion_match);
    if (o->lesion_min_overlap < 1)
        return sl_errf(msg, msglen, SL_EINVAL, "lesion_min_overlap: %lld (>= 1 needed)",
                       (long long)o->lesion_min_overlap);
    if (!(o->lesion_iou > 0.0 && o->lesion_iou <= 1.0))
        return sl_errf(msg, msglen, SL_EINVAL, "lesion_iou: %g is outside (0, 1]", o->lesion_iou);
    if (o->threads < 0) return sl_errf(msg, msglen, SL_EINVAL, "threads: %d (>= 0 needed)", o->threads);
    return SL_OK;
}

int sl_metric_opts_describe(const sl_metric_opts *o, int ndim, char *buf, size_t buflen)
{
    sl_metric_opts d = SL_METRIC_OPTS_DEFAULT;
    if (!o) o = &d;
    int conn = o->connectivity;
    if (conn == 0) conn = ndim == 1 ? 2 : (ndim == 2 ? 8 : 26);
    char match[48];
    if (o->lesion_match == SL_LESION_IOU) snprintf(match, sizeof match, "iou>=%g", o->lesion_iou);
    else snprintf(match, sizeof match, "overlap>=%lld", (long long)o->lesion_min_overlap);
    return snprintf(buf, buf ? buflen : 0,
                    "hd_mode=%s percentile=%g percentile_rule=%s assd_mode=%s surface=%s nsd_tol=%g "
                    "biou_width=%g connectivity=%d lesion_match=%s",
                    sl_hd_mode_name(o->hd_mode), o->percentile,
                    o->surface == SL_SURFACE_SURFELS ? "area-weighted" : "linear", sl_assd_mode_name(o->assd_mode),
                    sl_surface_kind_name(o->surface), o->nsd_tolerance, o->biou_width, conn, match);
}

/* ---- names -------------------------------------------------------------- */

#define NAME_TABLE(fn_name, fn_parse, type, ...)                                  \
    static const struct {                                                         \
        type v;                                                                   \
        const char *s;                                                            \
    } fn_name##_tab[] = {__VA_ARGS__};                                            \
    const char *fn_name(type m)                                                   \
    {                                                                             \
        for (size_t i = 0; i < sizeof fn_name##_tab / sizeof fn_name##_tab[0]; i++) \
            if (fn_name##_tab[i].v == m) return fn_name##_tab[i].s;               \
        return "unknown";                                                         \
    }                                                                             \
    sl_status fn_parse(const char *name, type *out)                               \
    {                                                                             \
        if (!name || !out) return SL_EINVAL;                                      \
        for (size_t i = 0; i < sizeof fn_name##_tab / sizeof fn_name##_tab[0]; i++) \
            if (strcmp(name, fn_name##_tab[i].s) == 0) {                          \
                *out = fn_name##_tab[i].v;                                        \
                return SL_OK;                                                     \
            }                                                                     \
        return SL_EUNKNOWN;                                                       \
    }

NAME_TABLE(sl_hd_mode_name, sl_hd_mode_parse, sl_hd_mode, {SL_HD_MAX, "max"}, {SL_HD_UNION, "union"},
           {SL_HD_MEAN, "mean"})
NAME_TABLE(sl_assd_mode_name, sl_assd_mode_parse, sl_assd_mode, {SL_ASSD_POOLED, "pooled"}, {SL_ASSD_MEAN, "mean"})
NAME_TABLE(sl_surface_kind_name, sl_surface_kind_parse, sl_surface_kind, {SL_SURFACE_BORDER, "border"},
           {SL_SURFACE_SURFELS, "surfels"})
NAME_TABLE(sl_lesion_match_name, sl_lesion_match_parse, sl_lesion_match, {SL_LESION_OVERLAP, "overlap"},
           {SL_LESION_IOU, "iou"})

/* ---- label maps ----------------------------------------------------------- */

static int dtype_valid(sl_dtype dt)
{
    return (int)dt >= (int)SL_DT_F32 && (int)dt <= (int)SL_DT_I64;
}

sl_status sl_mask_from_labels(const sl_labelmap *map, int64_t n, int64_t label, uint8_t *mask, int64_t *count)
{
    if (!map || !map->data || !mask || n < 0 || !dtype_valid(map->dtype)) return SL_EINVAL;
    slm_src s = {map->data, map->dtype, label, 0};
    slm_row(&s, 0, n, mask);
    if (count) {
        int64_t c = 0;
        for (int64_t i = 0; i < n; i++) c += mask[i];
        *count = c;
    }
    return SL_OK;
}

/* A growing open-addressing set of int64 values (labels are few; a map
 * with millions of distinct values still works, just with more memory). */
typedef struct i64set {
    int64_t *key;
    uint8_t *used;
    int64_t cap, n;
} i64set;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static int set_add(i64set *s, int64_t k)
{
    if (2 * (s->n + 1) > s->cap) {
        int64_t nc = s->cap ? s->cap * 2 : 64;
        int64_t *nk = calloc((size_t)nc, sizeof(int64_t));
        uint8_t *nu = calloc((size_t)nc, 1);
        if (!nk || !nu) {
            free(nk);
            free(nu);
            return 0;
        }
        for (int64_t i = 0; i < s->cap; i++)
            if (s->used[i]) {
                uint64_t h = mix64((uint64_t)s->key[i]) & (uint64_t)(nc - 1);
                while (nu[h]) h = (h + 1) & (uint64_t)(nc - 1);
                nu[h] = 1;
                nk[h] = s->key[i];
            }
        free(s->key);
        free(s->used);
        s->key = nk;
        s->used = nu;
        s->cap = nc;
    }
    uint64_t h = mix64((uint64_t)k) & (uint64_t)(s->cap - 1);
    while (s->used[h]) {
        if (s->key[h] == k) return 1;
        h = (h + 1) & (uint64_t)(s->cap - 1);
    }
    s->used[h] = 1;
    s->key[h] = k;
    s->n++;
    return 1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

#define UNIQUE_INT(T)                                                 \
    do {                                                              \
        const T *p = (const T *)map->data;                            \
        T last = 0;                                                   \
        int have = 0;                                                 \
        for (int64_t i = 0; i < n; i++) {                             \
            if (have && p[i] == last) continue; /* runs are common */ \
            last = p[i];                                              \
            have = 1;                                                 \
            if (!set_add(&s, (int64_t)p[i])) goto oom;                \
        }                                                             \
    } while (0)
#define UNIQUE_FLOAT(T)                                                                   \
    do {                                                                                  \
        const T *p = (const T *)map->data;                                                \
        for (int64_t i = 0; i < n; i++) {                                                 \
            double x = (double)p[i];                                                      \
            if (!isfinite(x) || x != floor(x) || fabs(x) >= 9.2e18) {                     \
                free(s.key);                                                              \
                free(s.used);                                                             \
                return sl_errf(msg, msglen, SL_ERANGE,                                    \
                               "labels: voxel %lld holds %g, not an integer label",       \
                               (long long)i, x);                                          \
            }                                                                             \
            if (!set_add(&s, (int64_t)x)) goto oom;                                       \
        }                                                                                 \
    } while (0)

sl_status sl_labels_unique(const sl_labelmap *map, int64_t n, int64_t *labels, int64_t cap, int64_t *count,
                           char *msg, size_t msglen)
{
    if (!map || !map->data || !count || n < 0 || cap < 0 || (cap > 0 && !labels) || !dtype_valid(map->dtype))
        return sl_errf(msg, msglen, SL_EINVAL, "labels: invalid argument");
    i64set s = {NULL, NULL, 0, 0};
    switch (map->dtype) {
    case SL_DT_F32: UNIQUE_FLOAT(float); break;
    case SL_DT_F64: UNIQUE_FLOAT(double); break;
    case SL_DT_BOOL:
    case SL_DT_U8: UNIQUE_INT(uint8_t); break;
    case SL_DT_I8: UNIQUE_INT(int8_t); break;
    case SL_DT_U16: UNIQUE_INT(uint16_t); break;
    case SL_DT_I16: UNIQUE_INT(int16_t); break;
    case SL_DT_U32: UNIQUE_INT(uint32_t); break;
    case SL_DT_I32: UNIQUE_INT(int32_t); break;
    case SL_DT_U64: {
        const uint64_t *p = (const uint64_t *)map->data;
        for (int64_t i = 0; i < n; i++) {
            if (p[i] > (uint64_t)INT64_MAX) {
                free(s.key);
                free(s.used);
                return sl_errf(msg, msglen, SL_ERANGE, "labels: voxel %lld holds %llu, beyond int64",
                               (long long)i, (unsigned long long)p[i]);
            }
            if (!set_add(&s, (int64_t)p[i])) goto oom;
        }
        break;
    }
    case SL_DT_I64: UNIQUE_INT(int64_t); break;
    }
    {
        int64_t *all = sl_malloc(s.n ? s.n : 1, sizeof(int64_t)), k = 0;
        if (!all) goto oom;
        for (int64_t i = 0; i < s.cap; i++)
            if (s.used[i]) all[k++] = s.key[i];
        qsort(all, (size_t)k, sizeof(int64_t), cmp_i64);
        for (int64_t i = 0; i < k && i < cap; i++) labels[i] = all[i];
        *count = k;
        free(all);
    }
    free(s.key);
    free(s.used);
    return SL_OK;
oom:
    free(s.key);
    free(s.used);
    return sl_errf(msg, msglen, SL_ENOMEM, "labels: out of memory");
}
