/*
 * Schedules (segloss/schedule.h): ramp weights per epoch against hand-
 * computed numbers, stage boundaries, every parse error with its code and
 * message, sl_schedule_apply on a caller's loss, and save → restore of the
 * state (adaptive_dice's running averages) giving bit-identical later
 * losses and gradients, for a loss alone and for a whole schedule.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/loss.h"
#include "segloss/schedule.h"
#include "test_util.h"

static sl_schedule *make(const char *text)
{
    char msg[256] = "";
    sl_schedule *s = NULL;
    sl_status st = sl_schedule_create(text, &s, msg, sizeof msg);
    CHECK(st == SL_OK && s, "schedule '%s' should parse: %s", text, msg);
    return s;
}

/* weights of `epoch` against want[0..n) */
static void weights_are(const sl_schedule *s, int64_t epoch, int n, const double *want, const char *what)
{
    double w[8];
    int nt = -1;
    CHECK(sl_schedule_weights(s, epoch, w, 8, &nt) == SL_OK, "%s: weights of epoch %lld", what, (long long)epoch);
    CHECK(nt == n, "%s epoch %lld: %d terms, want %d", what, (long long)epoch, nt, n);
    for (int i = 0; i < n && i < nt; i++)
        CHECK(fabs(w[i] - want[i]) <= 1e-12, "%s epoch %lld term %d: weight %.15g, want %.15g", what, (long long)epoch,
              i, w[i], want[i]);
    /* the loss of the epoch carries the same weights */
    sl_loss *L = NULL;
    char msg[256];
    if (sl_schedule_loss_for_epoch((sl_schedule *)s, epoch, &L, msg, sizeof msg) == SL_OK) {
        for (int i = 0; i < n; i++)
            CHECK(fabs(sl_loss_term_weight(L, i) - want[i]) <= 1e-12, "%s epoch %lld: loss weight %d is %.15g", what,
                  (long long)epoch, i, sl_loss_term_weight(L, i));
    } else {
        CHECK(0, "%s: loss_for_epoch(%lld): %s", what, (long long)epoch, msg);
    }
}

static void test_ramps(void)
{
    /* Kervadec: region (term 0) 1 − α down to 0.1, boundary (term 1) α = 0.01 + 0.01e up to 1 */
    sl_schedule *s = make("dice+ce | ramp");
    if (s) {
        const struct {
            int64_t e;
            double w0, w1;
        } tab[] = {{0, 0.99, 0.01}, {1, 0.98, 0.02}, {10, 0.89, 0.11}, {50, 0.49, 0.51}, {88, 0.11, 0.89},
                   {89, 0.10, 0.90}, {90, 0.10, 0.91}, {95, 0.10, 0.96}, {99, 0.10, 1.00}, {100, 0.10, 1.00},
                   {1000, 0.10, 1.00}};
        for (size_t i = 0; i < sizeof tab / sizeof *tab; i++) {
            double want[2] = {tab[i].w0, tab[i].w1};
            weights_are(s, tab[i].e, 2, want, "kervadec");
        }
        sl_schedule_free(s);
    }
    /* the same through the struct API */
    sl_ramp r = SL_RAMP_DEFAULT;
    char msg[256];
    CHECK(sl_schedule_create_ramp("dice+ce", &r, &s, msg, sizeof msg) == SL_OK, "create_ramp: %s", msg);
    if (s) {
        double want[2] = {0.89, 0.11};
        weights_are(s, 10, 2, want, "create_ramp");
        sl_schedule_free(s);
    }
    /* a grow-only ramp on the third term; the spec weight 0.5 of the first stays */
    s = make("0.5*dice+ce+iou | ramp(grow=2, start=0, step=0.25, cap=0.6, shrink=-1)");
    if (s) {
        const double e0[3] = {0.5, 1, 0}, e1[3] = {0.5, 1, 0.25}, e2[3] = {0.5, 1, 0.5}, e3[3] = {0.5, 1, 0.6};
        weights_are(s, 0, 3, e0, "grow-only");
        weights_are(s, 1, 3, e1, "grow-only");
        weights_are(s, 2, 3, e2, "grow-only");
        weights_are(s, 3, 3, e3, "grow-only");
        weights_are(s, 30, 3, e3, "grow-only");
        sl_schedule_free(s);
    }
    /* a ramp in a later stage counts from the stage's start */
    s = make("0:ce; 20:dice+ce | ramp(grow=0,shrink=1,start=0.2,step=0.1,cap=1,shrink_start=1,shrink_step=0.2,floor=0.3)");
    if (s) {
        const double a[1] = {1}, b[2] = {0.2, 1}, c[2] = {0.4, 0.6}, d[2] = {0.7, 0.3}, e[2] = {1, 0.3};
        weights_are(s, 19, 1, a, "stage ramp");
        weights_are(s, 20, 2, b, "stage ramp");
        weights_are(s, 22, 2, c, "stage ramp");
        weights_are(s, 25, 2, d, "stage ramp");
        weights_are(s, 40, 2, e, "stage ramp");
        sl_schedule_free(s);
    }
    /* shrink_start/shrink_step default to the complement of the grown weight */
    s = make("dice+ce|ramp(start=0.2,step=0.05,floor=0.5)");
    if (s) {
        const double a[2] = {0.8, 0.2}, b[2] = {0.6, 0.4}, c[2] = {0.5, 0.7};
        weights_are(s, 0, 2, a, "complement");
        weights_are(s, 4, 2, b, "complement");
        weights_are(s, 10, 2, c, "complement");
        sl_schedule_free(s);
    }
}

