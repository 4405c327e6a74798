/*
 * The dense CRF (segloss/crf.h) against references written here:
 *   - the permutohedral lattice filter against the exact O(N^2) Gaussian
 *     sum, 2-D and 3-D, with and without an intensity feature;
 *   - sl_crf against a brute-force double mean field with the exact
 *     kernels (same model: Potts, normalised messages, j = i included);
 *   - a hand case: an isolated wrong pixel in a uniform region is removed;
 *   - bit-identical results for 1 and 4 threads;
 *   - bad input: codes and messages.
 *
 * Tolerances. The lattice approximates the Gaussian's shape (its blur is a
 * [1 2 1] stencil on a simplex grid, Adams et al. 2010), so it is not
 * exact to rounding: its impulse response is close to a Gaussian of
 * standard deviation 1.05-1.1 (not 1) scaled by 0.6-0.9 (smaller for
 * larger d). What the CRF uses is the normalised filter
 * sum_j k v_j / sum_j k, a weighted mean of v, in which the scale cancels:
 * asserted within 0.03 of the exact weighted mean (values in [0, 1];
 * measured 0.005-0.012, printed). The raw sum is asserted equal to the
 * exact one times a fitted constant (in (0.5, 1)) within 25 % (measured
 * 12-17 %: the wider kernel loses more mass at the image's edges).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/crf.h"
#include "test_util.h"

static double urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* exact out (nv, n) = sum_j exp(-|f_i - f_j|^2 / 2) v (nv, n), in double */
static void exact_filter(const float *f, int64_t n, int d, const float *v, int nv, double *out)
{
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < nv; k++) out[k * n + i] = 0.0;
        for (int64_t j = 0; j < n; j++) {
            double r2 = 0.0;
            for (int a = 0; a < d; a++) {
                const double t = (double)f[i * d + a] - (double)f[j * d + a];
                r2 += t * t;
            }
            const double w = exp(-0.5 * r2);
            for (int k = 0; k < nv; k++) out[k * n + i] += w * v[k * n + j];
        }
    }
}

/* positions / theta_s plus (optionally) a two-region intensity / theta_i */
static float *grid_features(const int64_t *shape, int ndim, double theta_s, const float *img, double theta_i, int *d_out)
{
    const int64_t n = ndim == 3 ? shape[0] * shape[1] * shape[2] : shape[0] * shape[1];
    const int d = ndim + (img != NULL);
    float *f = calloc((size_t)n * (size_t)d, sizeof *f);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i, c[3];
        for (int a = ndim - 1; a >= 0; a--) {
            c[a] = r % shape[a];
            r /= shape[a];
        }
        for (int a = 0; a < ndim; a++) f[i * d + a] = (float)(c[a] / theta_s);
        if (img) f[i * d + ndim] = (float)(img[i] / theta_i);
    }
    *d_out = d;
    return f;
}

