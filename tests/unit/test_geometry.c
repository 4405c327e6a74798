/*
 * Unit tests of the geometry module: hand-computed EDTs and a brute-force
 * EDT on small random volumes, signed and multi-label maps, borders,
 * surfels, components, skeletons, bounding boxes, bad arguments, and 1 vs 2
 * threads. Small enough to run under ASan+UBSan in a second.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/geometry.h"
#include "test_util.h"

static double max_edt_diff, max_ml_diff, max_signed_diff;

static sl_grid mkgrid(int ndim, const int64_t *shape, const double *sp)
{
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = ndim;
    for (int a = 0; a < ndim; a++) {
        g.shape[a] = shape[a];
        g.spacing[a] = sp ? sp[a] : 1.0;
    }
    return g;
}

/* xorshift: the test's own deterministic random numbers */
static uint64_t rng_state = 88172645463325252ULL;
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Brute force: for each voxel with label L != 0 the distance to the nearest
 * voxel with another label (binary: labels 0/1). O(N^2), tiny volumes only. */
static void brute_edt(const int32_t *lab, const int64_t n[3], const double sp[3], double *out)
{
    int64_t N = n[0] * n[1] * n[2];
    for (int64_t i = 0; i < N; i++) {
        if (!lab[i]) {
            out[i] = 0;
            continue;
        }
        int64_t i0 = i / (n[1] * n[2]), i1 = (i / n[2]) % n[1], i2 = i % n[2];
        double best = INFINITY;
        for (int64_t j = 0; j < N; j++) {
            if (lab[j] == lab[i]) continue;
            int64_t j0 = j / (n[1] * n[2]), j1 = (j / n[2]) % n[1], j2 = j % n[2];
            double a = sp[0] * (double)(i0 - j0), b = sp[1] * (double)(i1 - j1), c = sp[2] * (double)(i2 - j2);
            double d = a * a + b * b + c * c;
            if (d < best) best = d;
        }
        out[i] = sqrt(best);
    }
}

static double rel_diff(double a, double b)
{
    if (isinf(a) && isinf(b) && (a > 0) == (b > 0)) return 0.0;
    double d = fabs(a - b);
    return d / (fabs(b) > 1e-300 ? fabs(b) : 1.0);
}

