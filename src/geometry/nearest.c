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

/* The points of a mask per row (i0, i1): positions along axis 2 of row r
 * are pos[ptr[r] .. ptr[r + 1]), ascending. */
typedef struct rowset {
    int64_t *ptr; /* n0 * n1 + 1 */
    int64_t *pos; /* one per point */
} rowset;

/* Points per row of `a` into ca[r + 1] and of `b` into cb[r + 1] (either
 * may be NULL), then prefix sums: ca[r] is the first index of row r. */
static void count_rows(const uint8_t *a, int64_t *ca, const uint8_t *b, int64_t *cb, const slg_vol *v,
                       int threads)
{
    const int64_t nrows = v->n[0] * v->n[1], n2 = v->n[2];
#pragma omp parallel for schedule(static) num_threads(sl_threads(threads)) if (v->count >= SLG_PAR_MIN)
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *ra = a ? a + r * n2 : NULL, *rb = b ? b + r * n2 : NULL;
        int64_t x = 0, y = 0;
        /* written as sums of 0/1 so that the compiler vectorises them */
        if (ra)
            for (int64_t i = 0; i < n2; i++) x += ra[i] != 0;
        if (rb)
            for (int64_t i = 0; i < n2; i++) y += rb[i] != 0;
        if (ca) ca[r + 1] = x;
        if (cb) cb[r + 1] = y;
    }
    if (ca) {
        ca[0] = 0;
        for (int64_t r = 0; r < nrows; r++) ca[r + 1] += ca[r];
    }
    if (cb) {
        cb[0] = 0;
        for (int64_t r = 0; r < nrows; r++) cb[r + 1] += cb[r];
    }
}

/* Fills R->pos from a mask whose row starts R->ptr already holds. */
static void fill_rows(const uint8_t *m, const slg_vol *v, rowset *R, int threads)
{
    const int64_t nrows = v->n[0] * v->n[1], n2 = v->n[2];
#pragma omp parallel for schedule(static) num_threads(sl_threads(threads)) if (v->count >= SLG_PAR_MIN)
    for (int64_t r = 0; r < nrows; r++) {
        int64_t k = R->ptr[r];
        if (k == R->ptr[r + 1]) continue;
        const uint8_t *row = m + r * n2;
        for (int64_t i = 0; i < n2; i++)
            if (row[i]) R->pos[k++] = i;
    }
}

/* (s2 d)^2 for the point of row `row` nearest to position x along the row,
 * +inf for a row without points: the EDT's first pass at x. */
static inline double row_sq(const rowset *R, int64_t row, int64_t x, double s2)
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
static double nearest_sq(const rowset *R, const slg_vol *v, int64_t a0, int64_t a1, int64_t a2, int64_t *rows)
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
static int search_all(const uint8_t *from, const int64_t *qptr, const rowset *R, const slg_vol *v,
                      int64_t budget, int threads, double *out)
{
    const int64_t n1 = v->n[1], n2 = v->n[2], nrows = v->n[0] * n1;
    int64_t spent = 0;
    int over = 0;
    /* dynamic: a row's cost depends on how far its points are from B */
#pragma omp parallel for schedule(dynamic, 16) num_threads(sl_threads(threads)) if (v->count >= SLG_PAR_MIN)
    for (int64_t r = 0; r < nrows; r++) {
        int stop;
#pragma omp atomic read
        stop = over;
        if (stop || qptr[r] == qptr[r + 1]) continue;
        const uint8_t *row = from + r * n2;
        const int64_t a0 = r / n1, a1 = r % n1;
        int64_t k = qptr[r], seen = 0;
        for (int64_t a2 = 0; a2 < n2; a2++)
            if (row[a2]) out[k++] = sqrt(nearest_sq(R, v, a0, a1, a2, &seen));
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

/* The EDT way: exact EDT of "not a point of `to`" read at `from`. */
static sl_status by_edt(const uint8_t *from, const uint8_t *to, const slg_vol *v, int threads, double *out)
{
    double *dist = sl_malloc(v->count, sizeof(double));
    if (!dist) return SL_ENOMEM;
    sl_status st = slg_edt(to, SL_DT_U8, SLG_LAB_INVERT, v, dist, 0, SLG_FIN_SQ, threads);
    if (st == SL_OK) {
        int64_t k = 0;
        for (int64_t i = 0; i < v->count; i++)
            if (from[i]) out[k++] = sqrt(dist[i]);
    }
    free(dist);
    return st;
}

sl_status slg_nearest(const uint8_t *from, const uint8_t *to, const slg_vol *v, int64_t budget, int threads,
                      double *out, int *used_edt)
{
    const int64_t nrows = v->n[0] * v->n[1];
    if (used_edt) *used_edt = 0;
    if (budget < 0) budget = v->count;
    int64_t *qptr = sl_malloc(nrows + 1, sizeof(int64_t));
    rowset R = {sl_malloc(nrows + 1, sizeof(int64_t)), NULL};
    sl_status st = SL_ENOMEM;
    if (!qptr || !R.ptr) goto done;
    count_rows(from, qptr, to, R.ptr, v, threads);
    const int64_t nq = qptr[nrows], nb = R.ptr[nrows];
    st = SL_OK;
    if (nq == 0) goto done;
    if (nb == 0) { /* nothing to be near: +inf, as the EDT of an empty set */
        for (int64_t k = 0; k < nq; k++) out[k] = INFINITY;
        goto done;
    }
    /* a zero budget is the EDT directly (used by the tests) */
    int over = 1;
    if (budget > 0) {
        st = SL_ENOMEM;
        R.pos = sl_malloc(nb, sizeof(int64_t));
        if (!R.pos) goto done;
        fill_rows(to, v, &R, threads);
        over = search_all(from, qptr, &R, v, budget, threads, out);
        st = SL_OK;
    }
    if (over) {
        /* the row table is not needed any more: free it before the EDT's
         * full-volume buffer */
        free(R.pos);
        R.pos = NULL;
        if (used_edt) *used_edt = 1;
        st = by_edt(from, to, v, threads, out);
    }
done:
    free(qptr);
    free(R.ptr);
    free(R.pos);
    return st;
}
