/*
 * The benchmark's convergence rule and budget study on hand-made inputs:
 * slb_converged on validation histories built to sit on each side of the
 * rule's two thresholds (for a window of 2 or 3 points the least-squares
 * rise is v_last - v_first, so the cases are exact by hand), Kendall's
 * tau-b against values computed with scipy.stats.kendalltau (written
 * here), and the preset's "budget_study" (expansion, canonical round trip,
 * every refusal). The trained end to end run is tests/cli/test_bench_study.sh.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/bench_internal.h"
#include "segloss/bench.h"
#include "test_util.h"

static void test_converged(void)
{
    /* 7 points: too few */
    const double seven[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5};
    EXPECT(slb_converged(seven, 7, 1) == SLB_CONV_UNKNOWN);
    /* a plateau with noise: window {0.662, 0.661}, rise -0.001 */
    const double plateau[] = {0.1, 0.3, 0.5, 0.6, 0.65, 0.66, 0.662, 0.661};
    EXPECT(slb_converged(plateau, 8, 1) == SLB_CONV_YES);
    /* a validation split missing (NaN) */
    double nan8[8];
    memcpy(nan8, plateau, sizeof nan8);
    nan8[3] = NAN;
    EXPECT(slb_converged(nan8, 8, 1) == SLB_CONV_UNKNOWN);
    /* still climbing: rise 0.1 */
    const double climb[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8};
    EXPECT(slb_converged(climb, 8, 1) == SLB_CONV_NO);
    /* collapsed after a peak of 0.7: the window's best 0.5 is 0.2 below */
    const double collapse[] = {0.3, 0.5, 0.6, 0.7, 0.6, 0.55, 0.5, 0.5};
    EXPECT(slb_converged(collapse, 8, 1) == SLB_CONV_NO);
    /* 12 points: window of 3, rise = v[11] - v[9]; 0.0099 passes, 0.0101 does not */
    double h[12] = {0.1, 0.2, 0.3, 0.4, 0.45, 0.48, 0.49, 0.495, 0.5, 0.5, 0.505, 0.5099};
    EXPECT(slb_converged(h, 12, 1) == SLB_CONV_YES);
    h[11] = 0.5101;
    EXPECT(slb_converged(h, 12, 1) == SLB_CONV_NO);
    /* best of the run early (0.70): the window's best 0.6905 is within 0.01, 0.6895 is not */
    double e[8] = {0.2, 0.5, 0.70, 0.69, 0.69, 0.69, 0.6905, 0.6905};
    EXPECT(slb_converged(e, 8, 1) == SLB_CONV_YES);
    e[6] = e[7] = 0.6895;
    EXPECT(slb_converged(e, 8, 1) == SLB_CONV_NO);
    /* strided, as a run's curve_val [epoch][class] is read (column 0) */
    double st[16];
    for (int i = 0; i < 8; i++) {
        st[2 * i] = climb[i];
        st[2 * i + 1] = plateau[i];
    }
    EXPECT(slb_converged(st, 8, 2) == SLB_CONV_NO);
    EXPECT(slb_converged(st + 1, 8, 2) == SLB_CONV_YES);
    EXPECT(!strcmp(slb_conv_name(SLB_CONV_YES), "yes") && !strcmp(slb_conv_name(SLB_CONV_NO), "no") &&
           !strcmp(slb_conv_name(SLB_CONV_UNKNOWN), "unknown"));
}

static void test_kendall(void)
{
    int disc = -1;
    const double a[] = {4, 3, 2, 1}, b[] = {4, 2, 3, 1}, rev[] = {1, 2, 3, 4};
    CHECK_NEAR(slb_kendall_tau(a, a, 4, &disc), 1.0, 1e-15, "identical");
    EXPECT(disc == 0);
    CHECK_NEAR(slb_kendall_tau(a, rev, 4, &disc), -1.0, 1e-15, "reversed");
    EXPECT(disc == 6);
    /* scipy.stats.kendalltau([4,3,2,1], [4,2,3,1]) = 0.6666666666666669 */
    double tau = slb_kendall_tau(a, b, 4, &disc);
    CHECK_NEAR(tau, 0.6666666666666669, 1e-12, "one swap");
    EXPECT(disc == 1);
    /* with ties in both: scipy.stats.kendalltau([1,2,2,3,5], [1,3,2,4,4]) = 0.8888888888888888 */
    const double x[] = {1, 2, 2, 3, 5}, y[] = {1, 3, 2, 4, 4};
    tau = slb_kendall_tau(x, y, 5, &disc);
    CHECK_NEAR(tau, 0.8888888888888888, 1e-12, "tau-b with ties");
    printf("kendall: tau-b with ties %.17g (scipy 0.8888888888888888), diff %.2g\n", tau, fabs(tau - 0.8888888888888888));
    EXPECT(disc == 0);
    /* NaN (a failed entry) ranks last */
    const double xn[] = {NAN, 1, 2}, yn[] = {0.5, 1, 2};
    CHECK_NEAR(slb_kendall_tau(xn, yn, 3, NULL), 1.0, 1e-15, "NaN last");
    const double c[] = {1, 1, 1};
    EXPECT(isnan(slb_kendall_tau(c, yn, 3, NULL)));
}