static void test_grid_and_args(void)
{
    int64_t sh[3] = {4, 5, 6};
    double sp[3] = {1, 1, 1};
    sl_grid g = mkgrid(3, sh, sp);
    char msg[128];
    CHECK(sl_grid_check(&g, msg, sizeof msg) == SL_OK, "valid grid");
    CHECK(sl_grid_voxels(&g) == 120, "voxels");
    CHECK(sl_grid_check(NULL, msg, sizeof msg) == SL_EINVAL, "NULL grid");
    g.ndim = 0;
    CHECK(sl_grid_check(&g, msg, sizeof msg) == SL_ESHAPE, "ndim 0");
    g.ndim = 4;
    CHECK(sl_grid_check(&g, msg, sizeof msg) == SL_ESHAPE, "ndim 4");
    g = mkgrid(3, sh, sp);
    g.shape[1] = 0;
    CHECK(sl_grid_check(&g, msg, sizeof msg) == SL_ESHAPE, "extent 0");
    g = mkgrid(3, sh, sp);
    g.spacing[2] = 0.0;
    CHECK(sl_grid_check(&g, msg, sizeof msg) == SL_EINVAL, "spacing 0");
    g.spacing[2] = NAN;
    CHECK(sl_grid_check(&g, msg, sizeof msg) == SL_EINVAL, "spacing NaN");
    g = mkgrid(3, sh, sp);
    g.shape[0] = g.shape[1] = g.shape[2] = (int64_t)1 << 30;
    CHECK(sl_grid_check(&g, msg, sizeof msg) == SL_EOVERFLOW, "2^90 voxels");
    CHECK(sl_grid_voxels(&g) == -1, "voxels of a bad grid");

    /* bad EDT arguments */
    g = mkgrid(3, sh, sp);
    uint8_t m[120] = {0};
    float f[120];
    int32_t i32[120];
    sl_edt_opts o = SL_EDT_OPTS_DEFAULT;
    CHECK(sl_edt(NULL, SL_DT_U8, &g, &o, f, SL_DT_F32, msg, sizeof msg) == SL_EINVAL, "edt NULL in");
    CHECK(sl_edt(m, SL_DT_U8, &g, &o, NULL, SL_DT_F32, msg, sizeof msg) == SL_EINVAL, "edt NULL out");
    CHECK(sl_edt(m, SL_DT_U8, NULL, &o, f, SL_DT_F32, msg, sizeof msg) == SL_EINVAL, "edt NULL grid");
    CHECK(sl_edt(m, SL_DT_U8, &g, &o, i32, SL_DT_I32, msg, sizeof msg) == SL_EDTYPE, "edt int output");
    CHECK(sl_edt(m, (sl_dtype)77, &g, &o, f, SL_DT_F32, msg, sizeof msg) == SL_EDTYPE, "edt bad input dtype");
    o.mode = (sl_edt_mode)9;
    CHECK(sl_edt(m, SL_DT_U8, &g, &o, f, SL_DT_F32, msg, sizeof msg) == SL_EINVAL, "edt bad mode");
    o.mode = SL_EDT_MULTILABEL;
    CHECK(sl_edt(f, SL_DT_F32, &g, &o, i32, SL_DT_F32, msg, sizeof msg) == SL_EDTYPE, "edt multilabel float");
    o.mode = SL_EDT_PLAIN;
    CHECK(sl_edt(f, SL_DT_F32, &g, &o, f, SL_DT_F32, msg, sizeof msg) == SL_EINVAL, "edt in == out");
    CHECK(strlen(msg) > 0, "edt error message written");
    CHECK(sl_edt(m, SL_DT_U8, &g, NULL, f, SL_DT_F32, NULL, 0) == SL_OK, "edt NULL opts and msg");

    sl_edt_mode md;
    CHECK(sl_edt_mode_parse("kervadec", &md) == SL_OK && md == SL_EDT_SIGNED_KERVADEC, "parse kervadec");
    CHECK(sl_edt_mode_parse("chamfer", &md) == SL_EUNKNOWN, "parse unknown");
    CHECK(strcmp(sl_edt_mode_name(SL_EDT_MULTILABEL), "multilabel") == 0, "mode name");
}

