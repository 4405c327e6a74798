/*
 * The 3-D U-Net through the public API, without PyTorch (so it also runs
 * under the sanitizers; tests/ref/test_nn3d_step.py compares every number
 * with PyTorch):
 *   - 8 Adam steps of an anisotropic 3-D net with deep supervision: the
 *     loss falls, and 1 and 2 threads give bit-identical losses and
 *     parameters;
 *   - central finite differences of a fixed linear loss on logits, per
 *     tensor along its gradient direction, agree with the backward's
 *     gradient norm (float32 noise and curvature: relative 1e-2, eps 1e-3);
 *   - output levels, level factors and sl_nn_downsample_nearest_axes on
 *     the labels;
 *   - save/load of a 3-D net (format version 2) round-trips configuration,
 *     parameters and outputs bit for bit; an isotropic 2-D net is still
 *     written as version 1;
 *   - tensor table shapes are 5-D; int8 calibration refuses a 3-D net.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "segloss/nn.h"
#include "segloss/rng.h"
#include "test_util.h"

static char tmpdir[512];

static sl_unet_config aniso_config(void)
{
    sl_unet_config cfg = SL_UNET_CONFIG_DEFAULT;
    cfg.spatial_ndim = 3;
    cfg.in_channels = 1;
    cfg.num_classes = 3;
    cfg.depth = 3;
    cfg.base_width = 4;
    cfg.deep_supervision = 1;
    cfg.seed = 5;
    cfg.pool[1][0] = 1; /* (1, 2, 2) into stage 1, (2, 2, 2) into stage 2 */
    cfg.kernel[0][0] = 1; /* stage 0: 1x3x3 */
    return cfg;
}

/* Softmax cross-entropy averaged over voxels; writes its gradient scaled by w. */
static double ce(const float *z, const int32_t *y, int64_t B, int64_t C, int64_t N, float *g, double w)
{
    double total = 0.0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < N; p++) {
            const float *zp = z + b * C * N + p;
            double m = zp[0], s = 0.0;
            for (int64_t c = 1; c < C; c++) m = fmax(m, zp[c * N]);
            for (int64_t c = 0; c < C; c++) s += exp(zp[c * N] - m);
            double lse = m + log(s);
            int32_t yy = y[b * N + p];
            total += lse - zp[yy * N];
            for (int64_t c = 0; c < C; c++)
                g[b * C * N + c * N + p] = (float)(w * (exp(zp[c * N] - lse) - (c == yy)) / (double)(B * N));
        }
    return total / (double)(B * N);
}

/* A bright ball (class 1) with a brighter core (class 2) on noise. */
static void make_task(int64_t B, const int64_t e[3], float *img, int32_t *lab)
{
    sl_rng r;
    sl_rng_seed(&r, 99);
    for (int64_t b = 0; b < B; b++) {
        double cz = e[0] * 0.5, cy = e[1] * (0.3 + 0.4 * sl_rng_uniform(&r)), cx = e[2] * (0.3 + 0.4 * sl_rng_uniform(&r));
        for (int64_t z = 0; z < e[0]; z++)
            for (int64_t y = 0; y < e[1]; y++)
                for (int64_t x = 0; x < e[2]; x++) {
                    double d = sqrt(4.0 * (z - cz) * (z - cz) + (y - cy) * (y - cy) + (x - cx) * (x - cx));
                    int32_t c = d < 2.0 ? 2 : d < 4.5 ? 1 : 0;
                    int64_t i = ((b * e[0] + z) * e[1] + y) * e[2] + x;
                    lab[i] = c;
                    img[i] = (float)(0.8 * c + 0.4 * sl_rng_normal(&r));
                }
    }
}

enum { B = 2, NC = 3 };
static const int64_t EXT[3] = {4, 16, 16};

/* Trains `steps` Adam steps with deep supervision; the losses and final
 * parameters go to loss[] and *params (malloc'ed). */
