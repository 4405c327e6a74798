/*
 * Grids (validation, the padded 3-D view) and bounding boxes.
 */
#include <math.h>
#include <string.h>
#include "internal.h"
#include "geom_internal.h"

sl_status slg_vol_from_grid(const sl_grid *g, slg_vol *v, char *msg, size_t msglen)
{
    if (!g) return sl_errf(msg, msglen, SL_EINVAL, "grid is NULL");
    if (g->ndim < 1 || g->ndim > SL_MAX_SPATIAL)
        return sl_errf(msg, msglen, SL_ESHAPE, "grid has %d axes (1 to 3 supported)", g->ndim);
    int off = 3 - g->ndim;
    v->ndim = g->ndim;
    for (int a = 0; a < 3; a++) { v->n[a] = 1; v->sp[a] = 1.0; }
    for (int a = 0; a < g->ndim; a++) {
        if (g->shape[a] < 1)
            return sl_errf(msg, msglen, SL_ESHAPE, "grid axis %d has extent %lld", a, (long long)g->shape[a]);
        if (!isfinite(g->spacing[a]) || !(g->spacing[a] > 0))
            return sl_errf(msg, msglen, SL_EINVAL, "grid axis %d has spacing %g (finite and > 0 needed)", a,
                           g->spacing[a]);
        v->n[off + a] = g->shape[a];
        v->sp[off + a] = g->spacing[a];
    }
    /* Crops add a small margin (<= 2 per side) to each axis; check the
     * padded count too so that no later product can overflow. */
    int64_t c, cp;
    size_t bytes;
    if (sl_mul3_size(v->n[0], v->n[1], v->n[2], &c) != SL_OK ||
        sl_mul3_size(v->n[0] + 4, v->n[1] + 4, v->n[2] + 4, &cp) != SL_OK ||
        sl_bytes(cp, sizeof(double), &bytes) != SL_OK)
        return sl_errf(msg, msglen, SL_EOVERFLOW, "grid of %lld x %lld x %lld voxels is too large",
                       (long long)v->n[0], (long long)v->n[1], (long long)v->n[2]);
    v->count = c;
    return SL_OK;
}

slg_vol slg_vol_sub(const slg_vol *v, const int64_t n[3])
{
    slg_vol s = *v;
    for (int a = 0; a < 3; a++) s.n[a] = n[a];
    s.count = n[0] * n[1] * n[2];
    return s;
}

sl_status sl_grid_check(const sl_grid *grid, char *msg, size_t msglen)
{
    slg_vol v;
    return slg_vol_from_grid(grid, &v, msg, msglen);
}

int64_t sl_grid_voxels(const sl_grid *grid)
{
    slg_vol v = {0}; /* GCC cannot see that a failed check returns non-zero */
    if (slg_vol_from_grid(grid, &v, NULL, 0) != SL_OK) return -1;
    return v.count;
}

sl_status sl_bbox(const uint8_t *mask, const sl_grid *grid, int64_t lo[SL_MAX_SPATIAL],
                  int64_t hi[SL_MAX_SPATIAL], int64_t *count)
{
    slg_vol v;
    if (!mask || !lo || !hi) return SL_EINVAL;
    sl_status st = slg_vol_from_grid(grid, &v, NULL, 0);
    if (st != SL_OK) return st;
    int64_t l[3] = {INT64_MAX, INT64_MAX, INT64_MAX}, h[3] = {-1, -1, -1}, cnt = 0;
    /* One sequential scan: min/max are cheap and the scan is memory bound. */
    for (int64_t i0 = 0; i0 < v.n[0]; i0++)
        for (int64_t i1 = 0; i1 < v.n[1]; i1++) {
            const uint8_t *row = mask + (i0 * v.n[1] + i1) * v.n[2];
            int64_t first = -1, last = -1, c = 0;
            for (int64_t i2 = 0; i2 < v.n[2]; i2++)
                if (row[i2]) {
                    if (first < 0) first = i2;
                    last = i2;
                    c++;
                }
            if (c == 0) continue;
            cnt += c;
            if (i0 < l[0]) l[0] = i0;
            if (i0 > h[0]) h[0] = i0;
            if (i1 < l[1]) l[1] = i1;
            if (i1 > h[1]) h[1] = i1;
            if (first < l[2]) l[2] = first;
            if (last > h[2]) h[2] = last;
        }
    int off = 3 - v.ndim;
    for (int a = 0; a < v.ndim; a++) {
        lo[a] = cnt ? l[off + a] : 0;
        hi[a] = cnt ? h[off + a] + 1 : 0;
    }
    if (count) *count = cnt;
    return SL_OK;
}
