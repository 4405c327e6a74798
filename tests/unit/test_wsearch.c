/*
 * The weight search's pieces without training (src/bench/search.c): the
 * successive-halving schedule against tables written out by hand from the
 * rule (keep n, floor(n/eta), ... down to one; the last rung at the full
 * budget, each earlier eta times fewer epochs, at least min_epochs); the
 * ranking of a rung (NaN last, ties by index); free names (only where a
 * weight stands) and their substitution; grid and random candidates;
 * the preset's "search" object: the canonical form is a fixed point and
 * keeps the candidates, budget-study copies share the search, refusals
 * carry their codes; the trainer's skip_test (what keeps the search off the
 * test split): a tiny training with it has no test metrics and the same
 * model and validation curve as without. The trained end to end run is
 * tests/cli/test_wsearch.sh.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/search.h"
#include "segloss/bench.h"
#include "segloss/train.h"
#include "test_util.h"

static void check_schedule(int n, int eta, int64_t E, int64_t me, int R, const int *keep, const int64_t *ep)
{
    int k[SLB_SEARCH_MAX_RUNGS];
    int64_t e[SLB_SEARCH_MAX_RUNGS];
    const int got = slb_search_schedule(n, eta, E, me, k, e);
    CHECK(got == R, "n=%d eta=%d: %d rungs, want %d", n, eta, got, R);
    for (int r = 0; r < R && r < got; r++)
        CHECK(k[r] == keep[r] && e[r] == ep[r], "n=%d eta=%d E=%lld rung %d: %d x %lld, want %d x %lld", n, eta, (long long)E, r, k[r],
              (long long)e[r], keep[r], (long long)ep[r]);
}

static void test_schedule(void)
{
    check_schedule(8, 2, 8, 1, 3, (int[]){8, 4, 2}, (int64_t[]){2, 4, 8});
    check_schedule(8, 2, 12, 1, 3, (int[]){8, 4, 2}, (int64_t[]){3, 6, 12});
    check_schedule(8, 2, 4, 2, 3, (int[]){8, 4, 2}, (int64_t[]){2, 2, 4});  /* min_epochs lifts rung 0 */
    check_schedule(8, 2, 4, 9, 3, (int[]){8, 4, 2}, (int64_t[]){4, 4, 4});  /* but never above the budget */
    check_schedule(9, 3, 9, 1, 2, (int[]){9, 3}, (int64_t[]){3, 9});
    check_schedule(5, 2, 8, 1, 2, (int[]){5, 2}, (int64_t[]){4, 8});
    check_schedule(3, 3, 6, 1, 1, (int[]){3}, (int64_t[]){6});
    check_schedule(2, 2, 1, 1, 1, (int[]){2}, (int64_t[]){1});
    check_schedule(64, 2, 32, 1, 6, (int[]){64, 32, 16, 8, 4, 2}, (int64_t[]){1, 2, 4, 8, 16, 32});
    check_schedule(10, 4, 16, 1, 2, (int[]){10, 2}, (int64_t[]){4, 16});
    int k[SLB_SEARCH_MAX_RUNGS];
    int64_t e[SLB_SEARCH_MAX_RUNGS];
    EXPECT(slb_search_schedule(1, 2, 8, 1, k, e) == 0);
    EXPECT(slb_search_schedule(65, 2, 8, 1, k, e) == 0);
    EXPECT(slb_search_schedule(8, 1, 8, 1, k, e) == 0);
}

static void test_rank(void)
{
    const double score[6] = {0.5, NAN, 0.7, 0.5, 0.9, NAN};
    int idx[6] = {5, 4, 3, 2, 1, 0};
    slb_search_rank(score, idx, 6);
    const int want[6] = {4, 2, 0, 3, 1, 5};
    for (int i = 0; i < 6; i++) CHECK(idx[i] == want[i], "rank position %d: %d, want %d", i, idx[i], want[i]);
}

