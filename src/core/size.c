/*
 * Overflow-checked size arithmetic and dims validation.
 *
 * Why one place: a 512^3 volume with 8 channels has 2^30 voxels, beyond
 * int; products of untrusted header fields (NIfTI, .npy) can wrap int64.
 * Every product of sizes in segloss goes through these helpers.
 */
#include "segloss/core.h"

sl_status sl_mul_size(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0) return SL_EOVERFLOW;
    if (a != 0 && b > INT64_MAX / a) return SL_EOVERFLOW;
    *out = a * b;
    return SL_OK;
}

sl_status sl_mul3_size(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t ab;
    if (sl_mul_size(a, b, &ab) != SL_OK) return SL_EOVERFLOW;
    return sl_mul_size(ab, c, out);
}

sl_status sl_bytes(int64_t count, size_t elem_size, size_t *out)
{
    if (count < 0) return SL_EOVERFLOW;
    if (elem_size != 0 && (uint64_t)count > (uint64_t)SIZE_MAX / elem_size) return SL_EOVERFLOW;
    if ((uint64_t)count * elem_size > (uint64_t)INT64_MAX) return SL_EOVERFLOW;
    *out = (size_t)count * elem_size;
    return SL_OK;
}

int64_t sl_dims_voxels(const sl_dims *d)
{
    if (!d || d->spatial_ndim < 1 || d->spatial_ndim > SL_MAX_SPATIAL) return -1;
    int64_t v = 1;
    for (int i = 0; i < d->spatial_ndim; i++) {
        if (d->spatial[i] < 1) return -1;
        if (sl_mul_size(v, d->spatial[i], &v) != SL_OK) return -1;
    }
    return v;
}

sl_status sl_dims_check(const sl_dims *d)
{
    if (!d) return SL_EINVAL;
    if (d->n < 1 || d->c < 1) return SL_ESHAPE;
    if (d->spatial_ndim < 1 || d->spatial_ndim > SL_MAX_SPATIAL) return SL_ESHAPE;
    for (int i = 0; i < d->spatial_ndim; i++)
        if (d->spatial[i] < 1) return SL_ESHAPE;
    int64_t v = sl_dims_voxels(d), total;
    size_t bytes;
    if (v < 0) return SL_EOVERFLOW;
    if (sl_mul3_size(d->n, d->c, v, &total) != SL_OK) return SL_EOVERFLOW;
    if (sl_bytes(total, sizeof(double), &bytes) != SL_OK) return SL_EOVERFLOW;
    return SL_OK;
}
