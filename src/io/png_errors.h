/*
 * libpng error handling of the PNG reader and encoder (src/io/png.c): libpng's error
 * text goes into an sl_png_err given as the error pointer (not to stderr),
 * then control returns to the caller's setjmp; warnings are dropped.
 * Internal, not installed.
 */
#ifndef SL_PNG_ERRORS_H
#define SL_PNG_ERRORS_H

#include <png.h>

typedef struct sl_png_err {
    char text[200];
} sl_png_err;

void sl_png_on_error(png_structp png, png_const_charp m);
void sl_png_on_warning(png_structp png, png_const_charp m);

#endif