static void test_free_names(void)
{
    char name[64];
    EXPECT(slb_search_first_free("a*dice+b*ce", name, sizeof name) && !strcmp(name, "a"));
    EXPECT(slb_search_first_free("gdice+c_1 *boundary", name, sizeof name) && !strcmp(name, "c_1"));
    EXPECT(slb_search_first_free("0:ce; 3:ce+w*dice", name, sizeof name) && !strcmp(name, "w"));
    /* not free: a number's exponent, a loss name, a parameter's word */
    EXPECT(!slb_search_first_free("1e5*dice+0.5*ce", name, sizeof name));
    EXPECT(!slb_search_first_free("dice(reduction=mean)+ce", name, sizeof name));
    EXPECT(!slb_search_first_free("gdice+boundary | ramp(start=0.1,step=0.1,cap=0.6)", name, sizeof name));

    sl_bench_search s;
    memset(&s, 0, sizeof s);
    s.nfree = 2;
    snprintf(s.names[0], sizeof s.names[0], "a");
    snprintf(s.names[1], sizeof s.names[1], "bb");
    s.values[0][0] = 0.123;
    s.values[0][1] = 10;
    char out[128];
    EXPECT(slb_search_spec(&s, "a*dice+bb *ce(weight=[1,2])+a*focal", 0, out, sizeof out) == SL_OK &&
           !strcmp(out, "0.123*dice+10 *ce(weight=[1,2])+0.123*focal"));
    EXPECT(slb_search_spec(&s, "a*dice+bb*ce", 0, out, 10) == SL_ERANGE);
}

static sl_bench_preset *parse(const char *entry, char *msg, size_t len, sl_status *st)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"t\", \"seeds\": [1], \"datasets\": [{\"data\": \"phantom\"}], \"losses\": [\"dice+ce\", %s],"
             " \"train\": {\"training\": {\"epochs\": 8}}}",
             entry);
    sl_bench_preset *p = NULL;
    *st = sl_bench_preset_parse(&p, json, msg, len);
    return p;
}

static void test_preset(void)
{
    char msg[600];
    sl_status st;
    /* a grid of 3 x 3 over a log and a linear range: the first weight varies slowest */
    sl_bench_preset *p = parse("{\"name\": \"g\", \"loss\": \"a*dice+b*ce\", \"search\": {\"a\": [0.01, 1, \"log\"], "
                               "\"b\": [0, 2], \"method\": \"grid\", \"n\": 9, \"eta\": 3}}",
                               msg, sizeof msg, &st);
    CHECK(st == SL_OK, "grid preset: %s", msg);
    if (p) {
        const sl_bench_search *s = p->entries[1].search;
        const double a[3] = {0.01, 0.1, 1}, b[3] = {0, 1, 2};
        for (int k = 0; k < 9; k++)
            CHECK(s->values[k][0] == a[k / 3] && s->values[k][1] == b[k % 3], "grid candidate %d: %g, %g", k, s->values[k][0],
                  s->values[k][1]);
        char spec[64];
        EXPECT(slb_search_spec(s, p->entries[1].loss, 5, spec, sizeof spec) == SL_OK && !strcmp(spec, "0.1*dice+2*ce"));
        CHECK(slb_search_epochs(s, 8) == 9 * 2 + 3 * 8, "search epochs %g", slb_search_epochs(s, 8));
        /* the canonical form parses to itself */
        sl_bench_preset *q = NULL;
        st = sl_bench_preset_parse(&q, p->json, msg, sizeof msg);
        CHECK(st == SL_OK && q && !strcmp(q->json, p->json), "canonical form: %s", msg);
        sl_bench_preset_free(q);
    }
    sl_bench_preset_free(p);

    /* random: deterministic, within range, 3 significant digits, a log scale's spread */
    const char *rnd = "{\"name\": \"r\", \"loss\": \"a*dice+ce\", \"search\": {\"a\": [0.001, 1000, \"log\"], \"n\": 64}}";
    sl_bench_preset *r1 = parse(rnd, msg, sizeof msg, &st), *r2 = parse(rnd, msg, sizeof msg, &st);
    CHECK(r1 && r2, "random preset: %s", msg);
    if (r1 && r2) {
        const sl_bench_search *s = r1->entries[1].search;
        EXPECT(!memcmp(s->values, r2->entries[1].search->values, sizeof s->values));
        int below1 = 0;
        for (int k = 0; k < 64; k++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%.3g", s->values[k][0]);
            CHECK(s->values[k][0] >= 0.001 && s->values[k][0] <= 1000 && strtod(buf, NULL) == s->values[k][0], "candidate %d: %.17g",
                  k, s->values[k][0]);
            below1 += s->values[k][0] < 1;
        }
        /* log-uniform: half below 1 on average; a linear draw would give ~0 */
        CHECK(below1 >= 20 && below1 <= 44, "%d of 64 log-uniform draws below 1", below1);
    }
    sl_bench_preset_free(r1);
    sl_bench_preset_free(r2);

    /* a budget study's copy shares the search (freed once: ASan) */
    p = NULL;
    st = sl_bench_preset_parse(&p,
                               "{\"name\": \"t\", \"seeds\": [1], \"datasets\": [{\"data\": \"phantom\"}], \"budget_study\": [1, 2],"
                               " \"losses\": [\"dice+ce\", {\"name\": \"s\", \"loss\": \"a*dice+ce\", \"search\": {\"a\": [1, 2]}}]}",
                               msg, sizeof msg);
    CHECK(st == SL_OK && p && p->nentries == 4 && p->entries[3].search == p->entries[1].search, "budget study: %s", msg);
    sl_bench_preset_free(p);

    /* refusals and their codes */
    struct {
        const char *entry;
        sl_status code;
    } bad[] = {
        {"\"a*dice\"", SL_EINVAL},
        {"{\"name\": \"x\", \"loss\": \"a*dice+b*ce\", \"search\": {\"a\": [1, 2]}}", SL_EINVAL},
        {"{\"name\": \"x\", \"loss\": \"a*dice\", \"search\": {\"a\": [1, 2], \"z\": [1, 2]}}", SL_EINVAL},
        {"{\"name\": \"x\", \"loss\": \"a*dice\", \"search\": {\"a\": [1, 2], \"1z\": 3}}", SL_EUNKNOWN},
        {"{\"name\": \"x\", \"loss\": \"a*dice\", \"search\": {\"a\": [2, 1]}}", SL_ERANGE},
        {"{\"name\": \"x\", \"loss\": \"a*dice\", \"search\": {\"a\": [0, 1, \"log\"]}}", SL_ERANGE},
        {"{\"name\": \"x\", \"loss\": \"a*dice\", \"search\": {\"a\": [1]}}", SL_EFORMAT},
        {"{\"name\": \"x\", \"loss\": \"a*dice\", \"search\": {\"a\": [1, 2], \"method\": \"grid\", \"n\": 8, \"eta\": 9}}", SL_ERANGE},
        {"{\"name\": \"x\", \"loss\": \"a*dice+b*ce\", \"search\": {\"a\": [1, 2], \"b\": [1, 2], \"method\": \"grid\", \"n\": 8}}", SL_ERANGE},
        {"{\"name\": \"x\", \"loss\": \"a*nosuchloss\", \"search\": {\"a\": [1, 2]}}", SL_EUNKNOWN},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        p = parse(bad[i].entry, msg, sizeof msg, &st);
        CHECK(!p && st == bad[i].code && !strchr(msg, '\n'), "%s: status %d (want %d): %s", bad[i].entry, (int)st, (int)bad[i].code,
              msg);
        sl_bench_preset_free(p);
    }
}

