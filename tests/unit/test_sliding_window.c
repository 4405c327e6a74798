/*
 * Sliding-window aggregation (sl_sliding_window, sl_window_starts,
 * sl_window_gaussian), independent of any network:
 *   - window starts against values worked out by hand from nnU-Net's
 *     compute_steps_for_sliding_window (numpy's round half to even);
 *   - the Gaussian map against exp(-d^2 / (2 sigma^2)) computed here;
 *   - a volume that fits one window (exactly, or padded) equals the
 *     forward of that window directly;
 *   - a voxel-wise forward (translation-equivariant) gives f(volume) for
 *     any tiling, since the weights are normalised;
 *   - bad options and a failing forward give a status and a message.
 * tests/python/test_sliding_window_nnunet.py compares the aggregation of a
 * position-dependent forward with a numpy transcription of nnU-Net.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/train.h"
#include "test_util.h"

/* A position-dependent forward on (1, p0, p1, p2) -> (2, p0, p1, p2):
 * channel 0 = x * (1 + 0.01 i), channel 1 = sin(x) + 0.001 i, i the voxel
 * index within the window, so overlapping windows disagree. */
typedef struct fw {
    int64_t p[3];
    int calls, fail_at;
} fw;

static sl_status fwd_pos(const float *x, float *out, void *user, char *msg, size_t msglen)
{
    fw *f = user;
    if (++f->calls == f->fail_at) {
        snprintf(msg, msglen, "forward failed on purpose");
        return SL_EIO;
    }
    const int64_t n = f->p[0] * f->p[1] * f->p[2];
    for (int64_t i = 0; i < n; i++) {
        out[i] = x[i] * (1.0f + 0.01f * (float)i);
        out[n + i] = sinf(x[i]) + 0.001f * (float)i;
    }
    return SL_OK;
}

/* Voxel-wise: (1, ...) -> (2, ...) = (x^2, cos x). */
static sl_status fwd_pointwise(const float *x, float *out, void *user, char *msg, size_t msglen)
{
    (void)msg;
    (void)msglen;
    fw *f = user;
    f->calls++;
    const int64_t n = f->p[0] * f->p[1] * f->p[2];
    for (int64_t i = 0; i < n; i++) {
        out[i] = x[i] * x[i];
        out[n + i] = cosf(x[i]);
    }
    return SL_OK;
}

static void fill(float *x, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f * 4.0f - 2.0f;
    }
}