static void test_apply(void)
{
    char msg[256] = "";
    sl_schedule *s = make("0:dice+ce | ramp; 30:ce");
    sl_loss *L = NULL, *other = NULL;
    sl_loss_create("dice+ce", &L, NULL, 0);
    sl_loss_create("ce+dice", &other, NULL, 0);
    if (s && L && other) {
        CHECK(sl_schedule_apply(s, L, 10, msg, sizeof msg) == SL_OK, "apply: %s", msg);
        CHECK(fabs(sl_loss_term_weight(L, 0) - 0.89) < 1e-12 && fabs(sl_loss_term_weight(L, 1) - 0.11) < 1e-12,
              "apply epoch 10: %g %g", sl_loss_term_weight(L, 0), sl_loss_term_weight(L, 1));
        sl_status st = sl_schedule_apply(s, other, 10, msg, sizeof msg);
        CHECK(st == SL_EBADSTATE && strstr(msg, "ce+dice") && strstr(msg, "dice+ce"),
              "apply to other terms: %d '%s'", st, msg);
        st = sl_schedule_apply(s, L, 30, msg, sizeof msg);
        CHECK(st == SL_EBADSTATE && strstr(msg, "stage 2") && strstr(msg, "loss_for_epoch"),
              "apply across stages: %d '%s'", st, msg);
        CHECK(sl_schedule_apply(s, L, -1, msg, sizeof msg) == SL_EINVAL, "negative epoch");
        CHECK(sl_schedule_apply(NULL, L, 0, msg, sizeof msg) == SL_EINVAL, "NULL schedule");
        CHECK(sl_schedule_apply(s, NULL, 0, msg, sizeof msg) == SL_EINVAL, "NULL loss");
    }
    sl_loss_free(L);
    sl_loss_free(other);
    sl_schedule_free(s);
}

/* Random logits (N, C, S) and labels. */
static void fill(float *x, int32_t *y, int64_t N, int64_t C, int64_t S, unsigned seed)
{
    srand(seed);
    for (int64_t i = 0; i < N * C * S; i++) x[i] = (float)(4.0 * rand() / RAND_MAX - 2.0);
    for (int64_t i = 0; i < N * S; i++) y[i] = rand() % (int)C;
}

enum { TN = 2, TC = 3, TH = 6, TW = 7, TS = TH * TW, TT = TN * TC * TS };

