/*
 * The evaluation set (sl_evalset): in-memory cases scored as
 * sl_metrics_eval scores them one by one, label discovery, the summary
 * convention (population std, numpy median), the bad-state and bad-option
 * paths, and "both outputs or neither".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "segloss/metrics.h"
#include "test_util.h"

#define NX 12
#define NY 10

/* Case k: a square of side 3 + k in P, one of side 4 shifted by k in G;
 * label 2 only in case 0's ground truth (an empty-pred row elsewhere). */
static void make_case(int k, uint8_t *p, uint8_t *g)
{
    memset(p, 0, NX * NY);
    memset(g, 0, NX * NY);
    for (int y = 1; y < 4 + k; y++)
        for (int x = 1; x < 4 + k; x++) p[y * NX + x] = 1;
    for (int y = 2; y < 6; y++)
        for (int x = 2 + k; x < 6 + k; x++) g[y * NX + x] = 1;
    if (k == 0) g[8 * NX + 9] = 2;
}

static void test_matches_single_calls(void)
{
    static uint8_t p[3][NX * NY], g[3][NX * NY];
    sl_grid grid = SL_GRID_DEFAULT;
    grid.ndim = 2;
    grid.shape[0] = NY;
    grid.shape[1] = NX;
    grid.spacing[0] = 0.7;
    grid.spacing[1] = 1.3;
    char msg[512];
    sl_eval_opts eo = SL_EVAL_OPTS_DEFAULT;
    eo.columns = "dice,hd95,assd";
    eo.threads = 2;
    sl_evalset *s = NULL;
    CHECK(sl_evalset_create(&eo, &s, msg, sizeof msg) == SL_OK, "create: %s", msg);
    for (int k = 0; k < 3; k++) {
        make_case(k, p[k], g[k]);
        sl_labelmap mp = {p[k], SL_DT_U8}, mg = {g[k], SL_DT_U8};
        char id[16];
        snprintf(id, sizeof id, "c%d", k);
        CHECK(sl_evalset_add_maps(s, id, &mp, &mg, &grid, msg, sizeof msg) == SL_OK, "add: %s", msg);
    }
    CHECK(sl_evalset_score(s, msg, sizeof msg) == SL_OK, "score: %s", msg);
    CHECK(sl_evalset_nlabels(s) == 2 && sl_evalset_label(s, 0) == 1 && sl_evalset_label(s, 1) == 2,
          "labels found: %d", sl_evalset_nlabels(s));
    CHECK(sl_evalset_ncolumns(s) == 3 && !strcmp(sl_evalset_column(s, 1), "hd95"), "columns");
    double worst = 0, dice[3];
    for (int k = 0; k < 3; k++) {
        sl_labelmap mp = {p[k], SL_DT_U8}, mg = {g[k], SL_DT_U8};
        int64_t labels[2] = {1, 2};
        sl_metric_result r[2];
        sl_metric_opts mo = SL_METRIC_OPTS_DEFAULT;
        mo.metrics = SL_MET_OVERLAP | SL_MET_DISTANCE;
        CHECK(sl_metrics_eval(&mp, &mg, &grid, labels, 2, &mo, r, msg, sizeof msg) == SL_OK, "eval: %s", msg);
        dice[k] = r[0].dice;
        worst = fmax(worst, fabs(sl_evalset_value(s, k, 0, 0, NULL) - r[0].dice));
        worst = fmax(worst, fabs(sl_evalset_value(s, k, 0, 1, NULL) - r[0].hd_perc));
        worst = fmax(worst, fabs(sl_evalset_value(s, k, 0, 2, NULL) - r[0].assd));
    }
    printf("evalset vs sl_metrics_eval: max |diff| %.3g\n", worst);
    CHECK(worst == 0, "values differ from sl_metrics_eval by %g", worst);
    /* label 2: empty prediction in case 0 (distance substituted by the
     * diagonal), both empty in cases 1 and 2 */
    int sub = 0;
    double diag = sqrt((NY * 0.7) * (NY * 0.7) + (NX * 1.3) * (NX * 1.3));
    CHECK_NEAR(sl_evalset_value(s, 0, 1, 1, &sub), diag, 1e-12, "empty distance = diagonal");
    CHECK(sub == 1, "substituted flag");
    sl_eval_stats st;
    sl_eval_counts cn;
    CHECK(sl_evalset_summary(s, 1, 0, &st, &cn) == SL_OK, "summary");
    CHECK(cn.cases == 3 && cn.empty_pred == 1 && cn.both_empty == 2 && cn.empty_gt == 0 &&
              cn.distance_substituted == 1, "counts %d %d %d %d %d", cn.cases, cn.empty_pred, cn.empty_gt,
          cn.both_empty, cn.distance_substituted);
    /* the summary convention: population std (ddof 0), numpy median */
    CHECK(sl_evalset_summary(s, 0, 0, &st, NULL) == SL_OK, "summary");
    double mean = (dice[0] + dice[1] + dice[2]) / 3, ss = 0;
    for (int k = 0; k < 3; k++) ss += (dice[k] - mean) * (dice[k] - mean);
    double sorted[3] = {dice[0], dice[1], dice[2]};
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++)
            if (sorted[b] < sorted[a]) {
                double t = sorted[a];
                sorted[a] = sorted[b];
                sorted[b] = t;
            }
    CHECK_NEAR(st.mean, mean, 1e-15, "mean");
    CHECK_NEAR(st.std, sqrt(ss / 3), 1e-15, "population std");
    CHECK(fabs(st.std - sqrt(ss / 2)) > 1e-6, "std must not be the sample std");
    CHECK_NEAR(st.median, sorted[1], 0, "median");
    CHECK(st.n == 3 && st.min == sorted[0] && st.max == sorted[2], "n/min/max");

    /* scored once; adding afterwards is refused */
    CHECK(sl_evalset_score(s, msg, sizeof msg) == SL_EBADSTATE, "second score");
    sl_labelmap mp = {p[0], SL_DT_U8};
    CHECK(sl_evalset_add_maps(s, "x", &mp, &mp, &grid, msg, sizeof msg) == SL_EBADSTATE, "add after score");

    /* both outputs or neither: a JSON path in a missing folder leaves no CSV */
    char csv[64], json[64];
    snprintf(csv, sizeof csv, "/tmp/sl_evalset_%ld.csv", (long)getpid());
    snprintf(json, sizeof json, "/tmp/sl_evalset_%ld_no/such.json", (long)getpid());
    CHECK(sl_evalset_write(s, csv, json, msg, sizeof msg) == SL_EIO, "write to a missing folder");
    CHECK(access(csv, F_OK) != 0, "the CSV was written although the JSON failed");
    snprintf(json, sizeof json, "/tmp/sl_evalset_%ld.json", (long)getpid());
    CHECK(sl_evalset_write(s, csv, json, msg, sizeof msg) == SL_OK, "write: %s", msg);
    CHECK(access(csv, F_OK) == 0 && access(json, F_OK) == 0, "both written");
    remove(csv);
    remove(json);
    sl_evalset_free(s);
}

