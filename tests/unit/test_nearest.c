/*
 * Unit tests of slg_nearest (src/geometry/nearest.c), the directed
 * point-set distances behind HD, HD95, ASSD and NSD: its search path
 * against its EDT path (the computation it replaces) and against brute
 * force, in 1-D, 2-D and 3-D, isotropic and anisotropic, on random point
 * sets, border surfaces of random blobs and DeepMind surfel grids; the
 * budget's switch to the EDT; empty sets, one-point sets, points on the
 * volume's edge; 1 vs 2 threads bit-identical. The per-row point lists
 * (slg_rows_*) against the full-volume masks they replace (slg_border,
 * slg_surfel_codes), also through a window on a larger image; and
 * sl_surface_distances_compute (which reads the caller's masks in place on
 * their bounding box) against the whole-image computation it replaced
 * (border or surfel masks of the whole image, the EDT, read in raster
 * order); the area-weighted percentile's radix sort against DeepMind's
 * comparison-sort procedure. Prints the largest differences. Small enough for ASan+UBSan in a
 * second or two.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "geometry/geom_internal.h"
#include "segloss/metrics.h"
#include "metrics/metrics_internal.h"
#include "test_util.h"

static double max_search_edt, max_search_brute;
static int64_t ties_differing, points_compared;

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static slg_vol mkvol(int ndim, int64_t n0, int64_t n1, int64_t n2, double s0, double s1, double s2)
{
    slg_vol v;
    v.ndim = ndim;
    v.n[0] = n0;
    v.n[1] = n1;
    v.n[2] = n2;
    v.sp[0] = s0;
    v.sp[1] = s1;
    v.sp[2] = s2;
    v.count = n0 * n1 * n2;
    return v;
}

static int64_t count(const uint8_t *m, int64_t n)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += m[i] != 0;
    return c;
}

/* Brute force, O(|from| |to|): the distance written in another order than
 * the library's (a^2 + b^2 + c^2 from the axis-0 end), so it agrees to
 * rounding only. */
static void brute(const uint8_t *from, const uint8_t *to, const slg_vol *v, double *out)
{
    const int64_t n1 = v->n[1], n2 = v->n[2];
    int64_t k = 0;
    for (int64_t i = 0; i < v->count; i++) {
        if (!from[i]) continue;
        int64_t i0 = i / (n1 * n2), i1 = (i / n2) % n1, i2 = i % n2;
        double best = INFINITY;
        for (int64_t j = 0; j < v->count; j++) {
            if (!to[j]) continue;
            int64_t j0 = j / (n1 * n2), j1 = (j / n2) % n1, j2 = j % n2;
            double a = v->sp[0] * (double)(i0 - j0), b = v->sp[1] * (double)(i1 - j1),
                   c = v->sp[2] * (double)(i2 - j2);
            double d = a * a + b * b + c * c;
            if (d < best) best = d;
        }
        out[k++] = sqrt(best);
    }
}

static double rel(double a, double b)
{
    if (a == b) return 0.0; /* both +inf included */
    return fabs(a - b) / fmax(fabs(b), 1e-300);
}

/*
 * The three ways on one pair of sets: the search (budget large enough that
 * it never switches), the EDT (budget 0), and, when small, brute force.
 * The search must equal the EDT to a few units in the last place (both
 * evaluate the same expressions; only ties may round differently) and
 * brute force to 1e-12.
 */
