/*
 * Boundary IoU (Cheng, Girshick, Dollár, Berg & Kirillov, "Boundary IoU:
 * Improving object-centric image segmentation evaluation", CVPR 2021):
 *   BIoU = |(P_d ∩ P) ∩ (G_d ∩ G)| / |(P_d ∩ P) ∪ (G_d ∩ G)|
 * where M_d is the band of voxels within distance d of M's contour. Here
 * the inner band is exact and in mm: the voxels of M whose Euclidean
 * distance to the nearest voxel outside M (outside the image counts as
 * outside, as the reference's zero-padded erosion does) is <= d. A border
 * voxel is one spacing away from the outside, so d must be at least the
 * smallest spacing (sl_metrics_eval refuses a smaller d: the bands would be
 * empty); with d equal to the spacing of an isotropic grid the band is the
 * set of border voxels. The reference erodes with a 3x3 square d times on a pixel grid; that is a
 * chessboard-distance band, which this replaces by the Euclidean one so
 * that the width means the same in every direction and with any spacing.
 */
#include <math.h>
#include <stdlib.h>
#include "internal.h"
#include "metrics_internal.h"

/* band[i] = m[i] && edt(m)[i] <= width, computed into `band`. */
static sl_status inner_band(const uint8_t *m, const slg_vol *v, double width, int threads, double *dist,
                            uint8_t *band)
{
    sl_status st = slg_edt(m, SL_DT_U8, SLG_LAB_BINARY, v, dist, 0, SLG_FIN_SQRT, threads);
    if (st != SL_OK) return st;
    for (int64_t i = 0; i < v->count; i++) band[i] = m[i] && dist[i] <= width;
    return SL_OK;
}

sl_status slm_biou(const uint8_t *pm, const uint8_t *gm, const slm_crop *c, double width, int threads,
                   double *out)
{
    const slg_vol *v = &c->vol;
    double *dist = sl_malloc(v->count, sizeof(double));
    uint8_t *bp = sl_malloc(v->count, 1), *bg = sl_malloc(v->count, 1);
    sl_status st = SL_ENOMEM;
    if (dist && bp && bg) {
        st = inner_band(pm, v, width, threads, dist, bp);
        if (st == SL_OK) st = inner_band(gm, v, width, threads, dist, bg);
    }
    if (st == SL_OK) {
        int64_t inter = 0, uni = 0;
        for (int64_t i = 0; i < v->count; i++) {
            inter += bp[i] & bg[i];
            uni += bp[i] | bg[i];
        }
        /* both masks are non-empty here, so both bands are */
        *out = uni > 0 ? (double)inter / (double)uni : 1.0;
    }
    free(dist);
    free(bp);
    free(bg);
    return st;
}
