/*
 * sl_metrics_eval: one case, a set of labels, every requested metric.
 *
 * Per label: one threaded scan of the whole image gives the confusion
 * counts and the bounding box of P | G; everything geometric then runs on
 * the crop of that box (plus a zero frame), so a small structure in a large
 * volume costs little more than the scan. Empty masks never reach the
 * geometry: the table of docs/metrics.md is applied here, in one place.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "metrics_internal.h"

static void result_init(sl_metric_result *r, int64_t label)
{
    const double nan = NAN;
    memset(r, 0, sizeof *r);
    r->label = label;
    r->tp = r->fp = r->fn = r->tn = -1;
    r->vol_pred = r->vol_gt = nan;
    r->dice = r->iou = r->precision = r->recall = r->specificity = r->voe = r->rvd = nan;
    r->volume_similarity = r->mcc = r->kappa = nan;
    r->n_surf_pred = r->n_surf_gt = -1;
    r->surf_pred = r->surf_gt = nan;
    r->hd = r->hd_perc = r->hd_perc_pred_to_gt = r->hd_perc_gt_to_pred = nan;
    r->assd = r->asd_pred_to_gt = r->asd_gt_to_pred = r->msd_pred_to_gt = r->msd_gt_to_pred = nan;
    r->nsd = r->biou = nan;
    r->lesions_gt = r->lesions_pred = r->lesion_tp = r->lesion_fn = r->lesion_fp = -1;
    r->lesion_precision = r->lesion_recall = r->lesion_f1 = r->lesion_dice = nan;
    r->cldice = r->topo_precision = r->topo_sensitivity = nan;
}

/* Every distance of the result set to `d` (0 both empty, +inf one empty). */
static void set_distances(sl_metric_result *r, double d)
{
    r->hd = r->hd_perc = r->hd_perc_pred_to_gt = r->hd_perc_gt_to_pred = d;
    r->assd = r->asd_pred_to_gt = r->asd_gt_to_pred = r->msd_pred_to_gt = r->msd_gt_to_pred = d;
}

static void copy_lesions(sl_metric_result *r, const sl_lesion_report *l)
{
    r->lesions_gt = l->n_gt;
    r->lesions_pred = l->n_pred;
    r->lesion_tp = l->tp;
    r->lesion_fn = l->fn;
    r->lesion_fp = l->fp;
    r->lesion_precision = l->precision;
    r->lesion_recall = l->recall;
    r->lesion_f1 = l->f1;
    r->lesion_dice = l->mean_dice;
}

