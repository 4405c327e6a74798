/*
 * segloss/io.h — n-dimensional arrays and the .npy format.
 *
 * An sl_array owns a C-contiguous buffer of `dtype` elements with up to
 * SL_MAX_NDIM axes. Readers validate everything they take from a file
 * (magic, header syntax, dtype, shape, byte count) and fail with a message
 * naming the problem; they never trust a size before checking it against
 * the bytes actually present.
 */
#ifndef SEGLOSS_IO_H
#define SEGLOSS_IO_H

#include "segloss/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_MAX_NDIM 8

typedef enum sl_dtype {
    SL_DT_F32 = 0,
    SL_DT_F64,
    SL_DT_BOOL,
    SL_DT_U8,
    SL_DT_I8,
    SL_DT_U16,
    SL_DT_I16,
    SL_DT_U32,
    SL_DT_I32,
    SL_DT_U64,
    SL_DT_I64
} sl_dtype;

/* Bytes per element of a dtype (1, 2, 4 or 8). */
size_t sl_dtype_size(sl_dtype dt);
/* numpy-style name: "float32", "int64", ... */
const char *sl_dtype_name(sl_dtype dt);
/* 1 for the integer and bool dtypes */
int sl_dtype_is_integer(sl_dtype dt);

typedef struct sl_array {
    sl_dtype dtype;
    int ndim;                     /* 0..SL_MAX_NDIM (0 = scalar) */
    int64_t shape[SL_MAX_NDIM];
    void *data;                   /* owned; C order, native byte order */
} sl_array;

#define SL_ARRAY_EMPTY {SL_DT_F32, 0, {0}, NULL}

/* Number of elements (product of shape), or -1 on overflow. */
int64_t sl_array_count(const sl_array *a);

/* Allocates a zeroed array of the given dtype and shape into *out.
 * SL_EINVAL (bad ndim/shape), SL_EOVERFLOW, SL_ENOMEM. */
sl_status sl_array_alloc(sl_array *out, sl_dtype dtype, int ndim, const int64_t *shape);

/* Releases the buffer and resets the array; NULL and empty arrays are fine. */
void sl_array_free(sl_array *a);

/*
 * Reads a .npy file (format versions 1.0, 2.0, 3.0). Accepts little- or
 * big-endian numeric dtypes listed in sl_dtype ('<f4', '>i8', '|u1', '|b1',
 * ...) and converts to native order. Refuses Fortran-order arrays, object
 * or structured dtypes, more than SL_MAX_NDIM axes, a data section shorter
 * (truncated) or longer than the header says.
 * On failure *out is left empty and, when msg is not NULL, a one-line reason
 * is written to msg. Codes: SL_EIO (cannot open/read), SL_EFORMAT (malformed
 * or truncated), SL_EDTYPE (unsupported dtype), SL_EUNSUPPORTED (Fortran
 * order), SL_EOVERFLOW, SL_ENOMEM.
 */
sl_status sl_npy_read(const char *path, sl_array *out, char *msg, size_t msglen);

/* The same from a memory buffer of `len` bytes (used by the fuzz target). */
sl_status sl_npy_parse(const void *buf, size_t len, sl_array *out, char *msg, size_t msglen);

/* Writes an array as .npy version 1.0 (2.0 if the header needs it),
 * little-endian, C order. The file is written to PATH.tmp and renamed, so a
 * reader never sees half a file. SL_EIO on failure. */
sl_status sl_npy_write(const char *path, const sl_array *a, char *msg, size_t msglen);

/* Converts any numeric array to a new float32 array (values cast).
 * SL_ENOMEM. */
sl_status sl_array_to_f32(const sl_array *in, sl_array *out);

/* Converts an integer or bool array to int32 labels. A value outside the
 * int32 range is SL_ERANGE; a float array is SL_EDTYPE. */
sl_status sl_array_to_i32(const sl_array *in, sl_array *out);

#ifdef __cplusplus
}
#endif
#endif
