/*
 * Lovász order with ties: lovasz.c sorts hard targets by two 32-bit radix
 * sorts and a merge (sort_desc_hard); the result must be the permutation of
 * the stable sort of all errors, decreasing, ties by index (sample, voxel),
 * lowest first — the documented rule. The reference below is a
 * transcription of the authors' lovasz_grad on that order (qsort on
 * (error, index), written here independently), checked on inputs full of
 * ties: probabilities on a coarse grid, tiny probabilities whose 1 − p
 * rounds to 1 in double, all-equal inputs, a single voxel; Lovász-softmax
 * on probabilities (activation=none, so the gradient is ∂/∂p itself) and
 * the Lovász hinge on quantised logits. Tolerance: value 1e-12 relative,
 * gradient 1e-6 of its max (float storage).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/loss.h"
#include "test_util.h"

typedef struct {
    double e;
    int64_t i;
} item;

static int cmp_item(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->e != y->e) return x->e > y->e ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* One class (or channel) over N·S voxels: value, and ∂/∂input·k added to grad. */
static double ref_class(const float *in, const int *g, int64_t M, int hinge, double k, double *grad, const int64_t *at)
{
    item *it = malloc(sizeof(item) * M);
    double gs = 0;
    for (int64_t i = 0; i < M; i++) {
        it[i].e = hinge ? 1.0 - (double)in[i] * (2 * g[i] - 1) : fabs(g[i] - (double)in[i]);
        it[i].i = i;
        gs += g[i];
    }
    qsort(it, (size_t)M, sizeof *it, cmp_item);
    double cg = 0, cn = 0, Jp = 0, val = 0;
    for (int64_t r = 0; r < M; r++) {
        int64_t i = it[r].i;
        cg += g[i];
        cn += 1 - g[i];
        double J = 1 - (gs - cg) / (gs + cn), d = J - Jp;
        Jp = J;
        double e = it[r].e;
        val += (hinge ? (e > 0 ? e : 0) : e) * d;
        double de = hinge ? (e > 0 ? -(2 * g[i] - 1) : 0.0) : (in[i] > g[i] ? 1.0 : in[i] < g[i] ? -1.0 : 0.0);
        grad[at[i]] += k * de * d;
    }
    free(it);
    return val;
}

static double max_gd;

static void check(const char *name, const char *spec, const float *x, const int32_t *y, int64_t N, int64_t C, int64_t S)
{
    const int hinge = C == 1;
    const int64_t T = N * C * S, M = N * S;
    double *gr = calloc((size_t)T, sizeof(double));
    float *in = malloc(sizeof(float) * M);
    int *g = malloc(sizeof(int) * M);
    int64_t *at = malloc(sizeof(int64_t) * M);
    double vals[8];
    int present = 0;
    for (int64_t c = 0; c < C; c++) {
        int64_t gs = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                int64_t m = n * S + s;
                in[m] = x[(n * C + c) * S + s];
                g[m] = hinge ? y[m] == 1 : y[m] == c;
                at[m] = (n * C + c) * S + s;
                gs += g[m];
            }
        vals[c] = NAN;
        if (hinge || gs > 0) vals[c] = 0, present++;
    }
    double ref = 0;
    for (int64_t c = 0; c < C; c++) {
        if (isnan(vals[c])) continue;
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                int64_t m = n * S + s;
                in[m] = x[(n * C + c) * S + s];
                g[m] = hinge ? y[m] == 1 : y[m] == c;
                at[m] = (n * C + c) * S + s;
            }
        ref += ref_class(in, g, M, hinge, 1.0 / present, gr, at) / present;
    }
    sl_loss *L;
    char msg[256];
    CHECK(sl_loss_create(spec, &L, msg, sizeof msg) == SL_OK, "%s: %s", spec, msg);
    sl_dims d = {.n = N, .c = C, .spatial_ndim = 1, .spatial = {S}};
    sl_target t = {.kind = SL_TARGET_LABELS, .labels = y};
    float *out = malloc(sizeof(float) * T);
    double v = NAN;
    CHECK(sl_loss_forward(L, x, &d, &t, NULL, &v, out, msg, sizeof msg) == SL_OK, "%s: %s", name, msg);
    CHECK(fabs(v - ref) <= 1e-12 * fabs(ref) + 1e-15, "%s: value %.17g, reference %.17g", name, v, ref);
    double gmax = 0, dmax = 0;
    for (int64_t i = 0; i < T; i++) {
        gmax = fmax(gmax, fabs(gr[i]));
        dmax = fmax(dmax, fabs(out[i] - gr[i]));
    }
    CHECK(dmax <= 1e-6 * gmax + 1e-12, "%s: gradient differs by %.3g (max %.3g)", name, dmax, gmax);
    if (gmax > 0) max_gd = fmax(max_gd, dmax / gmax);
    /* a second call on the same object reuses its scratch (sl_term_scratch): the same bits */
    float *again = malloc(sizeof(float) * T);
    double v2 = NAN;
    CHECK(sl_loss_forward(L, x, &d, &t, NULL, &v2, again, msg, sizeof msg) == SL_OK, "%s: %s", name, msg);
    CHECK(v2 == v && memcmp(again, out, sizeof(float) * T) == 0, "%s: a second call differs", name);
    free(again);
    sl_loss_free(L);
    free(out);
    free(gr);
    free(in);
    free(g);
    free(at);
}