static void train(int threads, int steps, double *loss, float **params, int64_t *np)
{
    char msg[256];
    sl_unet_config cfg = aniso_config();
    sl_unet *net;
    sl_optim *opt;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_OK, "create: %s", msg);
    sl_unet_set_threads(net, threads);
    sl_optim_config oc = SL_OPTIM_CONFIG_DEFAULT;
    oc.lr = 1e-2;
    CHECK(sl_optim_create(&opt, net, &oc, msg, sizeof msg) == SL_OK, "optim: %s", msg);
    sl_optim_set_threads(opt, threads);
    const int64_t N = EXT[0] * EXT[1] * EXT[2];
    float *img = malloc(sizeof(float) * B * N), *logits = malloc(sizeof(float) * B * NC * N);
    int32_t *lab = malloc(sizeof(int32_t) * B * N), *lab_l = malloc(sizeof(int32_t) * B * N);
    float *g[SL_UNET_MAX_DEPTH] = {0};
    make_task(B, EXT, img, lab);
    sl_dims d = {B, 1, 3, {EXT[0], EXT[1], EXT[2]}};
    const int nout = sl_unet_num_outputs(net);
    CHECK(nout == 2, "deep supervision at depth 3: 2 outputs, got %d", nout);
    float w[SL_UNET_MAX_DEPTH];
    sl_unet_ds_weights(net, w);
    for (int l = 0; l < nout; l++) g[l] = malloc(sizeof(float) * B * NC * N);
    for (int s = 0; s < steps; s++) {
        sl_unet_zero_grad(net);
        CHECK(sl_unet_forward(net, img, &d, logits, msg, sizeof msg) == SL_OK, "forward: %s", msg);
        double total = 0.0;
        for (int l = 0; l < nout; l++) {
            const float *z;
            sl_dims od;
            int f[3];
            sl_unet_output(net, l, &z, &od);
            sl_unet_level_factors(net, l, f);
            sl_dims ld = {B, 1, 3, {EXT[0], EXT[1], EXT[2]}};
            CHECK(sl_nn_downsample_nearest_axes(lab_l, lab, &ld, sizeof(int32_t), f, msg, sizeof msg) == SL_OK,
                  "downsample: %s", msg);
            for (int a = 0; a < 3; a++)
                CHECK(od.spatial[a] == EXT[a] / f[a], "level %d axis %d extent %lld", l, a, (long long)od.spatial[a]);
            total += w[l] * ce(z, lab_l, B, NC, od.spatial[0] * od.spatial[1] * od.spatial[2], g[l], w[l]);
        }
        loss[s] = total;
        CHECK(sl_unet_backward_ds(net, (const float *const *)g, msg, sizeof msg) == SL_OK, "backward: %s", msg);
        CHECK(sl_optim_step(opt, NULL) == SL_OK, "step");
    }
    *np = sl_unet_num_params(net);
    *params = malloc(sizeof(float) * (size_t)*np);
    memcpy(*params, sl_unet_params(net), sizeof(float) * (size_t)*np);
    for (int l = 0; l < nout; l++) free(g[l]);
    free(img);
    free(logits);
    free(lab);
    free(lab_l);
    sl_optim_free(opt);
    sl_unet_free(net);
}

static void test_training_and_threads(void)
{
    double l1[8], l2[8];
    float *p1, *p2;
    int64_t n1, n2;
    train(1, 8, l1, &p1, &n1);
    train(2, 8, l2, &p2, &n2);
    CHECK(l1[7] < 0.7 * l1[0], "3-D loss falls: %.4f -> %.4f", l1[0], l1[7]);
    printf("  3-D anisotropic net, deep supervision: loss %.4f -> %.4f over 8 Adam steps\n", l1[0], l1[7]);
    CHECK(memcmp(l1, l2, sizeof l1) == 0, "loss trajectory 1 vs 2 threads bit-identical");
    CHECK(n1 == n2 && memcmp(p1, p2, sizeof(float) * (size_t)n1) == 0, "parameters 1 vs 2 threads bit-identical");
    free(p1);
    free(p2);
}

/* loss = sum r * logits (level 0): dlogits = r */
static double lin_loss(sl_unet *net, const float *img, const sl_dims *d, float *logits, const float *r, int64_t n)
{
    char msg[256];
    sl_unet_forward(net, img, d, logits, msg, sizeof msg);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)r[i] * logits[i];
    return s;
}