static void compare(const char *what, const uint8_t *from, const uint8_t *to, const slg_vol *v, int threads)
{
    int64_t nq = count(from, v->count);
    if (nq == 0) return;
    double *a = malloc((size_t)nq * sizeof(double)), *b = malloc((size_t)nq * sizeof(double));
    double *c = malloc((size_t)nq * sizeof(double));
    int used_a = -1, used_b = -1;
    EXPECT(a && b && c);
    if (!a || !b || !c) goto out;
    EXPECT(slg_nearest(from, to, v, INT64_MAX, threads, a, &used_a) == SL_OK);
    EXPECT(slg_nearest(from, to, v, 0, threads, b, &used_b) == SL_OK);
    CHECK(used_a == 0, "%s: the search with an unlimited budget switched to the EDT", what);
    if (count(to, v->count) > 0) CHECK(used_b == 1, "%s: a zero budget did not use the EDT", what);
    double worst = 0.0;
    for (int64_t k = 0; k < nq; k++) {
        double r = rel(a[k], b[k]);
        if (r > worst) worst = r;
        ties_differing += a[k] != b[k];
    }
    points_compared += nq;
    CHECK(worst <= 1e-15, "%s: search vs EDT max rel diff %.3g", what, worst);
    if (worst > max_search_edt) max_search_edt = worst;
    if (v->count <= 4096) {
        brute(from, to, v, c);
        worst = 0.0;
        for (int64_t k = 0; k < nq; k++) {
            double r = rel(a[k], c[k]);
            if (r > worst) worst = r;
        }
        CHECK(worst <= 1e-12, "%s: search vs brute force max rel diff %.3g", what, worst);
        if (worst > max_search_brute) max_search_brute = worst;
    }
out:
    free(a);
    free(b);
    free(c);
}

static void random_sets(uint8_t *a, uint8_t *b, int64_t n, double pa, double pb)
{
    for (int64_t i = 0; i < n; i++) {
        a[i] = urand() < pa;
        b[i] = urand() < pb;
    }
}

static void test_random_sets(void)
{
    static const double spacings[][3] = {{1, 1, 1}, {2.0, 0.8, 0.8}, {0.5, 1.7, 1.1}, {3.0, 0.3, 1.0}};
    static const int64_t shapes[][4] = {/* ndim, n0, n1, n2 */
                                        {3, 9, 11, 13}, {3, 4, 17, 5},  {3, 1, 1, 1}, {2, 1, 23, 31},
                                        {2, 1, 1, 40},  {1, 1, 1, 64}, {3, 16, 3, 2}};
    uint8_t *a = malloc(4096), *b = malloc(4096);
    EXPECT(a && b);
    if (!a || !b) goto out;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t p = 0; p < sizeof spacings / sizeof spacings[0]; p++)
            for (int rep = 0; rep < 4; rep++) {
                const int64_t *sh = shapes[s];
                const double *sp = spacings[p];
                /* padded axes keep spacing 1, as slg_vol_from_grid does */
                slg_vol v = mkvol((int)sh[0], sh[1], sh[2], sh[3], sh[0] >= 3 ? sp[0] : 1.0,
                                  sh[0] >= 2 ? sp[1] : 1.0, sp[2]);
                /* from dense to a single point or nothing */
                double pa = rep == 3 ? 0.5 : 0.2, pb = rep == 0 ? 0.3 : rep == 1 ? 0.02 : rep == 2 ? 0.002 : 0.0;
                random_sets(a, b, v.count, pa, pb);
                if (rep == 2 && count(b, v.count) == 0) b[(int64_t)(urand() * (double)v.count)] = 1;
                char what[96];
                snprintf(what, sizeof what, "random %dD %lldx%lldx%lld sp %g,%g,%g rep %d", v.ndim,
                         (long long)v.n[0], (long long)v.n[1], (long long)v.n[2], v.sp[0], v.sp[1], v.sp[2], rep);
                compare(what, a, b, &v, 1);
            }
out:
    free(a);
    free(b);
}

/* The edge of the volume: sets on its faces and corners, one point each. */
static void test_edges_and_single_points(void)
{
    slg_vol v = mkvol(3, 7, 8, 9, 2.0, 0.8, 0.7);
    uint8_t a[7 * 8 * 9], b[7 * 8 * 9];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    a[0] = 1;                /* corner (0, 0, 0) */
    b[v.count - 1] = 1;      /* the opposite corner */
    compare("corner to corner", a, b, &v, 1);
    compare("corner to corner, reversed", b, a, &v, 1);
    a[0] = 0;
    a[3 * 72 + 4 * 9 + 5] = 1; /* one interior point to itself: distance 0 */
    memcpy(b, a, sizeof a);
    compare("a point to itself", a, b, &v, 1);
    double d = -1.0;
    EXPECT(slg_nearest(a, b, &v, -1, 1, &d, NULL) == SL_OK);
    CHECK(d == 0.0, "a point to itself: %g", d);
    /* every face of the volume against the points of the middle slice */
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    for (int64_t i0 = 0; i0 < 7; i0++)
        for (int64_t i1 = 0; i1 < 8; i1++)
            for (int64_t i2 = 0; i2 < 9; i2++) {
                int64_t i = (i0 * 8 + i1) * 9 + i2;
                a[i] = i0 == 0 || i0 == 6 || i1 == 0 || i1 == 7 || i2 == 0 || i2 == 8;
                b[i] = i0 == 3 && (i1 + i2) % 5 == 0;
            }
    compare("faces to a sparse slice", a, b, &v, 1);
    compare("a sparse slice to the faces", b, a, &v, 1);
}