static double forward(sl_loss *L, unsigned seed, int training, float *grad)
{
    float x[TT];
    int32_t y[TN * TS];
    fill(x, y, TN, TC, TS, seed);
    sl_dims d = {TN, TC, 2, {TH, TW, 1}};
    sl_target t = {SL_TARGET_LABELS, y, NULL};
    sl_forward_opts o = SL_FORWARD_OPTS_DEFAULT;
    o.training = training;
    o.threads = 1;
    double v = NAN;
    char msg[256] = "";
    sl_status st = sl_loss_forward(L, x, &d, &t, &o, &v, grad, msg, sizeof msg);
    CHECK(st == SL_OK, "forward: %s", msg);
    return v;
}

static void test_stages(void)
{
    const char *text = "0:ce; 50:ce+dice; 100:wdice(weight=[1,5,10])";
    sl_schedule *s = make(text);
    if (!s) return;
    CHECK(sl_schedule_num_stages(s) == 3, "3 stages");
    CHECK(sl_schedule_stage_start(s, 1) == 50 && sl_schedule_stage_start(s, 2) == 100, "starts");
    CHECK(!strcmp(sl_schedule_stage_spec(s, 2), "wdice(weight=[1,5,10])"), "spec 2 is '%s'",
          sl_schedule_stage_spec(s, 2));
    CHECK(sl_schedule_stage_start(s, 3) == -1 && sl_schedule_stage_spec(s, -1) == NULL, "out of range");
    const int64_t ep[] = {0, 1, 49, 50, 51, 99, 100, 101, 1000000000};
    const int want[] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
    const char *names[] = {"ce", "ce", "ce", "ce+dice", "ce+dice", "ce+dice", "wdice", "wdice", "wdice"};
    for (int i = 0; i < 9; i++) {
        CHECK(sl_schedule_stage_of(s, ep[i]) == want[i], "epoch %lld in stage %d, want %d", (long long)ep[i],
              sl_schedule_stage_of(s, ep[i]), want[i]);
        sl_loss *L = NULL;
        char msg[256];
        CHECK(sl_schedule_loss_for_epoch(s, ep[i], &L, msg, sizeof msg) == SL_OK, "loss_for_epoch: %s", msg);
        if (!L) continue;
        char got[64] = "";
        for (int k = 0; k < sl_loss_num_terms(L); k++) {
            if (k) strcat(got, "+");
            strcat(got, sl_loss_term_name(L, k));
        }
        CHECK(!strcmp(got, names[i]), "epoch %lld: loss '%s', want '%s'", (long long)ep[i], got, names[i]);
    }
    CHECK(sl_schedule_stage_of(s, -1) == -1, "negative epoch has no stage");
    sl_loss *L = (sl_loss *)0x1;
    CHECK(sl_schedule_loss_for_epoch(s, -3, &L, NULL, 0) == SL_EINVAL && L == NULL, "negative epoch refused");
    /* the stage loss computes what its spec computes */
    sl_loss *mine = NULL, *ref = NULL;
    sl_schedule_loss_for_epoch(s, 120, &mine, NULL, 0);
    sl_loss_create("wdice(weight=[1,5,10])", &ref, NULL, 0);
    if (mine && ref) {
        float g1[TT], g2[TT];
        double a = forward(mine, 3, 0, g1), b = forward(ref, 3, 0, g2);
        CHECK(a == b && !memcmp(g1, g2, sizeof g1), "stage loss = its spec: %.17g vs %.17g", a, b);
    }
    sl_loss_free(ref);
    sl_schedule_free(s);
    /* a single stage may omit "0:"; whitespace is free */
    s = make("  dice + ce  ");
    CHECK(s && sl_schedule_num_stages(s) == 1 && sl_schedule_stage_start(s, 0) == 0, "single stage");
    sl_schedule_free(s);
    s = make(" 0 : ce ;  7 :dice ");
    CHECK(s && sl_schedule_stage_of(s, 6) == 0 && sl_schedule_stage_of(s, 7) == 1, "spaces around ':' and ';'");
    sl_schedule_free(s);
}

