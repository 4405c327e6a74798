/*
 * Surface distances and their statistics: HD, HD at a percentile (three
 * ways of combining the two directions), ASSD (two ways), directed ASD and
 * maximum (MSD), and NSD (surface Dice at a tolerance, Nikolov et al. 2021).
 *
 * Distances are exact: the distance from each surface point of P to the
 * surface of G is the value of the exact EDT of "not a surface point of G"
 * there (and symmetrically), which is how MONAI, MedPy and DeepMind compute
 * them — with scipy's single-threaded EDT on the whole image. Here
 * slg_nearest (src/geometry/nearest.c) computes those values on the crop by
 * a bounded search around each point when the surfaces are close, and by
 * the EDT when they are not.
 *
 * Border voxels (default): the points are border voxels, each weighing 1.
 * Surfels: the points are DeepMind's corner-grid surface elements, and every
 * mean, percentile and the NSD are weighted by surfel area (2-D: length).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "metrics_internal.h"

void slm_dist_free(slm_dist *d)
{
    if (!d) return;
    free(d->dp);
    free(d->wp);
    free(d->dg);
    free(d->wg);
    memset(d, 0, sizeof *d);
}

/*
 * The directed distances of the masks seen through wp and wg on volume v
 * (the crop, or a box of the caller's image: translation does not change a
 * distance). The surface points are listed per row (slg_rows_*: no
 * full-volume mask of them is made) and each is measured to the other
 * surface by slg_nearest_rows.
 */
static sl_status dist_views(const slg_view *wp, const slg_view *wg, const slg_vol *v, sl_surface_kind kind,
                            int threads, slm_dist *out)
{
    memset(out, 0, sizeof *out);
    slg_rows P, G;
    slg_vol rv = *v; /* the volume the points live on */
    sl_status st;
    if (kind == SL_SURFACE_SURFELS) {
        double table[256];
        slg_surfel_table(v->ndim, v->sp, table);
        st = slg_rows_surfels(wp, v, table, threads, &P);
        if (st == SL_OK) st = slg_rows_surfels(wg, v, table, threads, &G);
        else memset(&G, 0, sizeof G);
        /* corner grid: one more point than voxels on each real axis */
        int64_t m[3];
        for (int a = 0; a < 3; a++) m[a] = a >= 3 - v->ndim ? v->n[a] + 1 : 1;
        rv = slg_vol_sub(v, m);
    } else {
        st = slg_rows_border(wp, v, threads, &P);
        if (st == SL_OK) st = slg_rows_border(wg, v, threads, &G);
        else memset(&G, 0, sizeof G);
    }
    if (st != SL_OK) goto done;
    st = SL_ENOMEM;
    out->np = slg_rows_count(&P);
    out->ng = slg_rows_count(&G);
    if (out->np > 0) {
        out->dp = sl_malloc(out->np, sizeof(double));
        if (!out->dp) goto done;
        st = slg_nearest_rows(&P, &G, &rv, -1, threads, out->dp, NULL);
        if (st != SL_OK) goto done;
        out->wp = P.w; /* raster order, as the distances; NULL for border voxels */
        P.w = NULL;
    }
    if (out->ng > 0) {
        st = SL_ENOMEM;
        out->dg = sl_malloc(out->ng, sizeof(double));
        if (!out->dg) goto done;
        st = slg_nearest_rows(&G, &P, &rv, -1, threads, out->dg, NULL);
        if (st != SL_OK) goto done;
        out->wg = G.w;
        G.w = NULL;
    }
    st = SL_OK;
done:
    slg_rows_free(&P);
    slg_rows_free(&G);
    if (st != SL_OK) slm_dist_free(out);
    return st;
}

sl_status slm_dist_compute(const uint8_t *pm, const uint8_t *gm, const slm_crop *c, sl_surface_kind kind,
                           int threads, slm_dist *out)
{
    const slg_vol *v = &c->vol;
    const slg_view wp = {pm, v->n[1] * v->n[2], v->n[2]}, wg = {gm, v->n[1] * v->n[2], v->n[2]};
    return dist_views(&wp, &wg, v, kind, threads, out);
}

/* Sums of one direction: weight, weighted distance, weight within tau, max. */
typedef struct dsum {
    double w, wd, wtol, max;
} dsum;

static dsum dir_sums(const double *d, const double *w, int64_t n, double tau)
{
    dsum s = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        double wi = w ? w[i] : 1.0;
        s.w += wi;
        s.wd += wi * d[i];
        if (d[i] <= tau) s.wtol += wi;
        if (d[i] > s.max) s.max = d[i];
    }
    return s;
}

