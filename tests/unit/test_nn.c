/*
 * The nn module on its own: a short training run whose loss must fall,
 * bit-identical runs with 1 and 2 threads, gradients against central finite
 * differences, model files (round trip with optimiser state, and every kind
 * of damage refused with the right code), argument and shape errors, deep
 * supervision outputs, BatchNorm modes, batch-size changes.
 *
 * Runs in a few seconds and under ASan + UBSan (make test).
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

/* ----------------------------------------------------------- helpers */

/* Softmax cross-entropy averaged over pixels; writes d(loss)/d(logits). */
static double ce(const float *z, const int32_t *y, int64_t B, int64_t C, int64_t HW, float *g)
{
    double total = 0.0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < HW; p++) {
            const float *zp = z + b * C * HW + p;
            double m = zp[0], s = 0.0;
            for (int64_t c = 1; c < C; c++) m = fmax(m, zp[c * HW]);
            for (int64_t c = 0; c < C; c++) s += exp(zp[c * HW] - m);
            double lse = m + log(s);
            int32_t yy = y[b * HW + p];
            total += lse - zp[yy * HW];
            if (g)
                for (int64_t c = 0; c < C; c++)
                    g[b * C * HW + c * HW + p] =
                        (float)((exp(zp[c * HW] - lse) - (c == yy)) / (double)(B * HW));
        }
    return total / (double)(B * HW);
}

/* A synthetic task: a bright disc (class 1) with a small brighter core
 * (class 2) on noise. Fixed by the seed. */
static void make_task(uint64_t seed, int64_t B, int64_t H, int64_t W, float *img, int32_t *lab)
{
    sl_rng r;
    sl_rng_seed(&r, seed);
    for (int64_t b = 0; b < B; b++) {
        double cy = H * (0.3 + 0.4 * sl_rng_uniform(&r)), cx = W * (0.3 + 0.4 * sl_rng_uniform(&r));
        double rad = H * (0.15 + 0.1 * sl_rng_uniform(&r));
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) {
                double d = hypot(i - cy, j - cx);
                int32_t c = d < rad * 0.4 ? 2 : d < rad ? 1 : 0;
                lab[(b * H + i) * W + j] = c;
                img[(b * H + i) * W + j] = (float)(0.8 * c + 0.4 * sl_rng_normal(&r));
            }
    }
}

typedef struct run_result {
    double loss[40];
    float *params;
    int64_t np;
} run_result;

/* Trains a small net for `steps` Adam steps with `threads` threads. */
static void train(int threads, int steps, sl_norm_kind norm, run_result *res)
{
    const int64_t B = 4, H = 16, W = 16, C = 3;
    sl_unet_config cfg = SL_UNET_CONFIG_DEFAULT;
    cfg.num_classes = (int)C;
    cfg.depth = 3;
    cfg.base_width = 6;
    cfg.norm = norm;
    cfg.seed = 11;
    char msg[256];
    sl_unet *net = NULL;
    sl_optim *opt = NULL;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_OK, "create: %s", msg);
    sl_unet_set_threads(net, threads);
    sl_optim_config oc = SL_OPTIM_CONFIG_DEFAULT;
    oc.lr = 1e-2;
    oc.clip_norm = 5.0;
    oc.schedule.kind = SL_SCHED_POLY;
    oc.schedule.total_steps = steps;
    CHECK(sl_optim_create(&opt, net, &oc, msg, sizeof msg) == SL_OK, "optim: %s", msg);
    float *img = malloc(B * H * W * sizeof(float)), *logits = malloc(B * C * H * W * sizeof(float));
    float *dl = malloc(B * C * H * W * sizeof(float));
    int32_t *lab = malloc(B * H * W * sizeof(int32_t));
    make_task(5, B, H, W, img, lab);
    sl_dims d = {B, 1, 2, {H, W, 0}};
    for (int s = 0; s < steps; s++) {
        sl_unet_zero_grad(net);
        CHECK(sl_unet_forward(net, img, &d, logits, msg, sizeof msg) == SL_OK, "forward: %s", msg);
        res->loss[s] = ce(logits, lab, B, C, H * W, dl);
        CHECK(sl_unet_backward(net, dl, msg, sizeof msg) == SL_OK, "backward: %s", msg);
        CHECK(sl_optim_step(opt, NULL) == SL_OK, "step");
    }
    res->np = sl_unet_num_params(net);
    res->params = malloc((size_t)res->np * sizeof(float));
    memcpy(res->params, sl_unet_params(net), (size_t)res->np * sizeof(float));
    free(img);
    free(logits);
    free(dl);
    free(lab);
    sl_optim_free(opt);
    sl_unet_free(net);
}

