/*
 * The loss API's contract: spec parsing errors with their codes and
 * messages, bad inputs to sl_loss_forward (shapes, labels, NaN/Inf,
 * probabilities out of range), per-term values, weights, determinism
 * across thread counts, and NULL handling.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/loss.h"
#include "test_util.h"

static void spec_should_parse(const char *spec, int nterms)
{
    char msg[256] = "";
    sl_loss *L = NULL;
    sl_status st = sl_loss_create(spec, &L, msg, sizeof msg);
    CHECK(st == SL_OK, "spec '%s' should parse (%s)", spec, msg);
    if (st == SL_OK) CHECK(sl_loss_num_terms(L) == nterms, "spec '%s': %d terms, want %d", spec, sl_loss_num_terms(L), nterms);
    sl_loss_free(L);
}

static void spec_should_fail(const char *spec, sl_status want, const char *needle)
{
    char msg[256] = "";
    sl_loss *L = (sl_loss *)0x1;
    sl_status st = sl_loss_create(spec, &L, msg, sizeof msg);
    CHECK(st == want, "spec '%s': status %d (%s), want %d", spec, st, msg, want);
    CHECK(L == NULL, "spec '%s': *out must be NULL on failure", spec);
    CHECK(strstr(msg, needle) != NULL, "spec '%s': message '%s' should mention '%s'", spec, msg, needle);
}

static void test_spec(void)
{
    spec_should_parse("dice", 1);
    spec_should_parse("dice+ce", 2);
    spec_should_parse(" 0.5 * dice ( batch = true , include_background=false ) + 0.5*ce ", 2);
    spec_should_parse("ce(weight=[1,2.5,1e1])", 1);
    spec_should_parse("ce(weight=inverse,label_smoothing=0.1,ignore_index=255)", 1);
    spec_should_parse("dice(smooth_nr=0,smooth_dr=1e-5)+0*ce", 2);

    spec_should_fail("", SL_EFORMAT, "empty");
    spec_should_fail("dice+", SL_EFORMAT, "loss name");
    spec_should_fail("dice ce", SL_EFORMAT, "'+'");
    spec_should_fail("0.5 dice", SL_EFORMAT, "'*'");
    spec_should_fail("dice(", SL_EFORMAT, "key");
    spec_should_fail("dice()", SL_EFORMAT, "empty parameter list");
    spec_should_fail("dice(batch)", SL_EFORMAT, "'='");
    spec_should_fail("dice(batch=)", SL_EFORMAT, "value");
    spec_should_fail("ce(weight=[1,2)", SL_EFORMAT, "']'");
    spec_should_fail("ce(weight=[])", SL_EFORMAT, "empty list");
    spec_should_fail("dice(batch=true,batch=false)", SL_EINVAL, "twice");
    spec_should_fail("nosuchloss", SL_EUNKNOWN, "nosuchloss");
    spec_should_fail("dice(nosuchkey=1)", SL_EUNKNOWN, "nosuchkey");
    spec_should_fail("dice(batch=3)", SL_EINVAL, "true or false");
    spec_should_fail("dice(smooth_nr=-1)", SL_EINVAL, "out of range");
    spec_should_fail("dice(activation=relu)", SL_EINVAL, "relu");
    spec_should_fail("ce(ignore_index=1.5)", SL_EINVAL, "integer");
    spec_should_fail("ce(weight=often)", SL_EINVAL, "inverse|median");
    spec_should_fail("ce(weight=[1,-2])", SL_EINVAL, "out of range");
    spec_should_fail("0x10*dice", SL_EFORMAT, "loss name");
    spec_should_fail("inf*dice", SL_EFORMAT, "'+'");
    spec_should_fail("1e999*dice", SL_EFORMAT, "number out of range");

    char msg[64];
    sl_loss *L;
    CHECK(sl_loss_create(NULL, &L, msg, sizeof msg) == SL_EINVAL, "NULL spec");
    CHECK(sl_loss_create("dice", NULL, NULL, 0) == SL_EINVAL, "NULL out");
    sl_loss_free(NULL); /* must be a no-op */
    /* A long spec is refused, not truncated. */
    char *big = malloc(10000);
    memset(big, 'a', 9999);
    big[9999] = 0;
    spec_should_fail(big, SL_EFORMAT, "longer");
    free(big);
}

