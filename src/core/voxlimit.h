/*
 * The limit on decoded voxels (private, not installed). A small file can
 * declare a huge image: a 1 MB .nii.gz decompresses to about 1 GB, an
 * 875 KB PNG can claim almost a billion pixels. Every image reader (npy,
 * NIfTI plain and gzip, PNG) checks the declared voxel count against this
 * limit before allocating anything, and refuses beyond it with one line.
 *
 * The limit, in order: sl_set_max_voxels (the CLI's --max-voxels), the
 * environment variable SEGLOSS_MAX_VOXELS, the default below.
 *
 * Default 2^28 = 268,435,456 voxels (512 x 512 x 1024): every clinical CT or
 * MR volume we know of and a 16384 x 16384 picture fit; one float32 copy of
 * an image at the limit is 1 GiB, and a command holds several (docs/io.md
 * lists the bytes per voxel of each command), so a larger image must be
 * asked for explicitly.
 */
#ifndef SL_VOXLIMIT_H
#define SL_VOXLIMIT_H

#include <stddef.h>
#include <stdint.h>
#include "segloss/core.h"

#define SL_MAX_VOXELS_DEFAULT ((int64_t)1 << 28)

/* Sets the limit for this process (n >= 1), or n = 0: back to the
 * environment / default. Thread-safe. */
void sl_set_max_voxels(int64_t n);

/* The limit now in force; -1 when SEGLOSS_MAX_VOXELS is set but is not a
 * positive integer (sl_check_voxels reports that). */
int64_t sl_max_voxels(void);

/* SL_OK when `count` voxels are within the limit. Otherwise SL_EOVERFLOW
 * with "WHO: COUNT voxels exceed the limit of LIMIT (...)", or SL_EINVAL
 * naming a malformed SEGLOSS_MAX_VOXELS. */
sl_status sl_check_voxels(int64_t count, const char *who, char *msg, size_t msglen);

/* Parses a voxel count: a positive decimal integer, optionally with a
 * binary suffix k, M, G, T (2^10 ... 2^40: "1G" = 2^30) or a power "2^N".
 * -1 when malformed, zero or beyond 2^62. */
int64_t sl_parse_voxels(const char *s);

#endif
