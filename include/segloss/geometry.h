/*
 * segloss/geometry.h — exact distance transforms, surfaces, connected
 * components, skeletons and bounding boxes on 1-D, 2-D and 3-D grids.
 *
 * This is what the boundary losses and the distance metrics stand on, so
 * every function here is exact (no chamfer approximations) and states its
 * convention at the edges of its domain: empty masks, masks without
 * background, voxels on the image edge.
 *
 * Arrays are C-contiguous, in array order: a 3-D image is (D, H, W) with W
 * the fastest axis; spacing is given in the same order, (sz, sy, sx), in mm.
 * A "mask" is a uint8 array in which any non-zero byte is foreground.
 *
 * Basic use (distance of every foreground voxel to the background):
 *
 *     sl_grid g = SL_GRID_DEFAULT;
 *     g.ndim = 3; g.shape[0] = D; g.shape[1] = H; g.shape[2] = W;
 *     g.spacing[0] = 2.5; g.spacing[1] = 0.8; g.spacing[2] = 0.8;
 *     sl_edt_opts o = SL_EDT_OPTS_DEFAULT;            // plain EDT, all threads
 *     sl_status st = sl_edt(mask, SL_DT_U8, &g, &o, dist, SL_DT_F32, msg, sizeof msg);
 *
 * Threads: every function that takes `threads` uses OpenMP with
 * num_threads(threads) (0 = the OpenMP default); images under 65536 voxels
 * run on one thread (forking costs more than the work). Results do not
 * depend on the thread count (bit-identical): work is split over
 * independent lines.
 */
#ifndef SEGLOSS_GEOMETRY_H
#define SEGLOSS_GEOMETRY_H

#include "segloss/core.h"
#include "segloss/io.h" /* sl_dtype */

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

/* ------------------------------------------------------------------------ */
/* Grids                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * The spatial frame of one image: number of axes, extents and voxel size.
 * Only the first `ndim` entries of shape/spacing are read.
 */
typedef struct sl_grid {
    int ndim;                        /* 1, 2 or 3 */
    int64_t shape[SL_MAX_SPATIAL];   /* extents in array order, each >= 1 */
    double spacing[SL_MAX_SPATIAL];  /* voxel size in mm per axis, finite and > 0 */
} sl_grid;

#define SL_GRID_DEFAULT {0, {0, 0, 0}, {1.0, 1.0, 1.0}}

/* Checks a grid: ndim in 1..3, every extent >= 1, every spacing finite and
 * > 0, the voxel count fits in int64 and in size_t bytes of double.
 * Codes: SL_EINVAL (NULL grid, bad spacing), SL_ESHAPE (bad ndim/extent),
 * SL_EOVERFLOW. msg (may be NULL) receives one line naming the problem. */
sl_status sl_grid_check(const sl_grid *grid, char *msg, size_t msglen);

/* Number of voxels of a grid, or -1 when the grid is invalid. */
int64_t sl_grid_voxels(const sl_grid *grid);

/*
 * Bounding box of the non-zero voxels of `mask` (shape = grid): writes
 * lo[a] (first index) and hi[a] (one past the last index) for each axis a
 * < ndim, and the number of non-zero voxels into *count (may be NULL).
 * An all-zero mask gives *count = 0 and lo = hi = 0 on every axis.
 * Codes: SL_EINVAL (NULL mask/grid/lo/hi), grid errors.
 */
sl_status sl_bbox(const uint8_t *mask, const sl_grid *grid, int64_t lo[SL_MAX_SPATIAL],
                  int64_t hi[SL_MAX_SPATIAL], int64_t *count);

/* ------------------------------------------------------------------------ */
/* Euclidean distance transform                                              */
/* ------------------------------------------------------------------------ */