static void test_skip_test(void)
{
    sl_train_result with = SL_TRAIN_RESULT_EMPTY, without = SL_TRAIN_RESULT_EMPTY;
    sl_train_config c = SL_TRAIN_CONFIG_DEFAULT;
    c.data_opts.height = c.data_opts.width = 32;
    c.data_opts.n_train = 8;
    c.data_opts.n_val = 4;
    c.data_opts.n_test = 4;
    c.depth = 2;
    c.base_width = 4;
    c.epochs = 2;
    c.steps_per_epoch = 2;
    c.batch_size = 4;
    c.threads = 1;
    char msg[512];
    sl_status st = sl_train_run(&c, &with, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK && with.completed, "training: %s", msg);
    c.skip_test = 1;
    st = sl_train_run(&c, &without, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK && without.completed, "training with skip_test: %s", msg);
    if (with.completed && without.completed) {
        for (int k = 1; k < with.num_classes; k++) {
            CHECK(with.test[k].n_cases == 4 && isfinite(with.test[k].dice), "class %d tested: %lld cases", k, (long long)with.test[k].n_cases);
            CHECK(without.test[k].n_cases == 0 && isnan(without.test[k].dice), "class %d with skip_test: %lld cases, dice %g", k,
                  (long long)without.test[k].n_cases, without.test[k].dice);
            CHECK(with.log[1].val_dice[k] == without.log[1].val_dice[k], "class %d: validation Dice %.17g vs %.17g", k,
                  with.log[1].val_dice[k], without.log[1].val_dice[k]);
        }
    }
    sl_train_result_free(&with);
    sl_train_result_free(&without);
}

int main(void)
{
    TEST_RUN(test_schedule);
    TEST_RUN(test_rank);
    TEST_RUN(test_free_names);
    TEST_RUN(test_preset);
    TEST_RUN(test_skip_test);
    return test_report("wsearch");
}
