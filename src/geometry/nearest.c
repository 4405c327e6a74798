/*
 * Distances from every point of one set to the nearest point of another,
 * on a grid, exact — the directed surface distances of HD, HD95, ASSD and
 * NSD.
 *
 * The textbook way (MONAI, MedPy, DeepMind, and this library until now) is
 * the EDT of "not a point of B" over the whole (cropped) volume, read at
 * the points of A. That costs three passes over every voxel although only
 * the surface points of A are read, and the two surfaces of a segmentation
 * and its reference are usually close to each other.
 *
 * Here the points of B are kept per row of the last axis (sorted positions,
 * a compressed-row table), so the squared distance from (a0, a1, a2) to the
 * nearest point of B in row (i0, i1) is one binary search:
 *     f(i0, i1) = (s2 d)^2,   d = distance along the row to its nearest point.
 * The squared distance to B is then the minimum over the rows of
 *     (s0 (i0 - a0))^2 + ((s1 (i1 - a1))^2 + f(i0, i1)),
 * which is exactly the value the separable EDT computes (edt.c: the first
 * pass gives f, the second adds the axis-1 term, the third the axis-0 term,
 * each as t*t + previous, in this order), so both paths give the same
 * doubles up to ties the EDT's envelope resolves by rounding (at most a few
 * units in the last place; tests/unit/test_nearest.c compares them).
 *
 * The rows are visited outwards from the point and the search stops as soon
 * as the axis terms alone reach the best value found: s * r is monotone in
 * r and floating-point addition is monotone, so
 *     fl(q0 + q1) <= fl(q0 + fl(q1 + f))   for every f >= 0,
 * and no row further out can do better. A point at distance d looks at
 * about pi d^2 / (s0 s1) rows: a handful when the surfaces are close,
 * many when they are far apart. Far apart is what the EDT is good at, so the
 * search has a budget (rows looked at, all points together); past it the
 * EDT runs instead. The decision depends only on the total number of rows
 * the search needs, never on the threads, so results are the same for any
 * thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "geom_internal.h"

/* ---- point sets per row ------------------------------------------------ */

typedef enum rows_kind { ROWS_MASK, ROWS_BORDER, ROWS_SURFELS } rows_kind;

/* The points of row r of one kind as 0/1 flags (or surfel codes) in
 * scratch; returns the row to test: the mask's own row for ROWS_MASK. */
static const uint8_t *row_points(rows_kind kind, const slg_view *w, const slg_vol *v, int64_t a0, int64_t a1,
                                 uint8_t *scratch)
{
    if (kind == ROWS_MASK) return w->base + a0 * w->s0 + a1 * w->s1;
    if (kind == ROWS_BORDER) slg_border_row(w, v, a0, a1, scratch);
    else slg_surfel_row(w, v, a0, a1, scratch);
    return scratch;
}

/*
 * The points of the mask seen through w on voxel volume v, per row of the
 * volume rv they live on (v itself, or its corner grid for surfels): the
 * mask's own voxels, its border voxels, or its surfels (weighted by table
 * when not NULL). Two passes over the rows, the first counting and the
 * second writing each row's points at its final place: computing a row
 * twice costs less than growing and joining per-thread lists.
 */
