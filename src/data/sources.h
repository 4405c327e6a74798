/*
 * The source openers, declared for the table in sources.c and implemented
 * one per file (phantom.c, colin.c, nifti_dir.c). Only those files include
 * this header; the rest of the module reaches a source through the table
 * and the dataset's sample callback. Private.
 */
#ifndef SL_DATA_SOURCES_H
#define SL_DATA_SOURCES_H

#include "data_internal.h"

/* arg: the text after the source's prefix (nifti: the folder); "" for
 * sources without one. */
sl_status sld_open_phantom(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen);
sl_status sld_open_phantom3d(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen);
sl_status sld_open_colin(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen);
sl_status sld_open_nifti(sl_dataset **out, const char *dir, const sl_data_opts *o, char *msg, size_t msglen);

#endif