static void test_edt_hand(void)
{
    /* 1-D, spacing 2: distances to the single zero */
    int64_t sh1[1] = {6};
    double sp1[1] = {2.0};
    sl_grid g = mkgrid(1, sh1, sp1);
    uint8_t m1[6] = {1, 1, 1, 0, 1, 1};
    double d1[6], want1[6] = {6, 4, 2, 0, 2, 4};
    CHECK(sl_edt(m1, SL_DT_U8, &g, NULL, d1, SL_DT_F64, NULL, 0) == SL_OK, "edt 1-D");
    for (int i = 0; i < 6; i++) CHECK(d1[i] == want1[i], "edt 1-D [%d] = %g, want %g", i, d1[i], want1[i]);

    /* 2-D, spacing (1, 2), one zero in the centre of 3x3 */
    int64_t sh2[2] = {3, 3};
    double sp2[2] = {1.0, 2.0};
    g = mkgrid(2, sh2, sp2);
    uint8_t m2[9] = {1, 1, 1, 1, 0, 1, 1, 1, 1};
    double d2[9];
    CHECK(sl_edt(m2, SL_DT_U8, &g, NULL, d2, SL_DT_F64, NULL, 0) == SL_OK, "edt 2-D");
    double want2[9] = {sqrt(5.0), 1, sqrt(5.0), 2, 0, 2, sqrt(5.0), 1, sqrt(5.0)};
    for (int i = 0; i < 9; i++) CHECK_NEAR(d2[i], want2[i], 1e-15, "edt 2-D hand");

    /* no background: +inf everywhere, float and double */
    uint8_t ones[9];
    memset(ones, 1, sizeof ones);
    float f2[9];
    CHECK(sl_edt(ones, SL_DT_U8, &g, NULL, f2, SL_DT_F32, NULL, 0) == SL_OK, "edt all ones");
    int allinf = 1;
    for (int i = 0; i < 9; i++) allinf &= isinf(f2[i]) && f2[i] > 0;
    CHECK(allinf, "edt with no background is +inf");

    /* signed, 1 row: -s inside at the boundary, +s outside */
    int64_t sh3[2] = {1, 8};
    double sp3[2] = {1.0, 0.5};
    g = mkgrid(2, sh3, sp3);
    int16_t row[8] = {0, 0, 1, 1, 1, 1, 0, 0};
    double ds[8], dk[8];
    sl_edt_opts o = {SL_EDT_SIGNED, 1};
    CHECK(sl_edt(row, SL_DT_I16, &g, &o, ds, SL_DT_F64, NULL, 0) == SL_OK, "edt signed");
    double wants[8] = {1.0, 0.5, -0.5, -1.0, -1.0, -0.5, 0.5, 1.0};
    for (int i = 0; i < 8; i++) CHECK(ds[i] == wants[i], "signed [%d] = %g want %g", i, ds[i], wants[i]);
    o.mode = SL_EDT_SIGNED_KERVADEC;
    CHECK(sl_edt(row, SL_DT_I16, &g, &o, dk, SL_DT_F64, NULL, 0) == SL_OK, "edt kervadec");
    /* inside: -(edt - 1): edt = 0.5, 1.0 -> 0.5, 0; outside: distance */
    double wantk[8] = {1.0, 0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 1.0};
    for (int i = 0; i < 8; i++) CHECK_NEAR(dk[i], wantk[i], 1e-15, "kervadec hand");
    int16_t zero[8] = {0};
    CHECK(sl_edt(zero, SL_DT_I16, &g, &o, dk, SL_DT_F64, NULL, 0) == SL_OK, "kervadec empty");
    int allzero = 1;
    for (int i = 0; i < 8; i++) allzero &= dk[i] == 0.0;
    CHECK(allzero, "kervadec of an empty mask is 0");
    o.mode = SL_EDT_SIGNED;
    CHECK(sl_edt(zero, SL_DT_I16, &g, &o, ds, SL_DT_F64, NULL, 0) == SL_OK, "signed empty");
    CHECK(isinf(ds[3]) && ds[3] > 0, "signed of an empty mask is +inf");

    /* multi-label, touching labels: 1 voxel apart */
    int64_t sh4[2] = {1, 6};
    g = mkgrid(2, sh4, NULL);
    int32_t lab[6] = {1, 1, 2, 2, 2, 0};
    double dm[6], wantm[6] = {2, 1, 1, 2, 1, 0};
    o.mode = SL_EDT_MULTILABEL;
    CHECK(sl_edt(lab, SL_DT_I32, &g, &o, dm, SL_DT_F64, NULL, 0) == SL_OK, "edt multilabel");
    for (int i = 0; i < 6; i++) CHECK(dm[i] == wantm[i], "multilabel [%d] = %g want %g", i, dm[i], wantm[i]);
}