static void lattice_case(const char *name, const int64_t *shape, int ndim, double theta_s, int with_img)
{
    const int64_t n = ndim == 3 ? shape[0] * shape[1] * shape[2] : shape[0] * shape[1];
    uint64_t seed = 7;
    float *img = calloc((size_t)n, sizeof *img), *v = calloc(2 * (size_t)n, sizeof *v);
    for (int64_t i = 0; i < n; i++) {
        img[i] = (float)((i % shape[ndim - 1]) < shape[ndim - 1] / 2 ? 0.0 : 1.0) + 0.1f * (float)urand(&seed);
        v[i] = (float)urand(&seed);
        v[n + i] = 1.0f;
    }
    int d;
    float *f = grid_features(shape, ndim, theta_s, with_img ? img : NULL, 0.5, &d);
    float *out = malloc((size_t)(2 * n) * sizeof *out);
    double *ex = malloc((size_t)(2 * n) * sizeof *ex);
    char msg[256] = "";
    sl_status st = sl_lattice_filter(f, n, d, v, 2, out, 1, msg, sizeof msg);
    CHECK(st == SL_OK, "%s: %s", name, msg);
    exact_filter(f, n, d, v, 2, ex);
    /* the raw mass is matched up to one constant, the lattice's amplitude
     * (A, least squares), which the CRF's normalisation cancels */
    double sxy = 0.0, sxx = 0.0;
    for (int64_t i = 0; i < n; i++) sxy += out[n + i] * ex[n + i], sxx += ex[n + i] * ex[n + i];
    const double A = sxy / sxx;
    double max_norm = 0.0, max_rel = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double a = (double)out[i] / out[n + i], b = ex[i] / ex[n + i];
        max_norm = fmax(max_norm, fabs(a - b));
        max_rel = fmax(max_rel, fabs(out[n + i] - A * ex[n + i]) / (A * ex[n + i]));
    }
    printf("lattice %s (n %lld, d %d): normalised max |diff| %.4f (bound 0.03); mass = %.3f x exact, max rel diff %.4f (bound 0.25)\n",
           name, (long long)n, d, max_norm, A, max_rel);
    CHECK(max_norm <= 0.03, "%s: normalised filter differs by %g", name, max_norm);
    CHECK(max_rel <= 0.25, "%s: kernel mass differs by %g relative", name, max_rel);
    CHECK(A > 0.5 && A < 1.0, "%s: lattice amplitude %g", name, A);
    free(img);
    free(v);
    free(f);
    free(out);
    free(ex);
}

static void test_lattice_vs_exact(void)
{
    const int64_t s2[2] = {24, 20}, s3[3] = {8, 9, 10};
    lattice_case("2-D spatial", s2, 2, 3.0, 0);
    lattice_case("2-D bilateral", s2, 2, 6.0, 1);
    lattice_case("3-D spatial", s3, 3, 2.0, 0);
    lattice_case("3-D bilateral", s3, 3, 4.0, 1);
}

/* ------------------------------------------------------- brute-force CRF */

/* The model of segloss/crf.h, in double with the exact kernels. */
static void brute_crf(const float *P, int C, const float *img, const int64_t *shape, int ndim, const double *sp,
                      const sl_crf_params *p, double *Q)
{
    int64_t n = 1;
    for (int a = 0; a < ndim; a++) n *= shape[a];
    double *pos = malloc((size_t)(n * 3) * sizeof *pos), *U = malloc((size_t)(C * n) * sizeof *U);
    double *Qn = malloc((size_t)(C * n) * sizeof *Qn);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i;
        for (int a = ndim - 1; a >= 0; a--) {
            pos[i * 3 + a] = (double)(r % shape[a]) * sp[a];
            r /= shape[a];
        }
        double s = 0.0;
        for (int c = 0; c < C; c++) s += P[c * n + i];
        for (int c = 0; c < C; c++) {
            Q[c * n + i] = P[c * n + i] / s;
            U[c * n + i] = -log(fmax(Q[c * n + i], 1e-30));
        }
    }
    for (int it = 0; it < p->iterations; it++) {
        for (int64_t i = 0; i < n; i++) {
            double ka = 0, ks = 0, ma[16] = {0}, ms[16] = {0};
            for (int64_t j = 0; j < n; j++) {
                double r2 = 0;
                for (int a = 0; a < ndim; a++) r2 += (pos[i * 3 + a] - pos[j * 3 + a]) * (pos[i * 3 + a] - pos[j * 3 + a]);
                const double di = (double)img[i] - img[j];
                const double wa = exp(-r2 / (2 * p->theta_alpha * p->theta_alpha) - di * di / (2 * p->theta_beta * p->theta_beta));
                const double ws = exp(-r2 / (2 * p->theta_gamma * p->theta_gamma));
                ka += wa;
                ks += ws;
                for (int c = 0; c < C; c++) {
                    ma[c] += wa * Q[c * n + j];
                    ms[c] += ws * Q[c * n + j];
                }
            }
            double e[16], mx = -INFINITY, z = 0;
            for (int c = 0; c < C; c++) {
                e[c] = -U[c * n + i] + p->w_appearance * ma[c] / ka + p->w_smoothness * ms[c] / ks;
                mx = fmax(mx, e[c]);
            }
            for (int c = 0; c < C; c++) z += (e[c] = exp(e[c] - mx));
            for (int c = 0; c < C; c++) Qn[c * n + i] = e[c] / z;
        }
        memcpy(Q, Qn, (size_t)(C * n) * sizeof *Q);
    }
    free(pos);
    free(U);
    free(Qn);
}