static void test_training_and_threads(void)
{
    const int steps = 30;
    sl_norm_kind norms[2] = {SL_NORM_INSTANCE, SL_NORM_BATCH};
    for (int k = 0; k < 2; k++) {
        run_result r1 = {{0}, NULL, 0}, r2 = {{0}, NULL, 0};
        train(1, steps, norms[k], &r1);
        train(2, steps, norms[k], &r2);
        const char *nm = k == 0 ? "instance" : "batch";
        printf("  %s norm: loss %.4f -> %.4f over %d steps\n", nm, r1.loss[0], r1.loss[steps - 1], steps);
        CHECK(r1.loss[steps - 1] < 0.5 * r1.loss[0], "%s: loss did not fall: %.4f -> %.4f", nm,
              r1.loss[0], r1.loss[steps - 1]);
        /* determinism: the same seed gives the same trajectory for 1 and 2
         * threads; the stated tolerance is 0 (bit-identical) */
        double md = 0.0, pd = 0.0;
        for (int s = 0; s < steps; s++) md = fmax(md, fabs(r1.loss[s] - r2.loss[s]));
        for (int64_t i = 0; i < r1.np; i++) pd = fmax(pd, fabs((double)r1.params[i] - r2.params[i]));
        printf("max |diff| loss trajectory 1 vs 2 threads (%s) %.3g, params %.3g\n", nm, md, pd);
        CHECK(md == 0.0 && pd == 0.0, "%s: 1 and 2 threads differ (loss %.3g, params %.3g)", nm, md, pd);
        free(r1.params);
        free(r2.params);
    }
}

/* ------------------------------------------------ finite differences */

/* loss = sum(logits * R) / n over all output levels (weighted), in double */
static double fd_loss(sl_unet *net, const float *img, const sl_dims *d, float *logits,
                      float *const *R, int64_t *nl)
{
    char msg[256];
    CHECK(sl_unet_forward(net, img, d, logits, msg, sizeof msg) == SL_OK, "forward: %s", msg);
    double L = 0.0;
    for (int l = 0; l < sl_unet_num_outputs(net); l++) {
        const float *z;
        sl_unet_output(net, l, &z, NULL);
        for (int64_t i = 0; i < nl[l]; i++) L += (double)z[i] * R[l][i];
    }
    return L;
}