static const char *preset_fmt =
    "{\"name\": \"b\", \"seeds\": [1],"
    " \"train\": {\"data_opts\": {\"height\": 32, \"width\": 32, \"n_train\": 8, \"n_val\": 2, \"n_test\": 4},"
    "             \"network\": {\"depth\": 2, \"base_width\": 4}, \"training\": {\"epochs\": 2, \"steps_per_epoch\": 2}},"
    " \"datasets\": [{\"data\": \"phantom\"}],"
    " \"losses\": [\"ce\", \"dice+ce\", {\"name\": \"dice+ce +TTA\", \"loss\": \"dice+ce\", \"tta\": true}]%s}";

static sl_status parse_with(const char *extra, sl_bench_preset **p, char *msg, size_t len)
{
    char json[2048];
    snprintf(json, sizeof json, preset_fmt, extra);
    return sl_bench_preset_parse(p, json, msg, len);
}

static void test_preset(void)
{
    char msg[600] = "";
    sl_bench_preset *p = NULL;
    sl_status st = parse_with("", &p, msg, sizeof msg);
    CHECK(st == SL_OK && p->nbudgets == 0 && p->nbase_entries == 3 && p->nentries == 3 && p->entries[2].budget == 1,
          "no study: %s", msg);
    CHECK(p && !strstr(p->json, "budget_study"), "no study: the canonical preset keeps its form");
    sl_bench_preset_free(p);

    st = parse_with(", \"budget_study\": [1, 4]", &p, msg, sizeof msg);
    CHECK(st == SL_OK, "study: %s", msg);
    if (st != SL_OK) return;
    CHECK(p->nbudgets == 2 && p->budgets[0] == 1 && p->budgets[1] == 4 && p->nbase_entries == 3 && p->nentries == 6,
          "sizes %d %d %d", p->nbudgets, p->nbase_entries, p->nentries);
    EXPECT(!strcmp(p->entries[3].name, "ce @4x") && p->entries[3].budget == 4 && !strcmp(p->entries[3].loss, "ce"));
    EXPECT(!strcmp(p->entries[5].name, "dice+ce +TTA @4x") && p->entries[5].tta == 1 && p->entries[2].budget == 1);
    EXPECT(strcmp(p->entries[3].slug, p->entries[0].slug) != 0);
    EXPECT(p->baseline == 1);
    EXPECT(sl_bench_num_runs(p) == 6);
    /* tasks: the TTA entries share their training at each budget, not across budgets */
    CHECK(sl_bench_num_tasks(p) == 4, "tasks %lld", (long long)sl_bench_num_tasks(p));
    /* canonical round trip: the study is written once, not as 6 losses */
    sl_bench_preset *q = NULL;
    st = sl_bench_preset_parse(&q, p->json, msg, sizeof msg);
    CHECK(st == SL_OK && q->nentries == 6 && !strcmp(q->json, p->json), "round trip: %s", msg);
    sl_bench_preset_free(q);
    sl_bench_preset_free(p);

    static const struct {
        const char *extra;
        sl_status code;
        const char *needle;
    } bad[] = {
        {", \"budget_study\": [1]", SL_EFORMAT, "2 to 4 budget factors"},
        {", \"budget_study\": 4", SL_EFORMAT, "budget_study must be an array"},
        {", \"budget_study\": [2, 4]", SL_ERANGE, "start with 1"},
        {", \"budget_study\": [1, 1]", SL_ERANGE, "must increase"},
        {", \"budget_study\": [1, 2.5]", SL_ERANGE, "budget_study[1] must be an integer"},
        {", \"budget_study\": [1, 65]", SL_ERANGE, "budget_study[1]"},
        {", \"budget_study\": [1, 2, 4, 8, 16]", SL_EFORMAT, "2 to 4"},
        {", \"budget_study\": [1, \"4\"]", SL_ERANGE, "budget_study[1]"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        p = (sl_bench_preset *)1;
        msg[0] = 0;
        st = parse_with(bad[k].extra, &p, msg, sizeof msg);
        CHECK(st == bad[k].code && strstr(msg, bad[k].needle) && p == NULL, "%s: status %d, '%s'", bad[k].extra, (int)st, msg);
    }
    /* a loss already named like a copy */
    char json[2048];
    snprintf(json, sizeof json, preset_fmt, ", \"budget_study\": [1, 4]");
    char *at = strstr(json, "\"ce\", ");
    char fixed[2100];
    snprintf(fixed, sizeof fixed, "%.*s{\"name\": \"ce @4x\", \"loss\": \"ce\"}, %s", (int)(at - json), json, at);
    p = (sl_bench_preset *)1;
    st = sl_bench_preset_parse(&p, fixed, msg, sizeof msg);
    CHECK(st == SL_EINVAL && strstr(msg, "same name") && p == NULL, "name clash: %d '%s'", (int)st, msg);
}

int main(void)
{
    TEST_RUN(test_converged);
    TEST_RUN(test_kendall);
    TEST_RUN(test_preset);
    return test_report("bench_study");
}
