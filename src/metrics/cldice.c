/*
 * clDice (Shit et al., "clDice — a novel topology-preserving loss function
 * for tubular structure segmentation", CVPR 2021), the metric form:
 *   Tprec = |S(P) ∩ G| / |S(P)|,  Tsens = |S(G) ∩ P| / |S(G)|,
 *   clDice = 2 Tprec Tsens / (Tprec + Tsens)
 * with S the skeleton of sl_skeletonize (the paper uses skimage's
 * skeletonize / skeletonize_3d; see skeleton.c for how ours compares). The
 * skeletons are taken on the crop, whose zero frame plays the role of the
 * background outside the image.
 */
#include <stdlib.h>
#include "internal.h"
#include "metrics_internal.h"

sl_status slm_cldice(const uint8_t *pm, const uint8_t *gm, const slm_crop *c, double *tprec, double *tsens,
                     double *cldice)
{
    const slg_vol *v = &c->vol;
    uint8_t *sp = sl_malloc(v->count, 1), *sg = sl_malloc(v->count, 1);
    sl_status st = SL_ENOMEM;
    if (sp && sg) {
        st = slg_skeleton(pm, v, sp);
        if (st == SL_OK) st = slg_skeleton(gm, v, sg);
    }
    if (st == SL_OK) {
        int64_t nsp = 0, nsg = 0, spg = 0, sgp = 0;
        for (int64_t i = 0; i < v->count; i++) {
            nsp += sp[i];
            nsg += sg[i];
            spg += sp[i] & gm[i];
            sgp += sg[i] & pm[i];
        }
        /* a non-empty mask keeps at least one skeleton voxel per component */
        *tprec = nsp ? (double)spg / (double)nsp : 0.0;
        *tsens = nsg ? (double)sgp / (double)nsg : 0.0;
        *cldice = (*tprec + *tsens) > 0 ? 2.0 * *tprec * *tsens / (*tprec + *tsens) : 0.0;
    }
    free(sp);
    free(sg);
    return st;
}
