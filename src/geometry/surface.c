/*
 * Surfaces: border voxels, and surface elements on the voxel-corner grid.
 *
 * Border voxels are what MONAI, MedPy and MetricsReloaded measure distances
 * between: mask XOR erosion(mask) with the cross, outside = background.
 *
 * Surface elements ("surfels") are DeepMind surface-distance's points
 * (Nikolov et al., "Clinically applicable segmentation of head and neck
 * anatomy for radiotherapy", JMIR 2021, compute_surface_distances): every
 * point of the voxel-corner grid whose 2^ndim surrounding voxels are neither
 * all background nor all foreground, weighted by the size of the iso-surface
 * that passes through that cell.
 *
 * The weights are DeepMind's. In 2-D they are the marching-squares contour
 * lengths through the edge midpoints (cell_length_2d, the lengths of
 * DeepMind's create_table_neighbour_code_to_contour_length).
 * In 3-D they are DeepMind's own table (lookup_tables.py,
 * _NEIGHBOUR_CODE_TO_NORMALS, Apache-2.0, Copyright 2018 Google Inc.): for
 * each of the 256 configurations of a cell a short list of normal vectors
 * whose lengths are the areas of its triangles at unit spacing; at spacing
 * (sz, sy, sx) a normal (n0, n1, n2) becomes (n0 sy sx, n1 sz sx, n2 sz sy)
 * and the cell's area is the sum of their lengths
 * (create_table_neighbour_code_to_surface_area). Those triangles are not a
 * minimal surface — in configurations such as three corners of one face the
 * table's area exceeds the area of the polygon through the edge midpoints —
 * but reproducing DeepMind to the last digit needs its exact areas, so the
 * table is carried as data rather than re-derived. Which points are surfels
 * — and hence every distance — does not depend on the weights.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "geom_internal.h"

/* ---- border voxels ---------------------------------------------------- */

/* The mask's rows, by number: row (i0, i1) of w, or NULL outside v. */
static inline const uint8_t *view_row(const slg_view *w, const slg_vol *v, int64_t i0, int64_t i1)
{
    if (i0 < 0 || i0 >= v->n[0] || i1 < 0 || i1 >= v->n[1]) return NULL;
    return w->base + i0 * w->s0 + i1 * w->s1;
}

void slg_border_row(const slg_view *w, const slg_vol *v, int64_t i0, int64_t i1, uint8_t *out)
{
    const int64_t n2 = v->n[2];
    const uint8_t *c = view_row(w, v, i0, i1);
    /* Only the real axes have neighbours: in 2-D the padded axis 0 must not
     * make every voxel a border voxel. A missing axis reads the row itself
     * (which is in the mask wherever it is asked). */
    const uint8_t *u = v->ndim >= 2 ? view_row(w, v, i0, i1 - 1) : c;
    const uint8_t *d = v->ndim >= 2 ? view_row(w, v, i0, i1 + 1) : c;
    const uint8_t *f = v->ndim >= 3 ? view_row(w, v, i0 - 1, i1) : c;
    const uint8_t *b = v->ndim >= 3 ? view_row(w, v, i0 + 1, i1) : c;
    if (!u || !d || !f || !b || n2 < 3) {
        /* a neighbour row outside the volume (or no room inside the row):
         * every voxel of the mask in this row touches the outside */
        for (int64_t i = 0; i < n2; i++) out[i] = c[i] != 0;
        return;
    }
    out[0] = c[0] != 0;
    /* branch-free, so that the compiler vectorises it */
    for (int64_t i = 1; i < n2 - 1; i++) {
        int in = (c[i - 1] != 0) & (c[i + 1] != 0) & (u[i] != 0) & (d[i] != 0) & (f[i] != 0) & (b[i] != 0);
        out[i] = (uint8_t)((c[i] != 0) & !in);
    }
    out[n2 - 1] = c[n2 - 1] != 0;
}

void slg_border(const uint8_t *mask, const slg_vol *v, uint8_t *border, int threads)
{
    const int64_t n0 = v->n[0], n1 = v->n[1], n2 = v->n[2];
    const slg_view w = {mask, n1 * n2, n2};
#pragma omp parallel for collapse(2) schedule(static) num_threads(sl_threads(threads)) if (v->count >= SLG_PAR_MIN)
    for (int64_t i0 = 0; i0 < n0; i0++)
        for (int64_t i1 = 0; i1 < n1; i1++) slg_border_row(&w, v, i0, i1, border + (i0 * n1 + i1) * n2);
}