/*
 * Which distance map sl_edt computes. Distances are Euclidean, in mm, with
 * the grid's spacing: |x - y| = sqrt(sum_a (spacing[a] * (x_a - y_a))^2),
 * measured between voxel centres.
 *
 * SL_EDT_PLAIN (default) — scipy.ndimage.distance_transform_edt(in,
 *   sampling=spacing): a non-zero voxel gets its distance to the nearest
 *   zero voxel, a zero voxel gets 0. If the input has no zero voxel at all,
 *   every voxel gets +inf (scipy returns meaningless numbers there).
 *
 * SL_EDT_MULTILABEL — one pass over a label map: a voxel with label L != 0
 *   gets its distance to the nearest voxel whose label is not L (label 0 or
 *   any other label); label-0 voxels get 0. Equal to, for every L,
 *   distance_transform_edt(in == L) restricted to the voxels of label L
 *   (distance between voxel centres, so two touching labels are 1 voxel
 *   apart, not 0.5). A voxel with no voxel of another label anywhere gets
 *   +inf. Integer and bool inputs only (SL_EDTYPE for float inputs).
 *
 * SL_EDT_SIGNED — plain signed distance, negative inside:
 *   inside  (in != 0): -(distance to the nearest zero voxel)   (<= -min spacing)
 *   outside (in == 0): +(distance to the nearest non-zero voxel) (>= +min spacing)
 *   There is no zero level: the boundary lies between the outermost inside
 *   voxel (-s) and the innermost outside voxel (+s), s = spacing along the
 *   axis that separates them. An all-zero input gives +inf everywhere, an
 *   all-non-zero input -inf everywhere.
 *
 * SL_EDT_SIGNED_KERVADEC — the map of Kervadec et al., "Boundary loss for
 *   highly unbalanced segmentation" (MIDL 2019), as LIVIAETS/boundary-loss
 *   one_hot2dist computes it: with pos = (in != 0), neg = !pos,
 *     res = edt(neg) * neg - (edt(pos) - 1) * pos
 *   i.e. +(distance to the foreground) outside and -(EDT_inside - 1) inside
 *   (so 0 on the inner boundary voxels when the spacing is 1; the "- 1" is in
 *   mm and does not scale with the spacing, as in the reference). An
 *   all-zero input gives 0 everywhere (as the reference); an all-non-zero
 *   input also gives 0 everywhere (the reference is undefined there; a
 *   constant map makes the boundary loss constant, which is the only
 *   meaningful answer when there is no boundary).
 *
 * In the binary modes (PLAIN, SIGNED, KERVADEC) any non-zero value is
 * foreground, for every input dtype (a float NaN is non-zero, as in numpy).
 */
typedef enum sl_edt_mode {
    SL_EDT_PLAIN = 0,
    SL_EDT_MULTILABEL = 1,
    SL_EDT_SIGNED = 2,
    SL_EDT_SIGNED_KERVADEC = 3
} sl_edt_mode;

typedef struct sl_edt_opts {
    sl_edt_mode mode;
    int threads; /* 0 = OpenMP default */
} sl_edt_opts;

#define SL_EDT_OPTS_DEFAULT {SL_EDT_PLAIN, 0}

/*
 * Exact Euclidean distance transform (Felzenszwalb & Huttenlocher, "Distance
 * transforms of sampled functions", Theory of Computing 2012: the separable
 * lower envelope of parabolas, one pass per axis, linear time), anisotropic,
 * threaded over lines. Matches scipy.ndimage.distance_transform_edt to
 * 1e-5 relative (float32 output) / 1e-12 (float64 output).
 *
 *   in   (grid shape) of in_dtype: any sl_dtype (integer, bool or float)
 *   out  (grid shape) of out_dtype: SL_DT_F32 or SL_DT_F64; caller-allocated,
 *        must not overlap `in`
 *   opts may be NULL (SL_EDT_OPTS_DEFAULT)
 *
 * Extra memory: one line buffer per thread; the output array holds the
 * intermediate squared distances.
 * Codes: SL_EINVAL (NULL in/out/grid, unknown mode), SL_EDTYPE (out_dtype
 * not float, float input in MULTILABEL mode), SL_ESHAPE/SL_EOVERFLOW (grid),
 * SL_ENOMEM. msg (may be NULL) receives one line naming the problem.
 */
sl_status sl_edt(const void *in, sl_dtype in_dtype, const sl_grid *grid, const sl_edt_opts *opts,
                 void *out, sl_dtype out_dtype, char *msg, size_t msglen);

/* "plain", "multilabel", "signed", "kervadec" <-> sl_edt_mode.
 * sl_edt_mode_parse returns SL_EUNKNOWN for any other name. */
const char *sl_edt_mode_name(sl_edt_mode mode);
sl_status sl_edt_mode_parse(const char *name, sl_edt_mode *out);

/* ------------------------------------------------------------------------ */
/* Surfaces                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Border voxels: mask XOR erosion(mask) with the cross structuring element
 * (2 neighbours in 1-D, 4 in 2-D, 6 in 3-D), where voxels outside the image
 * count as background — so a foreground voxel on the image edge is always a
 * border voxel (MONAI, MedPy with a zero border, seg-metrics).
 *   mask, border: (grid shape) uint8; border receives 0/1; caller-allocated,
 *   must not overlap mask.
 * Codes: SL_EINVAL (NULL), grid errors.
 */
sl_status sl_surface_border(const uint8_t *mask, const sl_grid *grid, uint8_t *border, int threads);

