/*
 * The table of dataset sources (data_internal.h: sld_source). A new
 * source is one file with its opener and one line here.
 */
#include "sources.h"

const sld_source sld_sources[] = {
    {"phantom", 0, sld_open_phantom},
    {"phantom3d", 0, sld_open_phantom3d},
    {"colin", 0, sld_open_colin},
    {"colin3d", 0, sld_open_colin3d},
    {"nifti:", 1, sld_open_nifti},
};
const int sld_num_sources = (int)(sizeof sld_sources / sizeof *sld_sources);
