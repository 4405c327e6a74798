/*
 * The issue-15 metric families through the C API, for the sanitizer build
 * (the Python reference tests, which check the values against scikit-learn,
 * MONAI and Warfield transcriptions, cannot load the sanitized library):
 * hand values of sl_prob_eval / sl_auroc_ap, sl_instances_eval (every
 * matching rule, pairs), sl_instances_eval_label, sl_fuse (STAPLE both
 * modes, majority), the surfel areas of DeepMind's table at anisotropic
 * spacing, and the refusals.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/geometry.h"
#include "segloss/metrics.h"
#include "test_util.h"

static void test_prob(void)
{
    /* four voxels, two classes (see tests/ref/test_prob.py): ECE 1/16, MCE 1/8 */
    float prob[8] = {0.75f, 0.75f, 0.125f, 0.625f, 0.25f, 0.25f, 0.875f, 0.375f};
    int64_t lab[4] = {0, 1, 1, 0};
    sl_labelmap lm = {lab, SL_DT_I64};
    sl_prob_opts o = SL_PROB_OPTS_DEFAULT;
    o.bins = 4;
    sl_prob_result r;
    sl_prob_class pc[2];
    char msg[256];
    CHECK(sl_prob_eval(prob, 2, &lm, 4, &o, 1, &r, pc, msg, sizeof msg) == SL_OK, "prob eval: %s", msg);
    CHECK_NEAR(r.ece, 1.0 / 16, 1e-15, "ECE");
    CHECK_NEAR(r.mce, 1.0 / 8, 1e-15, "MCE");
    CHECK_NEAR(r.accuracy, 0.75, 0, "accuracy");
    CHECK(r.n == 4 && pc[1].positives == 2, "counts");
    /* class 1 scores 0.25, 0.25, 0.875, 0.375 for y = 0, 1, 1, 0: AUROC 0.625 */
    CHECK_NEAR(pc[1].auroc, 0.625, 1e-15, "AUROC class 1");
    float s[4] = {0.1f, 0.4f, 0.35f, 0.8f};
    uint8_t y[4] = {0, 0, 1, 1};
    double a, ap;
    CHECK(sl_auroc_ap(s, y, 4, &a, &ap) == SL_OK, "auroc_ap");
    CHECK_NEAR(a, 0.75, 1e-15, "sklearn docs AUROC");
    CHECK_NEAR(ap, 0.5 + 0.5 * 2.0 / 3.0, 1e-15, "sklearn docs AP");
    /* bad input: sum off, a value above 1, NaN, all ignored */
    prob[0] = 0.7f;
    CHECK(sl_prob_eval(prob, 2, &lm, 4, &o, 0, &r, NULL, msg, sizeof msg) == SL_ERANGE && strstr(msg, "sum"),
          "sum refused: %s", msg);
    prob[0] = 1.5f;
    CHECK(sl_prob_eval(prob, 2, &lm, 4, &o, 0, &r, NULL, msg, sizeof msg) == SL_ERANGE, "above 1 refused");
    prob[0] = NAN;
    CHECK(sl_prob_eval(prob, 2, &lm, 4, &o, 0, &r, NULL, msg, sizeof msg) == SL_ENONFINITE, "NaN refused");
    prob[0] = 0.75f;
    o.has_ignore = 1;
    int64_t all7[4] = {7, 7, 7, 7};
    sl_labelmap l7 = {all7, SL_DT_I64};
    o.ignore_label = 7;
    CHECK(sl_prob_eval(prob, 2, &l7, 4, &o, 1, &r, pc, msg, sizeof msg) == SL_EEMPTY, "all ignored");
    CHECK(sl_auroc_ap(NULL, y, 4, &a, &ap) == SL_EINVAL, "NULL scores");
}

