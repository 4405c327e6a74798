/*
 * Unit tests of the metrics module: a hand-computed 1-D case, surface
 * distances against a brute-force nearest-border search on small random
 * 2-D / 3-D masks (every HD / ASSD / NSD convention), the empty-mask table,
 * lesion counting by hand, percentiles, label helpers, bad arguments, and
 * 1 vs 2 threads. Fast enough for ASan+UBSan.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/metrics.h"
#include "test_util.h"

static double max_dist_diff, max_pct_diff;

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

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* ---- brute-force reference ------------------------------------------------ */

/* border voxels with the cross, outside = background (3-D index math with
 * leading axes of extent 1) */
static void ref_border(const uint8_t *m, const int64_t n[3], uint8_t *b)
{
    for (int64_t i0 = 0; i0 < n[0]; i0++)
        for (int64_t i1 = 0; i1 < n[1]; i1++)
            for (int64_t i2 = 0; i2 < n[2]; i2++) {
                int64_t i = (i0 * n[1] + i1) * n[2] + i2;
                b[i] = 0;
                if (!m[i]) continue;
                const int64_t d[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
                for (int k = 0; k < 6; k++) {
                    if (n[0] == 1 && d[k][0]) continue; /* 2-D: no axis 0 neighbours */
                    int64_t j0 = i0 + d[k][0], j1 = i1 + d[k][1], j2 = i2 + d[k][2];
                    if (j0 < 0 || j0 >= n[0] || j1 < 0 || j1 >= n[1] || j2 < 0 || j2 >= n[2] ||
                        !m[(j0 * n[1] + j1) * n[2] + j2]) {
                        b[i] = 1;
                        break;
                    }
                }
            }
}

/* distances from each `from` border voxel to the nearest `to` border voxel */
static int64_t ref_directed(const uint8_t *from, const uint8_t *to, const int64_t n[3], const double sp[3],
                            double *out)
{
    int64_t N = n[0] * n[1] * n[2], k = 0;
    for (int64_t i = 0; i < N; i++) {
        if (!from[i]) continue;
        double best = INFINITY;
        for (int64_t j = 0; j < N; j++) {
            if (!to[j]) continue;
            double a = sp[0] * (double)(i / (n[1] * n[2]) - j / (n[1] * n[2]));
            double b = sp[1] * (double)((i / n[2]) % n[1] - (j / n[2]) % n[1]);
            double c = sp[2] * (double)(i % n[2] - j % n[2]);
            double d = a * a + b * b + c * c;
            if (d < best) best = d;
        }
        out[k++] = sqrt(best);
    }
    return k;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile (linear) by sorting a copy */
static double ref_percentile(const double *v, int64_t n, double q)
{
    double *c = malloc((size_t)n * sizeof(double));
    memcpy(c, v, (size_t)n * sizeof(double));
    qsort(c, (size_t)n, sizeof(double), cmp_d);
    double h = (double)(n - 1) * q / 100.0;
    int64_t lo = (int64_t)floor(h), hi = lo + 1 < n ? lo + 1 : lo;
    double r = c[lo] + (c[hi] - c[lo]) * (h - (double)lo);
    free(c);
    return r;
}

static void check_rel(double got, double want, double tol, const char *what)
{
    double d = fabs(got - want) / (fabs(want) > 1 ? fabs(want) : 1.0);
    if (d > max_dist_diff) max_dist_diff = d;
    CHECK(d <= tol, "%s: %.12g vs %.12g", what, got, want);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_hand_1d(void)
{
    /* P = [0 1 1 1 0 0], G = [0 0 1 1 1 0]: TP 2, FP 1, FN 1, TN 2 */
    int64_t sh[1] = {6};
    double sp[1] = {0.5};
    sl_grid g = mkgrid(1, sh, sp);
    uint8_t p[6] = {0, 1, 1, 1, 0, 0}, t[6] = {0, 0, 1, 1, 1, 0};
    sl_metric_opts o = SL_METRIC_OPTS_DEFAULT;
    sl_metric_result r;
    char msg[160];
    CHECK(sl_metrics_eval_mask(p, t, &g, &o, &r, msg, sizeof msg) == SL_OK, "eval 1-D: %s", msg);
    CHECK(r.tp == 2 && r.fp == 1 && r.fn == 1 && r.tn == 2, "1-D counts");
    CHECK_NEAR(r.dice, 2.0 / 3.0, 1e-15, "1-D dice");
    CHECK_NEAR(r.iou, 0.5, 1e-15, "1-D iou");
    CHECK_NEAR(r.volume_similarity, 1.0, 1e-15, "1-D VS");
    CHECK_NEAR(r.rvd, 0.0, 1e-15, "1-D RVD");
    CHECK_NEAR(r.mcc, (2.0 * 2 - 1.0) / sqrt(3.0 * 3 * 3 * 3), 1e-15, "1-D MCC");
    CHECK_NEAR(r.kappa, 1.0 / 3.0, 1e-15, "1-D kappa"); /* po 4/6, pe 1/2 */
    CHECK_NEAR(r.vol_pred, 1.5, 1e-15, "1-D volume in mm");
    /* borders: P {1, 3}, G {2, 4}; every border voxel is 1 voxel = 0.5 mm from the other border */
    CHECK(r.n_surf_pred == 2 && r.n_surf_gt == 2, "1-D border counts");
    CHECK_NEAR(r.hd, 0.5, 1e-15, "1-D HD");
    CHECK_NEAR(r.hd_perc, 0.5, 1e-15, "1-D HD95");
    CHECK_NEAR(r.assd, 0.5, 1e-15, "1-D ASSD");
    CHECK_NEAR(r.nsd, 1.0, 1e-15, "1-D NSD at 1 mm");
    /* 2 mm bands hold every voxel: {1,2,3} vs {2,3,4} */
    CHECK_NEAR(r.biou, 0.5, 1e-15, "1-D boundary IoU, 2 mm band");
    o.nsd_tolerance = 0.25;
    o.biou_width = 0.5;
    CHECK(sl_metrics_eval_mask(p, t, &g, &o, &r, msg, sizeof msg) == SL_OK, "eval 1-D tau");
    CHECK_NEAR(r.nsd, 0.0, 1e-15, "1-D NSD at 0.25 mm");
    /* a one-voxel band is the border: {1,3} vs {2,4} do not meet */
    CHECK_NEAR(r.biou, 0.0, 1e-15, "1-D boundary IoU, 0.5 mm band");
    o.biou_width = 0.4;
    CHECK(sl_metrics_eval_mask(p, t, &g, &o, &r, msg, sizeof msg) == SL_EINVAL && strstr(msg, "biou_width"),
          "band narrower than the spacing refused: %s", msg);
    CHECK(r.lesions_gt == 1 && r.lesions_pred == 1 && r.lesion_tp == 1 && r.lesion_fp == 0, "1-D lesions");
    CHECK_NEAR(r.lesion_dice, 2.0 / 3.0, 1e-15, "1-D lesion dice");
    CHECK_NEAR(r.cldice, 2.0 / 3.0, 1e-15, "1-D clDice (skeleton = mask in 1-D)");
}

static void test_brute(int ndim)
{
    int64_t n3[3] = {1, 1, 1};
    int64_t sh[3];
    double sp[3] = {1, 1, 1}, sp3[3] = {1, 1, 1};
    if (ndim == 2) {
        sh[0] = 13;
        sh[1] = 11;
        sp[0] = 1.3;
        sp[1] = 0.7;
        n3[1] = 13;
        n3[2] = 11;
        sp3[1] = 1.3;
        sp3[2] = 0.7;
    } else {
        sh[0] = 6;
        sh[1] = 7;
        sh[2] = 8;
        sp[0] = 2.0;
        sp[1] = 0.8;
        sp[2] = 0.9;
        for (int a = 0; a < 3; a++) {
            n3[a] = sh[a];
            sp3[a] = sp[a];
        }
    }
    sl_grid g = mkgrid(ndim, sh, sp);
    const int64_t N = n3[0] * n3[1] * n3[2];
    uint8_t *p = malloc((size_t)N), *t = malloc((size_t)N), *bp = malloc((size_t)N), *bt = malloc((size_t)N);
    double *dp = malloc((size_t)N * sizeof(double)), *dg = malloc((size_t)N * sizeof(double));
    double *all = malloc((size_t)2 * N * sizeof(double));
    for (int trial = 0; trial < 4; trial++) {
        /* a box each, jittered, plus speckle: several components */
        for (int64_t i = 0; i < N; i++) {
            int64_t c[3] = {i / (n3[1] * n3[2]), (i / n3[2]) % n3[1], i % n3[2]};
            int inp = 1, int_ = 1;
            for (int a = 3 - ndim; a < 3; a++) {
                inp &= c[a] >= 1 + trial % 2 && c[a] < n3[a] - 2;
                int_ &= c[a] >= 2 && c[a] < n3[a] - 1 - trial % 3;
            }
            p[i] = (uint8_t)(inp ^ (urand() < 0.08));
            t[i] = (uint8_t)(int_ ^ (urand() < 0.05));
        }
        ref_border(p, n3, bp);
        ref_border(t, n3, bt);
        int64_t np = ref_directed(bp, bt, n3, sp3, dp), ng = ref_directed(bt, bp, n3, sp3, dg);
        memcpy(all, dp, (size_t)np * sizeof(double));
        memcpy(all + np, dg, (size_t)ng * sizeof(double));
        double sp_ = 0, sg_ = 0, mp = 0, mg = 0, tolc = 0;
        const double tau = 1.0;
        for (int64_t i = 0; i < np; i++) {
            sp_ += dp[i];
            if (dp[i] > mp) mp = dp[i];
            tolc += dp[i] <= tau;
        }
        for (int64_t i = 0; i < ng; i++) {
            sg_ += dg[i];
            if (dg[i] > mg) mg = dg[i];
            tolc += dg[i] <= tau;
        }
        const double q = 95.0;
        double pp = ref_percentile(dp, np, q), pg = ref_percentile(dg, ng, q), pu = ref_percentile(all, np + ng, q);
        const sl_hd_mode modes[3] = {SL_HD_MAX, SL_HD_UNION, SL_HD_MEAN};
        const double want_hd[3] = {pp > pg ? pp : pg, pu, 0.5 * (pp + pg)};
        for (int k = 0; k < 3; k++) {
            sl_metric_opts o = SL_METRIC_OPTS_DEFAULT;
            o.hd_mode = modes[k];
            o.assd_mode = k == 2 ? SL_ASSD_MEAN : SL_ASSD_POOLED;
            o.nsd_tolerance = tau;
            o.metrics = SL_MET_DISTANCE | SL_MET_NSD;
            o.threads = 1 + k % 2;
            sl_metric_result r;
            char msg[160];
            CHECK(sl_metrics_eval_mask(p, t, &g, &o, &r, msg, sizeof msg) == SL_OK, "eval brute: %s", msg);
            CHECK(r.n_surf_pred == np && r.n_surf_gt == ng, "surface counts %lld/%lld vs %lld/%lld",
                  (long long)r.n_surf_pred, (long long)r.n_surf_gt, (long long)np, (long long)ng);
            check_rel(r.hd, mp > mg ? mp : mg, 1e-12, "HD");
            check_rel(r.msd_pred_to_gt, mp, 1e-12, "MSD P->G");
            check_rel(r.asd_pred_to_gt, sp_ / (double)np, 1e-12, "ASD P->G");
            check_rel(r.asd_gt_to_pred, sg_ / (double)ng, 1e-12, "ASD G->P");
            check_rel(r.hd_perc_pred_to_gt, pp, 1e-12, "HD95 P->G");
            check_rel(r.hd_perc, want_hd[k], 1e-12, "HD95 combined");
            check_rel(r.assd, k == 2 ? 0.5 * (sp_ / (double)np + sg_ / (double)ng) : (sp_ + sg_) / (double)(np + ng),
                      1e-12, "ASSD");
            check_rel(r.nsd, tolc / (double)(np + ng), 1e-12, "NSD");
        }
        /* the raw distances, in raster order */
        sl_surface_distances sd = SL_SURFACE_DISTANCES_EMPTY;
        CHECK(sl_surface_distances_compute(p, t, &g, SL_SURFACE_BORDER, 2, &sd, NULL, 0) == SL_OK, "raw");
        CHECK(sd.n_pred == np && sd.n_gt == ng, "raw counts");
        for (int64_t i = 0; i < np && i < sd.n_pred; i++) check_rel(sd.d_pred_to_gt[i], dp[i], 1e-12, "raw P->G");
        for (int64_t i = 0; i < ng && i < sd.n_gt; i++) check_rel(sd.d_gt_to_pred[i], dg[i], 1e-12, "raw G->P");
        sl_surface_distances_free(&sd);
        sl_surface_distances_free(&sd);
        sl_surface_distances_free(NULL);

        /* 1 vs 2 threads: the same bytes */
        sl_metric_opts o = SL_METRIC_OPTS_DEFAULT;
        sl_metric_result r1, r2;
        o.threads = 1;
        CHECK(sl_metrics_eval_mask(p, t, &g, &o, &r1, NULL, 0) == SL_OK, "eval t1");
        o.threads = 2;
        CHECK(sl_metrics_eval_mask(p, t, &g, &o, &r2, NULL, 0) == SL_OK, "eval t2");
        CHECK(memcmp(&r1, &r2, sizeof r1) == 0, "1 vs 2 threads identical results");
        o.surface = SL_SURFACE_SURFELS;
        CHECK(sl_metrics_eval_mask(p, t, &g, &o, &r1, NULL, 0) == SL_OK, "eval surfels");
        CHECK(r1.hd >= 0 && r1.nsd >= 0 && r1.nsd <= 1 && r1.surf_pred > 0, "surfels results in range");
    }
    free(p);
    free(t);
    free(bp);
    free(bt);
    free(dp);
    free(dg);
    free(all);
}

/* A case large enough (> SLG_PAR_MIN voxels in the image and in the crop)
 * for every pass to fork threads: all groups, 1 vs 2 threads, same bytes. */
static void test_threads_large(void)
{
    const int64_t sh[3] = {36, 44, 48};
    const double sp[3] = {2.0, 0.8, 0.7};
    const int64_t N = sh[0] * sh[1] * sh[2];
    sl_grid g = mkgrid(3, sh, sp);
    int16_t *p = malloc((size_t)N * sizeof(int16_t)), *t = malloc((size_t)N * sizeof(int16_t));
    for (int64_t i = 0; i < N; i++) {
        int64_t z = i / (sh[1] * sh[2]), y = (i / sh[2]) % sh[1], x = i % sh[2];
        double e = ((z - 17.5) * (z - 17.5)) / 225.0 + ((y - 21.5) * (y - 21.5)) / 361.0 + ((x - 23.5) * (x - 23.5)) / 441.0;
        t[i] = e < 1.0 ? 1 : (urand() < 0.01 ? 2 : 0);
        p[i] = (e + 0.15 * (urand() - 0.5)) < 1.05 ? 1 : (urand() < 0.01 ? 2 : 0);
    }
    sl_labelmap pm = {p, SL_DT_I16}, gm = {t, SL_DT_I16};
    int64_t labels[2] = {1, 2};
    for (int s = 0; s < 2; s++) {
        sl_metric_opts o = SL_METRIC_OPTS_DEFAULT;
        o.surface = s ? SL_SURFACE_SURFELS : SL_SURFACE_BORDER;
        sl_metric_result r1[2], r2[2];
        o.threads = 1;
        CHECK(sl_metrics_eval(&pm, &gm, &g, labels, 2, &o, r1, NULL, 0) == SL_OK, "large t1");
        o.threads = 2;
        CHECK(sl_metrics_eval(&pm, &gm, &g, labels, 2, &o, r2, NULL, 0) == SL_OK, "large t2");
        CHECK(memcmp(r1, r2, sizeof r1) == 0, "large case, surface %d: 1 vs 2 threads identical results", s);
        CHECK(r1[0].dice > 0.8 && r1[0].hd_perc < 5 && r1[1].lesions_gt > 10, "large case plausible");
    }
    free(p);
    free(t);
}

static void test_empty_table(void)
{
    int64_t sh[2] = {8, 9};
    sl_grid g = mkgrid(2, sh, NULL);
    uint8_t z[72] = {0}, m[72] = {0};
    for (int y = 2; y < 5; y++)
        for (int x = 3; x < 7; x++) m[y * 9 + x] = 1;
    for (int s = 0; s < 2; s++) {
        sl_metric_opts o = SL_METRIC_OPTS_DEFAULT;
        o.surface = s ? SL_SURFACE_SURFELS : SL_SURFACE_BORDER;
        sl_metric_result r;
        CHECK(sl_metrics_eval_mask(z, z, &g, &o, &r, NULL, 0) == SL_OK, "both empty");
        CHECK(r.empty_pred && r.empty_gt, "both empty flags");
        CHECK(r.dice == 1 && r.iou == 1 && r.precision == 1 && r.recall == 1 && r.mcc == 1 && r.kappa == 1 &&
                  r.volume_similarity == 1 && r.specificity == 1,
              "both empty: overlap scores 1");
        CHECK(r.voe == 0 && r.rvd == 0, "both empty: VOE, RVD 0");
        CHECK(r.hd == 0 && r.hd_perc == 0 && r.assd == 0 && r.asd_pred_to_gt == 0 && r.msd_gt_to_pred == 0,
              "both empty: distances 0");
        CHECK(r.nsd == 1 && r.biou == 1 && r.lesion_f1 == 1 && r.cldice == 1, "both empty: NSD, BIoU, F1, clDice 1");
        CHECK(r.lesions_gt == 0 && r.lesion_fp == 0, "both empty: no lesions");
        for (int who = 0; who < 2; who++) {
            const uint8_t *p = who ? m : z, *t = who ? z : m;
            CHECK(sl_metrics_eval_mask(p, t, &g, &o, &r, NULL, 0) == SL_OK, "one empty");
            CHECK(r.empty_pred == !who && r.empty_gt == who, "one empty flags");
            CHECK(r.dice == 0 && r.iou == 0 && r.precision == 0 && r.recall == 0 && r.mcc == 0 && r.kappa == 0 &&
                      r.volume_similarity == 0,
                  "one empty: overlap scores 0");
            CHECK(r.voe == 1, "one empty: VOE 1");
            CHECK(who ? (isinf(r.rvd) && r.rvd > 0) : r.rvd == -1, "one empty: RVD");
            CHECK(isinf(r.hd) && isinf(r.hd_perc) && isinf(r.assd) && isinf(r.asd_pred_to_gt) &&
                      isinf(r.msd_gt_to_pred) && r.hd > 0,
                  "one empty: distances +inf");
            CHECK(r.nsd == 0 && r.biou == 0 && r.lesion_f1 == 0 && r.cldice == 0 && r.lesion_dice == 0,
                  "one empty: NSD, BIoU, F1, clDice 0");
            CHECK((who ? r.n_surf_pred : r.n_surf_gt) > 0, "one empty: the other surface is counted");
            CHECK(who ? (r.lesion_fp == 1 && r.lesion_fn == 0) : (r.lesion_fn == 1 && r.lesion_fp == 0),
                  "one empty: lesion FP/FN");
        }
    }
}

static void test_lesions(void)
{
    /* G: three lesions; P: hits two of them (one with 1 voxel), one FP blob */
    int64_t sh[2] = {6, 12};
    sl_grid g = mkgrid(2, sh, NULL);
    uint8_t t[72] = {0}, p[72] = {0};
    for (int y = 1; y < 3; y++)
        for (int x = 1; x < 3; x++) t[y * 12 + x] = 1;      /* lesion A, 4 voxels */
    for (int x = 5; x < 8; x++) t[1 * 12 + x] = 1;           /* lesion B, 3 voxels */
    t[4 * 12 + 10] = 1;                                      /* lesion C, 1 voxel  */
    for (int y = 1; y < 3; y++)
        for (int x = 1; x < 3; x++) p[y * 12 + x] = 1;      /* hits A exactly */
    p[2 * 12 + 7] = p[1 * 12 + 7] = 1;                       /* touches B with 1 voxel */
    p[4 * 12 + 1] = p[4 * 12 + 2] = 1;                       /* FP */
    sl_metric_opts o = SL_METRIC_OPTS_DEFAULT;
    sl_lesion_report rep = SL_LESION_REPORT_EMPTY;
    char msg[160];
    CHECK(sl_lesions_eval(p, t, &g, &o, &rep, msg, sizeof msg) == SL_OK, "lesions: %s", msg);
    CHECK(rep.n_gt == 3 && rep.n_pred == 3, "lesion counts %lld %lld", (long long)rep.n_gt, (long long)rep.n_pred);
    CHECK(rep.tp == 2 && rep.fn == 1 && rep.fp == 1, "lesion TP/FN/FP");
    CHECK_NEAR(rep.f1, 4.0 / 6.0, 1e-15, "lesion F1");
    CHECK(rep.gt_detected[0] && rep.gt_detected[1] && !rep.gt_detected[2], "detected flags");
    CHECK_NEAR(rep.gt_dice[0], 1.0, 1e-15, "lesion A dice");
    CHECK_NEAR(rep.gt_dice[1], 2.0 * 1 / (3 + 2), 1e-15, "lesion B dice");
    CHECK_NEAR(rep.mean_dice, (1.0 + 0.4 + 0.0) / 3, 1e-15, "mean lesion dice");
    sl_lesion_report_free(&rep);
    sl_lesion_report_free(&rep);
    sl_lesion_report_free(NULL);
    /* IoU >= 0.5: B (IoU 1/4) is no longer detected, nor is its touching component matched */
    o.lesion_match = SL_LESION_IOU;
    CHECK(sl_lesions_eval(p, t, &g, &o, &rep, msg, sizeof msg) == SL_OK, "lesions iou");
    CHECK(rep.tp == 1 && rep.fn == 2 && rep.fp == 2, "IoU rule TP/FN/FP");
    sl_lesion_report_free(&rep);
    /* at least 2 voxels of overlap: B is still detected (the component shares 1 voxel) -> no */
    o.lesion_match = SL_LESION_OVERLAP;
    o.lesion_min_overlap = 2;
    CHECK(sl_lesions_eval(p, t, &g, &o, &rep, msg, sizeof msg) == SL_OK, "lesions k=2");
    CHECK(rep.tp == 1 && rep.fp == 2, "min overlap 2: TP/FP");
    sl_lesion_report_free(&rep);
}

static void test_helpers_and_args(void)
{
    double v[7] = {3, 1, 4, 1, 5, 9, 2}, out;
    CHECK(sl_percentile(v, 7, 50, &out) == SL_OK && out == 3, "median");
    CHECK(sl_percentile(v, 7, 95, &out) == SL_OK && fabs(out - 7.8) < 1e-12, "p95 = 7.8 (got %g)", out);
    CHECK(v[0] == 3 && v[5] == 9, "percentile leaves input alone");
    for (int i = 0; i < 20; i++) {
        double w[11];
        for (int k = 0; k < 11; k++) w[k] = floor(urand() * 5);
        double q = urand() * 100;
        CHECK(sl_percentile(w, 11, q, &out) == SL_OK, "percentile");
        double d = fabs(out - ref_percentile(w, 11, q));
        if (d > max_pct_diff) max_pct_diff = d;
        CHECK(d < 1e-12, "percentile vs sort q=%g", q);
    }
    CHECK(sl_percentile(v, 0, 50, &out) == SL_EINVAL, "percentile n=0");
    CHECK(sl_percentile(v, 7, 100.5, &out) == SL_EINVAL, "percentile q>100");
    v[2] = NAN;
    CHECK(sl_percentile(v, 7, 50, &out) == SL_EINVAL, "percentile NaN");

    int16_t lm[8] = {0, 3, 3, -2, 0, 7, 3, 0};
    sl_labelmap map = {lm, SL_DT_I16};
    int64_t labels[8], cnt;
    CHECK(sl_labels_unique(&map, 8, labels, 8, &cnt, NULL, 0) == SL_OK && cnt == 4, "unique count");
    CHECK(labels[0] == -2 && labels[1] == 0 && labels[2] == 3 && labels[3] == 7, "unique sorted");
    CHECK(sl_labels_unique(&map, 8, NULL, 0, &cnt, NULL, 0) == SL_OK && cnt == 4, "unique count only");
    float fm[3] = {1.0f, 2.5f, 0.0f};
    sl_labelmap fmap = {fm, SL_DT_F32};
    CHECK(sl_labels_unique(&fmap, 3, labels, 8, &cnt, NULL, 0) == SL_ERANGE, "unique non-integer float");
    uint8_t mk[8];
    CHECK(sl_mask_from_labels(&map, 8, 3, mk, &cnt) == SL_OK && cnt == 3 && mk[1] && mk[6] && !mk[5], "mask");

    sl_hd_mode hm;
    sl_assd_mode am;
    sl_surface_kind sk;
    sl_lesion_match lmt;
    CHECK(sl_hd_mode_parse("union", &hm) == SL_OK && hm == SL_HD_UNION, "parse hd");
    CHECK(sl_hd_mode_parse("median", &hm) == SL_EUNKNOWN, "parse hd unknown");
    CHECK(sl_assd_mode_parse("mean", &am) == SL_OK && am == SL_ASSD_MEAN, "parse assd");
    CHECK(sl_surface_kind_parse("surfels", &sk) == SL_OK && sk == SL_SURFACE_SURFELS, "parse surface");
    CHECK(sl_lesion_match_parse("iou", &lmt) == SL_OK && lmt == SL_LESION_IOU, "parse lesion");
    CHECK(strcmp(sl_hd_mode_name(SL_HD_MEAN), "mean") == 0, "hd name");
    char buf[256];
    sl_metric_opts o = SL_METRIC_OPTS_DEFAULT;
    int len = sl_metric_opts_describe(&o, 2, buf, sizeof buf);
    CHECK(len > 0 && strstr(buf, "hd_mode=max") && strstr(buf, "connectivity=8"), "describe: %s", buf);

    /* bad arguments */
    int64_t sh[2] = {4, 4};
    sl_grid g = mkgrid(2, sh, NULL);
    uint8_t a[16] = {0};
    int16_t b16[16] = {0};
    sl_labelmap pm = {a, SL_DT_U8}, gm = {b16, SL_DT_I16};
    sl_metric_result r[2];
    int64_t labs[2] = {1, 2};
    char msg[160];
    CHECK(sl_metrics_eval(&pm, &gm, &g, labs, 2, NULL, r, msg, sizeof msg) == SL_OK, "eval defaults: %s", msg);
    CHECK(r[0].label == 1 && r[1].label == 2 && r[1].empty_pred && r[1].dice == 1, "two absent labels");
    CHECK(sl_metrics_eval(NULL, &gm, &g, labs, 2, NULL, r, msg, sizeof msg) == SL_EINVAL, "NULL pred");
    CHECK(sl_metrics_eval(&pm, &gm, &g, NULL, 2, NULL, r, msg, sizeof msg) == SL_EINVAL, "NULL labels");
    CHECK(sl_metrics_eval(&pm, &gm, &g, labs, 0, NULL, r, msg, sizeof msg) == SL_EINVAL, "0 labels");
    CHECK(sl_metrics_eval(&pm, &gm, NULL, labs, 2, NULL, r, msg, sizeof msg) == SL_EINVAL, "NULL grid");
    sl_labelmap bad = {a, (sl_dtype)99};
    CHECK(sl_metrics_eval(&bad, &gm, &g, labs, 2, NULL, r, msg, sizeof msg) == SL_EDTYPE, "bad dtype");
    g.shape[0] = -3;
    CHECK(sl_metrics_eval(&pm, &gm, &g, labs, 2, NULL, r, msg, sizeof msg) == SL_ESHAPE, "bad grid");
    g.shape[0] = 4;
    o.percentile = -1;
    CHECK(sl_metrics_eval(&pm, &gm, &g, labs, 2, &o, r, msg, sizeof msg) == SL_EINVAL && strstr(msg, "percentile"),
          "bad percentile named: %s", msg);
    o = (sl_metric_opts)SL_METRIC_OPTS_DEFAULT;
    o.connectivity = 18;
    CHECK(sl_metrics_eval(&pm, &gm, &g, labs, 2, &o, r, msg, sizeof msg) == SL_EINVAL, "18 in 2-D");
    o = (sl_metric_opts)SL_METRIC_OPTS_DEFAULT;
    o.hd_mode = (sl_hd_mode)7;
    CHECK(sl_metric_opts_check(&o, msg, sizeof msg) == SL_EINVAL, "bad hd mode");
    o = (sl_metric_opts)SL_METRIC_OPTS_DEFAULT;
    o.metrics = 0x100;
    CHECK(sl_metric_opts_check(&o, msg, sizeof msg) == SL_EINVAL, "bad group bits");
    CHECK(sl_metric_opts_check(NULL, msg, sizeof msg) == SL_EINVAL, "NULL opts");
    int64_t sh1[1] = {16};
    sl_grid g1 = mkgrid(1, sh1, NULL);
    o = (sl_metric_opts)SL_METRIC_OPTS_DEFAULT;
    o.surface = SL_SURFACE_SURFELS;
    CHECK(sl_metrics_eval_mask(a, a, &g1, &o, r, msg, sizeof msg) == SL_EUNSUPPORTED, "surfels 1-D");
    sl_surface_distances sd;
    CHECK(sl_surface_distances_compute(a, a, &g1, SL_SURFACE_SURFELS, 1, &sd, msg, sizeof msg) == SL_EUNSUPPORTED,
          "raw surfels 1-D");
    CHECK(sl_surface_distances_compute(a, a, &g1, SL_SURFACE_BORDER, 1, &sd, msg, sizeof msg) == SL_OK &&
              sd.n_pred == 0 && sd.n_gt == 0,
          "raw distances of two empty masks");
    sl_surface_distances_free(&sd);
}

int main(void)
{
    test_hand_1d();
    test_brute(2);
    test_brute(3);
    test_threads_large();
    test_empty_table();
    test_lesions();
    test_helpers_and_args();
    printf("max rel diff surface metrics vs brute force  %.3g\n", max_dist_diff);
    printf("max abs diff percentile vs sort              %.3g\n", max_pct_diff);
    return test_report("test_metrics");
}