static void test_edt_brute(void)
{
    const int64_t n[3] = {5, 7, 6};
    const double sp[3] = {2.5, 0.8, 1.1};
    const int64_t N = n[0] * n[1] * n[2];
    sl_grid g = mkgrid(3, n, sp);
    uint8_t *m = malloc((size_t)N);
    int32_t *lab = malloc((size_t)N * sizeof(int32_t)), *bin = malloc((size_t)N * sizeof(int32_t));
    double *want = malloc((size_t)N * sizeof(double)), *got = malloc((size_t)N * sizeof(double));
    float *gotf = malloc((size_t)N * sizeof(float)), *got2 = malloc((size_t)N * sizeof(float));
    for (int trial = 0; trial < 6; trial++) {
        double p = trial < 3 ? 0.5 : 0.93;
        for (int64_t i = 0; i < N; i++) {
            m[i] = urand() < p;
            bin[i] = m[i];
            lab[i] = m[i] ? 1 + (int32_t)(urand() * 3) : 0;
        }
        brute_edt(bin, n, sp, want);
        sl_edt_opts o = {SL_EDT_PLAIN, 1};
        CHECK(sl_edt(m, SL_DT_U8, &g, &o, got, SL_DT_F64, NULL, 0) == SL_OK, "edt brute f64");
        CHECK(sl_edt(m, SL_DT_U8, &g, &o, gotf, SL_DT_F32, NULL, 0) == SL_OK, "edt brute f32");
        o.threads = 2;
        CHECK(sl_edt(m, SL_DT_U8, &g, &o, got2, SL_DT_F32, NULL, 0) == SL_OK, "edt brute f32 2 threads");
        CHECK(memcmp(gotf, got2, (size_t)N * sizeof(float)) == 0, "edt 1 vs 2 threads bit-identical");
        for (int64_t i = 0; i < N; i++) {
            double e = rel_diff(got[i], want[i]), ef = rel_diff(gotf[i], want[i]);
            if (e > max_edt_diff) max_edt_diff = e;
            CHECK(e <= 1e-12, "edt f64 voxel %lld: %g vs %g", (long long)i, got[i], want[i]);
            CHECK(ef <= 1e-6, "edt f32 voxel %lld: %g vs %g", (long long)i, (double)gotf[i], want[i]);
        }
        /* multi-label against brute force */
        brute_edt(lab, n, sp, want);
        o.mode = SL_EDT_MULTILABEL;
        CHECK(sl_edt(lab, SL_DT_I32, &g, &o, got, SL_DT_F64, NULL, 0) == SL_OK, "edt brute multilabel");
        for (int64_t i = 0; i < N; i++) {
            double e = rel_diff(got[i], want[i]);
            if (e > max_ml_diff) max_ml_diff = e;
            CHECK(e <= 1e-12, "multilabel voxel %lld: %g vs %g", (long long)i, got[i], want[i]);
        }
        /* signed: both sides by brute force (labels 1 inside / 2 outside) */
        for (int64_t i = 0; i < N; i++) bin[i] = m[i] ? 1 : 2;
        brute_edt(bin, n, sp, want);
        o.mode = SL_EDT_SIGNED;
        CHECK(sl_edt(m, SL_DT_U8, &g, &o, got, SL_DT_F64, NULL, 0) == SL_OK, "edt brute signed");
        for (int64_t i = 0; i < N; i++) {
            double w = m[i] ? -want[i] : want[i];
            double e = rel_diff(got[i], w);
            if (e > max_signed_diff) max_signed_diff = e;
            CHECK(e <= 1e-12, "signed voxel %lld: %g vs %g", (long long)i, got[i], w);
        }
    }
    free(m);
    free(lab);
    free(bin);
    free(want);
    free(got);
    free(gotf);
    free(got2);
}

/* Large enough (> SLG_PAR_MIN voxels) for the passes to fork threads: 1 and
 * 2 threads must give the same bytes in every mode. */
static void test_threads_large(void)
{
    const int64_t n[3] = {40, 48, 52};
    const double sp[3] = {2.0, 0.7, 0.9};
    const int64_t N = n[0] * n[1] * n[2];
    sl_grid g = mkgrid(3, n, sp);
    int32_t *lab = malloc((size_t)N * sizeof(int32_t));
    double *a = malloc((size_t)N * sizeof(double)), *b = malloc((size_t)N * sizeof(double));
    uint8_t *m = malloc((size_t)N), *b1 = malloc((size_t)N), *b2 = malloc((size_t)N);
    for (int64_t i = 0; i < N; i++) {
        double u = urand();
        lab[i] = u < 0.1 ? 0 : (u < 0.6 ? 1 : 2);
        m[i] = lab[i] == 1;
    }
    const sl_edt_mode modes[4] = {SL_EDT_PLAIN, SL_EDT_MULTILABEL, SL_EDT_SIGNED, SL_EDT_SIGNED_KERVADEC};
    for (int k = 0; k < 4; k++) {
        sl_edt_opts o1 = {modes[k], 1}, o2 = {modes[k], 2};
        CHECK(sl_edt(lab, SL_DT_I32, &g, &o1, a, SL_DT_F64, NULL, 0) == SL_OK, "edt large t1");
        CHECK(sl_edt(lab, SL_DT_I32, &g, &o2, b, SL_DT_F64, NULL, 0) == SL_OK, "edt large t2");
        CHECK(memcmp(a, b, (size_t)N * sizeof(double)) == 0, "edt mode %d: 1 vs 2 threads bit-identical", k);
    }
    CHECK(sl_surface_border(m, &g, b1, 1) == SL_OK && sl_surface_border(m, &g, b2, 2) == SL_OK &&
              memcmp(b1, b2, (size_t)N) == 0,
          "border 1 vs 2 threads");
    free(lab);
    free(a);
    free(b);
    free(m);
    free(b1);
    free(b2);
}

