/*
 * The one PNG encoder (src/io/png.c), private to the library: the
 * predictor's label maps (sl_png_write) and the benchmark's overlay
 * pictures both go through it. Not installed.
 */
#ifndef SL_PNG_ENCODE_H
#define SL_PNG_ENCODE_H

#include <stddef.h>
#include <stdint.h>
#include "segloss/core.h"

/* Encodes an image of H rows by W pixels into a malloc'ed PNG in memory
 * (*png, *len; free() it). `pixels` holds the rows one after another:
 * channels 1 (grey) or 3 (RGB), depth 8 (one byte a sample) or 16 (two
 * bytes a sample, big-endian as PNG stores them). 1 <= H, W <= 65536.
 * SL_EINVAL for a bad layout, SL_ENOMEM, SL_EIO (libpng's reason). */
sl_status sl_png_encode(const unsigned char *pixels, int64_t H, int64_t W, int channels, int depth,
                        unsigned char **png, size_t *len, char *msg, size_t msglen);

/* sl_png_encode, then the bytes written to path by the atomic writer
 * (src/core/outfile.h). */
sl_status sl_png_write_pixels(const char *path, const unsigned char *pixels, int64_t H, int64_t W, int channels,
                              int depth, char *msg, size_t msglen);

#endif