static void test_finite_differences(void)
{
    char msg[256];
    sl_unet_config cfg = aniso_config();
    cfg.deep_supervision = 0;
    cfg.down = SL_DOWN_STRIDED;
    /* LeakyReLU slope 1 makes the function smooth: with 0.01 the units
     * whose inputs cross 0 under the step swamp the difference quotient
     * (the masks are checked against PyTorch in tests/ref) */
    cfg.leaky_slope = 1.0f;
    sl_unet *net;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_OK, "create: %s", msg);
    sl_unet_set_threads(net, 1);
    const int64_t e[3] = {4, 8, 8}, N = e[0] * e[1] * e[2];
    float *img = malloc(sizeof(float) * B * N), *logits = malloc(sizeof(float) * B * NC * N);
    float *r = malloc(sizeof(float) * B * NC * N);
    sl_rng g;
    sl_rng_seed(&g, 3);
    for (int64_t i = 0; i < B * N; i++) img[i] = (float)sl_rng_normal(&g);
    for (int64_t i = 0; i < B * NC * N; i++) r[i] = (float)sl_rng_normal(&g);
    sl_dims d = {B, 1, 3, {e[0], e[1], e[2]}};
    sl_unet_zero_grad(net);
    lin_loss(net, img, &d, logits, r, B * NC * N);
    CHECK(sl_unet_backward(net, r, msg, sizeof msg) == SL_OK, "backward: %s", msg);
    float *p = sl_unet_params(net), *gr = sl_unet_grads(net);
    const int64_t np = sl_unet_num_params(net);
    float *keep = malloc(sizeof(float) * (size_t)np);
    memcpy(keep, p, sizeof(float) * (size_t)np);
    double worst = 0.0;
    /* per tensor, the derivative along its own gradient direction u =
     * g / |g| (which the backward says is |g|): a single weight's
     * derivative would drown in the float32 noise of the forward */
    for (int t = 0; t < sl_unet_num_tensors(net); t++) {
        sl_tensor_info ti;
        sl_unet_tensor(net, t, &ti);
        if (ti.is_buffer) continue;
        double norm = 0.0;
        for (int64_t j = 0; j < ti.numel; j++) norm += (double)gr[ti.offset + j] * gr[ti.offset + j];
        norm = sqrt(norm);
        if (norm < 1e-3) continue;
        const double eps = 1e-3;
        double l[2];
        for (int k = 0; k < 2; k++) {
            for (int64_t j = 0; j < ti.numel; j++)
                p[ti.offset + j] = (float)(keep[ti.offset + j] + (k ? -eps : eps) * gr[ti.offset + j] / norm);
            l[k] = lin_loss(net, img, &d, logits, r, B * NC * N);
        }
        memcpy(p + ti.offset, keep + ti.offset, sizeof(float) * (size_t)ti.numel);
        double fd = (l[0] - l[1]) / (2.0 * eps);
        double rel = fabs(fd - norm) / norm;
        worst = fmax(worst, rel);
        CHECK(rel < 1e-2, "%s: finite difference along the gradient %.6g, |gradient| %.6g", ti.name, fd, norm);
    }
    free(keep);
    printf("max |diff| 3-D directional finite difference / |gradient| (relative, eps 1e-3) %.3g\n", worst);
    free(img);
    free(logits);
    free(r);
    sl_unet_free(net);
}