/* Empty sets: nothing to measure from writes nothing; nothing to measure
 * to gives +inf (the EDT of an empty set), on both paths. */
static void test_empty(void)
{
    slg_vol v = mkvol(3, 5, 6, 7, 1.5, 1.0, 0.5);
    uint8_t a[210], b[210];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    double out[4] = {-1, -1, -1, -1};
    b[17] = 1;
    int used = -1;
    EXPECT(slg_nearest(a, b, &v, -1, 1, out, &used) == SL_OK);
    CHECK(out[0] == -1.0, "empty from: out written (%g)", out[0]);
    a[3] = a[100] = 1;
    memset(b, 0, sizeof b);
    for (int64_t budget = -1; budget <= 0; budget++) {
        out[0] = out[1] = -1;
        EXPECT(slg_nearest(a, b, &v, budget, 1, out, &used) == SL_OK);
        CHECK(isinf(out[0]) && out[0] > 0 && isinf(out[1]) && out[1] > 0, "empty to (budget %lld): %g %g",
              (long long)budget, out[0], out[1]);
        EXPECT(out[2] == -1.0);
    }
}

/* A random blob: voxels where a smooth random field is below a level. */
static void blob(uint8_t *m, const slg_vol *v, double c0, double c1, double c2, double r, double wob)
{
    const double ph0 = 6.28 * urand(), ph1 = 6.28 * urand();
    for (int64_t i0 = 0; i0 < v->n[0]; i0++)
        for (int64_t i1 = 0; i1 < v->n[1]; i1++)
            for (int64_t i2 = 0; i2 < v->n[2]; i2++) {
                double z = (double)i0 - c0, y = (double)i1 - c1, x = (double)i2 - c2;
                double f = sqrt(z * z + y * y + x * x) + wob * sin(0.5 * x + ph0) * cos(0.4 * y + ph1);
                m[(i0 * v->n[1] + i1) * v->n[2] + i2] = f < r;
            }
}

/*
 * What the metrics feed it: the border voxels of two overlapping blobs and
 * their DeepMind surfels on the corner grid, at anisotropic spacing, on a
 * volume large enough for the parallel paths (48^3 > SLG_PAR_MIN): 1 and 2
 * threads must agree bit for bit, and the default budget must keep to the
 * search for surfaces this close.
 */
