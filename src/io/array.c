/*
 * The array type every module passes (segloss/io.h: sl_dtype, sl_array):
 * element sizes and names, allocation, element access and the conversions
 * to float32 and int32. The file formats (npy.c, nifti.c, png.c) build on
 * it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "array.h"
#include "internal.h"
#include "segloss/io.h"

size_t sl_dtype_size(sl_dtype dt)
{
    switch (dt) {
    case SL_DT_BOOL: case SL_DT_U8: case SL_DT_I8: return 1;
    case SL_DT_U16: case SL_DT_I16: return 2;
    case SL_DT_F32: case SL_DT_U32: case SL_DT_I32: return 4;
    case SL_DT_F64: case SL_DT_U64: case SL_DT_I64: return 8;
    }
    return 0;
}

const char *sl_dtype_name(sl_dtype dt)
{
    static const char *names[] = {"float32", "float64", "bool", "uint8", "int8", "uint16",
                                  "int16", "uint32", "int32", "uint64", "int64"};
    return (unsigned)dt < sizeof names / sizeof *names ? names[dt] : "unknown";
}

int sl_dtype_is_integer(sl_dtype dt) { return dt != SL_DT_F32 && dt != SL_DT_F64; }

int64_t sl_array_count(const sl_array *a)
{
    int64_t n = 1;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] < 0 || sl_mul_size(n, a->shape[i], &n) != SL_OK) return -1;
    return n;
}

sl_status sl_array_alloc(sl_array *out, sl_dtype dtype, int ndim, const int64_t *shape)
{
    if (!out || ndim < 0 || ndim > SL_MAX_NDIM || (ndim > 0 && !shape) || sl_dtype_size(dtype) == 0)
        return SL_EINVAL;
    sl_array a = SL_ARRAY_EMPTY;
    a.dtype = dtype;
    a.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return SL_EINVAL;
        a.shape[i] = shape[i];
    }
    int64_t n = sl_array_count(&a);
    size_t bytes;
    if (n < 0 || sl_bytes(n, sl_dtype_size(dtype), &bytes) != SL_OK) return SL_EOVERFLOW;
    /* Always allocate at least one element so that data != NULL for empty arrays. */
    a.data = calloc(n > 0 ? (size_t)n : 1, sl_dtype_size(dtype));
    if (!a.data) return SL_ENOMEM;
    sl_advise_huge_pages(a.data, bytes);
    *out = a;
    return SL_OK;
}

void sl_array_free(sl_array *a)
{
    if (!a) return;
    free(a->data);
    sl_array empty = SL_ARRAY_EMPTY;
    *a = empty;
}

void sl_swap_elements(void *data, int64_t n, size_t size)
{
    if (size < 2) return;
    unsigned char *b = data;
    for (int64_t i = 0; i < n; i++, b += size)
        for (size_t k = 0; k < size / 2; k++) {
            unsigned char t = b[k];
            b[k] = b[size - 1 - k];
            b[size - 1 - k] = t;
        }
}

double sl_array_get_f64(const sl_array *a, int64_t i)
{
    switch (a->dtype) {
    case SL_DT_F32: return ((const float *)a->data)[i];
    case SL_DT_F64: return ((const double *)a->data)[i];
    case SL_DT_BOOL: case SL_DT_U8: return ((const uint8_t *)a->data)[i];
    case SL_DT_I8: return ((const int8_t *)a->data)[i];
    case SL_DT_U16: return ((const uint16_t *)a->data)[i];
    case SL_DT_I16: return ((const int16_t *)a->data)[i];
    case SL_DT_U32: return ((const uint32_t *)a->data)[i];
    case SL_DT_I32: return ((const int32_t *)a->data)[i];
    case SL_DT_U64: return (double)((const uint64_t *)a->data)[i];
    case SL_DT_I64: return (double)((const int64_t *)a->data)[i];
    }
    return 0;
}

sl_status sl_array_to_f32(const sl_array *in, sl_array *out)
{
    if (!in || !out || !in->data) return SL_EINVAL;
    sl_status st = sl_array_alloc(out, SL_DT_F32, in->ndim, in->shape);
    if (st != SL_OK) return st;
    int64_t n = sl_array_count(in);
    float *o = out->data;
    for (int64_t i = 0; i < n; i++) o[i] = (float)sl_array_get_f64(in, i);
    return SL_OK;
}

sl_status sl_array_to_i32(const sl_array *in, sl_array *out)
{
    if (!in || !out || !in->data) return SL_EINVAL;
    if (!sl_dtype_is_integer(in->dtype)) return SL_EDTYPE;
    int64_t n = sl_array_count(in);
    /* Range check first so that a failure allocates nothing. uint64 values
     * above INT64_MAX would wrap when read as int64, so they are checked
     * in their own type. */
    for (int64_t i = 0; i < n; i++) {
        if (in->dtype == SL_DT_U64) {
            if (((const uint64_t *)in->data)[i] > (uint64_t)INT32_MAX) return SL_ERANGE;
        } else if (in->dtype == SL_DT_I64) {
            int64_t v = ((const int64_t *)in->data)[i];
            if (v < INT32_MIN || v > INT32_MAX) return SL_ERANGE;
        } else if (in->dtype == SL_DT_U32) {
            if (((const uint32_t *)in->data)[i] > (uint32_t)INT32_MAX) return SL_ERANGE;
        }
    }
    sl_status st = sl_array_alloc(out, SL_DT_I32, in->ndim, in->shape);
    if (st != SL_OK) return st;
    int32_t *o = out->data;
    /* one loop per source type (the values are in range by now): the same
     * values as through sl_array_get_f64, without a switch per element */
#define TO_I32(T)                                                          \
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)((const T *)in->data)[i]; \
    return SL_OK
    switch (in->dtype) {
    case SL_DT_I64: TO_I32(int64_t);
    case SL_DT_U64: TO_I32(uint64_t);
    case SL_DT_I32: TO_I32(int32_t);
    case SL_DT_U32: TO_I32(uint32_t);
    case SL_DT_I16: TO_I32(int16_t);
    case SL_DT_U16: TO_I32(uint16_t);
    case SL_DT_I8: TO_I32(int8_t);
    case SL_DT_U8: case SL_DT_BOOL: TO_I32(uint8_t);
    default: break;
    }
#undef TO_I32
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)sl_array_get_f64(in, i);
    return SL_OK;
}