/*
 * Surface elements on the voxel-corner grid, as DeepMind's surface-distance
 * library (Nikolov et al. 2021, compute_surface_distances) defines them.
 * Corner point p (shape = grid shape + 1 on every axis) sits between voxels
 * p-1 and p on every axis; its 2^ndim neighbouring voxels (outside = 0) form
 * a neighbourhood code, and the point is a surface element when the code is
 * neither all-background nor all-foreground. Its weight is the length (2-D,
 * mm; marching squares through the edge midpoints) or area (3-D, mm^2;
 * marching cubes through the edge midpoints) of the iso-surface inside that
 * 2^ndim cell, with the grid's spacing. The weights are derived (face-wise
 * marching squares, loops, centroid fans), not a hand table: 2-D lengths
 * and planar 3-D configurations equal DeepMind's; non-planar 3-D ones
 * differ slightly from DeepMind's triangles (docs/metrics.md). Which points
 * are surfels is exactly DeepMind's.
 *   mask:   (grid shape) uint8
 *   weight: (D+1, H+1, W+1) or (H+1, W+1) double, caller-allocated; 0 where
 *           the point is not a surface element; > 0 exactly where it is.
 * Codes: SL_EINVAL (NULL), SL_EUNSUPPORTED (1-D grids), grid errors.
 */
sl_status sl_surface_elements(const uint8_t *mask, const sl_grid *grid, double *weight, int threads);

/* ------------------------------------------------------------------------ */
/* Connected components                                                      */
/* ------------------------------------------------------------------------ */

/* Per-component statistics written by sl_components_label. Component k
 * (label k + 1) is at index k of every array. */
typedef struct sl_components {
    int64_t count;  /* number of components */
    int ndim;       /* axes used in bbox */
    int64_t *size;  /* [count] voxels */
    int64_t *bbox;  /* [count][2 * SL_MAX_SPATIAL]: lo[0..2] then hi[0..2] (exclusive);
                       axes >= ndim are 0 */
} sl_components;

#define SL_COMPONENTS_EMPTY {0, 0, NULL, NULL}

/*
 * Connected components of the non-zero voxels (union-find over one raster
 * scan, Wu et al. 2009 style). Labels 1..count are given in raster order of
 * each component's first voxel (the voxel with the smallest linear index),
 * so the labelling is unique; background is 0.
 *   connectivity: 0 = full (2 in 1-D, 8 in 2-D, 26 in 3-D); otherwise 2
 *     (1-D), 4 or 8 (2-D), 6, 18 or 26 (3-D) — anything else is SL_EINVAL.
 *   labels (grid shape) int32, caller-allocated, or NULL if not needed.
 *   out may be NULL (labels only); otherwise it is overwritten (call
 *     sl_components_free on it afterwards; any previous content is not
 *     freed). On failure *out is left empty.
 * Codes: SL_EINVAL, SL_EOVERFLOW (more than INT32_MAX components),
 * SL_ENOMEM, grid errors.
 */
sl_status sl_components_label(const uint8_t *mask, const sl_grid *grid, int connectivity,
                              int32_t *labels, sl_components *out, char *msg, size_t msglen);

/* Releases the arrays of *c and resets it; NULL is a no-op. */
void sl_components_free(sl_components *c);

/* ------------------------------------------------------------------------ */
/* Skeletons                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Topology-preserving thinning to a one-voxel-wide skeleton, for clDice.
 * Directional sequential thinning in the scheme of Lee, Kashyap & Chu (1994)
 * — sub-iterations over the 2*ndim border directions; in each, the border
 * points that are simple and not end points are collected, then deleted one
 * by one in raster order after re-checking both conditions, until a round
 * deletes nothing — with the simple-point test written
 * as topological numbers (Bertrand & Malandain 1994): a point is simple iff
 * its foreground neighbourhood (8 in 2-D, 26 in 3-D) has exactly one
 * component and the background neighbourhood (4-adjacent in N8 in 2-D,
 * 6-adjacent in N18 in 3-D) has exactly one component touching the point.
 * An end point has exactly one foreground neighbour. Foreground is 8/26-
 * connected, background 4/6-connected; outside the image is background.
 * The number of components (and of holes/cavities) is preserved; each
 * component keeps at least one voxel. Spacing is ignored. 1-D masks are
 * returned unchanged (a segment is its own skeleton).
 *   mask, skel: (grid shape) uint8, skel receives 0/1 and must not overlap.
 * Codes: SL_EINVAL, SL_ENOMEM, grid errors.
 */
sl_status sl_skeletonize(const uint8_t *mask, const sl_grid *grid, uint8_t *skel,
                         char *msg, size_t msglen);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