/* A disc of class 1 and a bar of class 2 on class 0, noisy probabilities. */
static void scene(int64_t H, int64_t W, int C, float *img, float *P, uint64_t *seed)
{
    const int64_t n = H * W;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            const int64_t i = y * W + x;
            int lab = ((y - 8) * (y - 8) + (x - 8) * (x - 8) < 25) ? 1 : 0;
            if (C > 2 && x > 13 && y > 3 && y < 8) lab = 2;
            img[i] = (float)lab + 0.3f * (float)(urand(seed) - 0.5);
            double s = 0, e[8];
            for (int c = 0; c < C; c++) s += (e[c] = exp((c == lab ? 1.2 : 0.0) + 1.5 * urand(seed)));
            for (int c = 0; c < C; c++) P[c * n + i] = (float)(e[c] / s);
        }
}

static void test_meanfield_vs_brute(void)
{
    const int64_t H = 16, W = 20, n = H * W;
    const int C = 3;
    float img[16 * 20], P[3 * 16 * 20], Q[3 * 16 * 20];
    double R[3 * 16 * 20];
    uint64_t seed = 11;
    scene(H, W, C, img, P, &seed);
    sl_crf_params p = SL_CRF_PARAMS_DEFAULT;
    p.theta_alpha = 6.0;
    p.theta_beta = 0.5;
    p.w_appearance = 2.0;
    p.w_smoothness = 1.0;
    p.theta_gamma = 1.5;
    p.iterations = 5;
    p.threads = 1;
    const double sp[2] = {1.0, 1.25};
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = 2;
    g.shape[0] = H;
    g.shape[1] = W;
    g.spacing[0] = sp[0];
    g.spacing[1] = sp[1];
    char msg[256] = "";
    sl_status st = sl_crf(P, C, img, 1, &g, &p, Q, msg, sizeof msg);
    CHECK(st == SL_OK, "sl_crf: %s", msg);
    const int64_t shape[2] = {H, W};
    brute_crf(P, C, img, shape, 2, sp, &p, R);
    double maxq = 0;
    int clear = 0, agree = 0, changed = 0;
    for (int64_t i = 0; i < n; i++) {
        int la = 0, lb = 0, lp = 0;
        double r1 = -1, r2 = -1;
        for (int c = 0; c < C; c++) {
            maxq = fmax(maxq, fabs(Q[c * n + i] - R[c * n + i]));
            if (Q[c * n + i] > Q[la * n + i]) la = c;
            if (R[c * n + i] > R[lb * n + i]) lb = c;
            if (P[c * n + i] > P[lp * n + i]) lp = c;
        }
        for (int c = 0; c < C; c++) {
            if (R[c * n + i] > r1) r2 = r1, r1 = R[c * n + i];
            else if (R[c * n + i] > r2) r2 = R[c * n + i];
        }
        changed += lb != lp;
        if (r1 - r2 > 0.1) {
            clear++;
            agree += la == lb;
        }
    }
    printf("mean field vs brute force (16x20, C 3, 5 iterations): max |Q diff| %.4f (bound 0.08); labels equal on %d of %d "
           "voxels with a margin > 0.1; the CRF changed %d labels of the softmax argmax\n",
           maxq, agree, clear, changed);
    CHECK(maxq <= 0.08, "Q differs from the brute-force mean field by %g", maxq);
    CHECK(agree == clear, "labels differ on %d clear voxels", clear - agree);
    CHECK(changed > 0, "the case is too easy: the CRF changed nothing");
}