static void test_bad_options(void)
{
    char msg[512];
    sl_evalset *s = NULL;
    sl_eval_opts eo = SL_EVAL_OPTS_DEFAULT;
    eo.columns = "dice,dicee";
    CHECK(sl_evalset_create(&eo, &s, msg, sizeof msg) == SL_EINVAL && strstr(msg, "dicee") && !s,
          "unknown metric: %s", msg);
    int64_t labels[3] = {2, 1, 2};
    eo = (sl_eval_opts)SL_EVAL_OPTS_DEFAULT;
    eo.labels = labels;
    eo.nlabels = 3;
    CHECK(sl_evalset_create(&eo, &s, msg, sizeof msg) == SL_EINVAL && strstr(msg, "twice"), "label twice: %s", msg);
    eo = (sl_eval_opts)SL_EVAL_OPTS_DEFAULT;
    CHECK(sl_evalset_create(&eo, &s, msg, sizeof msg) == SL_OK, "create");
    CHECK(sl_evalset_score(s, msg, sizeof msg) == SL_EEMPTY, "score of an empty set");
    CHECK(sl_evalset_write(s, NULL, NULL, msg, sizeof msg) == SL_EBADSTATE, "write before scoring");
    sl_evalset_free(s);
    sl_evalset_free(NULL);
    CHECK(sl_evalset_score(NULL, msg, sizeof msg) == SL_EINVAL, "NULL set");
}