static sl_status rows_build(rows_kind kind, const slg_view *w, const slg_vol *v, const slg_vol *rv,
                            const double *table, int threads, slg_rows *R)
{
    const int64_t nrows = rv->n[0] * rv->n[1], m1 = rv->n[1], m2 = rv->n[2];
    const uint8_t full = v->ndim >= 3 ? 255 : 15;
    const int weighted = kind == ROWS_SURFELS && table;
    memset(R, 0, sizeof *R);
    R->nrows = nrows;
    R->ptr = sl_malloc(nrows + 1, sizeof(int64_t));
    if (!R->ptr) return SL_ENOMEM;
    int fail = 0;
    for (int pass = 0; pass < 2 && !fail; pass++) {
#pragma omp parallel num_threads(sl_threads(threads)) if (rv->count >= SLG_PAR_MIN)
        {
            uint8_t *scratch = kind == ROWS_MASK ? NULL : sl_malloc(m2, 1);
            if (kind != ROWS_MASK && !scratch) {
#pragma omp atomic write
                fail = 1;
            }
#pragma omp for schedule(static)
            for (int64_t r = 0; r < nrows; r++) {
                if (kind != ROWS_MASK && !scratch) continue;
                const uint8_t *f = row_points(kind, w, v, r / m1, r % m1, scratch);
                if (pass == 0) {
                    int64_t c = 0; /* a sum of 0/1, vectorised */
                    if (kind == ROWS_SURFELS)
                        for (int64_t i = 0; i < m2; i++) c += f[i] != 0 && f[i] != full;
                    else
                        for (int64_t i = 0; i < m2; i++) c += f[i] != 0;
                    R->ptr[r + 1] = c;
                    continue;
                }
                int64_t k = R->ptr[r];
                if (k == R->ptr[r + 1]) continue;
                for (int64_t i = 0; i < m2; i++) {
                    const uint8_t c = f[i];
                    if (c == 0 || (kind == ROWS_SURFELS && c == full)) continue;
                    R->pos[k] = i;
                    if (weighted) R->w[k] = table[c];
                    k++;
                }
            }
            free(scratch);
        }
        if (pass == 0 && !fail) {
            R->ptr[0] = 0;
            for (int64_t r = 0; r < nrows; r++) R->ptr[r + 1] += R->ptr[r];
            const int64_t np = R->ptr[nrows];
            if (np == 0) break;
            R->pos = sl_malloc(np, sizeof(int64_t));
            if (weighted) R->w = sl_malloc(np, sizeof(double));
            fail = !R->pos || (weighted && !R->w);
        }
    }
    if (fail) {
        slg_rows_free(R);
        return SL_ENOMEM;
    }
    return SL_OK;
}

/* (s2 d)^2 for the point of row `row` nearest to position x along the row,
 * +inf for a row without points: the EDT's first pass at x. */
static inline double row_sq(const slg_rows *R, int64_t row, int64_t x, double s2)
{
    const int64_t lo = R->ptr[row], hi = R->ptr[row + 1];
    if (lo == hi) return INFINITY;
    const int64_t *p = R->pos;
    int64_t a = lo, b = hi; /* first index with p >= x */
    while (a < b) {
        int64_t m = a + (b - a) / 2;
        if (p[m] < x) a = m + 1;
        else b = m;
    }
    int64_t d = INT64_MAX;
    if (a < hi) d = p[a] - x;
    if (a > lo && x - p[a - 1] < d) d = x - p[a - 1];
    const double t = s2 * (double)d;
    return t * t;
}

/* Squared distance from (a0, a1, a2) to the nearest point of R (R not
 * empty); adds the rows looked at to *rows. */
static double nearest_sq(const slg_rows *R, const slg_vol *v, int64_t a0, int64_t a1, int64_t a2, int64_t *rows)
{
    const int64_t n0 = v->n[0], n1 = v->n[1];
    const double s0 = v->sp[0], s1 = v->sp[1], s2 = v->sp[2];
    double best = INFINITY;
    int64_t seen = 0;
    for (int64_t r0 = 0; a0 - r0 >= 0 || a0 + r0 < n0; r0++) {
        const double t0 = s0 * (double)r0, q0 = t0 * t0;
        if (q0 >= best) break;
        for (int side0 = 0; side0 < (r0 ? 2 : 1); side0++) {
            const int64_t i0 = side0 ? a0 + r0 : a0 - r0;
            if (i0 < 0 || i0 >= n0) continue;
            for (int64_t r1 = 0; a1 - r1 >= 0 || a1 + r1 < n1; r1++) {
                const double t1 = s1 * (double)r1, q1 = t1 * t1;
                if (q0 + q1 >= best) break;
                for (int side1 = 0; side1 < (r1 ? 2 : 1); side1++) {
                    const int64_t i1 = side1 ? a1 + r1 : a1 - r1;
                    if (i1 < 0 || i1 >= n1) continue;
                    seen++;
                    const double g = q0 + (q1 + row_sq(R, i0 * n1 + i1, a2, s2));
                    if (g < best) best = g;
                }
            }
        }
    }
    *rows += seen;
    return best;
}

/* The search over every point of `from`; 0 when it stayed within budget
 * (out filled), 1 when it did not (out partly filled). */
