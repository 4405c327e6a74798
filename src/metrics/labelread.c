/*
 * Small shared pieces of the issue-15 metric families: reading one voxel of
 * a label map of any dtype as an integer label, and a radix sort for the
 * ranking metrics.
 */
#include <math.h>
#include <string.h>
#include "families_internal.h"

int slm_dtype_ok(sl_dtype dt)
{
    return dt >= SL_DT_F32 && dt <= SL_DT_I64;
}

static int from_double(double v, int64_t *out)
{
    /* 2^63 is the first double that does not fit */
    if (!isfinite(v) || v != floor(v) || v < -9223372036854775808.0 || v >= 9223372036854775808.0) return 0;
    *out = (int64_t)v;
    return 1;
}

int slm_label_at(const sl_labelmap *m, int64_t i, int64_t *out)
{
    switch (m->dtype) {
    case SL_DT_F32: return from_double(((const float *)m->data)[i], out);
    case SL_DT_F64: return from_double(((const double *)m->data)[i], out);
    case SL_DT_BOOL:
    case SL_DT_U8: *out = ((const uint8_t *)m->data)[i]; return 1;
    case SL_DT_I8: *out = ((const int8_t *)m->data)[i]; return 1;
    case SL_DT_U16: *out = ((const uint16_t *)m->data)[i]; return 1;
    case SL_DT_I16: *out = ((const int16_t *)m->data)[i]; return 1;
    case SL_DT_U32: *out = ((const uint32_t *)m->data)[i]; return 1;
    case SL_DT_I32: *out = ((const int32_t *)m->data)[i]; return 1;
    case SL_DT_U64: {
        uint64_t v = ((const uint64_t *)m->data)[i];
        if (v > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)v;
        return 1;
    }
    case SL_DT_I64: *out = ((const int64_t *)m->data)[i]; return 1;
    }
    return 0;
}

void slm_radix_sort_u32(uint32_t *key, uint32_t *tmp, int64_t n)
{
    /* Three passes of 11 bits; after an odd number of passes the data sit
     * in tmp, so the last pass's result is copied back. */
    uint32_t *src = key, *dst = tmp;
    for (int pass = 0; pass < 3; pass++) {
        int shift = 11 * pass;
        int64_t count[2049];
        memset(count, 0, sizeof count);
        for (int64_t i = 0; i < n; i++) count[((src[i] >> shift) & 2047u) + 1]++;
        for (int d = 0; d < 2048; d++) count[d + 1] += count[d];
        for (int64_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & 2047u]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != key) memcpy(key, src, (size_t)n * sizeof *key);
}