sl_status sl_surface_border(const uint8_t *mask, const sl_grid *grid, uint8_t *border, int threads)
{
    slg_vol v;
    if (!mask || !border) return SL_EINVAL;
    sl_status st = slg_vol_from_grid(grid, &v, NULL, 0);
    if (st != SL_OK) return st;
    if (mask < border + v.count && border < mask + v.count) return SL_EINVAL;
    slg_border(mask, &v, border, threads);
    return SL_OK;
}

/* ---- surfel weights ----------------------------------------------------- */

/* 2-D: the length of the marching-squares contour through the edge
 * midpoints of a cell with code bits k = dy*2 + dx (voxel (dy, dx) of the
 * cell), spacing (sy, sx) = sp[1], sp[2]: one or three foreground corners
 * cut one corner off (half a cell diagonal); two in one row give a line
 * along x (sx), two in one column a line along y (sy), two on a diagonal
 * cut both corners off (two half diagonals). */
static double cell_length_2d(int code, const double sp[3])
{
    const double half_diag = 0.5 * sqrt(sp[1] * sp[1] + sp[2] * sp[2]);
    int m = (code & 1) + ((code >> 1) & 1) + ((code >> 2) & 1) + ((code >> 3) & 1);
    if (m == 1 || m == 3) return half_diag;
    if (code == 0x3 || code == 0xc) return sp[2];
    if (code == 0x5 || code == 0xa) return sp[1];
    return 2.0 * half_diag; /* 0x6, 0x9 */
}

/*
 * DeepMind's _NEIGHBOUR_CODE_TO_NORMALS for codes 0..127 in DeepMind's bit
 * order, each normal's components times 8 and without sign (only lengths
 * are used): {count, n0, n1, n2, n0, n1, n2, ...}. Codes 128..255 are the
 * complements, whose entries in DeepMind's table are those of 255 - code.
 */