static int search_all(const slg_rows *from, const slg_rows *to, const slg_vol *v, int64_t budget, int threads,
                      double *out)
{
    const int64_t n1 = v->n[1], nrows = from->nrows;
    int64_t spent = 0;
    int over = 0;
    /* dynamic: a row's cost depends on how far its points are from B */
#pragma omp parallel for schedule(dynamic, 16) num_threads(sl_threads(threads)) if (v->count >= SLG_PAR_MIN)
    for (int64_t r = 0; r < nrows; r++) {
        int stop;
#pragma omp atomic read
        stop = over;
        const int64_t k0 = from->ptr[r], k1 = from->ptr[r + 1];
        if (stop || k0 == k1) continue;
        const int64_t a0 = r / n1, a1 = r % n1;
        int64_t seen = 0;
        for (int64_t k = k0; k < k1; k++) out[k] = sqrt(nearest_sq(to, v, a0, a1, from->pos[k], &seen));
        int64_t now;
#pragma omp atomic capture
        {
            spent += seen;
            now = spent;
        }
        if (now > budget) {
#pragma omp atomic write
            over = 1;
        }
    }
    return over || spent > budget;
}

/* The EDT way: exact EDT of "not a point of `to`" read at the points of
 * `from`. */
static sl_status by_edt(const slg_rows *from, const slg_rows *to, const slg_vol *v, int threads, double *out)
{
    const int64_t n2 = v->n[2];
    uint8_t *mask = sl_calloc(v->count, 1);
    double *dist = sl_malloc(v->count, sizeof(double));
    sl_status st = SL_ENOMEM;
    if (mask && dist) {
        for (int64_t r = 0; r < to->nrows; r++)
            for (int64_t k = to->ptr[r]; k < to->ptr[r + 1]; k++) mask[r * n2 + to->pos[k]] = 1;
        st = slg_edt(mask, SL_DT_U8, SLG_LAB_INVERT, v, dist, 0, SLG_FIN_SQ, threads);
    }
    if (st == SL_OK)
        for (int64_t r = 0; r < from->nrows; r++)
            for (int64_t k = from->ptr[r]; k < from->ptr[r + 1]; k++) out[k] = sqrt(dist[r * n2 + from->pos[k]]);
    free(mask);
    free(dist);
    return st;
}

sl_status slg_nearest_rows(const slg_rows *from, const slg_rows *to, const slg_vol *v, int64_t budget, int threads,
                           double *out, int *used_edt)
{
    const int64_t nq = slg_rows_count(from), nb = slg_rows_count(to);
    if (used_edt) *used_edt = 0;
    if (budget < 0) budget = v->count;
    if (nq == 0) return SL_OK;
    if (nb == 0) { /* nothing to be near: +inf, as the EDT of an empty set */
        for (int64_t k = 0; k < nq; k++) out[k] = INFINITY;
        return SL_OK;
    }
    /* a zero budget is the EDT directly (used by the tests) */
    if (budget > 0 && !search_all(from, to, v, budget, threads, out)) return SL_OK;
    if (used_edt) *used_edt = 1;
    return by_edt(from, to, v, threads, out);
}

sl_status slg_rows_mask(const slg_view *w, const slg_vol *v, int threads, slg_rows *R)
{
    return rows_build(ROWS_MASK, w, v, v, NULL, threads, R);
}

sl_status slg_rows_border(const slg_view *w, const slg_vol *v, int threads, slg_rows *R)
{
    return rows_build(ROWS_BORDER, w, v, v, NULL, threads, R);
}

sl_status slg_rows_surfels(const slg_view *w, const slg_vol *v, const double *table, int threads, slg_rows *R)
{
    int64_t m[3] = {v->ndim >= 3 ? v->n[0] + 1 : 1, v->n[1] + 1, v->n[2] + 1};
    slg_vol cv = slg_vol_sub(v, m);
    return rows_build(ROWS_SURFELS, w, v, &cv, table, threads, R);
}

void slg_rows_free(slg_rows *R)
{
    if (!R) return;
    free(R->ptr);
    free(R->pos);
    free(R->w);
    memset(R, 0, sizeof *R);
}

sl_status slg_nearest(const uint8_t *from, const uint8_t *to, const slg_vol *v, int64_t budget, int threads,
                      double *out, int *used_edt)
{
    const slg_view wf = {from, v->n[1] * v->n[2], v->n[2]}, wt = {to, v->n[1] * v->n[2], v->n[2]};
    slg_rows F, T;
    sl_status st = slg_rows_mask(&wf, v, threads, &F);
    if (st != SL_OK) return st;
    st = slg_rows_mask(&wt, v, threads, &T);
    if (st == SL_OK) st = slg_nearest_rows(&F, &T, v, budget, threads, out, used_edt);
    slg_rows_free(&F);
    slg_rows_free(&T);
    return st;
}
