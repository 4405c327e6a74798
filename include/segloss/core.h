/*
 * segloss/core.h — status codes, array dimensions, threading options.
 *
 * Every fallible segloss function returns an sl_status (0 = SL_OK) and writes
 * its results through out-pointers. The library never prints, never calls
 * exit() and keeps no global mutable state, so it can be embedded in a
 * training loop or a server.
 *
 * Codes are appended, never renumbered: a caller may store them.
 */
#ifndef SEGLOSS_CORE_H
#define SEGLOSS_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

#define SL_VERSION_MAJOR 0
#define SL_VERSION_MINOR 1
#define SL_VERSION_PATCH 0
#define SL_VERSION_STRING "0.1.0"

typedef enum sl_status {
    SL_OK = 0,
    SL_EINVAL = 1,      /* an argument is invalid (NULL where required, bad option) */
    SL_ESHAPE = 2,      /* array shapes do not agree with each other */
    SL_EDTYPE = 3,      /* unsupported or unexpected element type */
    SL_ERANGE = 4,      /* a label outside [0, C), or a value out of its range */
    SL_ENONFINITE = 5,  /* NaN or Inf where finite numbers are required */
    SL_ENOMEM = 6,      /* allocation failed */
    SL_EIO = 7,         /* reading or writing a file failed */
    SL_EFORMAT = 8,     /* a file or string is malformed */
    SL_EBADSTATE = 9,   /* an object is in a state that refuses the call */
    SL_EOVERFLOW = 10,  /* a size computation does not fit in 64 bits */
    SL_EUNKNOWN = 11,   /* an unknown name (loss, key, metric) */
    SL_EEMPTY = 12,     /* an input that must not be empty is empty */
    SL_EUNSUPPORTED = 13 /* a valid request this build or mode cannot serve */
} sl_status;

/* A short English description of a status code ("invalid argument", ...).
 * Never NULL; unknown codes give "unknown status". */
const char *sl_strerror(sl_status status);

/* The library version as "MAJOR.MINOR.PATCH". */
const char *sl_version(void);

/* Maximum number of spatial axes (2-D and 3-D images). */
#define SL_MAX_SPATIAL 3

/*
 * Dimensions of a channels-first score tensor (N, C, spatial...), the PyTorch
 * layout: (N, C, H, W) with spatial_ndim = 2, (N, C, D, H, W) with 3.
 * A label map that goes with it has shape (N, spatial...).
 */
typedef struct sl_dims {
    int64_t n;                       /* batch size, >= 1 */
    int64_t c;                       /* channels (classes), >= 1 */
    int spatial_ndim;                /* 1, 2 or 3 */
    int64_t spatial[SL_MAX_SPATIAL]; /* extents in array order, e.g. (D, H, W) */
} sl_dims;

/* Number of spatial voxels of one channel of one sample (product of the
 * spatial extents), or -1 when the dims are invalid or the product overflows. */
int64_t sl_dims_voxels(const sl_dims *dims);

/* Checks that dims are well formed (n, c >= 1; 1..3 spatial axes, each >= 1;
 * n*c*voxels fits in int64 and in size_t bytes of float). SL_OK, SL_ESHAPE
 * or SL_EOVERFLOW. NULL gives SL_EINVAL. */
sl_status sl_dims_check(const sl_dims *dims);

/*
 * Overflow-checked size arithmetic: the one place where products of sizes
 * are formed. Each returns 0 on success and writes the result, or returns
 * SL_EOVERFLOW (and leaves *out untouched) when the result does not fit.
 * Arguments must be non-negative.
 */
sl_status sl_mul_size(int64_t a, int64_t b, int64_t *out);
sl_status sl_mul3_size(int64_t a, int64_t b, int64_t c, int64_t *out);
/* a * elem_size as a size_t byte count */
sl_status sl_bytes(int64_t count, size_t elem_size, size_t *out);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
