/*
 * Overlap metrics from the confusion counts of one label over the whole
 * image (TN included, so specificity, MCC and kappa see the true background).
 *
 * Undefined ratios follow docs/metrics.md's empty-mask table: when P and
 * G are both empty every agreement score is 1 (VOE and RVD 0); when one is
 * empty the scores that measure the foreground are 0. Specificity measures
 * the background and keeps its natural value; it is 1 when there is no
 * negative voxel at all (nothing could be a false positive). MCC and kappa
 * have a zero denominator exactly when one of the masks is all background
 * or all foreground; there they are 1 if P == G and 0 otherwise, so that
 * perfect agreement always scores 1 (sklearn's matthews_corrcoef returns 0
 * in all these cases, perfect agreement included).
 */
#include <math.h>
#include "internal.h"
#include "metrics_internal.h"

void slm_overlap(sl_metric_result *r, const slm_scan *s, const slg_vol *img)
{
    const double tp = (double)s->tp, fp = (double)s->fp, fn = (double)s->fn, tn = (double)s->tn;
    const double n = tp + fp + fn + tn;
    const int64_t np = s->tp + s->fp, ng = s->tp + s->fn;
    double vox = 1.0;
    for (int a = 3 - img->ndim; a < 3; a++) vox *= img->sp[a];

    r->tp = s->tp;
    r->fp = s->fp;
    r->fn = s->fn;
    r->tn = s->tn;
    r->vol_pred = (double)np * vox;
    r->vol_gt = (double)ng * vox;
    r->specificity = (tn + fp) > 0 ? tn / (tn + fp) : 1.0;
    if (np == 0 && ng == 0) {
        r->dice = r->iou = r->precision = r->recall = 1.0;
        r->voe = 0.0;
        r->rvd = 0.0;
        r->volume_similarity = 1.0;
        r->mcc = r->kappa = 1.0;
        return;
    }
    const double denom = 2.0 * tp + fp + fn; /* > 0 here */
    r->dice = 2.0 * tp / denom;
    r->iou = tp / (tp + fp + fn);
    r->voe = 1.0 - r->iou;
    r->precision = np > 0 ? tp / (double)np : 0.0;
    r->recall = ng > 0 ? tp / (double)ng : 0.0;
    r->rvd = ng > 0 ? ((double)np - (double)ng) / (double)ng : INFINITY;
    r->volume_similarity = 1.0 - fabs(fn - fp) / denom;

    const int same = s->fp == 0 && s->fn == 0;
    /* products of counts overflow int64 beyond ~2^31 voxels: doubles */
    double md = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn);
    r->mcc = md > 0 ? (tp * tn - fp * fn) / sqrt(md) : (same ? 1.0 : 0.0);
    double po = (tp + tn) / n;
    double pp = (tp + fp) / n, pg = (tp + fn) / n;
    double pe = pp * pg + (1.0 - pp) * (1.0 - pg);
    r->kappa = (1.0 - pe) > 0 ? (po - pe) / (1.0 - pe) : (same ? 1.0 : 0.0);
}