static void bad(const char *text, sl_status want, const char *needle1, const char *needle2)
{
    char msg[256] = "";
    sl_schedule *s = (sl_schedule *)0x1;
    sl_status st = sl_schedule_create(text, &s, msg, sizeof msg);
    CHECK(st == want, "'%s': status %d (%s), want %d", text, st, msg, want);
    CHECK(s == NULL, "'%s': *out must be NULL on failure", text);
    CHECK(strstr(msg, needle1) != NULL, "'%s': message '%s' should mention '%s'", text, msg, needle1);
    if (needle2) CHECK(strstr(msg, needle2) != NULL, "'%s': message '%s' should mention '%s'", text, msg, needle2);
    CHECK(strchr(msg, '\n') == NULL, "'%s': one line", text);
}

static void test_errors(void)
{
    bad("", SL_EFORMAT, "empty stage", NULL);
    bad("0:ce;", SL_EFORMAT, "stage 2", "empty stage");
    bad("0:ce;;50:dice", SL_EFORMAT, "stage 2", "empty stage");
    bad("5:ce", SL_EFORMAT, "first stage must start at epoch 0", NULL);
    bad("0:ce; 50:dice; 50:ce", SL_EFORMAT, "stage 3 (epoch 50)", "overlaps stage 2");
    bad("0:ce; 50:dice; 30:ce", SL_EFORMAT, "stage 3 (epoch 30)", "increasing order");
    bad("0:ce; dice", SL_EFORMAT, "stage 2", "no start epoch");
    bad("x:ce", SL_EFORMAT, "'x'", "non-negative integer");
    bad("-5:ce", SL_EFORMAT, "'-5'", "non-negative integer");
    bad("1.5:ce", SL_EFORMAT, "'1.5'", "non-negative integer");
    bad("99999999999999999999:ce", SL_EFORMAT, "non-negative integer", NULL);
    bad("0:", SL_EFORMAT, "no loss spec", NULL);
    bad("0: | ramp", SL_EFORMAT, "no loss spec", NULL);
    bad("0:dcie", SL_EUNKNOWN, "stage 1 (epoch 0)", "dcie");
    bad("0:ce; 10:dice(batch=3)", SL_EINVAL, "stage 2 (epoch 10)", "true or false");
    bad("0:ce; 10:dice+", SL_EFORMAT, "stage 2 (epoch 10)", "loss spec");
    bad("dice+ce | ramp(grow=5)", SL_EINVAL, "grow=5", "term index");
    bad("dice | ramp", SL_EINVAL, "grow=1", "1-term");
    bad("dice+ce | ramp(grow=0.5)", SL_EINVAL, "grow", "integer");
    bad("dice+ce | ramp(shrink=-2)", SL_EINVAL, "shrink=-2", NULL);
    bad("dice+ce | ramp(grow=1,shrink=1)", SL_EINVAL, "same term", NULL);
    bad("dice+ce | ramp(cap=0.001)", SL_EINVAL, "cap=0.001", "below start");
    bad("dice+ce | ramp(floor=2)", SL_EINVAL, "floor=2", "above shrink_start");
    bad("dice+ce | ramp(step=-1)", SL_EINVAL, "step=-1", ">= 0");
    bad("dice+ce | ramp(nope=1)", SL_EUNKNOWN, "unknown key 'nope'", NULL);
    bad("dice+ce | ramp(step=abc)", SL_EINVAL, "step needs a number", NULL);
    bad("dice+ce | ramp(step=0x10)", SL_EINVAL, "step needs a number", NULL);
    bad("dice+ce | ramp(step=1,step=2)", SL_EINVAL, "twice", NULL);
    bad("dice+ce | ramp(step)", SL_EFORMAT, "key=value", NULL);
    bad("dice+ce | ramp(step=1", SL_EFORMAT, "(key=value", NULL);
    bad("dice+ce | rump", SL_EFORMAT, "expected 'ramp'", NULL);
    bad("dice+ce | ramps", SL_EFORMAT, "expected 'ramp'", NULL);
    bad("dice+ce | ramp | ramp", SL_EFORMAT, "more than one '|'", NULL);
    char msg[64];
    sl_schedule *s;
    CHECK(sl_schedule_create(NULL, &s, msg, sizeof msg) == SL_EINVAL, "NULL text");
    CHECK(sl_schedule_create("ce", NULL, msg, sizeof msg) == SL_EINVAL, "NULL out");
    CHECK(sl_schedule_create_ramp(NULL, NULL, &s, msg, sizeof msg) == SL_EINVAL, "NULL spec");
    sl_ramp r = SL_RAMP_DEFAULT;
    r.grow_step = NAN;
    r.grow_cap = INFINITY;
    CHECK(sl_schedule_create_ramp("dice+ce", &r, &s, msg, sizeof msg) == SL_EINVAL && s == NULL, "infinite cap: %s",
          msg);
    sl_schedule_free(NULL);
    CHECK(sl_schedule_num_stages(NULL) == 0 && sl_schedule_stage_of(NULL, 0) == -1, "NULL queries");
    int nt;
    double w[2];
    CHECK(sl_schedule_weights(NULL, 0, w, 2, &nt) == SL_EINVAL, "weights NULL");
}