/* In-memory maps through the mask path: an ignore label, a region, the
 * per-case mean and the pooled Dice, against counts taken here. */
static void test_ignore_region_pooled(void)
{
    enum { N = 64 };
    static int16_t p[2][N], g[2][N];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < N; i++) {
            g[k][i] = (int16_t)((i * 7 + k) % 5);      /* labels 0..4 */
            p[k][i] = (int16_t)((i * 7 + k + (i % 3 == 0)) % 5);
            if (i % 11 == 0) g[k][i] = 9;               /* ignored */
        }
    sl_grid grid = SL_GRID_DEFAULT;
    grid.ndim = 1;
    grid.shape[0] = N;
    char msg[512];
    int64_t labels[2] = {1, 2};
    sl_eval_opts eo = SL_EVAL_OPTS_DEFAULT;
    eo.columns = "dice,counts,specificity";
    eo.labels = labels;
    eo.nlabels = 2;
    eo.regions = "U=1,2";
    eo.has_ignore = 1;
    eo.ignore_label = 9;
    eo.label_mean = 1;
    sl_evalset *s = NULL;
    CHECK(sl_evalset_create(&eo, &s, msg, sizeof msg) == SL_OK, "create: %s", msg);
    for (int k = 0; k < 2; k++) {
        sl_labelmap mp = {p[k], SL_DT_I16}, mg = {g[k], SL_DT_I16};
        CHECK(sl_evalset_add_maps(s, k ? "b" : "a", &mp, &mg, &grid, msg, sizeof msg) == SL_OK, "add: %s", msg);
    }
    CHECK(sl_evalset_score(s, msg, sizeof msg) == SL_OK, "score: %s", msg);
    CHECK(sl_evalset_nlabels(s) == 4 && !strcmp(sl_evalset_target_name(s, 2), "U") &&
              !strcmp(sl_evalset_target_name(s, 3), "mean") && sl_evalset_label(s, 2) == -1,
          "targets");
    long long sum[3][3] = {{0}};
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 2; k++) {
            long long tp = 0, fp = 0, fn = 0, tn = 0;
            for (int i = 0; i < N; i++) {
                if (g[k][i] == 9) continue;
                int in_p = t == 2 ? (p[k][i] == 1 || p[k][i] == 2) : p[k][i] == labels[t];
                int in_g = t == 2 ? (g[k][i] == 1 || g[k][i] == 2) : g[k][i] == labels[t];
                tp += in_p && in_g, fp += in_p && !in_g, fn += !in_p && in_g, tn += !in_p && !in_g;
            }
            CHECK(sl_evalset_value(s, k, t, 1, NULL) == tp && sl_evalset_value(s, k, t, 2, NULL) == fp &&
                      sl_evalset_value(s, k, t, 3, NULL) == fn && sl_evalset_value(s, k, t, 4, NULL) == tn,
                  "counts of case %d target %d", k, t);
            CHECK_NEAR(sl_evalset_value(s, k, t, 0, NULL), 2.0 * tp / (2.0 * tp + fp + fn), 1e-15, "dice");
            CHECK_NEAR(sl_evalset_value(s, k, t, 5, NULL), (double)tn / (tn + fp), 1e-15, "specificity without ignored");
            sum[t][0] += tp, sum[t][1] += fp, sum[t][2] += fn;
        }
    for (int k = 0; k < 2; k++) {
        double m = (sl_evalset_value(s, k, 0, 0, NULL) + sl_evalset_value(s, k, 1, 0, NULL) +
                    sl_evalset_value(s, k, 2, 0, NULL)) / 3;
        CHECK_NEAR(sl_evalset_value(s, k, 3, 0, NULL), m, 1e-15, "per-case mean over the targets");
    }
    double pooled;
    CHECK(sl_evalset_pooled(s, 2, 0, &pooled) == SL_OK, "pooled");
    CHECK_NEAR(pooled, 2.0 * sum[2][0] / (2.0 * sum[2][0] + sum[2][1] + sum[2][2]), 1e-15, "pooled Dice of U");
    CHECK(sl_evalset_pooled(s, 3, 0, &pooled) == SL_EUNSUPPORTED, "no pooled value for the mean");
    sl_evalset_free(s);
}

int main(void)
{
    test_matches_single_calls();
    test_bad_options();
    test_ignore_region_pooled();
    return test_report("test_evalset");
}