/* Random logits and labels for (N, C, S). */
static void fill(float *x, int32_t *y, int64_t N, int64_t C, int64_t S, unsigned seed)
{
    srand(seed);
    for (int64_t i = 0; i < N * C * S; i++) x[i] = (float)(rand() / (double)RAND_MAX * 6 - 3);
    for (int64_t i = 0; i < N * S; i++) y[i] = rand() % (int)(C == 1 ? 2 : C);
}

static void test_forward_errors(void)
{
    enum { N = 2, C = 3, H = 8, W = 9, S = H * W };
    static float x[N * C * S], g[N * C * S];
    static int32_t y[N * S];
    fill(x, y, N, C, S, 1);
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 2, .spatial = {H, W}};
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y};
    char msg[256];
    double v;
    sl_loss *L;
    CHECK(sl_loss_create("dice+ce", &L, msg, sizeof msg) == SL_OK, "create");

    CHECK(sl_loss_forward(L, x, &d, &t, NULL, &v, g, msg, sizeof msg) == SL_OK, "forward: %s", msg);
    CHECK(isfinite(v) && v > 0, "value %g", v);
    CHECK(fabs(v - (sl_loss_term_value(L, 0) + sl_loss_term_value(L, 1))) < 1e-12, "terms sum to the loss");
    CHECK(!strcmp(sl_loss_term_name(L, 1), "ce"), "term name");
    CHECK(sl_loss_term_name(L, 2) == NULL && isnan(sl_loss_term_value(L, -1)), "out-of-range term index");

    /* weights change the total linearly */
    double v2;
    CHECK(sl_loss_set_term_weight(L, 1, 3.0) == SL_OK, "set weight");
    CHECK(sl_loss_forward(L, x, &d, &t, NULL, &v2, NULL, msg, sizeof msg) == SL_OK, "forward");
    CHECK(fabs(v2 - (sl_loss_term_value(L, 0) + 3 * sl_loss_term_value(L, 1))) < 1e-12, "weighted sum");
    CHECK(sl_loss_set_term_weight(L, 1, NAN) == SL_EINVAL, "NaN weight refused");
    CHECK(sl_loss_set_term_weight(L, 5, 1) == SL_EINVAL, "bad index refused");

    /* labels out of range */
    y[5] = 3;
    CHECK(sl_loss_forward(L, x, &d, &t, NULL, &v, g, msg, sizeof msg) == SL_ERANGE, "label 3 with C=3");
    CHECK(strstr(msg, "label 3") != NULL, "message names the label: %s", msg);
    y[5] = -1;
    CHECK(sl_loss_forward(L, x, &d, &t, NULL, &v, g, msg, sizeof msg) == SL_ERANGE, "label -1");
    y[5] = 0;

    /* NaN / Inf in the scores */
    x[7] = NAN;
    CHECK(sl_loss_forward(L, x, &d, &t, NULL, &v, g, msg, sizeof msg) == SL_ENONFINITE, "NaN score");
    x[7] = INFINITY;
    CHECK(sl_loss_forward(L, x, &d, &t, NULL, &v, g, msg, sizeof msg) == SL_ENONFINITE, "Inf score");
    x[7] = 0.5f;

    /* shapes */
    sl_dims bad = d;
    bad.spatial_ndim = 0;
    CHECK(sl_loss_forward(L, x, &bad, &t, NULL, &v, g, msg, sizeof msg) == SL_ESHAPE, "0 spatial axes");
    bad = d;
    bad.n = 0;
    CHECK(sl_loss_forward(L, x, &bad, &t, NULL, &v, g, msg, sizeof msg) == SL_ESHAPE, "N = 0");
    bad = d;
    bad.spatial[0] = INT64_MAX / 2;
    CHECK(sl_loss_forward(L, x, &bad, &t, NULL, &v, g, msg, sizeof msg) == SL_EOVERFLOW, "overflowing dims");

    /* NULLs */
    CHECK(sl_loss_forward(L, NULL, &d, &t, NULL, &v, g, msg, sizeof msg) == SL_EINVAL, "NULL scores");
    CHECK(sl_loss_forward(L, x, &d, NULL, NULL, &v, g, msg, sizeof msg) == SL_EINVAL, "NULL target");
    CHECK(sl_loss_forward(L, x, &d, &t, NULL, NULL, g, msg, sizeof msg) == SL_EINVAL, "NULL value");
    sl_target tn = {.kind = SL_TARGET_LABELS, .labels = NULL};
    CHECK(sl_loss_forward(L, x, &d, &tn, NULL, &v, g, msg, sizeof msg) == SL_EINVAL, "NULL labels");

    /* bad spacing */
    sl_forward_opts o = SL_FORWARD_OPTS_DEFAULT;
    o.spacing[1] = 0;
    CHECK(sl_loss_forward(L, x, &d, &t, &o, &v, g, msg, sizeof msg) == SL_EINVAL, "zero spacing");
    sl_loss_free(L);

    /* class weights of the wrong length: SL_ESHAPE at forward time */
    CHECK(sl_loss_create("ce(weight=[1,2])", &L, msg, sizeof msg) == SL_OK, "create");
    CHECK(sl_loss_forward(L, x, &d, &t, NULL, &v, g, msg, sizeof msg) == SL_ESHAPE, "2 weights for C=3");
    CHECK(strstr(msg, "weight") != NULL, "message: %s", msg);
    sl_loss_free(L);

    /* softmax on one channel is refused with a hint */
    sl_dims d1 = {.n = 1, .c = 1, .spatial_ndim = 2, .spatial = {H, W}};
    for (int i = 0; i < S; i++) y[i] = i % 2;
    CHECK(sl_loss_create("dice(activation=softmax)", &L, msg, sizeof msg) == SL_OK, "create");
    CHECK(sl_loss_forward(L, x, &d1, &t, NULL, &v, g, msg, sizeof msg) == SL_ESHAPE, "softmax C=1");
    sl_loss_free(L);

    /* activation=none needs probabilities */
    CHECK(sl_loss_create("dice(activation=none)", &L, msg, sizeof msg) == SL_OK, "create");
    CHECK(sl_loss_forward(L, x, &d, &t, NULL, &v, g, msg, sizeof msg) == SL_ERANGE, "logits with activation=none");
    sl_loss_free(L);

    /* soft targets must be in [0, 1] and finite; ignore_index needs labels */
    static float soft[N * C * S];
    for (int i = 0; i < N * C * S; i++) soft[i] = 1.0f / C;
    sl_target ts = {.kind = SL_TARGET_SOFT, .soft = soft};
    CHECK(sl_loss_create("dice", &L, msg, sizeof msg) == SL_OK, "create");
    CHECK(sl_loss_forward(L, x, &d, &ts, NULL, &v, g, msg, sizeof msg) == SL_OK, "soft: %s", msg);
    soft[3] = 1.5f;
    CHECK(sl_loss_forward(L, x, &d, &ts, NULL, &v, g, msg, sizeof msg) == SL_ERANGE, "soft > 1");
    soft[3] = NAN;
    CHECK(sl_loss_forward(L, x, &d, &ts, NULL, &v, g, msg, sizeof msg) == SL_ENONFINITE, "soft NaN");
    soft[3] = 0.2f;
    sl_loss_free(L);
    CHECK(sl_loss_create("ce(ignore_index=0)", &L, msg, sizeof msg) == SL_OK, "create");
    CHECK(sl_loss_forward(L, x, &d, &ts, NULL, &v, g, msg, sizeof msg) == SL_EINVAL, "ignore_index with soft");
    sl_loss_free(L);
}

