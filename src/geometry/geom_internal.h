/*
 * Private helpers shared by src/geometry and src/metrics. Not installed.
 *
 * Every grid is handled internally as a 3-D volume (n0, n1, n2) with the
 * missing leading axes of extent 1 (a 2-D (H, W) image is (1, H, W), a 1-D
 * one (1, 1, W)); `ndim` is kept because neighbourhoods (borders, surfels,
 * thinning) must not look along axes that do not exist.
 */
#ifndef SL_GEOM_INTERNAL_H
#define SL_GEOM_INTERNAL_H

#include <stdint.h>
#include "segloss/core.h"
#include "segloss/geometry.h"
#include "segloss/io.h"

/* Below this many voxels a pass runs on one thread: forking a team costs
 * more than the work, and much more when the machine is oversubscribed.
 * Results do not depend on the thread count, so this changes speed only. */
#define SLG_PAR_MIN 65536

typedef struct slg_vol {
    int ndim;        /* the caller's number of axes, 1..3 */
    int64_t n[3];    /* extents, leading axes padded with 1 */
    double sp[3];    /* spacing, padded with 1 */
    int64_t count;   /* n[0] * n[1] * n[2] */
} slg_vol;

/* Validates a public grid and converts it. Codes as sl_grid_check. */
sl_status slg_vol_from_grid(const sl_grid *g, slg_vol *v, char *msg, size_t msglen);

/* A volume with the same spacing and ndim as `v` and extents n0, n1, n2
 * (used for crops). count is not overflow-checked: crops are never larger
 * than their image plus a small margin, which sl_grid_check bounded. */
slg_vol slg_vol_sub(const slg_vol *v, const int64_t n[3]);

/*
 * The EDT engine (edt.c). How a voxel's label is read from the input:
 *   BINARY: label = (value != 0), so zero voxels are the features;
 *   SIGNED: label = 1 for non-zero values, 2 for zeros, so every voxel gets
 *           its distance to the nearest voxel of the other class;
 *   MULTI:  label = the integer value; label 0 voxels are features;
 *   INVERT: label = (value == 0), so the non-zero voxels are the features
 *           (distance to a set of points without materialising its
 *           complement).
 * A voxel with label L != 0 gets the squared distance to the nearest voxel
 * whose label differs from L (+inf when there is none); label 0 gets 0.
 */
typedef enum slg_labmode {
    SLG_LAB_BINARY = 0,
    SLG_LAB_SIGNED = 1,
    SLG_LAB_MULTI = 2,
    SLG_LAB_INVERT = 3
} slg_labmode;

/* What the last pass writes: the squared distance, the distance, or the
 * signed forms (label 1 = inside). */
typedef enum slg_finish {
    SLG_FIN_SQ = 0,
    SLG_FIN_SQRT = 1,
    SLG_FIN_SIGNED = 2,
    SLG_FIN_KERVADEC = 3
} slg_finish;

/* in: v->count elements of dtype dt; out: v->count floats (out_f32) or
 * doubles. SL_OK or SL_ENOMEM. */
sl_status slg_edt(const void *in, sl_dtype dt, slg_labmode lm, const slg_vol *v, void *out,
                  int out_f32, slg_finish fin, int threads);

/* A read-only window on a uint8 mask: voxel (i0, i1, i2) of a volume v is
 * base[i0 * s0 + i1 * s1 + i2] (non-zero = in the mask), and the mask is
 * empty outside v's extents. A contiguous volume is {m, n1 * n2, n2}; a box
 * inside a larger image is {its first voxel, the image's strides}. */
typedef struct slg_view {
    const uint8_t *base;
    int64_t s0, s1;
} slg_view;

/* One row (i0, i1) of the border (0/1, n2 bytes) of the mask seen through w
 * on volume v (surface.c; the definition of slg_border). */
void slg_border_row(const slg_view *w, const slg_vol *v, int64_t i0, int64_t i1, uint8_t *out);
/* One corner row (p0, p1) of the surfel codes (n2 + 1 bytes) of the mask
 * seen through w on volume v (the voxel volume; ndim 2 or 3): the
 * definition of slg_surfel_codes below. */
void slg_surfel_row(const slg_view *w, const slg_vol *v, int64_t p0, int64_t p1, uint8_t *out);