static void test_surfaces(void)
{
    slg_vol v = mkvol(3, 48, 48, 48, 2.0, 0.8, 0.8);
    slg_vol cv = mkvol(3, 49, 49, 49, 2.0, 0.8, 0.8);
    uint8_t *p = malloc((size_t)v.count), *g = malloc((size_t)v.count);
    uint8_t *bp = malloc((size_t)v.count), *bg = malloc((size_t)v.count);
    uint8_t *cp = malloc((size_t)cv.count), *cg = malloc((size_t)cv.count);
    uint8_t *sp = malloc((size_t)cv.count), *sg = malloc((size_t)cv.count);
    double *d1 = malloc((size_t)cv.count * sizeof(double)), *d2 = malloc((size_t)cv.count * sizeof(double));
    EXPECT(p && g && bp && bg && cp && cg && sp && sg && d1 && d2);
    if (!(p && g && bp && bg && cp && cg && sp && sg && d1 && d2)) goto out;
    blob(g, &v, 23.5, 22.0, 24.0, 15.0, 2.0);
    blob(p, &v, 23.0, 23.5, 25.5, 14.0, 2.5);
    slg_border(p, &v, bp, 2);
    slg_border(g, &v, bg, 2);
    compare("blob borders P->G", bp, bg, &v, 2);
    compare("blob borders G->P", bg, bp, &v, 2);
    slg_surfel_codes(p, &v, cp, 2);
    slg_surfel_codes(g, &v, cg, 2);
    for (int64_t i = 0; i < cv.count; i++) {
        sp[i] = cp[i] != 0 && cp[i] != 255;
        sg[i] = cg[i] != 0 && cg[i] != 255;
    }
    compare("blob surfels P->G", sp, sg, &cv, 2);
    compare("blob surfels G->P", sg, sp, &cv, 2);
    int64_t nq = count(sp, cv.count);
    int u1 = -1, u2 = -1;
    EXPECT(slg_nearest(sp, sg, &cv, -1, 1, d1, &u1) == SL_OK);
    EXPECT(slg_nearest(sp, sg, &cv, -1, 2, d2, &u2) == SL_OK);
    CHECK(u1 == 0 && u2 == 0, "close surfaces left the search (%d %d)", u1, u2);
    CHECK(memcmp(d1, d2, (size_t)nq * sizeof(double)) == 0, "1 and 2 threads differ (search)");
    EXPECT(slg_nearest(sp, sg, &cv, 0, 1, d1, NULL) == SL_OK);
    EXPECT(slg_nearest(sp, sg, &cv, 0, 2, d2, NULL) == SL_OK);
    CHECK(memcmp(d1, d2, (size_t)nq * sizeof(double)) == 0, "1 and 2 threads differ (EDT)");

    /* Far apart: a small blob in one corner and a large one in the other.
     * The default budget switches to the EDT, whatever the threads. */
    blob(g, &v, 8.0, 8.0, 8.0, 6.0, 1.0);
    blob(p, &v, 38.0, 37.0, 36.0, 9.0, 1.0);
    slg_border(p, &v, bp, 1);
    slg_border(g, &v, bg, 1);
    nq = count(bp, v.count);
    EXPECT(slg_nearest(bp, bg, &v, -1, 1, d1, &u1) == SL_OK);
    EXPECT(slg_nearest(bp, bg, &v, -1, 2, d2, &u2) == SL_OK);
    CHECK(u1 == 1 && u2 == 1, "far surfaces kept to the search (%d %d)", u1, u2);
    CHECK(memcmp(d1, d2, (size_t)nq * sizeof(double)) == 0, "far: 1 and 2 threads differ");
    compare("far blob borders", bp, bg, &v, 2);
out:
    free(p);
    free(g);
    free(bp);
    free(bg);
    free(cp);
    free(cg);
    free(sp);
    free(sg);
    free(d1);
    free(d2);
}

/* Isotropic unit spacing: every squared distance is an integer, exact in
 * double, so the search and the EDT agree bit for bit, ties included. */
static void test_integer_exact(void)
{
    slg_vol v = mkvol(3, 12, 13, 14, 1.0, 1.0, 1.0);
    uint8_t a[12 * 13 * 14], b[12 * 13 * 14];
    double x[12 * 13 * 14], y[12 * 13 * 14];
    random_sets(a, b, v.count, 0.3, 0.01);
    int64_t nq = count(a, v.count);
    EXPECT(slg_nearest(a, b, &v, INT64_MAX, 1, x, NULL) == SL_OK);
    EXPECT(slg_nearest(a, b, &v, 0, 1, y, NULL) == SL_OK);
    CHECK(memcmp(x, y, (size_t)nq * sizeof(double)) == 0, "unit spacing: search and EDT differ");
}

/* The budget: the search switches exactly when the rows it needs exceed
 * the budget. The rows needed are found by bisection on the budget; at
 * that budget the search runs, one below it the EDT. */