static void test_finite_differences(void)
{
    struct {
        sl_norm_kind norm;
        sl_down_kind down;
        int ds;
    } cases[3] = {{SL_NORM_INSTANCE, SL_DOWN_MAXPOOL, 0},
                  {SL_NORM_BATCH, SL_DOWN_STRIDED, 1},
                  {SL_NORM_NONE, SL_DOWN_MAXPOOL, 1}};
    double worst = 0.0;
    for (int k = 0; k < 3; k++) {
        sl_unet_config cfg = SL_UNET_CONFIG_DEFAULT;
        cfg.num_classes = 2;
        cfg.depth = 3;
        cfg.base_width = 3;
        cfg.norm = cases[k].norm;
        cfg.down = cases[k].down;
        cfg.deep_supervision = cases[k].ds;
        cfg.seed = 3 + k;
        /* LeakyReLU slope 1 makes the activation smooth: with 0.01, the
         * thousands of units whose inputs cross 0 under a step along all
         * parameters make the difference quotient useless above eps ~1e-5,
         * where float32 noise takes over. The masks themselves are checked
         * against PyTorch (test_nn_layers.py, test_nn_torch). Max-pool
         * switches need two window values within ~1e-4: not hit here. */
        cfg.leaky_slope = 1.0f;
        char msg[256];
        sl_unet *net;
        CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_OK, "create: %s", msg);
        const int64_t B = 2, H = 8, W = 8;
        sl_rng r;
        sl_rng_seed(&r, 100 + k);
        float img[2 * 8 * 8], logits[2 * 2 * 8 * 8];
        for (int i = 0; i < B * H * W; i++) img[i] = (float)sl_rng_normal(&r);
        sl_dims d = {B, 1, 2, {H, W, 0}};
        int nout = sl_unet_num_outputs(net);
        float *R[8];
        int64_t nl[8];
        for (int l = 0; l < nout; l++) {
            nl[l] = B * 2 * (H >> l) * (W >> l);
            R[l] = malloc((size_t)nl[l] * sizeof(float));
            for (int64_t i = 0; i < nl[l]; i++) R[l][i] = (float)sl_rng_normal(&r);
        }
        /* analytic gradient */
        sl_unet_zero_grad(net);
        fd_loss(net, img, &d, logits, R, nl);
        CHECK(sl_unet_backward_ds(net, (const float *const *)R, msg, sizeof msg) == SL_OK, "bwd");
        const int64_t np = sl_unet_num_params(net);
        float *p = sl_unet_params(net), *g = sl_unet_grads(net);
        float *p0 = malloc((size_t)np * sizeof(float)), *dir = malloc((size_t)np * sizeof(float));
        memcpy(p0, p, (size_t)np * sizeof(float));
        /* along three random directions: (L(p + e v) - L(p - e v)) / 2e vs g . v */
        for (int t = 0; t < 3; t++) {
            double gd = 0.0;
            for (int64_t i = 0; i < np; i++) {
                dir[i] = (float)sl_rng_normal(&r);
                gd += (double)g[i] * dir[i];
            }
            /* The step: the forward is float32, so the loss carries a
             * relative noise of ~1e-7, ~1e-3 relative in a difference over
             * 2e-4; larger steps see the curvature of a deep multiplicative
             * net moved along all parameters at once (at 1e-2 the estimate
             * is off by 50 %, at 1e-3 by up to 3 %, at 1e-4 by < 0.2 %). */
            const double eps = 1e-4;
            for (int64_t i = 0; i < np; i++) p[i] = (float)(p0[i] + eps * dir[i]);
            double lp = fd_loss(net, img, &d, logits, R, nl);
            for (int64_t i = 0; i < np; i++) p[i] = (float)(p0[i] - eps * dir[i]);
            double lm = fd_loss(net, img, &d, logits, R, nl);
            memcpy(p, p0, (size_t)np * sizeof(float));
            double fd = (lp - lm) / (2 * eps);
            double rel = fabs(fd - gd) / fmax(fabs(gd), 1e-3);
            worst = fmax(worst, rel);
            CHECK(rel < 1e-2, "case %d dir %d: finite difference %.6g vs analytic %.6g", k, t, fd, gd);
        }
        free(p0);
        free(dir);
        for (int l = 0; l < nout; l++) free(R[l]);
        sl_unet_free(net);
    }
    printf("max |diff| finite difference / analytic (relative, eps 1e-4) %.3g\n", worst);
}

/* ----------------------------------------------------------- model files */

static sl_status load_status(const char *path, char *msg, size_t len)
{
    sl_unet *net = (sl_unet *)1;
    sl_optim *opt = (sl_optim *)1;
    sl_status st = sl_unet_load(&net, &opt, path, msg, len);
    CHECK(st == SL_OK || (net == NULL && opt == NULL), "a failed load must leave NULL outputs");
    sl_optim_free(opt);
    sl_unet_free(net);
    return st;
}