/* one confidently wrong pixel inside a uniform region is overruled */
static void test_isolated_pixel(void)
{
    const int64_t H = 15, W = 15, n = H * W;
    float img[15 * 15], P[2 * 15 * 15], Q[2 * 15 * 15];
    for (int64_t i = 0; i < n; i++) {
        img[i] = 0.0f;
        P[i] = 0.8f; /* class 0 everywhere */
        P[n + i] = 0.2f;
    }
    const int64_t c = 7 * W + 7;
    P[c] = 0.2f, P[n + c] = 0.8f;
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = 2;
    g.shape[0] = H;
    g.shape[1] = W;
    sl_crf_params p = SL_CRF_PARAMS_DEFAULT;
    char msg[256] = "";
    CHECK(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_OK, "%s", msg);
    printf("isolated pixel: Q(class 1) %.4f before %.2f\n", Q[n + c], P[n + c]);
    CHECK(Q[c] > Q[n + c], "the isolated pixel keeps class 1 (Q %g vs %g)", Q[c], Q[n + c]);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= Q[i] > 0.5f;
    CHECK(ok, "some class-0 pixel changed label");
}

/* 1 and 4 threads bit-identical, on an image large enough to fork (3-D) */
static void test_threads(void)
{
    const int64_t D = 12, H = 80, W = 80, n = D * H * W;
    float *img = malloc((size_t)n * sizeof *img), *P = malloc((size_t)(2 * n) * sizeof *P);
    float *Q1 = malloc((size_t)(2 * n) * sizeof *Q1), *Q4 = malloc((size_t)(2 * n) * sizeof *Q4);
    uint64_t seed = 3;
    for (int64_t i = 0; i < n; i++) {
        const int fg = ((i / W) % H - 40) * ((i / W) % H - 40) + (i % W - 40) * (i % W - 40) < 400;
        img[i] = (float)fg + 0.3f * (float)urand(&seed);
        P[n + i] = (float)(0.3 + 0.4 * fg + 0.3 * (urand(&seed) - 0.5));
        P[i] = 1.0f - P[n + i];
    }
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = 3;
    g.shape[0] = D, g.shape[1] = H, g.shape[2] = W;
    g.spacing[0] = 2.5;
    sl_crf_params p = SL_CRF_PARAMS_DEFAULT;
    p.iterations = 2;
    char msg[256] = "";
    p.threads = 1;
    CHECK(sl_crf(P, 2, img, 1, &g, &p, Q1, msg, sizeof msg) == SL_OK, "%s", msg);
    p.threads = 4;
    CHECK(sl_crf(P, 2, img, 1, &g, &p, Q4, msg, sizeof msg) == SL_OK, "%s", msg);
    CHECK(memcmp(Q1, Q4, (size_t)(2 * n) * sizeof *Q1) == 0, "1 and 4 threads differ");
    /* q may alias probs */
    p.threads = 1;
    CHECK(sl_crf(P, 2, img, 1, &g, &p, P, msg, sizeof msg) == SL_OK, "%s", msg);
    CHECK(memcmp(Q1, P, (size_t)(2 * n) * sizeof *Q1) == 0, "in place differs");
    free(img);
    free(P);
    free(Q1);
    free(Q4);
}