static sl_status eval_one(const slm_src *ps, const slm_src *gs, const slg_vol *v, const sl_metric_opts *o,
                          sl_metric_result *r, char *msg, size_t msglen)
{
    const unsigned want = o->metrics;
    slm_scan sc;
    sl_status st = slm_scan_pair(ps, gs, v, o->threads, &sc);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "metrics: out of memory");
    const int64_t np = sc.tp + sc.fp, ng = sc.tp + sc.fn;
    r->empty_pred = np == 0;
    r->empty_gt = ng == 0;
    r->computed = want;
    if (want & SL_MET_OVERLAP) slm_overlap(r, &sc, v);

    const int both = np == 0 && ng == 0, one = (np == 0) != (ng == 0);
    if (both) {
        /* docs/metrics.md: overlap-type scores 1, distances 0, NSD 1 */
        if (want & (SL_MET_DISTANCE | SL_MET_NSD)) {
            r->n_surf_pred = r->n_surf_gt = 0;
            r->surf_pred = r->surf_gt = 0.0;
        }
        if (want & SL_MET_DISTANCE) set_distances(r, 0.0);
        if (want & SL_MET_NSD) r->nsd = 1.0;
        if (want & SL_MET_BIOU) r->biou = 1.0;
        if (want & SL_MET_LESION) {
            sl_lesion_report l = SL_LESION_REPORT_EMPTY;
            l.precision = l.recall = l.f1 = l.mean_dice = 1.0;
            copy_lesions(r, &l);
        }
        if (want & SL_MET_CLDICE) r->cldice = r->topo_precision = r->topo_sensitivity = 1.0;
        return SL_OK;
    }
    if (!(want & ~SL_MET_OVERLAP)) return SL_OK;

    slm_crop c = slm_crop_make(v, &sc);
    uint8_t *pm = sl_malloc(c.vol.count, 1), *gm = sl_malloc(c.vol.count, 1);
    st = SL_ENOMEM;
    if (!pm || !gm) goto done;
    slm_crop_fill(ps, v, &c, pm, o->threads);
    slm_crop_fill(gs, v, &c, gm, o->threads);

    if (want & (SL_MET_DISTANCE | SL_MET_NSD)) {
        slm_dist d;
        /* with one side empty this only finds the other side's surface
         * points (their count is reported); no EDT is run */
        st = slm_dist_compute(pm, gm, &c, o->surface, o->threads, &d);
        if (st != SL_OK) goto done;
        if (one) {
            r->n_surf_pred = d.np;
            r->n_surf_gt = d.ng;
            r->surf_pred = r->surf_gt = 0.0;
            for (int64_t i = 0; i < d.np; i++) r->surf_pred += d.wp ? d.wp[i] : 1.0;
            for (int64_t i = 0; i < d.ng; i++) r->surf_gt += d.wg ? d.wg[i] : 1.0;
            if (want & SL_MET_DISTANCE) set_distances(r, INFINITY);
            if (want & SL_MET_NSD) r->nsd = 0.0;
        } else {
            st = slm_dist_stats(&d, o, want, r);
        }
        slm_dist_free(&d);
        if (st != SL_OK) goto done;
    }
    if (want & SL_MET_BIOU) {
        if (one) r->biou = 0.0;
        else if ((st = slm_biou(pm, gm, &c, o->biou_width, o->threads, &r->biou)) != SL_OK) goto done;
    }
    if (want & SL_MET_LESION) {
        sl_lesion_report l = SL_LESION_REPORT_EMPTY;
        st = slm_lesions(pm, gm, &c, o, &l);
        if (st != SL_OK) goto done;
        copy_lesions(r, &l);
        sl_lesion_report_free(&l);
    }
    if (want & SL_MET_CLDICE) {
        if (one) r->cldice = r->topo_precision = r->topo_sensitivity = 0.0;
        else if ((st = slm_cldice(pm, gm, &c, &r->topo_precision, &r->topo_sensitivity, &r->cldice)) != SL_OK)
            goto done;
    }
    st = SL_OK;
done:
    free(pm);
    free(gm);
    if (st == SL_ENOMEM) return sl_errf(msg, msglen, st, "metrics: out of memory (crop of %lld voxels)",
                                        (long long)c.vol.count);
    if (st == SL_EOVERFLOW) return sl_errf(msg, msglen, st, "metrics: more than 2^31-1 components");
    return st;
}

static int dtype_valid(sl_dtype dt)
{
    return (int)dt >= (int)SL_DT_F32 && (int)dt <= (int)SL_DT_I64;
}

/* Checks shared by the entry points; fills *o (defaults when opts NULL). */
static sl_status prepare(const sl_grid *grid, const sl_metric_opts *opts, slg_vol *v, sl_metric_opts *o,
                         char *msg, size_t msglen)
{
    sl_metric_opts d = SL_METRIC_OPTS_DEFAULT;
    *o = opts ? *opts : d;
    sl_status st = slg_vol_from_grid(grid, v, msg, msglen);
    if (st != SL_OK) return st;
    st = sl_metric_opts_check(o, msg, msglen);
    if (st != SL_OK) return st;
    if ((o->metrics & SL_MET_LESION) && !slg_conn3(v->ndim, o->connectivity))
        return sl_errf(msg, msglen, SL_EINVAL, "connectivity: %d is not valid in %d-D", o->connectivity, v->ndim);
    if (o->metrics & SL_MET_BIOU) {
        double smin = INFINITY;
        for (int a = 3 - v->ndim; a < 3; a++)
            if (v->sp[a] < smin) smin = v->sp[a];
        if (o->biou_width < smin)
            return sl_errf(msg, msglen, SL_EINVAL,
                           "biou_width: %g mm is below the smallest spacing %g mm (the boundary bands would be empty)",
                           o->biou_width, smin);
    }
    if (o->surface == SL_SURFACE_SURFELS && v->ndim < 2 && (o->metrics & (SL_MET_DISTANCE | SL_MET_NSD)))
        return sl_errf(msg, msglen, SL_EUNSUPPORTED, "surface: surfels need a 2-D or 3-D grid");
    return SL_OK;
}