static void test_starts(void)
{
    /* size, patch, step -> starts (worked out by hand) */
    struct {
        int64_t size, patch;
        double step;
        int64_t k, s[5];
    } cases[] = {
        {100, 64, 0.5, 3, {0, 18, 36}},      /* ceil(36/32)+1 = 3, step 18 */
        {160, 64, 0.5, 4, {0, 32, 64, 96}},  /* exact */
        {64, 64, 0.5, 1, {0}},               /* fits */
        {40, 64, 0.5, 1, {0}},               /* padded */
        {69, 64, 0.05, 3, {0, 2, 5}},        /* 2.5 rounds half to even: 2 */
        {70, 64, 1.0, 2, {0, 6}},            /* no overlap asked: ceil(6/64)+1 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t s[8] = {0}, k = 0;
        CHECK(sl_window_starts(cases[c].size, cases[c].patch, cases[c].step, s, &k) == SL_OK, "starts %zu", c);
        CHECK(k == cases[c].k, "case %zu: %lld windows, want %lld", c, (long long)k, (long long)cases[c].k);
        for (int64_t i = 0; i < k && i < cases[c].k; i++)
            CHECK(s[i] == cases[c].s[i], "case %zu start %lld: %lld want %lld", c, (long long)i, (long long)s[i],
                  (long long)cases[c].s[i]);
    }
    int64_t k;
    EXPECT(sl_window_starts(10, 4, 0.0, NULL, &k) == SL_EINVAL);
    EXPECT(sl_window_starts(10, 4, 1.5, NULL, &k) == SL_EINVAL);
    EXPECT(sl_window_starts(10, 0, 0.5, NULL, &k) == SL_EINVAL);
}

static void test_gaussian(void)
{
    const int64_t p[3] = {6, 9, 16};
    float *g = malloc(6 * 9 * 16 * sizeof *g);
    CHECK(sl_window_gaussian(3, p, 0.125, g) == SL_OK, "gaussian");
    double md = 0.0;
    for (int64_t z = 0; z < 6; z++)
        for (int64_t y = 0; y < 9; y++)
            for (int64_t x = 0; x < 16; x++) {
                const double s0 = 6 * 0.125, s1 = 9 * 0.125, s2 = 16 * 0.125;
                const double d0 = (double)(z - 3), d1 = (double)(y - 4), d2 = (double)(x - 8);
                /* radii floor(4 s + 0.5) = 3, 5, 8: every offset is inside */
                double want = exp(-d0 * d0 / (2 * s0 * s0) - d1 * d1 / (2 * s1 * s1) - d2 * d2 / (2 * s2 * s2));
                double got = g[(z * 9 + y) * 16 + x];
                double rel = fabs(got - want) / want;
                if (rel > md) md = rel;
            }
    printf("gaussian map: max relative diff %.3g\n", md);
    CHECK(md <= 1e-6, "gaussian map: max relative diff %g", md);
    CHECK(g[(3 * 9 + 4) * 16 + 8] == 1.0f, "maximum 1 at the centre");
    /* a radius smaller than the patch: zeros become the smallest positive */
    const int64_t q[1] = {20};
    float h[20];
    CHECK(sl_window_gaussian(1, q, 0.05, h) == SL_OK, "gaussian 1-D"); /* sigma 1, radius 4 */
    /* offsets -4..4 (indices 6..14) are inside; the edge value exp(-8) is
     * the smallest positive and fills the rest */
    const float minpos = (float)exp(-16.0 / 2.0);
    EXPECT(h[6] == minpos && h[14] == minpos && h[13] > minpos);
    EXPECT(h[0] == minpos && h[5] == minpos && h[15] == minpos && h[19] == minpos);
    EXPECT(sl_window_gaussian(3, p, 0.0, g) == SL_EINVAL);
    free(g);
}

/* direct forward of a (padded) volume compared with sliding window */
static void one_window(const int64_t size[3], const int64_t patch[3])
{
    const int64_t n = size[0] * size[1] * size[2], pn = patch[0] * patch[1] * patch[2];
    float *x = malloc((size_t)n * sizeof *x), *out = malloc((size_t)(2 * n) * sizeof *out);
    float *px = calloc((size_t)pn, sizeof *px), *pout = malloc((size_t)(2 * pn) * sizeof *pout);
    fill(x, n, 7);
    int64_t pad[3];
    for (int a = 0; a < 3; a++) pad[a] = (patch[a] - size[a]) / 2;
    for (int64_t z = 0; z < size[0]; z++)
        for (int64_t y = 0; y < size[1]; y++)
            for (int64_t xx = 0; xx < size[2]; xx++)
                px[((z + pad[0]) * patch[1] + y + pad[1]) * patch[2] + xx + pad[2]] = x[(z * size[1] + y) * size[2] + xx];
    fw f = {{patch[0], patch[1], patch[2]}, 0, 0};
    char msg[128];
    fwd_pos(px, pout, &f, msg, sizeof msg);
    sl_window_opts o = SL_WINDOW_OPTS_DEFAULT;
    memcpy(o.patch, patch, sizeof o.patch);
    f.calls = 0;
    CHECK(sl_sliding_window(x, 1, 3, size, 2, &o, fwd_pos, &f, out, msg, sizeof msg) == SL_OK, "sliding: %s", msg);
    CHECK(f.calls == 1, "one window: %d calls", f.calls);
    double md = 0.0;
    for (int c = 0; c < 2; c++)
        for (int64_t z = 0; z < size[0]; z++)
            for (int64_t y = 0; y < size[1]; y++)
                for (int64_t xx = 0; xx < size[2]; xx++) {
                    double a = out[((c * size[0] + z) * size[1] + y) * size[2] + xx];
                    double b = pout[((c * patch[0] + z + pad[0]) * patch[1] + y + pad[1]) * patch[2] + xx + pad[2]];
                    double d = fabs(a - b) / (1.0 + fabs(b));
                    if (d > md) md = d;
                }
    printf("one window %lldx%lldx%lld in %lldx%lldx%lld: max diff %.3g\n", (long long)size[0], (long long)size[1],
           (long long)size[2], (long long)patch[0], (long long)patch[1], (long long)patch[2], md);
    CHECK(md <= 1e-6, "one window: max diff %g", md);
    free(x);
    free(out);
    free(px);
    free(pout);
}

