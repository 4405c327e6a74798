/*
 * The source openers, declared for the table in sources.c and implemented
 * one per file (phantom.c, phantom3d.c, colin.c, colin3d.c, nifti_dir.c). Only those files include
 * this header; the rest of the module reaches a source through the table
 * and the dataset's sample callback. Private.
 */
#ifndef SL_DATA_SOURCES_H
#define SL_DATA_SOURCES_H

#include "data_internal.h"
#include "segloss/io.h"

/* arg: the text after the source's prefix (nifti: the folder); "" for
 * sources without one. */
sl_status sld_open_phantom(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen);
sl_status sld_open_phantom3d(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen);
sl_status sld_open_colin(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen);
sl_status sld_open_colin3d(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen);

/* Colin27 as read by colin and colin3d (colin.c): T1 (z, y, x) float32,
 * AAL labels int32 on the same grid, the AAL value -> class table
 * [max AAL value + 1], and the brain's (T1 > 0) mean and standard deviation. */
typedef struct sld_colin_vol {
    sl_array t1, aal;
    int32_t *table;
    double mean, sd;
} sld_colin_vol;
/* Reads and checks both volumes (the codes of sld_open_colin); v is
 * released on failure. */
sl_status sld_colin_load(const sl_data_opts *o, sld_colin_vol *v, char *msg, size_t msglen);
void sld_colin_free(sld_colin_vol *v);
sl_status sld_open_nifti(sl_dataset **out, const char *dir, const sl_data_opts *o, char *msg, size_t msglen);

#endif