/* ---- state ------------------------------------------------------------------------- */

static unsigned char *save_loss(const sl_loss *L, size_t *n)
{
    CHECK(sl_loss_state_size(L, n) == SL_OK, "state size");
    unsigned char *b = malloc(*n);
    size_t w = 0;
    CHECK(b && sl_loss_state_get(L, b, *n, &w) == SL_OK && w == *n, "state get");
    return b;
}

static void test_loss_state(void)
{
    char msg[256] = "";
    sl_loss *A = NULL, *B = NULL, *D = NULL;
    sl_loss_create("adaptive_dice+ce", &A, NULL, 0);
    sl_loss_create("adaptive_dice+ce", &B, NULL, 0);
    sl_loss_create("dice+ce", &D, NULL, 0);
    if (!A || !B || !D) {
        CHECK(0, "adaptive_dice is not in the catalogue");
        goto done;
    }
    size_t n0, n1;
    unsigned char *fresh = save_loss(A, &n0); /* no state yet */
    for (unsigned k = 0; k < 3; k++) forward(A, 10 + k, 1, NULL);
    unsigned char *buf = save_loss(A, &n1);
    CHECK(n1 == n0 + TC * sizeof(double), "state grows by C doubles after training: %zu vs %zu", n1, n0);
    /* restored into a fresh loss, the next forwards are bit-identical (training and evaluation) */
    CHECK(sl_loss_state_set(B, buf, n1, msg, sizeof msg) == SL_OK, "restore: %s", msg);
    for (unsigned k = 0; k < 4; k++) {
        float ga[TT], gb[TT];
        double va = forward(A, 20 + k, k != 2, ga), vb = forward(B, 20 + k, k != 2, gb);
        CHECK(va == vb && !memcmp(ga, gb, sizeof ga), "restored loss step %u: %.17g vs %.17g", k, va, vb);
    }
    /* and the state matters: a loss without it differs */
    sl_loss *E = NULL;
    sl_loss_create("adaptive_dice+ce", &E, NULL, 0);
    {
        double va = forward(A, 30, 0, NULL), vb = forward(B, 30, 0, NULL), ve = forward(E, 30, 0, NULL);
        CHECK(va == vb && fabs(va - ve) > 1e-6, "history changes the value: %.10g %.10g %.10g", va, vb, ve);
    }
    /* restoring "no state yet" brings a trained loss back to the fresh behaviour */
    CHECK(sl_loss_state_set(B, fresh, n0, msg, sizeof msg) == SL_OK, "restore empty: %s", msg);
    CHECK(forward(B, 31, 0, NULL) == forward(E, 31, 0, NULL), "empty state = fresh loss");
    sl_loss_free(E);
    /* refusals leave the loss unchanged */
    unsigned char *again = save_loss(A, &n1);
    double before = forward(A, 40, 0, NULL);
    sl_status st = sl_loss_state_set(D, again, n1, msg, sizeof msg);
    CHECK(st == SL_EBADSTATE && strstr(msg, "adaptive_dice") && strstr(msg, "'dice'"), "other spec: %d %s", st, msg);
    st = sl_loss_state_set(A, again, n1 - 3, msg, sizeof msg);
    CHECK(st == SL_EFORMAT && strstr(msg, "truncated"), "truncated: %d %s", st, msg);
    st = sl_loss_state_set(A, again, 5, msg, sizeof msg);
    CHECK(st == SL_EFORMAT, "short: %d %s", st, msg);
    unsigned char *longer = malloc(n1 + 1);
    memcpy(longer, again, n1);
    longer[n1] = 0;
    st = sl_loss_state_set(A, longer, n1 + 1, msg, sizeof msg);
    CHECK(st == SL_EFORMAT && strstr(msg, "after the last term"), "trailing byte: %d %s", st, msg);
    longer[0] = 'X';
    st = sl_loss_state_set(A, longer, n1, msg, sizeof msg);
    CHECK(st == SL_EFORMAT && strstr(msg, "not a segloss"), "bad magic: %d %s", st, msg);
    memcpy(longer, again, n1);
    longer[4] = 9;
    st = sl_loss_state_set(A, longer, n1, msg, sizeof msg);
    CHECK(st == SL_EFORMAT && strstr(msg, "version"), "bad version: %d %s", st, msg);
    free(longer);
    CHECK(forward(A, 40, 0, NULL) == before, "refused restores changed nothing");
    /* a stateless term refuses state */
    sl_loss *F = NULL;
    sl_loss_create("dice+dice", &F, NULL, 0);
    {
        /* adaptive_dice+ce's buffer with the names patched to dice+dice would carry state for dice */
        size_t m;
        unsigned char *b2 = save_loss(F, &m);
        CHECK(sl_loss_state_set(F, b2, m, msg, sizeof msg) == SL_OK, "stateless round trip: %s", msg);
        free(b2);
    }
    sl_loss_free(F);
    CHECK(sl_loss_state_size(NULL, &n1) == SL_EINVAL && sl_loss_state_get(A, NULL, 0, NULL) == SL_EINVAL,
          "NULL arguments");
    CHECK(sl_loss_state_get(A, again, 3, NULL) == SL_EINVAL, "small buffer");
    free(again);
    free(buf);
    free(fresh);
done:
    sl_loss_free(A);
    sl_loss_free(B);
    sl_loss_free(D);
}

