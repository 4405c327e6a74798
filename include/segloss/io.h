/*
 * segloss/io.h — n-dimensional arrays and image files (.npy, NIfTI).
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

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

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

/*
 * A .npy file mapped read-only (mmap) instead of read: `array.data` points
 * into the page cache, so a large input costs no copy and no freshly zeroed
 * pages. The header is checked before any data page is touched, with the
 * same checks, codes and messages as sl_npy_read. What cannot be used in
 * place is read by sl_npy_read instead (`base` is then NULL and `array`
 * owns its data): a file that is not regular or cannot be mapped (a FIFO,
 * a file system without mmap), data in the other byte order or at an
 * offset that is not a multiple of the element size. Either way the data
 * must not be written, and the file must not be truncated while it is
 * mapped: the process would get SIGBUS on the next access, as with any
 * mapping (a file that shrinks before the pages are brought in is read
 * instead). Release with sl_npy_unmap.
 */
typedef struct {
    sl_array array; /* dtype, shape and data, as sl_npy_read gives them */
    void *base;     /* the mapping (NULL when the file was read) */
    size_t length;  /* its length in bytes */
} sl_npy_mapped;

sl_status sl_npy_map(const char *path, sl_npy_mapped *out, char *msg, size_t msglen);

/* Unmaps (or frees) and resets *m; a reset or zeroed *m is fine. */
void sl_npy_unmap(sl_npy_mapped *m);

/* The same from a memory buffer of `len` bytes (used by the fuzz target). */
sl_status sl_npy_parse(const void *buf, size_t len, sl_array *out, char *msg, size_t msglen);

/* Writes an array as .npy version 1.0 (2.0 if the header needs it),
 * little-endian, C order. The file is written to a temporary file beside it
 * (".NAME.sltmp-PID-HOST-XXXXXX"), synced and renamed, so a reader never sees
 * half a file and an existing file is never damaged. SL_EIO on failure. */
sl_status sl_npy_write(const char *path, const sl_array *a, char *msg, size_t msglen);

/* Converts any numeric array to a new float32 array (values cast).
 * SL_ENOMEM. */
sl_status sl_array_to_f32(const sl_array *in, sl_array *out);

/* Converts an integer or bool array to int32 labels. A value outside the
 * int32 range is SL_ERANGE; a float array is SL_EDTYPE. */
sl_status sl_array_to_i32(const sl_array *in, sl_array *out);

/* ======================================================================
 * NIfTI-1 and NIfTI-2 images (.nii, .nii.gz)
 * ======================================================================
 *
 * Axis order. NIfTI stores voxel (i, j, k, ...) with i (the x axis)
 * varying fastest. segloss arrays are C order with the slowest axis first,
 * so an image with dim = (nx, ny, nz) is read as an array of shape
 * (nz, ny, nx), spacing (dz, dy, dx): the same bytes, no transpose. Element
 * a[k][j][i] is NIfTI voxel (i, j, k) (nibabel's get_fdata()[i, j, k]; our
 * array is the transpose of nibabel's). A 4-D image (nx, ny, nz, nt) reads
 * as (nt, nz, ny, nx). Trailing axes of extent 1 beyond the third are
 * dropped (an (nx, ny, nz, 1) image reads as 3-D); the first three are kept
 * as stored, so a single slice stored as (nx, ny, 1) reads as (1, ny, nx).
 * Writing reverses the order back: an array (D, H, W) becomes dim = (W, H, D).
 *
 * Spacing. pixdim of the spatial axes, in mm (xyzt_units metres and microns
 * are converted; "unknown" units are taken as mm). A spatial pixdim of 0 is
 * read as 1 mm and flagged; a negative one is read as its absolute value;
 * a non-finite one is an error. The affine is reported as stored (in the
 * file's units).
 *
 * Scaling. When scl_slope is finite and non-zero and (slope, inter) is not
 * the identity (1, 0), the data are scaled to float32 (float64 when the
 * stored type is 32/64-bit integer or float64), unless SL_NIFTI_NO_SCALE.
 *
 * Safety. Readers validate the whole header (sizeof_hdr, byte order, magic,
 * dim[0] in 1..7, every used dim >= 1, overflow-checked voxel count,
 * datatype, bitpix, vox_offset) and check that the data bytes are present
 * (decompressing a .gz to do so, and checking its CRC) before returning.
 * Supported datatypes: uint8, int8, uint16, int16, uint32, int32, uint64,
 * int64, float32, float64. Complex, RGB, float128 and 1-bit data are
 * refused (SL_EDTYPE). Two-file images (.hdr/.img) and ANALYZE 7.5 are
 * refused (SL_EUNSUPPORTED / SL_EFORMAT). Nothing is printed; each failure
 * is a status and a one-line message naming the file and the problem.
 */

