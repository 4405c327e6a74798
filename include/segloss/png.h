/*
 * segloss/png.h — 2-D images as PNG files (through libpng), for the
 * predictor's input and output.
 *
 * Reading gives a (H, W) array: uint8 for 1..8-bit images, uint16 for
 * 16-bit ones. Palette images are expanded, colour images are converted to
 * grey (libpng's default Rec. 709 weights), an alpha channel is dropped
 * (not composited). Writing takes a (H, W) integer or bool array whose
 * values fit in 0..65535: 8-bit grey when they fit in 0..255, else 16-bit.
 */
#ifndef SEGLOSS_PNG_H
#define SEGLOSS_PNG_H

#include "segloss/core.h"
#include "segloss/io.h"

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

/* Reads a PNG file into *out (overwritten; release with sl_array_free).
 * On failure *out is empty and msg names the file and the problem. Codes:
 * SL_EINVAL (NULL), SL_EIO (cannot open/read), SL_EFORMAT (not a PNG, or
 * corrupt/truncated), SL_EOVERFLOW (too large), SL_ENOMEM. */
sl_status sl_png_read(const char *path, sl_array *out, char *msg, size_t msglen);

/* Writes a (H, W) array as a grey PNG, through a temporary file beside
 * path that is renamed when complete. Codes: SL_EINVAL (NULL), SL_ESHAPE
 * (not 2-D), SL_EDTYPE (float array), SL_ERANGE (a value outside
 * 0..65535), SL_EIO, SL_ENOMEM. */
sl_status sl_png_write(const char *path, const sl_array *a, char *msg, size_t msglen);

/* 1 when path ends in ".png" (any case). */
int sl_png_path(const char *path);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