static void test_bad_input(void)
{
    float img[4] = {0, 0, 0, 0}, P[8] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}, Q[8];
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = 2;
    g.shape[0] = 2, g.shape[1] = 2;
    sl_crf_params p = SL_CRF_PARAMS_DEFAULT;
    char msg[256] = "";
    EXPECT(sl_crf(NULL, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_EINVAL);
    p.theta_beta = 0;
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_EINVAL);
    CHECK(strstr(msg, "theta_beta") != NULL, "message: %s", msg);
    p.theta_beta = NAN;
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_EINVAL);
    p = (sl_crf_params)SL_CRF_PARAMS_DEFAULT;
    p.iterations = -1;
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_EINVAL);
    p = (sl_crf_params)SL_CRF_PARAMS_DEFAULT;
    EXPECT(sl_crf(P, 0, img, 1, &g, &p, Q, msg, sizeof msg) == SL_ESHAPE);
    EXPECT(sl_crf(P, 2, img, 0, &g, &p, Q, msg, sizeof msg) == SL_ESHAPE);
    g.shape[1] = 0;
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_ESHAPE);
    g.shape[1] = 2;
    img[2] = INFINITY;
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_ENONFINITE);
    img[2] = 0;
    P[1] = NAN;
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_ENONFINITE);
    P[1] = -0.5f;
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_ERANGE);
    P[1] = 0.0f, P[5] = 0.0f;
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_ERANGE);
    CHECK(strstr(msg, "sum to 0") != NULL, "message: %s", msg);
    P[1] = P[5] = 0.5f;
    p.theta_gamma = 1e-30; /* coordinates far beyond the lattice's range */
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_ERANGE);
    p.theta_gamma = 1e-7; /* features of 1e7 widths: finite as float, refused before the lattice */
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_ERANGE);
    CHECK(strstr(msg, "too small") != NULL, "message: %s", msg);
    p.theta_gamma = 1e-6; /* 1e6 widths: still fine for a 2-D lattice */
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_OK);
    {
        /* the lattice's own limit: coordinates beyond 2^24 */
        const float f[4] = {0.0f, 0.0f, 3e7f, 0.0f}, v[2] = {1.0f, 1.0f};
        float o[2];
        EXPECT(sl_lattice_filter(f, 2, 2, v, 1, o, 1, msg, sizeof msg) == SL_ERANGE);
        const float fn[2] = {0.0f, NAN};
        EXPECT(sl_lattice_filter(fn, 2, 1, v, 1, o, 1, msg, sizeof msg) == SL_ENONFINITE);
    }
    p = (sl_crf_params)SL_CRF_PARAMS_DEFAULT;
    p.iterations = 0; /* Q = P renormalised */
    P[0] = 2.0f, P[4] = 0.5f;
    EXPECT(sl_crf(P, 2, img, 1, &g, &p, Q, msg, sizeof msg) == SL_OK);
    CHECK_NEAR(Q[0], 0.8, 1e-6, "iterations 0: renormalised P");
}

static void test_params_parse(void)
{
    sl_crf_params p = SL_CRF_PARAMS_DEFAULT;
    char msg[256] = "";
    EXPECT(sl_crf_params_parse("w1=5,theta_a=40,theta_b=0.5,w2=1,theta_g=2,iters=7", &p, msg, sizeof msg) == SL_OK);
    CHECK(p.w_appearance == 5 && p.theta_alpha == 40 && p.theta_beta == 0.5 && p.w_smoothness == 1 && p.theta_gamma == 2 &&
              p.iterations == 7,
          "parsed values");
    EXPECT(sl_crf_params_parse("", &p, msg, sizeof msg) == SL_OK && p.iterations == 7);
    static const char *const bad[] = {"w1", "w1=", "w3=1", "w1=abc", "theta_b=0", "theta_a=-1", "iters=2.5", "iters=1001",
                                      "w1=1,", "w1=nan", "w1=inf", "=1", "w1=1,,w2=1"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        sl_crf_params q = p;
        msg[0] = '\0';
        CHECK(sl_crf_params_parse(bad[k], &q, msg, sizeof msg) == SL_EINVAL && msg[0] && memcmp(&q, &p, sizeof q) == 0,
              "'%s' accepted or params changed (%s)", bad[k], msg);
    }
    EXPECT(sl_crf_params_parse("w3=1", &p, msg, sizeof msg) == SL_EINVAL && strstr(msg, "w3"));
}

int main(void)
{
    TEST_RUN(test_lattice_vs_exact);
    TEST_RUN(test_meanfield_vs_brute);
    TEST_RUN(test_isolated_pixel);
    TEST_RUN(test_threads);
    TEST_RUN(test_bad_input);
    TEST_RUN(test_params_parse);
    return test_report("test_crf");
}