/* Train a schedule over epochs [e0, e1) (two training steps and one
 * evaluation per epoch), recording values and the last gradient. */
static void run_epochs(sl_schedule *s, int64_t e0, int64_t e1, double *vals, float *grad)
{
    for (int64_t e = e0; e < e1; e++) {
        sl_loss *L = NULL;
        char msg[256];
        CHECK(sl_schedule_loss_for_epoch(s, e, &L, msg, sizeof msg) == SL_OK, "epoch %lld: %s", (long long)e, msg);
        if (!L) return;
        for (int k = 0; k < 3; k++)
            vals[(e - e0) * 3 + k] = forward(L, (unsigned)(100 * e + k), k < 2, grad);
    }
}

static void test_schedule_state(void)
{
    const char *text = "0:ce; 2:adaptive_dice+ce | ramp(grow=1,start=0.1,step=0.2,cap=1); "
                       "4:adaptive_dice(momentum=0.5)";
    sl_schedule *A = make(text), *B = make(text), *C = make(text), *other = make("0:ce; 3:adaptive_dice");
    if (!A || !B || !C || !other) goto done;
    double va[12], vb[12], vc[12], scratch[12];
    float ga[TT], gb[TT];
    run_epochs(A, 0, 4, scratch, NULL); /* history in stage 2 */
    size_t n;
    CHECK(sl_schedule_state_size(A, &n) == SL_OK, "schedule state size");
    unsigned char *buf = malloc(n);
    size_t w = 0;
    CHECK(buf && sl_schedule_state_get(A, buf, n, &w) == SL_OK && w == n, "schedule state get");
    char msg[256] = "";
    CHECK(sl_schedule_state_set(B, buf, n, msg, sizeof msg) == SL_OK, "schedule restore: %s", msg);
    /* resume at epoch 3 (still stage 2, then stage 3) */
    run_epochs(A, 3, 7, va, ga);
    run_epochs(B, 3, 7, vb, gb);
    run_epochs(C, 3, 7, vc, NULL); /* no restore */
    int same = 1, differs = 0;
    for (int i = 0; i < 12; i++) same &= va[i] == vb[i], differs |= va[i] != vc[i];
    CHECK(same && !memcmp(ga, gb, sizeof ga), "restored schedule: identical losses and gradients");
    CHECK(differs, "without the restore the losses differ (the state matters)");
    /* refusals */
    sl_status st = sl_schedule_state_set(other, buf, n, msg, sizeof msg);
    CHECK(st == SL_EBADSTATE && strstr(msg, "3 stages"), "other schedule: %d %s", st, msg);
    sl_schedule *other3 = make("0:ce; 3:adaptive_dice+ce; 4:adaptive_dice(momentum=0.5)");
    st = other3 ? sl_schedule_state_set(other3, buf, n, msg, sizeof msg) : SL_OK;
    CHECK(st == SL_EBADSTATE && strstr(msg, "stage 2") && strstr(msg, "epoch 2"), "other starts: %d %s", st, msg);
    sl_schedule_free(other3);
    st = sl_schedule_state_set(C, buf, n - 1, msg, sizeof msg);
    CHECK(st == SL_EFORMAT, "truncated schedule state: %d %s", st, msg);
    /* a damaged inner buffer in the last stage: the earlier stages are rolled back */
    unsigned char *bad = malloc(n);
    memcpy(bad, buf, n);
    size_t b1, off = 12;
    for (int i = 0; i < 2; i++) {
        memcpy(&b1, bad + off + 8, sizeof b1); /* little-endian hosts; the test runs on x86/ARM */
        off += 16 + b1;
    }
    memcpy(bad + off + 16, "XXXX", 4);
    size_t nc;
    sl_schedule_state_size(C, &nc);
    unsigned char *cbuf = malloc(nc);
    sl_schedule_state_get(C, cbuf, nc, NULL);
    st = sl_schedule_state_set(C, bad, n, msg, sizeof msg);
    CHECK(st == SL_EFORMAT && strstr(msg, "stage 3"), "damaged stage 3: %d %s", st, msg);
    size_t nc2;
    sl_schedule_state_size(C, &nc2);
    unsigned char *cbuf2 = malloc(nc2);
    sl_schedule_state_get(C, cbuf2, nc2, NULL);
    CHECK(nc == nc2 && !memcmp(cbuf, cbuf2, nc), "a refused schedule restore changes nothing");
    free(cbuf);
    free(cbuf2);
    free(bad);
    free(buf);
done:
    sl_schedule_free(A);
    sl_schedule_free(B);
    sl_schedule_free(C);
    sl_schedule_free(other);
}