static void test_budget_boundary(void)
{
    slg_vol v = mkvol(3, 10, 10, 10, 1.3, 0.9, 0.6);
    uint8_t a[1000], b[1000];
    double x[1000];
    random_sets(a, b, v.count, 0.1, 0.01);
    int64_t lo = 0, hi = 1 << 24; /* used_edt(lo) = 1, used_edt(hi) = 0 */
    int used = -1;
    EXPECT(slg_nearest(a, b, &v, hi, 1, x, &used) == SL_OK && used == 0);
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        EXPECT(slg_nearest(a, b, &v, mid, 1, x, &used) == SL_OK);
        if (used) lo = mid;
        else hi = mid;
    }
    int u2 = -1, u1 = -1;
    EXPECT(slg_nearest(a, b, &v, hi, 2, x, &u2) == SL_OK);
    EXPECT(slg_nearest(a, b, &v, lo, 2, x, &u1) == SL_OK);
    CHECK(u2 == 0 && u1 == 1, "budget %lld: 2 threads switch elsewhere (%d %d)", (long long)hi, u2, u1);
    printf("budget boundary: the search needs %lld row look-ups for %lld points\n", (long long)hi,
           (long long)count(a, v.count));
}

/* The points of a mask (raster order) against a row table: same points,
 * and the weights when given. */
static void check_rows(const char *what, const uint8_t *mask, const uint8_t *codes, const double *table,
                       const slg_vol *rv, const slg_rows *R)
{
    int64_t k = 0, bad = 0;
    for (int64_t i = 0; i < rv->count; i++) {
        if (!mask[i]) continue;
        int64_t r = i / rv->n[2], x = i % rv->n[2];
        if (k >= slg_rows_count(R) || R->ptr[r] > k || k >= R->ptr[r + 1] || R->pos[k] != x) bad++;
        else if (table && R->w[k] != table[codes[i]]) bad++;
        k++;
    }
    CHECK(bad == 0 && k == slg_rows_count(R), "%s: %lld of %lld points differ (table has %lld)", what,
          (long long)bad, (long long)k, (long long)slg_rows_count(R));
}

/* Borders and surfels listed per row equal the full-volume masks, for a
 * contiguous volume and for the same mask as a box inside a larger image
 * (a window with the image's strides), 1 and 2 threads. */