static void test_border_and_surfels(void)
{
    int64_t sh[2] = {5, 5};
    sl_grid g = mkgrid(2, sh, NULL);
    uint8_t m[25] = {0}, b[25];
    for (int y = 1; y < 4; y++)
        for (int x = 1; x < 4; x++) m[y * 5 + x] = 1;
    CHECK(sl_surface_border(m, &g, b, 1) == SL_OK, "border");
    int nb = 0;
    for (int i = 0; i < 25; i++) nb += b[i];
    CHECK(nb == 8 && b[12] == 0 && b[6] == 1, "3x3 square has a border ring of 8 (got %d)", nb);
    /* image edge counts as background */
    memset(m, 1, sizeof m);
    CHECK(sl_surface_border(m, &g, b, 2) == SL_OK, "border full");
    nb = 0;
    for (int i = 0; i < 25; i++) nb += b[i];
    CHECK(nb == 16, "full 5x5 image: border is the 16 edge voxels (got %d)", nb);
    CHECK(sl_surface_border(m, &g, m, 1) == SL_EINVAL, "border in place refused");
    CHECK(sl_surface_border(NULL, &g, b, 1) == SL_EINVAL, "border NULL");

    /* one pixel: 4 corners, each a quarter diamond of length sqrt(0.5) */
    memset(m, 0, sizeof m);
    m[12] = 1;
    double w[36];
    CHECK(sl_surface_elements(m, &g, w, 1) == SL_OK, "surfels 2-D");
    double tot = 0;
    int nz = 0;
    for (int i = 0; i < 36; i++) {
        tot += w[i];
        nz += w[i] > 0;
    }
    CHECK(nz == 4, "one pixel has 4 surfels (got %d)", nz);
    CHECK_NEAR(tot, 4 * sqrt(0.5), 1e-14, "one pixel contour length");
    /* one voxel in 3-D: 8 corner triangles of area sqrt(3)/8 */
    int64_t sh3[3] = {3, 3, 3};
    double sp3[3] = {1, 1, 1};
    sl_grid g3 = mkgrid(3, sh3, sp3);
    uint8_t v[27] = {0};
    v[13] = 1;
    double w3[64];
    CHECK(sl_surface_elements(v, &g3, w3, 1) == SL_OK, "surfels 3-D");
    tot = 0;
    nz = 0;
    for (int i = 0; i < 64; i++) {
        tot += w3[i];
        nz += w3[i] > 0;
    }
    CHECK(nz == 8, "one voxel has 8 surfels (got %d)", nz);
    CHECK_NEAR(tot, sqrt(3.0), 1e-14, "one voxel surfel area");
    int64_t sh1[1] = {4};
    sl_grid g1 = mkgrid(1, sh1, NULL);
    CHECK(sl_surface_elements(v, &g1, w3, 1) == SL_EUNSUPPORTED, "surfels 1-D unsupported");
}