/* sl_schedule_stretch: the text written for hand-worked cases, and the
 * stretched schedule's weights and stages at factor × epoch equal to the
 * original's at epoch. */
static void stretch_is(const char *text, int factor, const char *want)
{
    char out[512], msg[256] = "";
    sl_status st = sl_schedule_stretch(text, factor, out, sizeof out, msg, sizeof msg);
    CHECK(st == SL_OK, "stretch '%s' x%d: %s", text, factor, msg);
    if (st == SL_OK) CHECK(!strcmp(out, want), "stretch '%s' x%d:\n  got  '%s'\n  want '%s'", text, factor, out, want);
    if (st != SL_OK) return;
    sl_schedule *a = make(text), *b = make(out);
    double maxdiff = 0;
    for (int64_t e = 0; a && b && e < 40; e++) {
        double wa[8], wb[8];
        int na = 0, nb = 0;
        CHECK(sl_schedule_stage_of(a, e) == sl_schedule_stage_of(b, e * factor), "stretch '%s' x%d: stage of epoch %lld",
              text, factor, (long long)e);
        if (sl_schedule_weights(a, e, wa, 8, &na) != SL_OK || sl_schedule_weights(b, e * factor, wb, 8, &nb) != SL_OK ||
            na != nb) {
            CHECK(0, "stretch '%s' x%d: weights of epoch %lld", text, factor, (long long)e);
            continue;
        }
        for (int i = 0; i < na; i++) maxdiff = fmax(maxdiff, fabs(wa[i] - wb[i]));
        /* a stage starts at factor × its epoch, not before */
        if (e > 0 && sl_schedule_stage_of(a, e) != sl_schedule_stage_of(a, e - 1))
            CHECK(sl_schedule_stage_of(b, e * factor - 1) == sl_schedule_stage_of(a, e - 1),
                  "stretch '%s' x%d: stage %d starts before epoch %lld", text, factor, sl_schedule_stage_of(a, e),
                  (long long)(e * factor));
        CHECK(isnan(sl_schedule_stage_lr(a, sl_schedule_stage_of(a, e))) ==
                      isnan(sl_schedule_stage_lr(b, sl_schedule_stage_of(b, e * factor))),
              "stretch '%s' x%d: @lr kept", text, factor);
    }
    printf("  stretch x%d of '%s': max weight difference at factor x epoch %.3g (tolerance 1e-12)\n", factor, text, maxdiff);
    CHECK(maxdiff <= 1e-12, "stretch '%s' x%d: weights differ by %.3g", text, factor, maxdiff);
    sl_schedule_free(a);
    sl_schedule_free(b);
}