static void test_api_and_files(void)
{
    char msg[256], path[600];
    sl_unet_config cfg = aniso_config();
    sl_unet *net, *net2;
    sl_optim *opt, *opt2;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_OK, "create: %s", msg);
    sl_tensor_info ti;
    sl_unet_tensor(net, 0, &ti);
    CHECK(ti.ndim == 5 && ti.shape[2] == 1 && ti.shape[3] == 3 && ti.shape[4] == 3, "enc0.conv1.weight is (4, 1, 1, 3, 3)");
    int up = -1;
    for (int t = 0; t < sl_unet_num_tensors(net); t++) {
        sl_unet_tensor(net, t, &ti);
        if (strcmp(ti.name, "up0.weight") == 0) up = t;
    }
    sl_unet_tensor(net, up, &ti);
    CHECK(up >= 0 && ti.ndim == 5 && ti.shape[2] == 1 && ti.shape[3] == 2 && ti.shape[4] == 2, "up0.weight is (8, 4, 1, 2, 2)");
    int f[3];
    CHECK(sl_unet_level_factors(net, 2, f) == SL_OK && f[0] == 2 && f[1] == 4 && f[2] == 4, "level 2 factors 2,4,4");
    CHECK(sl_unet_level_factors(net, 3, f) == SL_EINVAL, "level 3 of a depth-3 net: SL_EINVAL");
    CHECK(sl_unet_calibrate(net) == SL_EUNSUPPORTED, "int8 calibration of a 3-D net: SL_EUNSUPPORTED");
    sl_optim_config oc = SL_OPTIM_CONFIG_DEFAULT;
    CHECK(sl_optim_create(&opt, net, &oc, msg, sizeof msg) == SL_OK, "optim");
    const int64_t N = EXT[0] * EXT[1] * EXT[2];
    float *img = malloc(sizeof(float) * B * N), *o1 = malloc(sizeof(float) * B * NC * N);
    float *o2 = malloc(sizeof(float) * B * NC * N);
    int32_t *lab = malloc(sizeof(int32_t) * B * N);
    make_task(B, EXT, img, lab);
    sl_dims d = {B, 1, 3, {EXT[0], EXT[1], EXT[2]}};
    CHECK(sl_unet_forward(net, img, &d, o1, msg, sizeof msg) == SL_OK, "forward: %s", msg);
    CHECK(sl_unet_backward(net, o1, msg, sizeof msg) == SL_OK, "backward: %s", msg);
    CHECK(sl_optim_step(opt, NULL) == SL_OK, "step");
    CHECK(sl_unet_forward(net, img, &d, o1, msg, sizeof msg) == SL_OK, "forward: %s", msg);
    snprintf(path, sizeof path, "%s/net3d.slnet", tmpdir);
    CHECK(sl_unet_save(net, opt, path, msg, sizeof msg) == SL_OK, "save: %s", msg);
    FILE *fh = fopen(path, "rb");
    unsigned char h[12] = {0};
    CHECK(fh && fread(h, 1, 12, fh) == 12 && h[8] == 2, "a 3-D net is written as format version 2");
    if (fh) fclose(fh);
    CHECK(sl_unet_load(&net2, &opt2, path, msg, sizeof msg) == SL_OK, "load: %s", msg);
    sl_unet_config c2;
    sl_unet_get_config(net2, &c2);
    CHECK(memcmp(&cfg, &c2, sizeof cfg) == 0, "configuration round-trips");
    CHECK(memcmp(sl_unet_params(net), sl_unet_params(net2), sizeof(float) * (size_t)sl_unet_num_params(net)) == 0,
          "parameters round-trip");
    CHECK(sl_optim_num_steps(opt2) == 1, "optimiser step count round-trips");
    CHECK(sl_unet_forward(net2, img, &d, o2, msg, sizeof msg) == SL_OK, "forward loaded: %s", msg);
    CHECK(memcmp(o1, o2, sizeof(float) * B * NC * N) == 0, "loaded net's output bit-identical");
    unlink(path);
    sl_optim_free(opt2);
    sl_unet_free(net2);
    sl_optim_free(opt);
    sl_unet_free(net);

    /* an isotropic 2-D net keeps format version 1 */
    sl_unet_config c2d = SL_UNET_CONFIG_DEFAULT;
    c2d.depth = 2;
    c2d.base_width = 2;
    CHECK(sl_unet_create(&net, &c2d, msg, sizeof msg) == SL_OK, "create 2-D");
    CHECK(sl_unet_save(net, NULL, path, msg, sizeof msg) == SL_OK, "save 2-D: %s", msg);
    fh = fopen(path, "rb");
    CHECK(fh && fread(h, 1, 12, fh) == 12 && h[8] == 1, "an isotropic 2-D net is written as format version 1");
    if (fh) fclose(fh);
    CHECK(sl_unet_load(&net2, NULL, path, msg, sizeof msg) == SL_OK, "load 2-D v1: %s", msg);
    sl_unet_free(net2);
    unlink(path);
    sl_unet_free(net);
    free(img);
    free(o1);
    free(o2);
    free(lab);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/sl_test_nn3d_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        printf("FAILED: cannot create a temporary folder\n");
        return 1;
    }
    TEST_RUN(test_api_and_files);
    TEST_RUN(test_finite_differences);
    TEST_RUN(test_training_and_threads);
    rmdir(tmpdir);
    return test_report("test_nn3d");
}