sl_status slm_dist_stats(const slm_dist *d, const sl_metric_opts *o, unsigned groups, sl_metric_result *r)
{
    dsum p = dir_sums(d->dp, d->wp, d->np, o->nsd_tolerance);
    dsum g = dir_sums(d->dg, d->wg, d->ng, o->nsd_tolerance);
    r->n_surf_pred = d->np;
    r->n_surf_gt = d->ng;
    r->surf_pred = p.w;
    r->surf_gt = g.w;
    if (groups & SL_MET_NSD) r->nsd = (p.wtol + g.wtol) / (p.w + g.w);
    if (!(groups & SL_MET_DISTANCE)) return SL_OK;

    r->msd_pred_to_gt = p.max;
    r->msd_gt_to_pred = g.max;
    r->hd = p.max > g.max ? p.max : g.max;
    r->asd_pred_to_gt = p.wd / p.w;
    r->asd_gt_to_pred = g.wd / g.w;
    r->assd = o->assd_mode == SL_ASSD_POOLED ? (p.wd + g.wd) / (p.w + g.w)
                                             : 0.5 * (r->asd_pred_to_gt + r->asd_gt_to_pred);

    /* Percentiles reorder their input: work on copies (pooled set for the
     * union mode). */
    const double q = o->percentile;
    const int weighted = d->wp != NULL;
    int oom = 0;
    int64_t n = d->np + d->ng;
    double *all = sl_malloc(n, sizeof(double));
    double *allw = weighted ? sl_malloc(n, sizeof(double)) : NULL;
    if (!all || (weighted && !allw)) {
        free(all);
        free(allw);
        return SL_ENOMEM;
    }
    memcpy(all, d->dp, (size_t)d->np * sizeof(double));
    memcpy(all + d->np, d->dg, (size_t)d->ng * sizeof(double));
    if (weighted) {
        memcpy(allw, d->wp, (size_t)d->np * sizeof(double));
        memcpy(allw + d->np, d->wg, (size_t)d->ng * sizeof(double));
        r->hd_perc_pred_to_gt = slm_percentile_weighted(all, allw, d->np, q, &oom);
        r->hd_perc_gt_to_pred = slm_percentile_weighted(all + d->np, allw + d->np, d->ng, q, &oom);
    } else {
        r->hd_perc_pred_to_gt = slm_percentile_inplace(all, d->np, q);
        r->hd_perc_gt_to_pred = slm_percentile_inplace(all + d->np, d->ng, q);
    }
    switch (o->hd_mode) {
    case SL_HD_MAX:
        r->hd_perc = r->hd_perc_pred_to_gt > r->hd_perc_gt_to_pred ? r->hd_perc_pred_to_gt : r->hd_perc_gt_to_pred;
        break;
    case SL_HD_MEAN: r->hd_perc = 0.5 * (r->hd_perc_pred_to_gt + r->hd_perc_gt_to_pred); break;
    case SL_HD_UNION:
        /* the pooled set is still all of `all` (selection only permutes) */
        r->hd_perc = weighted ? slm_percentile_weighted(all, allw, n, q, &oom) : slm_percentile_inplace(all, n, q);
        break;
    }
    free(all);
    free(allw);
    return oom ? SL_ENOMEM : SL_OK;
}

sl_status sl_surface_distances_compute(const uint8_t *pred, const uint8_t *gt, const sl_grid *grid,
                                       sl_surface_kind surface, int threads, sl_surface_distances *out,
                                       char *msg, size_t msglen)
{
    if (out) memset(out, 0, sizeof *out);
    if (!pred || !gt || !out) return sl_errf(msg, msglen, SL_EINVAL, "surface distances: NULL argument");
    slg_vol v;
    sl_status st = slg_vol_from_grid(grid, &v, msg, msglen);
    if (st != SL_OK) return st;
    if ((int)surface < 0 || (int)surface > (int)SL_SURFACE_SURFELS)
        return sl_errf(msg, msglen, SL_EINVAL, "surface distances: unknown surface kind %d", (int)surface);
    if (surface == SL_SURFACE_SURFELS && v.ndim < 2)
        return sl_errf(msg, msglen, SL_EUNSUPPORTED, "surface distances: surfels need a 2-D or 3-D grid");
    slm_src ps = {pred, SL_DT_U8, 1, 1}, gs = {gt, SL_DT_U8, 1, 1};
    slm_scan sc;
    st = slm_scan_pair(&ps, &gs, &v, threads, &sc);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "surface distances: out of memory");
    if (sc.tp + sc.fp + sc.fn == 0) return SL_OK; /* both empty: no points */
    /* The masks are read in place through a window on the bounding box of
     * P | G: both are empty outside it, which is all the surfaces need (a
     * crop copy with a margin, as the metrics make, gives the same points). */
    int64_t box[3];
    for (int a = 0; a < 3; a++) box[a] = sc.hi[a] - sc.lo[a];
    const slg_vol bv = slg_vol_sub(&v, box);
    const int64_t first = (sc.lo[0] * v.n[1] + sc.lo[1]) * v.n[2] + sc.lo[2];
    const slg_view wp = {pred + first, v.n[1] * v.n[2], v.n[2]}, wg = {gt + first, v.n[1] * v.n[2], v.n[2]};
    slm_dist d;
    st = dist_views(&wp, &wg, &bv, surface, threads, &d);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "surface distances: out of memory");
    /* unit weights are materialised for the caller */
    if (!d.wp && d.np > 0) {
        d.wp = sl_malloc(d.np, sizeof(double));
        if (d.wp)
            for (int64_t i = 0; i < d.np; i++) d.wp[i] = 1.0;
    }
    if (!d.wg && d.ng > 0) {
        d.wg = sl_malloc(d.ng, sizeof(double));
        if (d.wg)
            for (int64_t i = 0; i < d.ng; i++) d.wg[i] = 1.0;
    }
    if ((d.np > 0 && !d.wp) || (d.ng > 0 && !d.wg)) {
        slm_dist_free(&d);
        return sl_errf(msg, msglen, SL_ENOMEM, "surface distances: out of memory");
    }
    out->n_pred = d.np;
    out->n_gt = d.ng;
    out->d_pred_to_gt = d.dp;
    out->w_pred = d.wp;
    out->d_gt_to_pred = d.dg;
    out->w_gt = d.wg;
    return SL_OK;
}

void sl_surface_distances_free(sl_surface_distances *d)
{
    if (!d) return;
    free(d->d_pred_to_gt);
    free(d->w_pred);
    free(d->d_gt_to_pred);
    free(d->w_gt);
    memset(d, 0, sizeof *d);
}
