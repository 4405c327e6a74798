/*
 * Format-agnostic image files: the extension picks .npy, NIfTI or PNG. The CLI
 * commands (edt, eval) read and write through these two functions so that
 * every command accepts the same formats with the same messages.
 */
#include <string.h>
#include "internal.h"
#include "segloss/io.h"
#include "segloss/png.h"

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++) {
        char c = s[n - m + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != suffix[i]) return 0;
    }
    return 1;
}

sl_format sl_format_from_path(const char *path)
{
    if (!path) return SL_FORMAT_UNKNOWN;
    if (ends_with_ci(path, ".npy")) return SL_FORMAT_NPY;
    if (ends_with_ci(path, ".nii.gz")) return SL_FORMAT_NIFTI_GZ;
    if (ends_with_ci(path, ".nii")) return SL_FORMAT_NIFTI;
    if (ends_with_ci(path, ".png")) return SL_FORMAT_PNG;
    return SL_FORMAT_UNKNOWN;
}

sl_status sl_image_read(const char *path, sl_array *out, sl_image_info *info, char *msg, size_t msglen)
{
    if (!path || !out) return sl_errf(msg, msglen, SL_EINVAL, "image: NULL argument");
    sl_image_info local;
    sl_image_info *inf = info ? info : &local;
    memset(inf, 0, sizeof *inf);
    inf->format = sl_format_from_path(path);
    sl_status st;
    switch (inf->format) {
    case SL_FORMAT_NPY:
        st = sl_npy_read(path, out, msg, msglen);
        if (st != SL_OK) return st;
        for (int i = 0; i < SL_MAX_NDIM; i++) inf->spacing[i] = 1.0;
        return SL_OK;
    case SL_FORMAT_NIFTI:
    case SL_FORMAT_NIFTI_GZ:
        st = sl_nifti_read(path, 0, out, &inf->nifti, msg, msglen);
        if (st != SL_OK) return st;
        inf->has_spacing = 1;
        for (int i = 0; i < SL_MAX_NDIM; i++) inf->spacing[i] = i < inf->nifti.ndim ? inf->nifti.spacing[i] : 1.0;
        return SL_OK;
    case SL_FORMAT_PNG:
        st = sl_png_read(path, out, msg, msglen);
        if (st != SL_OK) return st;
        for (int i = 0; i < SL_MAX_NDIM; i++) inf->spacing[i] = 1.0;
        return SL_OK;
    case SL_FORMAT_UNKNOWN:
        break;
    }
    sl_array empty = SL_ARRAY_EMPTY;
    *out = empty;
    return sl_errf(msg, msglen, SL_EUNSUPPORTED, "'%s': unknown image format (expected .nii, .nii.gz, .npy or .png)", path);
}

sl_status sl_image_write(const char *path, const sl_array *a, const double *spacing, const sl_image_info *ref,
                         char *msg, size_t msglen)
{
    if (!path || !a) return sl_errf(msg, msglen, SL_EINVAL, "image: NULL argument");
    switch (sl_format_from_path(path)) {
    case SL_FORMAT_NPY:
        return sl_npy_write(path, a, msg, msglen);
    case SL_FORMAT_NIFTI:
    case SL_FORMAT_NIFTI_GZ: {
        const sl_nifti_info *r = ref && (ref->format == SL_FORMAT_NIFTI || ref->format == SL_FORMAT_NIFTI_GZ)
                                     ? &ref->nifti
                                     : NULL;
        return sl_nifti_write(path, a, spacing, r, msg, msglen);
    }
    case SL_FORMAT_PNG:
        return sl_png_write(path, a, msg, msglen);
    case SL_FORMAT_UNKNOWN:
        break;
    }
    return sl_errf(msg, msglen, SL_EUNSUPPORTED, "'%s': unknown image format (expected .nii, .nii.gz, .npy or .png)", path);
}