/* Same result with 1 and 2 threads, and with a size spanning several chunks. */
static void test_determinism(void)
{
    enum { N = 2, C = 4, D = 20, H = 40, W = 50, S = D * H * W };
    float *x = malloc(sizeof(float) * N * C * S), *g1 = malloc(sizeof(float) * N * C * S),
          *g2 = malloc(sizeof(float) * N * C * S);
    int32_t *y = malloc(sizeof(int32_t) * N * S);
    fill(x, y, N, C, S, 7);
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 3, .spatial = {D, H, W}};
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y};
    const char *specs[] = {"dice+ce", "dice(batch=true,squared=true)", "ce(weight=inverse,label_smoothing=0.1)", "bce"};
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        sl_loss *L;
        char msg[256];
        CHECK(sl_loss_create(specs[k], &L, msg, sizeof msg) == SL_OK, "create %s", specs[k]);
        double v1, v2;
        sl_forward_opts o = SL_FORWARD_OPTS_DEFAULT;
        o.threads = 1;
        sl_dims dd = d; /* bce reads the same labels as multi-label one-hot */
        CHECK(sl_loss_forward(L, x, &dd, &t, &o, &v1, g1, msg, sizeof msg) == SL_OK, "%s: %s", specs[k], msg);
        o.threads = 2;
        CHECK(sl_loss_forward(L, x, &dd, &t, &o, &v2, g2, msg, sizeof msg) == SL_OK, "%s: %s", specs[k], msg);
        CHECK(v1 == v2, "%s: 1 thread %.17g vs 2 threads %.17g", specs[k], v1, v2);
        CHECK(memcmp(g1, g2, sizeof(float) * N * C * S) == 0, "%s: gradients differ across thread counts", specs[k]);
        sl_loss_free(L);
    }
    /* The label check runs in parallel on an input this large: with labels outside
     * [0, C) in both threads' halves, some ignored by a term, the message names the
     * first one no term ignores, whatever the thread count. */
    {
        sl_loss *L;
        char msg[256];
        CHECK(sl_loss_create("dice(ignore_index=255)+ce(ignore_index=255)", &L, msg, sizeof msg) == SL_OK, "%s", msg);
        const int64_t bad[] = {N * S - 3, 70000, N * S / 2 + 11}; /* each before the last */
        for (int64_t i = 0; i < 800; i++) y[i * 97] = 255;
        for (int k = 0; k < 3; k++) {
            y[bad[k]] = 4 + k;
            for (int th = 1; th <= 2; th++) {
                sl_forward_opts o = SL_FORWARD_OPTS_DEFAULT;
                o.threads = th;
                double v;
                char want[64];
                snprintf(want, sizeof want, "label %d at index %lld ", 4 + k, (long long)bad[k]);
                CHECK(sl_loss_forward(L, x, &d, &t, &o, &v, g1, msg, sizeof msg) == SL_ERANGE && strstr(msg, want),
                      "%d threads: '%s', not '%s...'", th, msg, want);
            }
        }
        sl_loss_free(L);
    }
    free(x), free(g1), free(g2), free(y);
}

