/*
 * The sum reducer (sl_loss_set_reducer): a reducer that doubles every sum
 * plays a second rank holding an identical shard, so a forward on a batch x
 * with it must give what one process gives on the batch [x; x]: the same
 * value, per-term values and state, and as gradient the first half of the
 * batch's gradient (d(global loss)/d(this rank's scores)). Checked for the
 * specs of issue 14 (dice(batch=true)+ce, gdice(batch=true),
 * wce(weight=inverse), adaptive_dice over two training steps) and more
 * (per-sample terms, sigmoid, ignore_index, median weights), with the
 * number of reducer calls each makes. A reducer that leaves the sums alone
 * must NOT give the [x; x] gradient (so the comparison can fail).
 * Refusals: specs outside the fused path, a mask, set_fused(0), per-sample
 * logcosh_dice; a failing reducer gives SL_EIO, a NaN sum SL_ENONFINITE.
 * Tolerances: value 1e-6 relative; gradient 2e-5 of its max (float32
 * gradient; adaptive_dice's reference takes the plain path, the reducer the
 * fused one: float rounding differs).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/loss.h"
#include "test_util.h"

enum { N = 2, C = 3, H = 9, W = 11, S = H * W };

typedef struct {
    double factor; /* 2: a second identical rank; 1: no other rank */
    int calls, fail;
} fake_rank;

static int reduce_fake(double *v, int64_t n, void *user)
{
    fake_rank *r = user;
    r->calls++;
    if (r->fail) return r->fail;
    for (int64_t i = 0; i < n; i++) v[i] *= r->factor;
    return 0;
}

static int reduce_nan(double *v, int64_t n, void *user)
{
    (void)user;
    v[n - 1] = NAN;
    return 0;
}

static float x1[N * C * S], x2[2 * N * C * S];
static int32_t y1[N * S], y2[2 * N * S], yb1[N * S], yb2[2 * N * S];
static float xb1[N * S], xb2[2 * N * S];
static double worst_v, worst_g;