/* What a NIfTI reader found in the header, and what the writer copies from
 * a reference image. Raw header fields are kept in NIfTI order (index 1 = x). */
typedef struct sl_nifti_info {
    int version;                 /* 1 (NIfTI-1, 348-byte header) or 2 (540 bytes) */
    int swapped;                 /* 1 when the file's byte order is not the host's */
    int datatype;                /* NIfTI datatype code as stored (2 = uint8, 16 = float32, ...) */
    int64_t dim[8];              /* header dim[] (dim[0] = number of axes) */
    double pixdim[8];            /* header pixdim[] (pixdim[0] = qfac) */
    int64_t vox_offset;          /* byte offset of the data in the (decompressed) file */
    int xyzt_units;              /* NIFTI_UNITS_* of space | time */
    double scl_slope, scl_inter; /* as stored */
    int scaled;                  /* 1 when slope/inter were applied to the data read */
    int ndim;                    /* axes of the array (see "Axis order") */
    double spacing[SL_MAX_NDIM]; /* per array axis, slowest first; spatial axes in mm */
    int spacing_defaulted;       /* 1 when a spatial pixdim was 0 and 1 mm was used */
    int qform_code, sform_code;  /* NIFTI_XFORM_* (0 = absent) */
    double quatern[3];           /* quatern_b, quatern_c, quatern_d */
    double qoffset[3];           /* qoffset_x, qoffset_y, qoffset_z */
    double qfac;                 /* -1 or 1 (from pixdim[0]) */
    double srow[3][4];           /* srow_x, srow_y, srow_z */
    double qform[4][4];          /* voxel (i, j, k, 1) -> world, from the quaternion; identity if qform_code = 0 */
    double sform[4][4];          /* the same from srow; identity if sform_code = 0 */
    double affine[4][4];         /* the one to use: sform if sform_code > 0, else qform if
                                    qform_code > 0, else diag(pixdim[1..3]) (NIfTI method 1) */
    char descrip[81];            /* header description, NUL-terminated, printable ASCII */
} sl_nifti_info;

/* Flags for the readers. */
#define SL_NIFTI_NO_SCALE 1u /* return the stored values, ignoring scl_slope/scl_inter */

/*
 * Reads a .nii or .nii.gz file (compression is detected from the content,
 * not the name) into *out (see "Axis order") and, when info is not NULL,
 * fills *info. On failure *out is left empty (data NULL) and msg gets one
 * line naming the file and the problem. Codes: SL_EINVAL (NULL argument),
 * SL_EIO (cannot open/read, not a regular file), SL_EFORMAT (malformed or
 * truncated header, data or gzip stream), SL_EDTYPE (unsupported datatype),
 * SL_EUNSUPPORTED (two-file .hdr/.img), SL_EOVERFLOW (voxel count or byte
 * size too large), SL_ENOMEM. Thread-safe (no shared state).
 */
sl_status sl_nifti_read(const char *path, unsigned flags, sl_array *out, sl_nifti_info *info,
                        char *msg, size_t msglen);