static unsigned char *slurp(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*n);
    if (fread(b, 1, (size_t)*n, f) != (size_t)*n) *n = -1;
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, long n)
{
    FILE *f = fopen(path, "wb");
    if (n > 0) fwrite(b, 1, (size_t)n, f);
    fclose(f);
}

static void test_model_files(void)
{
    char path[600], bad[600], msg[256];
    snprintf(path, sizeof path, "%s/model.slnet", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.slnet", tmpdir);
    sl_unet_config cfg = SL_UNET_CONFIG_DEFAULT;
    cfg.num_classes = 3;
    cfg.depth = 3;
    cfg.base_width = 4;
    cfg.norm = SL_NORM_BATCH;
    cfg.deep_supervision = 1;
    cfg.seed = 77;
    sl_unet *net;
    sl_optim *opt;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_OK, "create");
    sl_optim_config oc = SL_OPTIM_CONFIG_DEFAULT;
    oc.kind = SL_OPTIM_SGD;
    oc.momentum = 0.9;
    oc.nesterov = 1;
    oc.lr = 0.05;
    oc.schedule.kind = SL_SCHED_ONECYCLE;
    oc.schedule.total_steps = 10;
    CHECK(sl_optim_create(&opt, net, &oc, msg, sizeof msg) == SL_OK, "optim");
    const int64_t B = 2, H = 8, W = 8, C = 3;
    float img[2 * 8 * 8], l1[2 * 3 * 8 * 8], l2[2 * 3 * 8 * 8], dl[2 * 3 * 8 * 8];
    int32_t lab[2 * 8 * 8];
    make_task(9, B, H, W, img, lab);
    sl_dims d = {B, 1, 2, {H, W, 0}};
    for (int s = 0; s < 2; s++) { /* two steps: running stats and momentum are non-trivial */
        sl_unet_zero_grad(net);
        sl_unet_forward(net, img, &d, l1, msg, sizeof msg);
        ce(l1, lab, B, C, H * W, dl);
        sl_unet_backward(net, dl, msg, sizeof msg);
        sl_optim_step(opt, NULL);
    }
    CHECK(sl_unet_save(net, opt, path, msg, sizeof msg) == SL_OK, "save: %s", msg);
    char leftover[600];
    snprintf(leftover, sizeof leftover, "%s.tmp.", path);
    CHECK(access(path, R_OK) == 0, "the model file exists after save");

    sl_unet *net2 = NULL;
    sl_optim *opt2 = NULL;
    CHECK(sl_unet_load(&net2, &opt2, path, msg, sizeof msg) == SL_OK, "load: %s", msg);
    if (net2 && opt2) {
        sl_unet_config c2;
        sl_unet_get_config(net2, &c2);
        CHECK(memcmp(&c2, &cfg, sizeof cfg) == 0, "configuration round trip");
        CHECK(sl_optim_num_steps(opt2) == 2, "optimiser step count restored");
        /* same outputs in eval and training mode (running stats restored) */
        sl_unet_set_training(net, 0);
        sl_unet_set_training(net2, 0);
        sl_unet_forward(net, img, &d, l1, msg, sizeof msg);
        sl_unet_forward(net2, img, &d, l2, msg, sizeof msg);
        CHECK(memcmp(l1, l2, sizeof l1) == 0, "loaded net gives identical eval outputs");
        sl_unet_set_training(net, 1);
        sl_unet_set_training(net2, 1);
        /* resuming: one more step on each gives identical parameters */
        sl_unet *nets[2] = {net, net2};
        sl_optim *opts[2] = {opt, opt2};
        for (int k = 0; k < 2; k++) {
            sl_unet_zero_grad(nets[k]);
            sl_unet_forward(nets[k], img, &d, k ? l2 : l1, msg, sizeof msg);
            ce(k ? l2 : l1, lab, B, C, H * W, dl);
            sl_unet_backward(nets[k], dl, msg, sizeof msg);
            sl_optim_step(opts[k], NULL);
        }
        CHECK(memcmp(l1, l2, sizeof l1) == 0, "identical training-mode outputs after load");
        CHECK(memcmp(sl_unet_params(net), sl_unet_params(net2),
                     (size_t)sl_unet_num_params(net) * sizeof(float)) == 0,
              "identical parameters after a resumed step");
        CHECK(memcmp(sl_unet_buffers(net), sl_unet_buffers(net2),
                     (size_t)sl_unet_num_buffers(net) * sizeof(float)) == 0,
              "identical running statistics after a resumed step");
    }
    sl_optim_free(opt2);
    sl_unet_free(net2);

    /* without optimiser: *opt is NULL; opt may also be NULL */
    CHECK(sl_unet_save(net, NULL, path, msg, sizeof msg) == SL_OK, "save without optimiser");
    net2 = NULL;
    opt2 = (sl_optim *)1;
    CHECK(sl_unet_load(&net2, &opt2, path, msg, sizeof msg) == SL_OK && opt2 == NULL,
          "load without optimiser section gives *opt = NULL");
    sl_unet_free(net2);
    CHECK(sl_unet_save(net, opt, path, msg, sizeof msg) == SL_OK, "save again");
    CHECK(sl_unet_load(&net2, NULL, path, msg, sizeof msg) == SL_OK, "load ignoring the optimiser");
    sl_unet_free(net2);

    /* damage */
    long n;
    unsigned char *good = slurp(path, &n);
    CHECK(good && n > 200, "read back the model file");
    long cuts[] = {0, 7, 100, 127, 128, 131, 200, n / 2, n - 160, n - 5, n - 4, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(bad, good, cuts[i]);
        sl_status st = load_status(bad, msg, sizeof msg);
        CHECK(st == SL_EFORMAT, "truncated to %ld bytes: status %d (%s)", cuts[i], (int)st, msg);
    }
    printf("  truncated file: %s\n", msg);
    /* a flipped bit anywhere: in the header, the parameters, the optimiser
     * state, the checksum itself */
    long flips[] = {3, 20, 60, 140, n / 2, n - 40, n - 2};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        unsigned char *c = malloc((size_t)n);
        memcpy(c, good, (size_t)n);
        c[flips[i]] ^= 0x10;
        spit(bad, c, n);
        free(c);
        sl_status st = load_status(bad, msg, sizeof msg);
        CHECK(st == SL_EFORMAT, "bit flip at %ld: status %d (%s)", flips[i], (int)st, msg);
    }
    printf("  corrupt file: %s\n", msg);
    /* extra bytes at the end */
    unsigned char *longer = malloc((size_t)n + 8);
    memcpy(longer, good, (size_t)n);
    memset(longer + n, 0, 8);
    spit(bad, longer, n + 8);
    free(longer);
    CHECK(load_status(bad, msg, sizeof msg) == SL_EFORMAT, "trailing bytes refused");
    /* not a file, missing file */
    CHECK(load_status(tmpdir, msg, sizeof msg) == SL_EIO, "a folder is refused with SL_EIO");
    snprintf(bad, sizeof bad, "%s/does-not-exist", tmpdir);
    CHECK(load_status(bad, msg, sizeof msg) == SL_EIO, "missing file: SL_EIO");
    snprintf(bad, sizeof bad, "%s/bad.slnet", tmpdir);
    /* NaN parameters with a valid checksum: refused as non-finite */
    sl_unet_params(net)[5] = NAN;
    CHECK(sl_unet_save(net, NULL, bad, msg, sizeof msg) == SL_OK, "save with NaN");
    CHECK(load_status(bad, msg, sizeof msg) == SL_ENONFINITE, "NaN parameters: SL_ENONFINITE");
    /* saving into a missing folder fails cleanly */
    snprintf(bad, sizeof bad, "%s/no/such/dir/m.slnet", tmpdir);
    CHECK(sl_unet_save(net, NULL, bad, msg, sizeof msg) == SL_EIO, "save into a missing folder: SL_EIO");
    /* an optimiser of another net is refused */
    sl_unet *other;
    sl_unet_create(&other, &cfg, msg, sizeof msg);
    CHECK(sl_unet_save(other, opt, path, msg, sizeof msg) == SL_EINVAL, "foreign optimiser refused");
    sl_unet_free(other);
    free(good);
    sl_optim_free(opt);
    sl_unet_free(net);
    snprintf(bad, sizeof bad, "%s/bad.slnet", tmpdir);
    remove(bad);
    remove(path);
}