/*
 * Point sets per row (nearest.c): the points of row r = i0 * n1 + i1 of a
 * volume are at positions pos[ptr[r] .. ptr[r + 1]) along axis 2,
 * ascending, so the table lists them in raster order; w, when not NULL,
 * holds a weight per point. Built from a mask seen through a view: its own
 * voxels, its border voxels (slg_border's), or its surfels on the corner
 * grid (slg_surfel_codes' surfels, weighted by table[code] when table is
 * not NULL; v is the voxel volume, ndim 2 or 3). SL_OK or SL_ENOMEM;
 * release with slg_rows_free (also after a failure).
 */
typedef struct slg_rows {
    int64_t nrows;
    int64_t *ptr; /* nrows + 1 */
    int64_t *pos;
    double *w;
} slg_rows;
sl_status slg_rows_mask(const slg_view *w, const slg_vol *v, int threads, slg_rows *R);
sl_status slg_rows_border(const slg_view *w, const slg_vol *v, int threads, slg_rows *R);
sl_status slg_rows_surfels(const slg_view *w, const slg_vol *v, const double *table, int threads, slg_rows *R);
void slg_rows_free(slg_rows *R);
static inline int64_t slg_rows_count(const slg_rows *R)
{
    return R->ptr ? R->ptr[R->nrows] : 0;
}

/*
 * Directed distances between point sets (nearest.c): for every point of
 * `from`, in its table's order, the distance to the nearest point of `to`
 * (+inf when `to` has none) into out; both tables on volume v (the corner
 * grid for surfels). The value is the EDT of "not a point of `to`" read
 * there, up to the rounding of ties. A search around each point while it
 * costs at most `budget` row look-ups in all (< 0: v's voxel count; 0:
 * none), the exact EDT otherwise; *used_edt (may be NULL) says which.
 * slg_nearest takes two masks on v. SL_OK or SL_ENOMEM.
 */
sl_status slg_nearest_rows(const slg_rows *from, const slg_rows *to, const slg_vol *v, int64_t budget, int threads,
                           double *out, int *used_edt);
sl_status slg_nearest(const uint8_t *from, const uint8_t *to, const slg_vol *v, int64_t budget, int threads,
                      double *out, int *used_edt);

/* Border voxels of a uint8 mask on a volume (surface.c): see
 * sl_surface_border. Outside the volume is background. */
void slg_border(const uint8_t *mask, const slg_vol *v, uint8_t *border, int threads);

/* Surfels (surface.c). Neighbourhood codes on the corner grid, shape
 * (n0 + 1, n1 + 1, n2 + 1) in 3-D and (1, n1 + 1, n2 + 1) in 2-D: corner p
 * sits between voxels p-1 and p on each real axis; bit k of its code is the
 * voxel at offset (dz, dy, dx) from p-1 with k = dz*4 + dy*2 + dx (2-D:
 * dy*2 + dx); outside = 0. A corner is a surfel iff its code is neither 0
 * nor all ones. ndim must be 2 or 3. */
void slg_surfel_codes(const uint8_t *mask, const slg_vol *v, uint8_t *code, int threads);
/* The weight (mm or mm^2) of every code for this ndim and spacing (padded
 * order); 0 for the empty and full codes. */
void slg_surfel_table(int ndim, const double sp[3], double table[256]);

/* Components (components.c): labels (v->count int32) in raster order of
 * first voxel; conn in {6, 18, 26} on the padded 3-D view (2-D 4 -> 6,
 * 8 -> 26; 1-D 2 -> 6). Fills count, sizes, bboxes (padded 3-D axes) when
 * the pointers are not NULL (arrays are malloc'ed, caller frees).
 * SL_OK, SL_ENOMEM, SL_EOVERFLOW. */
sl_status slg_components(const uint8_t *mask, const slg_vol *v, int conn, int32_t *labels,
                         int64_t *count, int64_t **sizes, int64_t **bbox6);

/* Maps a public connectivity for ndim to the padded 3-D one; 0 = invalid. */
int slg_conn3(int ndim, int connectivity);

/* Thinning (skeleton.c) on a volume; SL_OK or SL_ENOMEM. */
sl_status slg_skeleton(const uint8_t *mask, const slg_vol *v, uint8_t *skel);

#endif
