/*
 * Private helpers of the issue-15 metric families (calibration, instances,
 * STAPLE). Not installed.
 */
#ifndef SL_FAMILIES_INTERNAL_H
#define SL_FAMILIES_INTERNAL_H

#include <stdint.h>
#include "segloss/metrics.h"

/* The value of voxel i of a label map as an integer label. Returns 1 and
 * writes *out when the value is an integer that fits in int64 (floats:
 * finite and integral; uint64 above INT64_MAX does not fit), 0 otherwise. */
int slm_label_at(const sl_labelmap *m, int64_t i, int64_t *out);

/* 1 when dt is one of the sl_dtype values. */
int slm_dtype_ok(sl_dtype dt);

/* Sorts n uint32 keys ascending (LSD radix, three 11-bit passes); tmp
 * holds n keys of scratch. */
void slm_radix_sort_u32(uint32_t *key, uint32_t *tmp, int64_t n);

#endif