/* ------------------------------------------------------- API contracts */

static void test_errors_and_api(void)
{
    char msg[256];
    sl_unet *net = (sl_unet *)1;
    sl_unet_config cfg = SL_UNET_CONFIG_DEFAULT;
    cfg.depth = 0;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_EINVAL && net == NULL && strstr(msg, "depth"),
          "depth 0: %s", msg);
    cfg = (sl_unet_config)SL_UNET_CONFIG_DEFAULT;
    cfg.spatial_ndim = 4;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_EINVAL && net == NULL && strstr(msg, "spatial_ndim"),
          "spatial_ndim 4: %s", msg);
    cfg = (sl_unet_config)SL_UNET_CONFIG_DEFAULT;
    cfg.leaky_slope = -0.1f;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_EINVAL, "negative slope");
    cfg = (sl_unet_config)SL_UNET_CONFIG_DEFAULT;
    cfg.norm = (sl_norm_kind)9;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_EINVAL, "bad norm kind");
    CHECK(sl_unet_create(&net, NULL, msg, sizeof msg) == SL_EINVAL, "NULL config");
    CHECK(sl_unet_create(NULL, &cfg, msg, sizeof msg) == SL_EINVAL, "NULL out");
    sl_unet_free(NULL);
    sl_optim_free(NULL);

    cfg = (sl_unet_config)SL_UNET_CONFIG_DEFAULT;
    cfg.depth = 4;
    cfg.base_width = 2;
    cfg.num_classes = 2;
    cfg.deep_supervision = 1;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_OK, "create");
    /* parameter count by hand: widths 2, 4, 8, 16 */
    int64_t w[4] = {2, 4, 8, 16}, expect = 0;
    for (int s = 0; s < 4; s++) {
        int64_t cin = s ? w[s - 1] : 1;
        expect += w[s] * cin * 9 + w[s] * w[s] * 9 + 4 * w[s];
    }
    for (int s = 0; s < 3; s++)
        expect += w[s + 1] * w[s] * 4 + w[s] + 2 * w[s] * w[s] * 9 + w[s] * w[s] * 9 + 4 * w[s];
    for (int l = 0; l < 3; l++) expect += 2 * w[l] + 2;
    CHECK(sl_unet_num_params(net) == expect, "parameter count %lld, by hand %lld",
          (long long)sl_unet_num_params(net), (long long)expect);
    CHECK(sl_unet_num_outputs(net) == 3, "deep supervision: 3 outputs for depth 4");
    float dw[3];
    sl_unet_ds_weights(net, dw);
    CHECK(fabs(dw[0] - 4.0 / 7) < 1e-6 && fabs(dw[1] - 2.0 / 7) < 1e-6 && fabs(dw[2] - 1.0 / 7) < 1e-6,
          "ds weights 4/7, 2/7, 1/7: %g %g %g", dw[0], dw[1], dw[2]);
    sl_tensor_info ti;
    CHECK(sl_unet_tensor(net, 0, &ti) == SL_OK && strcmp(ti.name, "enc0.conv1.weight") == 0 &&
              ti.ndim == 4 && ti.shape[0] == 2 && ti.shape[1] == 1 && ti.offset == 0,
          "first tensor");
    CHECK(sl_unet_tensor(net, sl_unet_num_tensors(net), &ti) == SL_EINVAL, "tensor index range");
    /* the Kaiming init has the stated standard deviation (enc3.conv2: fan-in 144) */
    for (int i = 0; i < sl_unet_num_tensors(net); i++) {
        sl_unet_tensor(net, i, &ti);
        if (strcmp(ti.name, "enc3.conv2.weight") == 0) {
            const float *p = sl_unet_params(net) + ti.offset;
            double ss = 0.0;
            for (int64_t j = 0; j < ti.numel; j++) ss += (double)p[j] * p[j];
            double sd = sqrt(ss / ti.numel), want = sqrt(2.0 / (1 + 0.01 * 0.01)) / sqrt(144.0);
            printf("  init std of enc3.conv2.weight %.4f (Kaiming %.4f)\n", sd, want);
            CHECK(fabs(sd - want) < 0.1 * want, "init std %.4f vs %.4f", sd, want);
        }
    }

    float img[2 * 1 * 24 * 16], logits[2 * 2 * 24 * 16], dl[2 * 2 * 24 * 16];
    for (int i = 0; i < 2 * 24 * 16; i++) img[i] = (float)((i * 37) % 11) / 11.0f;
    CHECK(sl_unet_backward(net, dl, msg, sizeof msg) == SL_EBADSTATE, "backward before forward");
    CHECK(sl_unet_output(net, 0, NULL, NULL) == SL_EBADSTATE, "output before forward");
    sl_dims bad1 = {2, 1, 2, {20, 16, 0}};
    CHECK(sl_unet_forward(net, img, &bad1, logits, msg, sizeof msg) == SL_ESHAPE && strstr(msg, "divisible"),
          "H = 20 with depth 4: %s", msg);
    printf("  shape error: %s\n", msg);
    sl_dims bad2 = {2, 3, 2, {24, 16, 0}};
    CHECK(sl_unet_forward(net, img, &bad2, logits, msg, sizeof msg) == SL_ESHAPE, "3 channels: %s", msg);
    sl_dims bad3 = {2, 1, 3, {8, 8, 8}};
    CHECK(sl_unet_forward(net, img, &bad3, logits, msg, sizeof msg) == SL_ESHAPE, "3-D input");
    sl_dims ok = {2, 1, 2, {24, 16, 0}};
    CHECK(sl_unet_forward(net, NULL, &ok, logits, msg, sizeof msg) == SL_EINVAL, "NULL images");
    CHECK(sl_unet_forward(net, img, &ok, logits, msg, sizeof msg) == SL_OK, "forward 24x16: %s", msg);
    for (int l = 0; l < 3; l++) {
        sl_dims od;
        const float *z;
        CHECK(sl_unet_output(net, l, &z, &od) == SL_OK && od.n == 2 && od.c == 2 &&
                  od.spatial[0] == (24 >> l) && od.spatial[1] == (16 >> l) && z,
              "output level %d dims", l);
    }
    CHECK(sl_unet_output(net, 3, NULL, NULL) == SL_EINVAL, "output level out of range");
    const float *z0;
    sl_unet_output(net, 0, &z0, NULL);
    CHECK(memcmp(z0, logits, sizeof logits) == 0, "level 0 output equals the logits");

    /* gradients accumulate: two backwards give exactly twice one */
    for (int i = 0; i < 2 * 2 * 24 * 16; i++) dl[i] = (float)((i * 13) % 7 - 3) / 100.0f;
    sl_unet_zero_grad(net);
    sl_unet_backward(net, dl, msg, sizeof msg);
    int64_t np = sl_unet_num_params(net);
    float *g1 = malloc((size_t)np * sizeof(float));
    memcpy(g1, sl_unet_grads(net), (size_t)np * sizeof(float));
    sl_unet_backward(net, dl, msg, sizeof msg);
    int twice = 1;
    for (int64_t i = 0; i < np; i++) twice &= sl_unet_grads(net)[i] == 2 * g1[i];
    CHECK(twice, "second backward adds the same gradient");
    sl_unet_zero_grad(net);
    int zero = 1;
    for (int64_t i = 0; i < np; i++) zero &= sl_unet_grads(net)[i] == 0.0f;
    CHECK(zero, "zero_grad");

    /* batch-size changes re-plan; instance norm keeps samples independent */
    float one_logits[2 * 24 * 16];
    sl_dims d1 = {1, 1, 2, {24, 16, 0}};
    CHECK(sl_unet_forward(net, img, &d1, one_logits, msg, sizeof msg) == SL_OK, "B=1");
    CHECK(memcmp(one_logits, logits, sizeof one_logits) == 0, "sample 0 alone = sample 0 in a batch of 2");
    float *big = malloc(2 * 2 * 48 * 32 * sizeof(float)), *bigimg = calloc(2 * 48 * 32, sizeof(float));
    sl_dims d2 = {2, 1, 2, {48, 32, 0}};
    CHECK(sl_unet_forward(net, bigimg, &d2, big, msg, sizeof msg) == SL_OK, "larger image");
    CHECK(sl_unet_forward(net, img, &ok, logits, msg, sizeof msg) == SL_OK, "back to 24x16");
    CHECK(memcmp(one_logits, logits, sizeof one_logits) == 0, "same result after re-planning");
    free(big);
    free(bigimg);
    free(g1);
    sl_unet_free(net);

    /* BatchNorm: eval mode uses the running statistics and leaves them */
    cfg = (sl_unet_config)SL_UNET_CONFIG_DEFAULT;
    cfg.depth = 2;
    cfg.base_width = 3;
    cfg.norm = SL_NORM_BATCH;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_OK, "create bn");
    sl_dims d8 = {2, 1, 2, {8, 8, 0}};
    float lt[2 * 2 * 64], le[2 * 2 * 64];
    int64_t nb = sl_unet_num_buffers(net);
    CHECK(nb == 2 * (2 * 3 + 2 * 6 + 2 * 3), "BatchNorm buffers: (mean, var) of 6 norms of 3, 6, 3 channels, got %lld", (long long)nb);
    float *b0 = malloc((size_t)nb * sizeof(float));
    memcpy(b0, sl_unet_buffers(net), (size_t)nb * sizeof(float));
    sl_unet_set_training(net, 0);
    sl_unet_forward(net, img, &d8, le, msg, sizeof msg);
    CHECK(memcmp(b0, sl_unet_buffers(net), (size_t)nb * sizeof(float)) == 0, "eval leaves running stats");
    sl_unet_set_training(net, 1);
    sl_unet_forward(net, img, &d8, lt, msg, sizeof msg);
    CHECK(memcmp(b0, sl_unet_buffers(net), (size_t)nb * sizeof(float)) != 0, "training updates running stats");
    CHECK(memcmp(lt, le, sizeof lt) != 0, "training and eval outputs differ");
    free(b0);
    sl_unet_free(net);

    /* optimiser arguments */
    sl_optim *opt = (sl_optim *)1;
    sl_optim_config oc = SL_OPTIM_CONFIG_DEFAULT;
    oc.lr = -1;
    float p[4] = {0}, gg[4] = {0};
    CHECK(sl_optim_create_flat(&opt, p, gg, 4, &oc, msg, sizeof msg) == SL_EINVAL && opt == NULL && strstr(msg, "lr"),
          "negative lr: %s", msg);
    CHECK(sl_optim_step(NULL, NULL) == SL_EINVAL, "step NULL");

    /* downsampling a uint8 label map */
    unsigned char labs[1 * 4 * 6], small[1 * 2 * 3];
    for (int i = 0; i < 24; i++) labs[i] = (unsigned char)i;
    sl_dims ld = {1, 1, 2, {4, 6, 0}};
    CHECK(sl_nn_downsample_nearest(small, labs, &ld, 1, 2, msg, sizeof msg) == SL_OK, "downsample");
    CHECK(small[0] == 0 && small[1] == 2 && small[2] == 4 && small[3] == 12 && small[5] == 16,
          "downsample picks in[2i][2j]");
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/sl_test_nn_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        printf("FAILED: cannot create a temporary folder\n");
        return 1;
    }
    test_errors_and_api();
    test_finite_differences();
    test_model_files();
    test_training_and_threads();
    rmdir(tmpdir);
    return test_report("test_nn");
}