static void test_components(void)
{
    /* diagonal neighbours: 4-connectivity splits, 8 joins */
    int64_t sh[2] = {4, 5};
    sl_grid g = mkgrid(2, sh, NULL);
    const uint8_t m[20] = {1, 0, 0, 0, 1,  /* */
                           0, 1, 0, 0, 1,  /* */
                           0, 0, 0, 0, 0,  /* */
                           1, 1, 0, 1, 0};
    int32_t lab[20];
    sl_components c = SL_COMPONENTS_EMPTY;
    char msg[128];
    CHECK(sl_components_label(m, &g, 4, lab, &c, msg, sizeof msg) == SL_OK, "components 4");
    CHECK(c.count == 5, "4-connectivity: 5 components (got %lld)", (long long)c.count);
    CHECK(lab[0] == 1 && lab[4] == 2 && lab[6] == 3 && lab[9] == 2 && lab[15] == 4 && lab[18] == 5,
          "raster order of first voxel");
    CHECK(c.size[1] == 2 && c.bbox[1 * 6 + 0] == 0 && c.bbox[1 * 6 + 3] == 2 && c.bbox[1 * 6 + 1] == 4,
          "size and bbox of component 2");
    sl_components_free(&c);
    CHECK(sl_components_label(m, &g, 8, lab, &c, msg, sizeof msg) == SL_OK, "components 8");
    CHECK(c.count == 4 && lab[6] == 1, "8-connectivity joins the diagonal (count %lld)", (long long)c.count);
    sl_components_free(&c);
    CHECK(sl_components_label(m, &g, 0, NULL, &c, msg, sizeof msg) == SL_OK && c.count == 4, "labels NULL");
    sl_components_free(&c);
    sl_components_free(&c);  /* twice: a reset struct frees nothing */
    sl_components_free(NULL);
    CHECK(sl_components_label(m, &g, 6, lab, &c, msg, sizeof msg) == SL_EINVAL, "6 in 2-D refused");
    CHECK(sl_components_label(NULL, &g, 4, lab, &c, msg, sizeof msg) == SL_EINVAL, "NULL mask");
    /* 3-D: 6 / 18 / 26 on two voxels touching at an edge and one at a corner */
    int64_t sh3[3] = {2, 2, 3};
    sl_grid g3 = mkgrid(3, sh3, NULL);
    uint8_t v[12] = {0};
    v[0] = 1;          /* (0,0,0) */
    v[1 * 6 + 1 * 3 + 0] = 1; /* (1,1,0): edge neighbour of (0,0,0) */
    v[0 * 6 + 1 * 3 + 1] = 0;
    v[1 * 6 + 0 * 3 + 1] = 1; /* (1,0,1): edge neighbour of (0,0,0) */
    v[0 * 6 + 1 * 3 + 2] = 1; /* (0,1,2): corner neighbour of (1,0,1) */
    int64_t want[3] = {4, 2, 1}; /* 6: all apart; 18: edges join; 26: the corner too */
    const int conns[3] = {6, 18, 26};
    for (int k = 0; k < 3; k++) {
        CHECK(sl_components_label(v, &g3, conns[k], NULL, &c, msg, sizeof msg) == SL_OK, "components 3-D");
        CHECK(c.count == want[k], "3-D connectivity %d: %lld components, want %lld", conns[k], (long long)c.count,
              (long long)want[k]);
        sl_components_free(&c);
    }
}

static int count_u8(const uint8_t *m, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++) c += m[i] != 0;
    return c;
}