static const unsigned char dm_normals[128][13] = {
    {0}, {1,1,1,1}, {1,1,1,1}, {2,2,2,0,2,2,0}, {1,1,1,1}, {2,2,0,2,2,0,2}, {2,1,1,1,1,1,1},
    {3,4,0,0,2,2,2,1,1,1}, {1,1,1,1}, {2,1,1,1,1,1,1}, {2,2,0,2,2,0,2}, {3,4,0,0,2,2,2,1,1,1},
    {2,2,2,0,2,2,0}, {3,4,0,0,2,2,2,1,1,1}, {3,4,0,0,2,2,2,1,1,1}, {2,4,0,0,4,0,0}, {1,1,1,1},
    {2,0,2,2,0,2,2}, {2,1,1,1,1,1,1}, {3,0,4,0,2,2,2,1,1,1}, {2,1,1,1,1,1,1}, {3,0,0,4,2,2,2,1,1,1},
    {3,1,1,1,1,1,1,1,1,1}, {4,1,1,1,2,2,2,2,2,2,1,1,1}, {2,1,1,1,1,1,1}, {3,0,2,2,0,2,2,1,1,1},
    {3,2,0,2,2,0,2,1,1,1}, {4,1,1,1,3,3,3,0,2,2,2,0,2}, {3,1,1,1,2,2,0,2,2,0},
    {4,3,3,3,0,2,2,1,1,1,2,2,0}, {4,4,0,0,1,1,1,2,2,2,1,1,1}, {3,4,0,0,1,1,1,2,2,2}, {1,1,1,1},
    {2,1,1,1,1,1,1}, {2,0,2,2,0,2,2}, {3,0,4,0,1,1,1,2,2,2}, {2,1,1,1,1,1,1}, {3,1,1,1,2,0,2,2,0,2},
    {3,0,2,2,0,2,2,1,1,1}, {4,3,3,3,0,2,2,1,1,1,2,0,2}, {2,1,1,1,1,1,1}, {3,1,1,1,1,1,1,1,1,1},
    {3,0,0,4,2,2,2,1,1,1}, {4,2,2,2,2,2,2,1,1,1,1,1,1}, {3,1,1,1,2,2,0,2,2,0},
    {4,4,0,0,2,2,2,1,1,1,1,1,1}, {4,0,2,2,3,3,3,1,1,1,2,2,0}, {3,4,0,0,2,2,2,1,1,1},
    {2,2,2,0,2,2,0}, {3,0,4,0,2,2,2,1,1,1}, {3,0,4,0,1,1,1,2,2,2}, {2,0,4,0,0,4,0},
    {3,2,2,0,2,2,0,1,1,1}, {4,3,3,3,2,0,2,1,1,1,2,2,0}, {4,1,1,1,0,4,0,2,2,2,1,1,1},
    {3,0,4,0,2,2,2,1,1,1}, {3,1,1,1,2,2,0,2,2,0}, {4,0,4,0,2,2,2,1,1,1,1,1,1},
    {4,3,3,3,2,2,0,1,1,1,2,0,2}, {3,0,4,0,2,2,2,1,1,1}, {4,2,2,0,2,2,0,2,2,0,2,2,0},
    {3,2,2,0,2,2,0,1,1,1}, {3,1,1,1,2,2,0,2,2,0}, {2,2,2,0,2,2,0}, {1,1,1,1}, {2,1,1,1,1,1,1},
    {2,1,1,1,1,1,1}, {3,1,1,1,2,2,0,2,2,0}, {2,0,2,2,0,2,2}, {3,0,0,4,2,2,2,1,1,1},
    {3,0,2,2,0,2,2,1,1,1}, {4,3,3,3,0,2,2,1,1,1,2,2,0}, {2,1,1,1,1,1,1}, {3,1,1,1,1,1,1,1,1,1},
    {3,1,1,1,2,0,2,2,0,2}, {4,4,0,0,2,2,2,1,1,1,1,1,1}, {3,0,4,0,2,2,2,1,1,1},
    {4,2,2,2,2,2,2,1,1,1,1,1,1}, {4,2,0,2,3,3,3,0,2,2,1,1,1}, {3,4,0,0,2,2,2,1,1,1},
    {2,2,0,2,2,0,2}, {3,0,0,4,2,2,2,1,1,1}, {3,1,1,1,2,0,2,2,0,2}, {4,2,0,2,3,3,3,2,2,0,1,1,1},
    {3,0,0,4,2,2,2,1,1,1}, {2,0,0,4,0,0,4}, {4,1,1,1,1,1,1,2,2,2,0,0,4}, {3,1,1,1,2,2,2,0,0,4},
    {3,2,0,2,2,0,2,1,1,1}, {4,0,0,4,2,2,2,1,1,1,1,1,1}, {4,2,0,2,2,0,2,2,0,2,2,0,2},
    {3,1,1,1,2,0,2,2,0,2}, {4,2,0,2,3,3,3,2,2,0,1,1,1}, {3,0,0,4,2,2,2,1,1,1},
    {3,1,1,1,2,0,2,2,0,2}, {2,2,0,2,2,0,2}, {2,1,1,1,1,1,1}, {3,1,1,1,1,1,1,1,1,1},
    {3,1,1,1,0,2,2,0,2,2}, {4,0,4,0,1,1,1,2,2,2,1,1,1}, {3,0,2,2,0,2,2,1,1,1},
    {4,0,0,4,2,2,2,1,1,1,1,1,1}, {4,0,2,2,0,2,2,0,2,2,0,2,2}, {3,0,2,2,0,2,2,1,1,1},
    {3,1,1,1,1,1,1,1,1,1}, {4,1,1,1,1,1,1,1,1,1,1,1,1}, {4,0,0,4,2,2,2,1,1,1,1,1,1},
    {3,1,1,1,1,1,1,1,1,1}, {4,0,4,0,2,2,2,1,1,1,1,1,1}, {3,1,1,1,1,1,1,1,1,1},
    {3,0,2,2,0,2,2,1,1,1}, {2,1,1,1,1,1,1}, {3,4,0,0,2,2,2,1,1,1}, {4,2,2,2,1,1,1,2,2,2,1,1,1},
    {4,3,3,3,0,2,2,1,1,1,2,0,2}, {3,0,4,0,2,2,2,1,1,1}, {4,3,3,3,2,2,0,0,2,2,1,1,1},
    {3,1,1,1,2,2,2,0,0,4}, {3,1,1,1,0,2,2,0,2,2}, {2,0,2,2,0,2,2}, {4,4,0,0,2,2,2,1,1,1,1,1,1},
    {3,1,1,1,1,1,1,1,1,1}, {3,2,0,2,2,0,2,1,1,1}, {2,1,1,1,1,1,1}, {3,2,2,0,2,2,0,1,1,1},
    {2,1,1,1,1,1,1}, {2,1,1,1,1,1,1}, {1,1,1,1},
};

/* DeepMind numbers the 8 voxels of a cell the other way round: its bit b
 * is voxel (dz, dy, dx) with dz*4 + dy*2 + dx = 7 - b (the kernel
 * [[[128, 64], [32, 16]], [[8, 4], [2, 1]]] correlated at the cell's last
 * voxel), so its code is our code with the 8 bits reversed. */