int main(void)
{
    enum { N = 2, C = 3, S = 3001 };
    float *x = malloc(sizeof(float) * N * C * S), *h = malloc(sizeof(float) * N * S);
    int32_t *y = malloc(sizeof(int32_t) * N * S), *yb = malloc(sizeof(int32_t) * N * S);
    srand(5);
    for (int64_t i = 0; i < N * S; i++) y[i] = rand() % C, yb[i] = rand() % 2;
    /* probabilities on a grid of eighths: many equal errors within and across the two sets */
    for (int64_t i = 0; i < N * C * S; i++) x[i] = (float)(rand() % 9) / 8.0f;
    check("grid of eighths", "lovasz(activation=none)", x, y, N, C, S);
    /* tiny probabilities: 1 − p rounds to 1 in double for p < 2^-54, ties among distinct p */
    for (int64_t i = 0; i < N * C * S; i++) {
        int r = rand() % 4;
        x[i] = r == 0 ? (float)ldexp(1.0 + rand() % 5, -60 - rand() % 20) : r == 1 ? 0.0f : r == 2 ? 1.0f : 0.5f;
    }
    check("tiny probabilities", "lovasz(activation=none)", x, y, N, C, S);
    for (int64_t i = 0; i < N * C * S; i++) x[i] = 0.25f;
    check("all equal", "lovasz(activation=none)", x, y, N, C, S);
    for (int64_t i = 0; i < N * C * S; i++) x[i] = (float)(rand() / (double)RAND_MAX);
    check("random", "lovasz(activation=none)", x, y, N, C, S);
    int32_t one[2] = {1, 0};
    float xo[2 * C] = {0.2f, 0.3f, 0.5f, 0.7f, 0.1f, 0.2f};
    check("one voxel per image", "lovasz(activation=none)", xo, one, 2, C, 1);
    /* hinge: quantised logits, and tiny ones where 1 ± x rounds to 1 */
    for (int64_t i = 0; i < N * S; i++) h[i] = (float)(rand() % 9 - 4) / 2.0f;
    check("hinge, half-integer logits", "lovasz", h, yb, N, 1, S);
    for (int64_t i = 0; i < N * S; i++) h[i] = rand() % 2 ? (float)ldexp(rand() % 2 ? 1.0 : -1.0, -60 - rand() % 9) : 1.0f;
    check("hinge, tiny logits", "lovasz", h, yb, N, 1, S);
    /* more voxels than one block of the gradient's scatter (2^16 ids), blocks across the samples' boundary */
    enum { SB = 70001 };
    float *xb = malloc(sizeof(float) * N * C * SB);
    int32_t *ybig = malloc(sizeof(int32_t) * N * SB);
    for (int64_t i = 0; i < N * SB; i++) ybig[i] = rand() % C;
    for (int64_t i = 0; i < N * C * SB; i++) xb[i] = (float)(rand() % 1000) / 999.0f;
    check("three scatter blocks", "lovasz(activation=none)", xb, ybig, N, C, SB);
    check("three scatter blocks, per image", "lovasz(activation=none,per_image=true)", xb, ybig, 1, C, SB);
    free(xb);
    free(ybig);
    printf("lovasz with ties: max gradient diff %.3g of max |g| (tol 1e-6)\n", max_gd);
    free(x);
    free(h);
    free(y);
    free(yb);
    return test_report("lovasz_ties");
}