sl_status sl_metrics_eval(const sl_labelmap *pred, const sl_labelmap *gt, const sl_grid *grid,
                          const int64_t *labels, int nlabels, const sl_metric_opts *opts,
                          sl_metric_result *results, char *msg, size_t msglen)
{
    if (!pred || !gt || !pred->data || !gt->data || !labels || !results)
        return sl_errf(msg, msglen, SL_EINVAL, "metrics: NULL argument");
    if (nlabels < 1) return sl_errf(msg, msglen, SL_EINVAL, "metrics: %d labels (>= 1 needed)", nlabels);
    if (!dtype_valid(pred->dtype) || !dtype_valid(gt->dtype))
        return sl_errf(msg, msglen, SL_EDTYPE, "metrics: unknown label map dtype");
    slg_vol v;
    sl_metric_opts o;
    sl_status st = prepare(grid, opts, &v, &o, msg, msglen);
    if (st != SL_OK) return st;
    for (int i = 0; i < nlabels; i++) {
        result_init(&results[i], labels[i]);
        slm_src ps = {pred->data, pred->dtype, labels[i], 0}, gs = {gt->data, gt->dtype, labels[i], 0};
        st = eval_one(&ps, &gs, &v, &o, &results[i], msg, msglen);
        if (st != SL_OK) return st;
    }
    return SL_OK;
}

sl_status sl_metrics_eval_mask(const uint8_t *pred, const uint8_t *gt, const sl_grid *grid,
                               const sl_metric_opts *opts, sl_metric_result *result, char *msg, size_t msglen)
{
    if (!pred || !gt || !result) return sl_errf(msg, msglen, SL_EINVAL, "metrics: NULL argument");
    slg_vol v;
    sl_metric_opts o;
    sl_status st = prepare(grid, opts, &v, &o, msg, msglen);
    if (st != SL_OK) return st;
    result_init(result, 1);
    slm_src ps = {pred, SL_DT_U8, 1, 1}, gs = {gt, SL_DT_U8, 1, 1};
    return eval_one(&ps, &gs, &v, &o, result, msg, msglen);
}

sl_status sl_lesions_eval(const uint8_t *pred, const uint8_t *gt, const sl_grid *grid, const sl_metric_opts *opts,
                          sl_lesion_report *out, char *msg, size_t msglen)
{
    if (out) memset(out, 0, sizeof *out);
    if (!pred || !gt || !out) return sl_errf(msg, msglen, SL_EINVAL, "lesions: NULL argument");
    slg_vol v;
    sl_metric_opts o;
    sl_status st = prepare(grid, opts, &v, &o, msg, msglen);
    if (st != SL_OK) return st;
    if (!slg_conn3(v.ndim, o.connectivity))
        return sl_errf(msg, msglen, SL_EINVAL, "connectivity: %d is not valid in %d-D", o.connectivity, v.ndim);
    slm_src ps = {pred, SL_DT_U8, 1, 1}, gs = {gt, SL_DT_U8, 1, 1};
    slm_scan sc;
    st = slm_scan_pair(&ps, &gs, &v, o.threads, &sc);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "lesions: out of memory");
    if (sc.tp + sc.fp + sc.fn == 0) {
        out->precision = out->recall = out->f1 = out->mean_dice = 1.0;
        return SL_OK;
    }
    slm_crop c = slm_crop_make(&v, &sc);
    uint8_t *pm = sl_malloc(c.vol.count, 1), *gm = sl_malloc(c.vol.count, 1);
    st = SL_ENOMEM;
    if (pm && gm) {
        slm_crop_fill(&ps, &v, &c, pm, o.threads);
        slm_crop_fill(&gs, &v, &c, gm, o.threads);
        st = slm_lesions(pm, gm, &c, &o, out);
    }
    free(pm);
    free(gm);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "lesions: %s", sl_strerror(st));
    return SL_OK;
}