static void test_catalogue(void)
{
    int n = sl_loss_catalogue_size();
    CHECK(n >= 4, "catalogue has %d losses", n);
    for (int i = 0; i < n; i++) {
        const sl_loss_info *info = sl_loss_catalogue(i);
        CHECK(info && info->name && info->family && info->summary && info->reference, "entry %d complete", i);
        char keys[2048];
        CHECK(sl_loss_describe_keys(info->name, keys, sizeof keys) == SL_OK, "describe %s", info->name);
        sl_loss *L;
        char msg[256];
        /* every loss builds with its defaults, except the ones with a required key */
        sl_status st = sl_loss_create(info->name, &L, msg, sizeof msg);
        CHECK(st == SL_OK || strstr(msg, "required"), "%s with defaults: %s", info->name, msg);
        sl_loss_free(L);
    }
    CHECK(sl_loss_catalogue(n) == NULL && sl_loss_catalogue(-1) == NULL, "out of range");
    char small[4];
    CHECK(sl_loss_describe_keys("dice", small, sizeof small) == SL_EINVAL, "small buffer");
    CHECK(sl_loss_describe_keys("nope", small, sizeof small) == SL_EUNKNOWN, "unknown name");
    CHECK(strcmp(sl_strerror(SL_ERANGE), "value out of range") == 0, "strerror");
    CHECK(strcmp(sl_strerror((sl_status)999), "unknown status") == 0, "strerror unknown");
}

int main(void)
{
    test_spec();
    test_forward_errors();
    test_determinism();
    test_catalogue();
    return test_report("loss API");
}