static double dm_cell_area(int code, const double sp[3])
{
    int dm = 0;
    for (int b = 0; b < 8; b++)
        if (code & (1 << b)) dm |= 1 << (7 - b);
    if (dm >= 128) dm = 255 - dm;
    const unsigned char *e = dm_normals[dm];
    double area = 0.0;
    for (int t = 0; t < e[0]; t++) {
        double n0 = e[1 + 3 * t] / 8.0 * sp[1] * sp[2];
        double n1 = e[2 + 3 * t] / 8.0 * sp[0] * sp[2];
        double n2 = e[3 + 3 * t] / 8.0 * sp[0] * sp[1];
        area += sqrt(n0 * n0 + n1 * n1 + n2 * n2);
    }
    return area;
}

void slg_surfel_table(int ndim, const double sp[3], double table[256])
{
    for (int c = 0; c < 256; c++) table[c] = 0.0;
    if (ndim == 3) {
        for (int c = 1; c < 255; c++) table[c] = dm_cell_area(c, sp);
        return;
    }
    for (int c = 1; c < 15; c++) table[c] = cell_length_2d(c, sp);
}

void slg_surfel_row(const slg_view *w, const slg_vol *v, int64_t p0, int64_t p1, uint8_t *out)
{
    const int64_t n2 = v->n[2];
    /* the 2 (2-D) or 4 (3-D) voxel rows around the corner row: j = dz*2 + dy
     * is the voxel row (p0 - 1 + dz, p1 - 1 + dy) (2-D: (0, p1 - 1 + dy)),
     * whose two voxels p2 - 1 and p2 are bits 2j and 2j + 1 of the code */
    const int nr = v->ndim >= 3 ? 4 : 2;
    memset(out, 0, (size_t)n2 + 1);
    for (int j = 0; j < nr; j++) {
        const int64_t i0 = v->ndim >= 3 ? p0 - 1 + (j >> 1) : 0, i1 = p1 - 1 + (j & 1);
        const uint8_t *r = view_row(w, v, i0, i1);
        if (!r) continue;
        const int sh = 2 * j;
        out[0] |= (uint8_t)((r[0] != 0) << (sh + 1));
        for (int64_t p2 = 1; p2 < n2; p2++)
            out[p2] |= (uint8_t)(((r[p2 - 1] != 0) | ((r[p2] != 0) << 1)) << sh);
        out[n2] |= (uint8_t)((r[n2 - 1] != 0) << sh);
    }
}

void slg_surfel_codes(const uint8_t *mask, const slg_vol *v, uint8_t *code, int threads)
{
    const int64_t n1 = v->n[1], n2 = v->n[2];
    const int64_t m0 = v->ndim >= 3 ? v->n[0] + 1 : 1, m1 = n1 + 1, m2 = n2 + 1;
    const slg_view w = {mask, n1 * n2, n2};
#pragma omp parallel for collapse(2) schedule(static) num_threads(sl_threads(threads)) if (v->count >= SLG_PAR_MIN)
    for (int64_t p0 = 0; p0 < m0; p0++)
        for (int64_t p1 = 0; p1 < m1; p1++) slg_surfel_row(&w, v, p0, p1, code + (p0 * m1 + p1) * m2);
}

sl_status sl_surface_elements(const uint8_t *mask, const sl_grid *grid, double *weight, int threads)
{
    slg_vol v;
    if (!mask || !weight) return SL_EINVAL;
    sl_status st = slg_vol_from_grid(grid, &v, NULL, 0);
    if (st != SL_OK) return st;
    if (v.ndim < 2) return SL_EUNSUPPORTED;
    int64_t m[3] = {v.ndim >= 3 ? v.n[0] + 1 : 1, v.n[1] + 1, v.n[2] + 1};
    int64_t mc = m[0] * m[1] * m[2]; /* bounded by slg_vol_from_grid's padded check */
    uint8_t *code = sl_malloc(mc, 1);
    if (!code) return SL_ENOMEM;
    double table[256];
    slg_surfel_table(v.ndim, v.sp, table);
    slg_surfel_codes(mask, &v, code, threads);
#pragma omp parallel for schedule(static) num_threads(sl_threads(threads)) if (mc >= SLG_PAR_MIN)
    for (int64_t i = 0; i < mc; i++) weight[i] = table[code[i]];
    free(code);
    return SL_OK;
}
