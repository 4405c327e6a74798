/*
 * Private pieces of the metrics module. Not installed.
 *
 * Evaluation of one label works on a crop: the bounding box of P | G grown
 * by CROP_MARGIN voxels on every real axis, *not* clipped to the image —
 * voxels of the crop outside the image read as background. The zero frame
 * this guarantees makes "the image edge is background" (border voxels,
 * boundary bands, thinning) automatic, and keeps every distance exact: all
 * surface points lie inside the crop, and for a voxel of a mask the nearest
 * background voxel is never farther than the frame (clamping a farther one
 * onto the crop's box brings it closer on every axis).
 */
#ifndef SL_METRICS_INTERNAL_H
#define SL_METRICS_INTERNAL_H

#include <stdint.h>
#include "segloss/metrics.h"
#include "geometry/geom_internal.h"

#define SLM_CROP_MARGIN 1

/* Where a binary mask comes from: voxels equal to `label` in a label map,
 * or (binary = 1) the non-zero bytes of a uint8 mask. */
typedef struct slm_src {
    const void *data;
    sl_dtype dtype;
    int64_t label;
    int binary;
} slm_src;

/* out[i] = voxel start+i belongs to the mask, for n voxels. */
void slm_row(const slm_src *s, int64_t start, int64_t n, uint8_t *out);

/* Counts over the whole image and the bounding box of P | G (padded 3-D
 * axes, hi exclusive). Threaded; exact (integer) reductions. */
typedef struct slm_scan {
    int64_t tp, fp, fn, tn;
    int64_t lo[3], hi[3]; /* valid when tp + fp + fn > 0 */
} slm_scan;

sl_status slm_scan_pair(const slm_src *p, const slm_src *g, const slg_vol *v, int threads, slm_scan *out);

/* A crop of the image: origin (may be negative) and volume (spacing and
 * ndim of the image, extents of the crop). */
typedef struct slm_crop {
    int64_t org[3];
    slg_vol vol;
} slm_crop;

/* Crop of the bounding box in `scan` plus the margin. */
slm_crop slm_crop_make(const slg_vol *img, const slm_scan *scan);

/* Fills a crop-sized uint8 mask (0/1) from a source; outside = 0. */
void slm_crop_fill(const slm_src *s, const slg_vol *img, const slm_crop *c, uint8_t *mask, int threads);

/* Overlap metrics from the counts (overlap.c). */
void slm_overlap(sl_metric_result *r, const slm_scan *s, const slg_vol *img);

/* Directed distances on a crop (distance.c): arrays owned by the struct. */
typedef struct slm_dist {
    int64_t np, ng;
    double *dp, *wp; /* [np] distances P -> G, weights (NULL for unit) */
    double *dg, *wg; /* [ng] */
} slm_dist;

/* P and G non-empty, crop masks given. SL_OK / SL_ENOMEM. */
sl_status slm_dist_compute(const uint8_t *pm, const uint8_t *gm, const slm_crop *c, sl_surface_kind kind,
                           int threads, slm_dist *out);
void slm_dist_free(slm_dist *d);
/* HD, percentiles, ASSD, ASD, MSD, NSD into r from the distances. */
sl_status slm_dist_stats(const slm_dist *d, const sl_metric_opts *o, unsigned groups, sl_metric_result *r);

/* Boundary IoU on crop masks (boundary.c); SL_OK / SL_ENOMEM. */
sl_status slm_biou(const uint8_t *pm, const uint8_t *gm, const slm_crop *c, double width, int threads,
                   double *out);

/* Lesion-wise matching on crop masks (lesion.c). With rep != NULL the
 * per-lesion arrays are filled too. */
sl_status slm_lesions(const uint8_t *pm, const uint8_t *gm, const slm_crop *c, const sl_metric_opts *o,
                      sl_lesion_report *rep);

/* clDice on crop masks (cldice.c). */
sl_status slm_cldice(const uint8_t *pm, const uint8_t *gm, const slm_crop *c, double *tprec, double *tsens,
                     double *cldice);

/* Percentiles (percentile.c). In place (reorders v). */
double slm_percentile_inplace(double *v, int64_t n, double q);
/* DeepMind's area-weighted percentile (d and w are not modified; a sorted
 * copy is made: *oom is set when it cannot be). Returns +inf for n = 0. */
double slm_percentile_weighted(double *d, double *w, int64_t n, double q, int *oom);

#endif