static void test_skeleton_and_bbox(void)
{
    /* a 5 x 11 bar thins to one horizontal line on the middle row */
    int64_t sh[2] = {7, 13};
    sl_grid g = mkgrid(2, sh, NULL);
    uint8_t m[91] = {0}, s[91];
    for (int y = 1; y < 6; y++)
        for (int x = 1; x < 12; x++) m[y * 13 + x] = 1;
    char msg[128];
    CHECK(sl_skeletonize(m, &g, s, msg, sizeof msg) == SL_OK, "skeleton bar");
    int n = count_u8(s, 91), onmid = 0;
    for (int x = 0; x < 13; x++) onmid += s[3 * 13 + x];
    CHECK(n >= 5 && n == onmid, "bar skeleton lies on the middle row (%d voxels, %d on it)", n, onmid);
    for (int i = 0; i < 91; i++) CHECK(!s[i] || m[i], "skeleton inside the mask");
    /* a single pixel and a 2x2 block keep one voxel at least */
    memset(m, 0, sizeof m);
    m[3 * 13 + 6] = 1;
    CHECK(sl_skeletonize(m, &g, s, msg, sizeof msg) == SL_OK && count_u8(s, 91) == 1, "single pixel kept");
    m[3 * 13 + 7] = m[4 * 13 + 6] = m[4 * 13 + 7] = 1;
    /* end points are kept, so the last two voxels of a 2x2 block both stay */
    CHECK(sl_skeletonize(m, &g, s, msg, sizeof msg) == SL_OK && count_u8(s, 91) == 2 && s[4 * 13 + 6] &&
              s[4 * 13 + 7], "2x2 block -> its 2-voxel bottom row");
    /* a ring keeps its hole: the skeleton is a closed loop (no end points) */
    memset(m, 0, sizeof m);
    for (int y = 0; y < 7; y++)
        for (int x = 2; x < 11; x++) m[y * 13 + x] = (y == 0 || y == 6 || x == 2 || x == 10 || y == 1 || x == 3);
    CHECK(sl_skeletonize(m, &g, s, msg, sizeof msg) == SL_OK, "skeleton ring");
    int ends = 0, inside_hole = 0;
    for (int y = 0; y < 7; y++)
        for (int x = 0; x < 13; x++) {
            if (!s[y * 13 + x]) continue;
            int nb = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if ((dy || dx) && yy >= 0 && yy < 7 && xx >= 0 && xx < 13) nb += s[yy * 13 + xx];
                }
            ends += nb == 1;
        }
    for (int y = 2; y < 6; y++)
        for (int x = 4; x < 10; x++) inside_hole += s[y * 13 + x];
    CHECK(ends == 0 && inside_hole == 0 && count_u8(s, 91) > 8, "ring skeleton is a loop around the hole");
    /* 3-D: a 3x3x9 bar thins to a line along the long axis */
    int64_t sh3[3] = {5, 5, 11};
    sl_grid g3 = mkgrid(3, sh3, NULL);
    uint8_t v[275] = {0}, sv[275];
    for (int z = 1; z < 4; z++)
        for (int y = 1; y < 4; y++)
            for (int x = 1; x < 10; x++) v[(z * 5 + y) * 11 + x] = 1;
    CHECK(sl_skeletonize(v, &g3, sv, msg, sizeof msg) == SL_OK, "skeleton 3-D");
    int n3 = count_u8(sv, 275), axis = 0;
    for (int x = 0; x < 11; x++) axis += sv[(2 * 5 + 2) * 11 + x];
    CHECK(n3 >= 3 && n3 == axis, "3-D bar skeleton is its axis (%d voxels, %d on the axis)", n3, axis);
    CHECK(sl_skeletonize(v, &g3, v, msg, sizeof msg) == SL_EINVAL, "skeleton in place refused");
    CHECK(sl_skeletonize(NULL, &g3, sv, msg, sizeof msg) == SL_EINVAL, "skeleton NULL");

    int64_t lo[3], hi[3], cnt;
    CHECK(sl_bbox(v, &g3, lo, hi, &cnt) == SL_OK, "bbox");
    CHECK(cnt == 81 && lo[0] == 1 && hi[0] == 4 && lo[2] == 1 && hi[2] == 10, "bbox values");
    memset(v, 0, sizeof v);
    CHECK(sl_bbox(v, &g3, lo, hi, &cnt) == SL_OK && cnt == 0 && lo[1] == 0 && hi[1] == 0, "bbox of empty");
    CHECK(sl_bbox(NULL, &g3, lo, hi, &cnt) == SL_EINVAL, "bbox NULL");
}

int main(void)
{
    test_grid_and_args();
    test_edt_hand();
    test_edt_brute();
    test_threads_large();
    test_border_and_surfels();
    test_components();
    test_skeleton_and_bbox();
    printf("max rel diff edt vs brute force          %.3g\n", max_edt_diff);
    printf("max rel diff multilabel vs brute force   %.3g\n", max_ml_diff);
    printf("max rel diff signed vs brute force       %.3g\n", max_signed_diff);
    return test_report("test_geometry");
}