static void test_instances(void)
{
    /* 6x8: targets 1 (4 px), 7 (9 px), 3 (4 px, missed); predictions 5
     * (= target 1), 2 (6 of target 7), 9 (a false positive) */
    int32_t gt[48] = {0}, pred[48] = {0};
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 8; x++) {
            int i = y * 8 + x;
            if (y < 2 && x < 2) gt[i] = 1, pred[i] = 5;
            if (y >= 3 && x >= 3 && x < 6) gt[i] = 7;
            if (y >= 3 && x >= 3 && x < 5) pred[i] = 2;
            if (y < 2 && x >= 6) gt[i] = 3;
        }
    pred[5 * 8] = 9;
    sl_labelmap p = {pred, SL_DT_I32}, g = {gt, SL_DT_I32};
    sl_instance_opts o = SL_INSTANCE_OPTS_DEFAULT;
    sl_instance_result r;
    sl_instance_pairs pairs = SL_INSTANCE_PAIRS_EMPTY;
    char msg[256];
    for (int m = 0; m < 3; m++) {
        o.match = (sl_instance_match)m;
        CHECK(sl_instances_eval(&p, &g, 48, &o, &r, &pairs, msg, sizeof msg) == SL_OK, "instances %d: %s", m, msg);
        CHECK(r.tp == 2 && r.fp == 1 && r.fn == 1 && r.n_gt == 3 && r.n_pred == 3, "counts rule %d", m);
        CHECK_NEAR(r.pq, (1 + 2.0 / 3) / (3 + 1e-6), 1e-15, "PQ");
        CHECK(pairs.n == 2 && pairs.gt_id[0] == 1 && pairs.pred_id[0] == 5 && pairs.gt_id[1] == 7 &&
                  pairs.pred_id[1] == 2,
              "pairs rule %d", m);
        sl_instance_pairs_free(&pairs);
    }
    sl_instance_pairs_free(NULL);
    o.iou_threshold = 1.5;
    CHECK(sl_instances_eval(&p, &g, 48, &o, &r, NULL, msg, sizeof msg) == SL_EINVAL, "threshold refused");
    /* components of label 1 of two semantic maps */
    uint8_t a[16] = {1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0};
    uint8_t b[16] = {1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    sl_labelmap la = {a, SL_DT_U8}, lb = {b, SL_DT_U8};
    sl_grid gr = SL_GRID_DEFAULT;
    gr.ndim = 2, gr.shape[0] = 4, gr.shape[1] = 4;
    o = (sl_instance_opts)SL_INSTANCE_OPTS_DEFAULT;
    CHECK(sl_instances_eval_label(&lb, &la, &gr, 1, 4, &o, &r, msg, sizeof msg) == SL_OK, "label: %s", msg);
    /* target components {0,1,4,5} and {7,11}; prediction {0,1,4} (IoU 3/4) and {11} (IoU 1/2: no) */
    CHECK(r.tp == 1 && r.fp == 1 && r.fn == 1, "components counts %lld %lld %lld", (long long)r.tp, (long long)r.fp,
          (long long)r.fn);
    sl_instance_match mm;
    CHECK(sl_instance_match_parse("hungarian", &mm) == SL_OK && mm == SL_INST_HUNGARIAN, "parse");
    CHECK(sl_instance_match_parse("best", &mm) == SL_EUNKNOWN, "parse unknown");
}

static void test_fuse(void)
{
    enum { N = 64 };
    uint8_t truth[N], bg[N] = {0};
    for (int i = 0; i < N; i++) truth[i] = (i % 8 > 2 && i / 8 > 2) ? (i % 3 == 0 ? 2 : 1) : 0;
    sl_labelmap r3[3] = {{truth, SL_DT_U8}, {truth, SL_DT_U8}, {bg, SL_DT_U8}};
    int64_t fused[N];
    sl_fuse_opts o = SL_FUSE_OPTS_DEFAULT;
    sl_fuse_result res = SL_FUSE_RESULT_EMPTY;
    char msg[256];
    for (int mode = 0; mode < 2; mode++) {
        o.mode = (sl_staple_mode)mode;
        CHECK(sl_fuse(r3, 3, N, &o, fused, &res, msg, sizeof msg) == SL_OK, "staple %d: %s", mode, msg);
        int same = 1;
        for (int i = 0; i < N; i++) same &= fused[i] == truth[i];
        CHECK(same, "staple mode %d recovers the truth", mode);
        CHECK(res.nlabels == 3 && res.nraters == 3 && res.converged, "result mode %d", mode);
        CHECK_NEAR(res.sensitivity[0 * 3 + 1], 1.0, 1e-6, "perfect rater sensitivity");
        CHECK_NEAR(res.sensitivity[2 * 3 + 1], 0.0, 1e-6, "background rater sensitivity");
        sl_fuse_result_free(&res);
    }
    sl_fuse_result_free(NULL);
    o.method = SL_FUSE_MAJORITY;
    CHECK(sl_fuse(r3, 3, N, &o, fused, NULL, msg, sizeof msg) == SL_OK, "majority");
    CHECK(fused[N - 1] == truth[N - 1], "majority value");
    CHECK(sl_fuse(r3, 1, N, &o, fused, NULL, msg, sizeof msg) == SL_EINVAL, "one rater refused");
    float half[N];
    for (int i = 0; i < N; i++) half[i] = 0.5f;
    sl_labelmap rf[2] = {{half, SL_DT_F32}, {truth, SL_DT_U8}};
    CHECK(sl_fuse(rf, 2, N, &o, fused, NULL, msg, sizeof msg) == SL_ERANGE, "non-integer refused");
}