static void test_one_window(void)
{
    one_window((int64_t[3]){8, 12, 16}, (int64_t[3]){8, 12, 16}); /* exactly */
    one_window((int64_t[3]){5, 12, 9}, (int64_t[3]){8, 12, 16});  /* padded on two axes */
}

static void test_pointwise(void)
{
    const int64_t size[3] = {13, 21, 30}, n = 13 * 21 * 30;
    float *x = malloc(n * sizeof *x), *out = malloc(2 * n * sizeof *out);
    fill(x, n, 3);
    sl_window_opts o = SL_WINDOW_OPTS_DEFAULT;
    o.patch[0] = 8, o.patch[1] = 8, o.patch[2] = 16;
    fw f = {{8, 8, 16}, 0, 0};
    char msg[128];
    CHECK(sl_sliding_window(x, 1, 3, size, 2, &o, fwd_pointwise, &f, out, msg, sizeof msg) == SL_OK, "%s", msg);
    /* starts: 13 in 8 -> 3 (0, 2, 5: 2.5 rounds to 2), 21 in 8 -> 5, 30 in 16 -> 3 */
    CHECK(f.calls == 3 * 5 * 3, "%d windows, want 45", f.calls);
    double md = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d0 = fabs(out[i] - (double)x[i] * x[i]), d1 = fabs(out[n + i] - cos((double)x[i]));
        if (d0 > md) md = d0;
        if (d1 > md) md = d1;
    }
    printf("voxel-wise forward through 45 windows: max diff %.3g\n", md);
    CHECK(md <= 1e-5, "voxel-wise: max diff %g", md);
    /* 2-D too */
    o.patch[0] = 8, o.patch[1] = 16;
    fw f2 = {{1, 8, 16}, 0, 0};
    const int64_t s2[3] = {21, 30, 0};
    CHECK(sl_sliding_window(x, 1, 2, s2, 2, &o, fwd_pointwise, &f2, out, msg, sizeof msg) == SL_OK, "%s", msg);
    md = 0.0;
    for (int64_t i = 0; i < 21 * 30; i++) {
        double d0 = fabs(out[i] - (double)x[i] * x[i]);
        if (d0 > md) md = d0;
    }
    CHECK(md <= 1e-5, "voxel-wise 2-D: max diff %g", md);
    free(x);
    free(out);
}

static void test_errors(void)
{
    float x[64], out[128];
    fill(x, 64, 1);
    const int64_t size[3] = {4, 4, 4};
    sl_window_opts o = SL_WINDOW_OPTS_DEFAULT;
    o.patch[0] = o.patch[1] = o.patch[2] = 2;
    fw f = {{2, 2, 2}, 0, 3};
    char msg[128] = "";
    CHECK(sl_sliding_window(x, 1, 3, size, 2, &o, fwd_pos, &f, out, msg, sizeof msg) == SL_EIO, "forward failure");
    CHECK(strstr(msg, "on purpose") != NULL, "message kept: %s", msg);
    o.step = 0.0;
    CHECK(sl_sliding_window(x, 1, 3, size, 2, &o, fwd_pos, &f, out, msg, sizeof msg) == SL_EINVAL && strstr(msg, "step"),
          "step 0: %s", msg);
    o.step = 0.5;
    o.patch[1] = 0;
    CHECK(sl_sliding_window(x, 1, 3, size, 2, &o, fwd_pos, &f, out, msg, sizeof msg) == SL_EINVAL && strstr(msg, "patch"),
          "patch 0: %s", msg);
    CHECK(sl_sliding_window(NULL, 1, 3, size, 2, &o, fwd_pos, &f, out, msg, sizeof msg) == SL_EINVAL, "NULL");
}

int main(void)
{
    TEST_RUN(test_starts);
    TEST_RUN(test_gaussian);
    TEST_RUN(test_one_window);
    TEST_RUN(test_pointwise);
    TEST_RUN(test_errors);
    return test_report("sliding_window");
}