static void test_rows(void)
{
    static const int64_t shapes[][4] = {{3, 40, 41, 42}, {3, 5, 6, 7}, {3, 1, 9, 9}, {2, 1, 30, 33}, {2, 1, 7, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t *sh = shapes[s];
        slg_vol v = mkvol((int)sh[0], sh[1], sh[2], sh[3], 1.7, 0.9, 0.6);
        int64_t m[3] = {v.ndim >= 3 ? v.n[0] + 1 : 1, v.n[1] + 1, v.n[2] + 1};
        slg_vol cv = mkvol(v.ndim, m[0], m[1], m[2], v.sp[0], v.sp[1], v.sp[2]);
        /* the image: the volume with 2 more voxels on each side of each real axis */
        int64_t e[3] = {v.ndim >= 3 ? v.n[0] + 4 : 1, v.n[1] + 4, v.n[2] + 4};
        int64_t o[3] = {v.ndim >= 3 ? 2 : 0, 2, 2};
        uint8_t *mask = malloc((size_t)v.count), *img = calloc((size_t)(e[0] * e[1] * e[2]), 1);
        uint8_t *border = malloc((size_t)v.count), *codes = malloc((size_t)cv.count), *sf = malloc((size_t)cv.count);
        EXPECT(mask && img && border && codes && sf);
        if (!(mask && img && border && codes && sf)) goto next;
        double table[256];
        slg_surfel_table(v.ndim, v.sp, table);
        for (int rep = 0; rep < 3; rep++) {
            if (rep == 0) blob(mask, &v, 0.5 * (double)v.n[0], 0.4 * (double)v.n[1], 0.6 * (double)v.n[2],
                               0.45 * (double)v.n[2], 1.5);
            else
                for (int64_t i = 0; i < v.count; i++) mask[i] = urand() < (rep == 1 ? 0.5 : 0.9);
            /* non-zero values other than 1 are in the mask too */
            for (int64_t i = 0; i < v.count; i++) mask[i] = mask[i] ? (uint8_t)(1 + (i % 200)) : 0;
            for (int64_t i0 = 0; i0 < v.n[0]; i0++)
                for (int64_t i1 = 0; i1 < v.n[1]; i1++)
                    memcpy(img + ((i0 + o[0]) * e[1] + i1 + o[1]) * e[2] + o[2], mask + (i0 * v.n[1] + i1) * v.n[2],
                           (size_t)v.n[2]);
            slg_border(mask, &v, border, 1);
            slg_surfel_codes(mask, &v, codes, 1);
            const uint8_t full = v.ndim >= 3 ? 255 : 15;
            for (int64_t i = 0; i < cv.count; i++) sf[i] = codes[i] != 0 && codes[i] != full;
            const slg_view wc = {mask, v.n[1] * v.n[2], v.n[2]};
            const slg_view wi = {img + (o[0] * e[1] + o[1]) * e[2] + o[2], e[1] * e[2], e[2]};
            for (int th = 1; th <= 2; th++)
                for (int win = 0; win < 2; win++) {
                    const slg_view *w = win ? &wi : &wc;
                    char what[96];
                    slg_rows R;
                    snprintf(what, sizeof what, "border %dD %lldx%lldx%lld rep %d threads %d %s", v.ndim,
                             (long long)v.n[0], (long long)v.n[1], (long long)v.n[2], rep, th,
                             win ? "window" : "contiguous");
                    EXPECT(slg_rows_border(w, &v, th, &R) == SL_OK);
                    check_rows(what, border, NULL, NULL, &v, &R);
                    slg_rows_free(&R);
                    what[0] = 'S';
                    EXPECT(slg_rows_surfels(w, &v, table, th, &R) == SL_OK);
                    check_rows(what, sf, codes, table, &cv, &R);
                    slg_rows_free(&R);
                }
        }
    next:
        free(mask);
        free(img);
        free(border);
        free(codes);
        free(sf);
    }
}

/* The whole-image computation sl_surface_distances_compute replaced: the
 * surface points of the whole image (a border mask, or surfels on the
 * corner grid), the EDT of each set's complement, read in raster order. */
static int whole_image(const uint8_t *p, const uint8_t *g, const slg_vol *v, int surfels, double **d, double **w,
                       int64_t *n)
{
    slg_vol rv = *v;
    if (surfels) rv = mkvol(v->ndim, v->ndim >= 3 ? v->n[0] + 1 : 1, v->n[1] + 1, v->n[2] + 1, v->sp[0], v->sp[1],
                            v->sp[2]);
    uint8_t *s[2] = {malloc((size_t)rv.count), malloc((size_t)rv.count)};
    uint8_t *c[2] = {malloc((size_t)rv.count), malloc((size_t)rv.count)};
    double *dist = malloc((size_t)rv.count * sizeof(double)), table[256];
    int ok = s[0] && s[1] && c[0] && c[1] && dist;
    slg_surfel_table(v->ndim, v->sp, table);
    const uint8_t full = v->ndim >= 3 ? 255 : 15;
    for (int k = 0; k < 2 && ok; k++) {
        if (surfels) {
            slg_surfel_codes(k ? g : p, v, c[k], 1);
            for (int64_t i = 0; i < rv.count; i++) s[k][i] = c[k][i] != 0 && c[k][i] != full;
        } else {
            slg_border(k ? g : p, v, s[k], 1);
        }
        n[k] = count(s[k], rv.count);
    }
    for (int k = 0; k < 2 && ok; k++) {
        d[k] = malloc((size_t)(n[k] + 1) * sizeof(double));
        w[k] = malloc((size_t)(n[k] + 1) * sizeof(double));
        ok = d[k] && w[k];
        if (!ok) break;
        int have = n[1 - k] > 0;
        if (have) ok = slg_edt(s[1 - k], SL_DT_U8, SLG_LAB_INVERT, &rv, dist, 0, SLG_FIN_SQ, 1) == SL_OK;
        int64_t j = 0;
        for (int64_t i = 0; i < rv.count && ok; i++)
            if (s[k][i]) {
                d[k][j] = have ? sqrt(dist[i]) : INFINITY;
                w[k][j++] = surfels ? table[c[k][i]] : 1.0;
            }
    }
    free(s[0]);
    free(s[1]);
    free(c[0]);
    free(c[1]);
    free(dist);
    return ok;
}

static double max_public_diff;

static void compare_public(const char *what, const uint8_t *p, const uint8_t *g, const slg_vol *v)
{
    sl_grid grid = SL_GRID_DEFAULT;
    grid.ndim = v->ndim;
    for (int a = 0; a < v->ndim; a++) {
        grid.shape[a] = v->n[3 - v->ndim + a];
        grid.spacing[a] = v->sp[3 - v->ndim + a];
    }
    for (int surfels = 0; surfels < 2; surfels++) {
        if (surfels && v->ndim < 2) continue;
        for (int th = 1; th <= 2; th++) {
            sl_surface_distances sd = SL_SURFACE_DISTANCES_EMPTY;
            char msg[256];
            sl_status st = sl_surface_distances_compute(p, g, &grid, surfels ? SL_SURFACE_SURFELS : SL_SURFACE_BORDER,
                                                        th, &sd, msg, sizeof msg);
            CHECK(st == SL_OK, "%s: %s", what, msg);
            double *d[2] = {NULL, NULL}, *w[2] = {NULL, NULL};
            int64_t n[2] = {0, 0};
            EXPECT(whole_image(p, g, v, surfels, d, w, n));
            CHECK(sd.n_pred == n[0] && sd.n_gt == n[1], "%s (%s): %lld/%lld points vs %lld/%lld", what,
                  surfels ? "surfels" : "border", (long long)sd.n_pred, (long long)sd.n_gt, (long long)n[0],
                  (long long)n[1]);
            double worst = 0.0;
            for (int k = 0; k < 2 && sd.n_pred == n[0] && sd.n_gt == n[1] && d[k]; k++) {
                const double *dd = k ? sd.d_gt_to_pred : sd.d_pred_to_gt, *ww = k ? sd.w_gt : sd.w_pred;
                for (int64_t i = 0; i < n[k]; i++) {
                    double r = rel(dd[i], d[k][i]);
                    if (r > worst) worst = r;
                    if (ww[i] != w[k][i]) worst = INFINITY;
                }
            }
            CHECK(worst <= 1e-15, "%s (%s, %d threads): max rel diff %.3g vs the whole-image EDT", what,
                  surfels ? "surfels" : "border", th, worst);
            if (worst > max_public_diff) max_public_diff = worst;
            for (int k = 0; k < 2; k++) {
                free(d[k]);
                free(w[k]);
            }
            sl_surface_distances_free(&sd);
        }
    }
}

/* sl_surface_distances_compute against the whole-image computation: blobs
 * at anisotropic spacing, masks touching the volume's faces, one-voxel
 * objects, one mask empty, 2-D and 1-D, 1 and 2 threads. */
static void test_public(void)
{
    slg_vol v = mkvol(3, 44, 40, 46, 2.0, 0.8, 0.7);
    uint8_t *p = calloc((size_t)v.count, 1), *g = calloc((size_t)v.count, 1);
    EXPECT(p && g);
    if (!p || !g) goto out;
    blob(g, &v, 20.0, 19.0, 23.0, 14.0, 2.0);
    blob(p, &v, 21.0, 20.5, 24.5, 13.0, 2.5);
    compare_public("blobs", p, g, &v);
    /* touching the faces: the same blobs, larger than the volume */
    blob(g, &v, 20.0, 19.0, 23.0, 25.0, 2.0);
    blob(p, &v, 22.0, 21.0, 20.0, 24.0, 2.0);
    compare_public("blobs cut by the faces", p, g, &v);
    memset(p, 0, (size_t)v.count);
    memset(g, 0, (size_t)v.count);
    p[(5 * 40 + 6) * 46 + 7] = 1;
    g[(30 * 40 + 33) * 46 + 45] = 1; /* on a face */
    compare_public("one voxel each", p, g, &v);
    g[(30 * 40 + 33) * 46 + 45] = 0;
    compare_public("gt empty", p, g, &v);
    compare_public("pred empty", g, p, &v);
    memset(p, 0, (size_t)v.count);
    compare_public("both empty", p, g, &v);
    slg_vol v2 = mkvol(2, 1, 37, 29, 1.0, 1.3, 0.45);
    blob(g, &v2, 0.0, 18.0, 14.0, 10.0, 1.5);
    blob(p, &v2, 0.0, 17.0, 16.0, 11.0, 1.5);
    compare_public("2-D blobs", p, g, &v2);
    slg_vol v1 = mkvol(1, 1, 1, 50, 1.0, 1.0, 0.3);
    memset(p, 0, 50);
    memset(g, 0, 50);
    for (int i = 10; i < 20; i++) g[i] = 1;
    for (int i = 15; i < 42; i++) p[i] = 1;
    compare_public("1-D segments", p, g, &v1);
out:
    free(p);
    free(g);
}

/* The area-weighted percentile (its radix sort) against DeepMind's
 * procedure written here: sort (distance, area) pairs with a comparison
 * sort, cumulative area over the total, the first pair reaching q / 100.
 * Many ties (lattice distances, a few areas), zeros, +inf, and negative
 * values (which take the qsort path). Must be equal, not close. */
typedef struct pair {
    double d, w;
} pair;
static int cmp_pair(const void *x, const void *y)
{
    const pair *a = x, *b = y;
    if (a->d != b->d) return a->d < b->d ? -1 : 1;
    return (a->w > b->w) - (a->w < b->w);
}

static void test_weighted_percentile(void)
{
    static const double qs[] = {0.0, 5.0, 37.5, 50.0, 95.0, 99.9, 100.0};
    enum { N = 3000 };
    double *d = malloc(N * sizeof(double)), *w = malloc(N * sizeof(double));
    double *d2 = malloc(N * sizeof(double)), *w2 = malloc(N * sizeof(double));
    pair *p = malloc(N * sizeof(pair));
    int bad = 0, cases = 0;
    EXPECT(d && w && d2 && w2 && p);
    if (!(d && w && d2 && w2 && p)) goto out;
    for (int rep = 0; rep < 40; rep++) {
        int n = rep < 5 ? rep + 1 : 1 + (int)(urand() * (N - 1));
        for (int i = 0; i < n; i++) {
            double a = 0.8 * (double)(int)(urand() * 6), b = 2.0 * (double)(int)(urand() * 4);
            d[i] = sqrt(a * a + b * b);
            if (rep % 7 == 3 && urand() < 0.05) d[i] = INFINITY;
            if (rep % 9 == 4 && urand() < 0.05) d[i] = -d[i] - 1.0; /* the qsort path */
            w[i] = 0.125 * (double)(1 + (int)(urand() * 5)) * (rep % 2 ? 1.0 : 0.64);
        }
        for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
            for (int i = 0; i < n; i++) {
                p[i].d = d2[i] = d[i];
                p[i].w = w2[i] = w[i];
            }
            qsort(p, (size_t)n, sizeof(pair), cmp_pair);
            double total = 0.0, cum = 0.0, want = p[n - 1].d;
            for (int i = 0; i < n; i++) total += p[i].w;
            for (int i = 0; i < n; i++) {
                cum += p[i].w;
                if (cum / total >= qs[k] / 100.0) {
                    want = p[i].d;
                    break;
                }
            }
            int oom = 0;
            double got = slm_percentile_weighted(d2, w2, n, qs[k], &oom);
            cases++;
            if (got != want || oom) {
                bad++;
                if (bad < 5) fprintf(stderr, "weighted percentile n %d q %g: %.17g vs %.17g\n", n, qs[k], got, want);
            }
        }
    }
    CHECK(bad == 0, "weighted percentile: %d of %d cases differ from the comparison-sort procedure", bad, cases);
    printf("weighted percentile: %d cases, %d differ from the comparison-sort procedure\n", cases, bad);
out:
    free(d);
    free(w);
    free(d2);
    free(w2);
    free(p);
}

int main(void)
{
    TEST_RUN(test_random_sets);
    TEST_RUN(test_edges_and_single_points);
    TEST_RUN(test_empty);
    TEST_RUN(test_surfaces);
    TEST_RUN(test_integer_exact);
    TEST_RUN(test_budget_boundary);
    TEST_RUN(test_rows);
    TEST_RUN(test_public);
    TEST_RUN(test_weighted_percentile);
    printf("max rel diff search vs EDT %.3g (%lld of %lld distances not bit-identical), search vs brute force %.3g\n",
           max_search_edt, (long long)ties_differing, (long long)points_compared, max_search_brute);
    printf("sl_surface_distances_compute vs the whole-image EDT: max rel diff %.3g\n", max_public_diff);
    return test_report("test_nearest");
}