static void test_surfel_areas(void)
{
    /* three voxels of one face of the cell: DeepMind's normals (0.5, 0, 0),
     * (0.25, 0.25, 0.25), (0.125, 0.125, 0.125) at spacing (2, 0.7, 1.3) */
    uint8_t m[8] = {1, 1, 1, 0, 0, 0, 0, 0};
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = 3, g.shape[0] = g.shape[1] = g.shape[2] = 2;
    g.spacing[0] = 2.0, g.spacing[1] = 0.7, g.spacing[2] = 1.3;
    double w[27];
    CHECK(sl_surface_elements(m, &g, w, 1) == SL_OK, "surfels");
    double sy = 0.7, sx = 1.3, sz = 2.0;
    double want = 0.5 * sy * sx + 0.375 * sqrt(sy * sx * sy * sx + sz * sx * sz * sx + sz * sy * sz * sy);
    CHECK_NEAR(w[13], want, 1e-14, "three corners of a face: DeepMind's area");
}

static void test_froc(void)
{
    /* the hand case of tests/ref/test_froc.py */
    double fps[3] = {0.7, 0.95, 0.55}, les[4] = {0.9, 0.6, 0.0, 0.8}, rates[3] = {0.25, 1.0, 8.0}, sens[3];
    sl_froc_curve c = SL_FROC_CURVE_EMPTY;
    CHECK(sl_froc(fps, 3, les, 4, 2, rates, 3, sens, &c) == SL_OK, "froc");
    CHECK(c.n == 7 && c.fp_per_case[4] == 0.5 && c.sensitivity[4] == 0.25 && isinf(c.threshold[6]), "froc curve");
    /* at 0.25 FP/case: between (0, 0) and (0.5, 0) -> 0; at 1: 0.75; beyond: 0.75 */
    CHECK_NEAR(sens[0], 0.0, 0, "sens at 1/4");
    CHECK_NEAR(sens[1], 0.75, 1e-15, "sens at 1");
    CHECK_NEAR(sens[2], 0.75, 1e-15, "sens at 8");
    sl_froc_curve_free(&c);
    sl_froc_curve_free(NULL);
    CHECK(sl_froc(fps, 3, les, 0, 2, NULL, 0, NULL, NULL) == SL_EINVAL, "no lesion refused");
    /* candidates of one 1-D case: prob 0.9 over lesion [2, 4), 0.6 alone at 7 */
    float p[10] = {0, 0, 0.9f, 0.7f, 0, 0, 0, 0.6f, 0, 0};
    uint8_t g[10] = {0, 0, 1, 1, 0, 0, 0, 0, 0, 1};
    sl_grid gr = SL_GRID_DEFAULT;
    gr.ndim = 1, gr.shape[0] = 10;
    double *f = NULL, *l = NULL;
    int64_t nf = 0, cf = 0, nl = 0, cl = 0;
    char msg[256];
    CHECK(sl_froc_case(p, g, &gr, 0.5, 0, &f, &nf, &cf, &l, &nl, &cl, msg, sizeof msg) == SL_OK, "froc case: %s", msg);
    CHECK(nf == 1 && nl == 2 && fabs(f[0] - 0.6f) < 1e-7 && fabs(l[0] - 0.9f) < 1e-7 && l[1] == 0.0, "froc candidates");
    free(f);
    free(l);
}

int main(void)
{
    test_froc();
    test_prob();
    test_instances();
    test_fuse();
    test_surfel_areas();
    return test_report("test_metric_families");
}