static void test_stretch(void)
{
    stretch_is("gdice+boundary | ramp(start=0.1,step=0.1,cap=0.6)", 4,
               "0:gdice+boundary | ramp(grow=1,start=0.1,step=0.025,cap=0.6,shrink=0,shrink_start=0.9,shrink_step=0.025,floor=0.1)");
    stretch_is("0:ce; 3:ce+dice; 6:wdice(weight=[1,5,10])", 4, "0:ce; 12:ce+dice; 24:wdice(weight=[1,5,10])");
    stretch_is("0:ce @lr=0.01; 5:dice+boundary | ramp(step=0.05,shrink=-1) @lr=0.001", 3,
               "0:ce @lr=0.01; 15:dice+boundary | ramp(grow=1,start=0.01,step=0.016666666666666666,cap=1,shrink=-1,"
               "shrink_start=0.99,shrink_step=0.016666666666666666,floor=0.1) @lr=0.001");
    /* nothing counted in epochs, or factor 1: the text unchanged */
    stretch_is("dice+ce", 4, "dice+ce");
    stretch_is("  0:ce; 3:dice ", 1, "  0:ce; 3:dice ");
    /* between the stretched epochs the ramp moves by step/factor: epoch 2 of x4 is half an epoch of the original */
    sl_schedule *s = make("0:gdice+boundary | ramp(grow=1,start=0.1,step=0.025,cap=0.6,shrink=0,shrink_start=0.9,"
                          "shrink_step=0.025,floor=0.1)");
    const double half[2] = {0.85, 0.15};
    if (s) weights_are(s, 2, 2, half, "stretched ramp");
    sl_schedule_free(s);

    char out[64], msg[256];
    struct {
        const char *text;
        int factor;
        size_t outlen;
        sl_status want;
        const char *needle;
    } bad[] = {
        {"0:ce; 3:dice", 0, sizeof out, SL_EINVAL, "factor 0"},
        {"0:ce; 3:", 2, sizeof out, SL_EFORMAT, "stage 2"},
        {"0:ce; 4611686018427387904:dice", 4, sizeof out, SL_ERANGE, "overflows"},
        {"0:ce; 3:dice+ce; 6:wdice(weight=[1,5,10])", 2, 20, SL_ERANGE, "longer than 19"},
        {"dice+ce+boundary+focal", 1, 8, SL_ERANGE, "longer than 7"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg[0] = 0;
        sl_status st = sl_schedule_stretch(bad[i].text, bad[i].factor, out, bad[i].outlen, msg, sizeof msg);
        CHECK(st == bad[i].want && strstr(msg, bad[i].needle), "stretch '%s' x%d: %s '%s', want %s with '%s'", bad[i].text,
              bad[i].factor, sl_strerror(st), msg, sl_strerror(bad[i].want), bad[i].needle);
    }
    CHECK(sl_schedule_stretch(NULL, 2, out, sizeof out, msg, sizeof msg) == SL_EINVAL, "stretch of NULL");
}

int main(void)
{
    test_ramps();
    test_apply();
    test_stages();
    test_errors();
    test_loss_state();
    test_schedule_state();
    test_stretch();
    return test_report("test_schedule");
}