/* One spec: `steps` training forwards with and without the doubling reducer. */
static void compare(const char *spec, int sigmoid, int steps, int want_calls)
{
    sl_loss *La, *Lb;
    char msg[256];
    CHECK(sl_loss_create(spec, &La, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
    CHECK(sl_loss_create(spec, &Lb, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
    fake_rank rank = {2, 0, 0};
    CHECK(sl_loss_set_reducer(La, reduce_fake, &rank) == SL_OK, "%s: set_reducer", spec);
    const int c = sigmoid ? 1 : C;
    sl_dims da = {.n = N, .c = c, .spatial_ndim = 2, .spatial = {H, W}};
    sl_dims db = {.n = 2 * N, .c = c, .spatial_ndim = 2, .spatial = {H, W}};
    sl_target ta = {.kind = SL_TARGET_LABELS, .labels = sigmoid ? yb1 : y1};
    sl_target tb = {.kind = SL_TARGET_LABELS, .labels = sigmoid ? yb2 : y2};
    const float *xa = sigmoid ? xb1 : x1, *xb = sigmoid ? xb2 : x2;
    sl_forward_opts o = SL_FORWARD_OPTS_DEFAULT;
    o.threads = 2;
    o.training = 1;
    const int64_t na = (int64_t)N * c * S;
    float *ga = malloc(sizeof(float) * na), *gb = malloc(sizeof(float) * 2 * na);
    for (int step = 0; step < steps; step++) {
        double va, vb;
        rank.calls = 0;
        sl_status sa = sl_loss_forward(La, xa, &da, &ta, &o, &va, ga, msg, sizeof msg);
        CHECK(sa == SL_OK, "%s with reducer: %s", spec, msg);
        sl_status sb = sl_loss_forward(Lb, xb, &db, &tb, &o, &vb, gb, msg, sizeof msg);
        CHECK(sb == SL_OK, "%s on [x; x]: %s", spec, msg);
        if (sa != SL_OK || sb != SL_OK) break;
        CHECK(rank.calls == want_calls, "%s: %d reducer calls, expected %d", spec, rank.calls, want_calls);
        double dv = fabs(va - vb) / fmax(fabs(vb), 1e-300);
        CHECK(dv <= 1e-6, "%s step %d: value %.10g with the reducer, %.10g on [x; x]", spec, step, va, vb);
        for (int i = 0; i < sl_loss_num_terms(La); i++) {
            double a = sl_loss_term_value(La, i), b = sl_loss_term_value(Lb, i);
            CHECK(fabs(a - b) <= 1e-6 * fabs(b) + 1e-12, "%s: term %d value %.10g vs %.10g", spec, i, a, b);
        }
        double gmax = 0, dmax = 0;
        for (int64_t i = 0; i < na; i++) {
            gmax = fmax(gmax, fabs(gb[i]));
            dmax = fmax(dmax, fabs((double)ga[i] - gb[i]));
        }
        CHECK(dmax <= 2e-5 * gmax, "%s step %d: gradient differs by %.3g (max |g| %.3g)", spec, step, dmax, gmax);
        worst_v = fmax(worst_v, dv);
        worst_g = fmax(worst_g, dmax / gmax);
        printf("  %-40s step %d  calls %d  value %.8f  value rel %.1e  grad rel %.1e\n", spec, step, rank.calls, va,
               dv, dmax / gmax);
    }
    /* the same forward with a reducer that leaves the sums alone (one rank): the
     * gradient is that of the shard alone, twice the [x; x] one */
    fake_rank alone = {1, 0, 0};
    sl_loss *Lc;
    double vc, vb;
    sl_loss_create(spec, &Lc, msg, sizeof msg);
    sl_loss_set_reducer(Lc, reduce_fake, &alone);
    sl_forward_opts eval = o;
    eval.training = 0;
    sl_loss_forward(Lc, xa, &da, &ta, &eval, &vc, ga, msg, sizeof msg);
    sl_loss *Ld;
    sl_loss_create(spec, &Ld, msg, sizeof msg);
    sl_loss_forward(Ld, xb, &db, &tb, &eval, &vb, gb, msg, sizeof msg);
    double gmax = 0, dmax = 0;
    for (int64_t i = 0; i < na; i++) {
        gmax = fmax(gmax, fabs(gb[i]));
        dmax = fmax(dmax, fabs((double)ga[i] - gb[i]));
    }
    CHECK(dmax > 0.3 * gmax, "%s: without the other rank the gradient should differ (%.3g of %.3g)", spec, dmax, gmax);
    sl_loss_free(Lc);
    sl_loss_free(Ld);
    /* the state is the one of [x; x] */
    size_t sa = 0, sb = 0;
    sl_loss_state_size(La, &sa);
    sl_loss_state_size(Lb, &sb);
    CHECK(sa == sb, "%s: state sizes %zu vs %zu", spec, sa, sb);
    if (sa == sb && sa > 0) {
        unsigned char *ba = malloc(sa), *bb = malloc(sb);
        sl_loss_state_get(La, ba, sa, NULL);
        sl_loss_state_get(Lb, bb, sb, NULL);
        /* walk the buffer layout (loss.c): header, then per term its name and doubles */
        double worst = 0;
        size_t p = 12;
        for (int i = 0; i < sl_loss_num_terms(La) && p < sa; i++) {
            uint32_t nl = ba[p] | ba[p + 1] << 8 | ba[p + 2] << 16 | (uint32_t)ba[p + 3] << 24;
            p += 4 + nl;
            uint64_t ns = 0;
            for (int k = 0; k < 8; k++) ns |= (uint64_t)ba[p + k] << (8 * k);
            p += 8;
            for (uint64_t k = 0; k < ns; k++, p += 8) {
                double da_, db_;
                memcpy(&da_, ba + p, 8);
                memcpy(&db_, bb + p, 8);
                worst = fmax(worst, fabs(da_ - db_) / fmax(fabs(db_), 1e-300));
            }
        }
        CHECK(worst <= 1e-6, "%s: state differs by %.3g relative", spec, worst);
        free(ba);
        free(bb);
    }
    sl_loss_free(La);
    sl_loss_free(Lb);
    free(ga);
    free(gb);
}

static sl_status run_one(const char *spec, fake_rank *rank, sl_reduce_fn fn, const float *mask, int fused,
                         char *msg, size_t msglen)
{
    sl_loss *L;
    sl_loss_create(spec, &L, msg, msglen);
    sl_loss_set_reducer(L, fn, rank);
    if (!fused) sl_loss_set_fused(L, 0);
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 2, .spatial = {H, W}};
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y1, .mask = mask};
    double v;
    float *g = malloc(sizeof(float) * N * C * S);
    sl_status st = sl_loss_forward(L, x1, &d, &t, NULL, &v, g, msg, msglen);
    sl_loss_free(L);
    free(g);
    return st;
}

static void refusals(void)
{
    char msg[256];
    fake_rank rank = {2, 0, 0};
    static float mask[N * S];
    for (int i = 0; i < N * S; i++) mask[i] = 1;
    const struct {
        const char *spec;
        const float *mask;
        int fused;
        const char *needle;
    } bad[] = {
        {"focal", NULL, 1, "focal"},
        {"dice(batch=true)+boundary", NULL, 1, "boundary"},
        {"dice(batch=true)", mask, 1, "mask"},
        {"dice(batch=true)", NULL, 0, "fused path is switched off"},
        {"logcosh_dice", NULL, 1, "batch=true"},
        {"dice(soft_label=true,batch=true)", NULL, 1, "soft_label"},
        {"dice(batch=true)+ce(activation=sigmoid)", NULL, 1, "different activations"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rank.calls = 0;
        msg[0] = 0;
        sl_status st = run_one(bad[i].spec, &rank, reduce_fake, bad[i].mask, bad[i].fused, msg, sizeof msg);
        CHECK(st == SL_EUNSUPPORTED && strstr(msg, bad[i].needle) && rank.calls == 0,
              "%s: status %d, %d calls, message '%s' should name '%s'", bad[i].spec, (int)st, rank.calls, msg,
              bad[i].needle);
        printf("  refused %-40s %s\n", bad[i].spec, msg);
    }
    fake_rank failing = {2, 0, 7};
    sl_status st = run_one("dice(batch=true)+ce", &failing, reduce_fake, NULL, 1, msg, sizeof msg);
    CHECK(st == SL_EIO && strstr(msg, "returned 7"), "a failing reducer: status %d, '%s'", (int)st, msg);
    st = run_one("dice(batch=true)+ce", NULL, reduce_nan, NULL, 1, msg, sizeof msg);
    CHECK(st == SL_ENONFINITE && strstr(msg, "not finite"), "a NaN sum: status %d, '%s'", (int)st, msg);
    /* removing the reducer gives back the plain behaviour (the mask is accepted again) */
    sl_loss *L;
    sl_loss_create("dice(batch=true)", &L, msg, sizeof msg);
    EXPECT(sl_loss_set_reducer(L, reduce_fake, &rank) == SL_OK);
    EXPECT(sl_loss_set_reducer(L, NULL, NULL) == SL_OK);
    EXPECT(sl_loss_set_reducer(NULL, reduce_fake, &rank) == SL_EINVAL);
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 2, .spatial = {H, W}};
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y1, .mask = mask};
    double v;
    rank.calls = 0;
    EXPECT(sl_loss_forward(L, x1, &d, &t, NULL, &v, NULL, msg, sizeof msg) == SL_OK && rank.calls == 0);
    sl_loss_free(L);
}

int main(void)
{
    srand(5);
    for (int i = 0; i < N * C * S; i++) x1[i] = (float)(rand() / (double)RAND_MAX * 6 - 3);
    for (int i = 0; i < N * S; i++) {
        y1[i] = rand() % 4 ? 0 : 1 + rand() % (C - 1); /* skewed: class 0 dominates */
        if (i < S / 3) y1[i] = 2;
        yb1[i] = rand() % 3 == 0;
        xb1[i] = (float)(rand() / (double)RAND_MAX * 6 - 3);
    }
    memcpy(x2, x1, sizeof x1);
    memcpy(x2 + N * C * S, x1, sizeof x1);
    memcpy(y2, y1, sizeof y1);
    memcpy(y2 + N * S, y1, sizeof y1);
    memcpy(yb2, yb1, sizeof yb1);
    memcpy(yb2 + N * S, yb1, sizeof yb1);
    memcpy(xb2, xb1, sizeof xb1);
    memcpy(xb2 + N * S, xb1, sizeof xb1);

    printf("doubling reducer vs one process on [x; x]:\n");
    compare("dice(batch=true)+ce", 0, 1, 1);
    compare("gdice(batch=true)", 0, 1, 1);
    compare("wce(weight=inverse)", 0, 1, 2);
    compare("adaptive_dice", 0, 2, 3);
    compare("adaptive_dice(batch=true)", 0, 2, 1);
    compare("dice+ce", 0, 1, 1);
    compare("0.5*tversky(alpha=0.3,beta=0.7,batch=true)+iou(weight=median)+wce(weight=[1,2,3])", 0, 1, 2);
    compare("dice(batch=true,ignore_index=2)+ce(ignore_index=2)+mcc(ignore_index=2)", 0, 1, 1);
    compare("dice(batch=true)+bce", 1, 1, 1);
    compare("logcosh_dice(batch=true)+pgdice", 0, 1, 1);
    printf("worst: value rel %.2e, gradient rel %.2e\n", worst_v, worst_g);
    TEST_RUN(refusals);
    return test_report("test_loss_reduce");
}