/* Reads and validates only the header (and, for an uncompressed file,
 * checks that the data bytes are present; a .gz file is not decompressed
 * past the header). info must not be NULL. Codes as sl_nifti_read. */
sl_status sl_nifti_read_header(const char *path, sl_nifti_info *info, char *msg, size_t msglen);

/* sl_nifti_read on an in-memory file of `len` bytes (plain or gzip). The
 * fuzz target and the file reader share this code path. */
sl_status sl_nifti_parse(const void *buf, size_t len, unsigned flags, sl_array *out,
                         sl_nifti_info *info, char *msg, size_t msglen);

/*
 * Writes an array as a single-file NIfTI image: gzip-compressed when the
 * name ends in ".nii.gz", plain when it ends in ".nii" (anything else is
 * SL_EINVAL). NIfTI-1, or NIfTI-2 when an extent exceeds 32767. The array
 * has 1..7 axes, each >= 1, in segloss order (see "Axis order"); bool is
 * written as uint8. Geometry:
 *   spacing  per array axis (slowest first), in mm, each finite and > 0;
 *            NULL: the reference's pixdim, or 1 without a reference.
 *   ref      NULL, or an image's info whose geometry is copied (qform and
 *            sform codes and parameters, qfac, units). Its spatial extents
 *            must equal the array's (SL_ESHAPE otherwise). Without ref the
 *            qform is the identity rotation at the origin (qform_code 1).
 * The file is written to a temporary name beside PATH and renamed, so a
 * reader never sees half a file and a failed write leaves PATH untouched.
 * Codes: SL_EINVAL, SL_ESHAPE, SL_EDTYPE, SL_EIO, SL_ENOMEM.
 */
sl_status sl_nifti_write(const char *path, const sl_array *a, const double *spacing,
                         const sl_nifti_info *ref, char *msg, size_t msglen);

/* ======================================================================
 * Format-agnostic image files: .npy, .nii, .nii.gz, .png
 * ====================================================================== */

typedef enum sl_format {
    SL_FORMAT_UNKNOWN = 0,
    SL_FORMAT_NPY,
    SL_FORMAT_NIFTI,    /* .nii */
    SL_FORMAT_NIFTI_GZ, /* .nii.gz */
    SL_FORMAT_PNG       /* .png: 2-D grey (segloss/png.h) */
} sl_format;

/* The format a file name implies (case-insensitive extension). */
sl_format sl_format_from_path(const char *path);

typedef struct sl_image_info {
    sl_format format;
    int has_spacing;             /* 1 when the file states voxel sizes (NIfTI) */
    double spacing[SL_MAX_NDIM]; /* per array axis, mm; 1 where the file has none */
    sl_nifti_info nifti;         /* valid when format is SL_FORMAT_NIFTI[_GZ] */
} sl_image_info;

/* Reads an image by extension into *out; info may be NULL. An unknown
 * extension is SL_EUNSUPPORTED; other codes as sl_npy_read / sl_nifti_read
 * / sl_png_read (NIfTI data are scaled as described above; a PNG gives a
 * (H, W) uint8 or uint16 array, so the label maps `segloss predict` writes
 * read back as they were written). Every reader refuses an image above the
 * decoded-voxel limit (default 2^28 voxels; SEGLOSS_MAX_VOXELS raises it;
 * docs/io.md) with SL_EOVERFLOW before allocating it. */
sl_status sl_image_read(const char *path, sl_array *out, sl_image_info *info, char *msg, size_t msglen);

/* Writes an image by extension. For NIfTI, spacing and ref are passed to
 * sl_nifti_write (ref->nifti is used when ref->format is NIfTI); .npy and
 * .png (sl_png_write: 2-D integer arrays) store neither. Codes as the format's writer; unknown extension
 * SL_EUNSUPPORTED. */
sl_status sl_image_write(const char *path, const sl_array *a, const double *spacing,
                         const sl_image_info *ref, char *msg, size_t msglen);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
