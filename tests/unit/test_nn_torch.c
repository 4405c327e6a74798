/*
 * The whole U-Net against PyTorch, llm.c style.
 *
 * tests/ref/nn_torch_state.py builds the same network in PyTorch for a few
 * configurations (instance/batch/no norm, max-pool/strided down, deep
 * supervision, depth 1..4), and writes for each a state file into a fresh
 * temporary folder: weights, images, labels, and from a float64 run the
 * logits, the loss, every parameter gradient, the losses of three Adam
 * steps, the parameters after them and the BatchNorm running statistics.
 * This program runs that script (Debian's /usr/bin/python3), loads each
 * file, checks that the tensor tables agree name by name, and repeats the
 * run in C with a softmax cross-entropy written here.
 *
 * Tolerances (C computes in float32, the reference in float64):
 *   logits, loss:   |diff| <= 1e-4 * max|ref| + 1e-5
 *   gradients:      per tensor, |diff| <= 2e-3 * max|ref of that tensor|
 *   params after three Adam steps (lr <= 1e-2, so a parameter moves by up
 *                   to ~3e-2): |diff| <= 5e-5, except where the first
 *                   gradient is at the float32 noise floor (< 1e-4 of its
 *                   tensor's max): Adam's g / sqrt(v) makes the sign of such
 *                   a step arbitrary, so they are held to 3 lr, and at most
 *                   0.1 % of the parameters may differ by more than 1e-5
 * The script's location: $SEGLOSS_ROOT/tests/ref, else found from this
 * executable's path (BUILD/tests/test_nn_torch -> BUILD/../tests/ref).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "segloss/nn.h"
#include "test_util.h"


static int find_script(char *out, size_t len)
{
    const char *rel = "tests/ref/nn_torch_state.py";
    const char *root = getenv("SEGLOSS_ROOT");
    if (root) {
        snprintf(out, len, "%s/%s", root, rel);
        if (access(out, R_OK) == 0) return 1;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        /* strip three components: test_nn_torch, tests, BUILD */
        for (int k = 0; k < 3; k++) {
            char *s = strrchr(exe, '/');
            if (s) *s = 0;
        }
        snprintf(out, len, "%s/%s", exe, rel);
        if (access(out, R_OK) == 0) return 1;
    }
    snprintf(out, len, "%s", rel);
    return access(out, R_OK) == 0;
}

typedef struct blob {
    unsigned char *p;
    size_t n, off;
    int bad;
} blob;

static int read_file(const char *path, blob *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b->p = malloc((size_t)n);
    b->n = (size_t)n;
    b->off = 0;
    b->bad = 0;
    int ok = b->p && fread(b->p, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    return ok;
}

static void *take(blob *b, size_t bytes)
{
    if (b->bad || b->off + bytes > b->n) {
        b->bad = 1;
        return NULL;
    }
    void *r = b->p + b->off;
    b->off += bytes;
    return r;
}

/* float32 copy of the next n values (the file is little-endian, like the
 * hosts this runs on; the reader checks that below) */
static float *take_f(blob *b, int64_t n)
{
    float *r = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    void *src = take(b, (size_t)n * 4);
    if (src && r) memcpy(r, src, (size_t)n * 4);
    return r;
}

/* Softmax cross-entropy averaged over the pixels, times weight w, for
 * logits (B, C, HW) and labels taken from the full-resolution map with
 * stride f; writes d(w * loss)/d(logits). Returns w * loss. */
static double ce_loss(const float *logits, const int32_t *labels, int64_t B, int64_t C, int64_t H,
                      int64_t W, int f, double w, float *grad)
{
    const int64_t Hl = H / f, Wl = W / f, HW = Hl * Wl, N = B * HW;
    double total = 0.0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < Hl; i++)
            for (int64_t j = 0; j < Wl; j++) {
                const int64_t p = i * Wl + j;
                const float *z = logits + b * C * HW + p;
                int32_t y = labels[(b * H + i * f) * W + j * f];
                double m = z[0];
                for (int64_t c = 1; c < C; c++) m = fmax(m, z[c * HW]);
                double s = 0.0;
                for (int64_t c = 0; c < C; c++) s += exp(z[c * HW] - m);
                double lse = m + log(s);
                total += lse - z[y * HW];
                for (int64_t c = 0; c < C; c++) {
                    double pc = exp(z[c * HW] - lse);
                    grad[b * C * HW + c * HW + p] = (float)(w * (pc - (c == y)) / (double)N);
                }
            }
    return w * total / (double)N;
}

static double max_abs(const float *a, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static double max_diff(const float *a, const float *b, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return INFINITY;
        m = fmax(m, d);
    }
    return m;
}

typedef struct worst {
    double logits, loss, grad_rel, params, params_noise, buffers;
    int64_t over;
} worst;

static double loss_all(sl_unet *net, const float *images, const sl_dims *d, const int32_t *labels,
                       float **dl, float *logits0)
{
    char msg[256];
    int nout = sl_unet_num_outputs(net);
    float w[8];
    sl_unet_ds_weights(net, w);
    sl_status st = sl_unet_forward(net, images, d, logits0, msg, sizeof msg);
    CHECK(st == SL_OK, "forward: %s", msg);
    double loss = 0.0;
    for (int l = 0; l < nout; l++) {
        const float *lg;
        sl_dims od;
        sl_unet_output(net, l, &lg, &od);
        loss += ce_loss(lg, labels, d->n, od.c, d->spatial[0], d->spatial[1], 1 << l, w[l], dl[l]);
    }
    return loss;
}

static void run_state(const char *path, worst *wst)
{
    blob b;
    char msg[256];
    const int failures_before = test_failures_;
    if (!read_file(path, &b)) {
        CHECK(0, "cannot read %s", path);
        return;
    }
    const int32_t *h = take(&b, 64 * 4);
    if (!h || h[0] != 0x4E4E4C53 || h[1] != 1) {
        CHECK(0, "%s: bad magic or version", path);
        free(b.p);
        return;
    }
    sl_unet_config cfg = SL_UNET_CONFIG_DEFAULT;
    cfg.in_channels = h[2];
    cfg.num_classes = h[3];
    cfg.depth = h[4];
    cfg.base_width = h[5];
    cfg.norm = (sl_norm_kind)h[6];
    cfg.down = (sl_down_kind)h[7];
    cfg.deep_supervision = h[8];
    const int64_t B = h[9], H = h[10], W = h[11];
    const int steps = h[12], npt = h[13], nbt = h[14];
    const int64_t np = h[15], nb = h[16];
    float lr, wd, slope;
    memcpy(&lr, &h[18], 4);
    memcpy(&wd, &h[19], 4);
    memcpy(&slope, &h[20], 4);
    cfg.leaky_slope = slope;
    sl_unet *net = NULL;
    sl_optim *opt = NULL;
    sl_status st = sl_unet_create(&net, &cfg, msg, sizeof msg);
    CHECK(st == SL_OK, "%s: create: %s", path, msg);
    if (st) {
        free(b.p);
        return;
    }
    CHECK(sl_unet_num_params(net) == np, "%s: %lld parameters, PyTorch has %lld", path,
          (long long)sl_unet_num_params(net), (long long)np);
    CHECK(sl_unet_num_buffers(net) == nb, "%s: buffer count differs", path);
    CHECK(sl_unet_num_tensors(net) == npt + nbt, "%s: %d tensors, PyTorch has %d", path,
          sl_unet_num_tensors(net), npt + nbt);
    CHECK(sl_unet_num_outputs(net) == h[17], "%s: output count differs", path);
    for (int i = 0; i < npt + nbt && i < sl_unet_num_tensors(net); i++) {
        const char *name = take(&b, 64);
        const int32_t *shape = take(&b, 20);
        sl_tensor_info ti;
        sl_unet_tensor(net, i, &ti);
        if (!name || !shape) break;
        int same = strncmp(name, ti.name, 64) == 0 && shape[0] == ti.ndim;
        for (int k = 0; same && k < ti.ndim; k++) same = shape[1 + k] == ti.shape[k];
        CHECK(same, "%s: tensor %d is %s here, %.64s in PyTorch (or shapes differ)", path, i, ti.name,
              name);
        CHECK(ti.is_buffer == (i >= npt), "%s: tensor %d parameter/buffer kind", path, i);
    }
    if (test_failures_ != failures_before) {
        sl_unet_free(net);
        free(b.p);
        return;
    }
    const int64_t nimg = B * cfg.in_channels * H * W, nlog = B * cfg.num_classes * H * W;
    float *p0 = take_f(&b, np), *b0 = take_f(&b, nb), *images = take_f(&b, nimg);
    int32_t *labels = malloc((size_t)(B * H * W) * sizeof(int32_t));
    const void *lsrc = take(&b, (size_t)(B * H * W) * 4);
    if (lsrc) memcpy(labels, lsrc, (size_t)(B * H * W) * 4);
    float *want_logits = take_f(&b, nlog), *want_losses = take_f(&b, steps + 1);
    float *want_grads = take_f(&b, np), *want_p3 = take_f(&b, np), *want_b3 = take_f(&b, nb);
    CHECK(!b.bad && b.off == b.n, "%s: file size does not match its header", path);

    if (!b.bad) {
        memcpy(sl_unet_params(net), p0, (size_t)np * 4);
        if (nb) memcpy(sl_unet_buffers(net), b0, (size_t)nb * 4);
        sl_optim_config oc = SL_OPTIM_CONFIG_DEFAULT;
        oc.lr = lr;
        oc.weight_decay = wd;
        st = sl_optim_create(&opt, net, &oc, msg, sizeof msg);
        CHECK(st == SL_OK, "optim: %s", msg);
        sl_dims d = {B, cfg.in_channels, 2, {H, W, 0}};
        int nout = sl_unet_num_outputs(net);
        float *dl[8] = {0};
        for (int l = 0; l < nout; l++) dl[l] = malloc((size_t)nlog * sizeof(float));
        float *logits = malloc((size_t)nlog * sizeof(float));
        for (int step = 0; step <= steps; step++) {
            sl_unet_zero_grad(net);
            double loss = loss_all(net, images, &d, labels, dl, logits);
            double ld = fabs(loss - want_losses[step]);
            wst->loss = fmax(wst->loss, ld);
            printf("  %s step %d: loss %.6f (PyTorch %.6f)\n", strrchr(path, '/') + 1, step, loss,
                   want_losses[step]);
            CHECK(ld <= 1e-4 * fabs(want_losses[step]) + 1e-5, "%s: loss at step %d: %.7g vs %.7g",
                  path, step, loss, want_losses[step]);
            if (step == steps) break;
            st = sl_unet_backward_ds(net, (const float *const *)dl, msg, sizeof msg);
            CHECK(st == SL_OK, "backward: %s", msg);
            if (step == 0) {
                double md = max_diff(logits, want_logits, nlog);
                wst->logits = fmax(wst->logits, md);
                CHECK(md <= 1e-4 * max_abs(want_logits, nlog) + 1e-5, "%s: logits differ by %.3g",
                      path, md);
                /* every parameter gradient, tensor by tensor */
                for (int i = 0; i < npt; i++) {
                    sl_tensor_info ti;
                    sl_unet_tensor(net, i, &ti);
                    const float *g = sl_unet_grads(net) + ti.offset, *wg = want_grads + ti.offset;
                    double scale = max_abs(wg, ti.numel);
                    double gd = max_diff(g, wg, ti.numel);
                    double rel = gd / (scale > 1e-30 ? scale : 1e-30);
                    if (scale < 1e-30) rel = gd; /* an all-zero reference gradient */
                    wst->grad_rel = fmax(wst->grad_rel, rel);
                    CHECK(rel <= 2e-3, "%s: gradient of %s differs by %.3g (max |ref| %.3g)", path,
                          ti.name, gd, scale);
                }
            }
            sl_optim_step(opt, NULL);
        }
        /* Adam divides each gradient by its own running RMS, so an element
         * whose gradient is at the float32 noise floor (here < 1e-4 of its
         * tensor's largest) can take a step of either sign: such elements
         * are only held to the Adam step bound, all others to 5e-5, and at
         * most 0.1 % of all parameters may differ by more than 1e-5. */
        const float *pc = sl_unet_params(net);
        double pd = 0.0, pd_noise = 0.0;
        int64_t over = 0;
        for (int i = 0; i < npt; i++) {
            sl_tensor_info ti;
            sl_unet_tensor(net, i, &ti);
            double gscale = max_abs(want_grads + ti.offset, ti.numel);
            for (int64_t j = ti.offset; j < ti.offset + ti.numel; j++) {
                double dj = fabs((double)pc[j] - want_p3[j]);
                if (!(dj <= 1e-5)) over++;
                if (fabs(want_grads[j]) >= 1e-4 * gscale) pd = fmax(pd, dj);
                else pd_noise = fmax(pd_noise, dj);
                if (isnan(dj)) pd = INFINITY;
            }
        }
        wst->params = fmax(wst->params, pd);
        wst->params_noise = fmax(wst->params_noise, pd_noise);
        wst->over = over > wst->over ? over : wst->over;
        CHECK(pd <= 5e-5, "%s: parameters after %d steps differ by %.3g", path, steps, pd);
        CHECK(pd_noise <= steps * lr, "%s: noise-floor parameters differ by %.3g > %d lr", path,
              pd_noise, steps);
        CHECK(over * 1000 <= np, "%s: %lld of %lld parameters differ by more than 1e-5", path,
              (long long)over, (long long)np);
        if (nb) {
            double bd = max_diff(sl_unet_buffers(net), want_b3, nb);
            wst->buffers = fmax(wst->buffers, bd);
            CHECK(bd <= 1e-4 * max_abs(want_b3, nb) + 1e-5, "%s: running statistics differ by %.3g",
                  path, bd);
        }
        for (int l = 0; l < nout; l++) free(dl[l]);
        free(logits);
    }
    free(p0);
    free(b0);
    free(images);
    free(labels);
    free(want_logits);
    free(want_losses);
    free(want_grads);
    free(want_p3);
    free(want_b3);
    sl_optim_free(opt);
    sl_unet_free(net);
    free(b.p);
}

int main(void)
{
    const uint32_t one = 1;
    if (*(const unsigned char *)&one != 1) {
        printf("skipped: the reference files are little-endian\n");
        return 0;
    }
    char script[4200], dir[4200], cmd[9000], path[4400];
    if (!find_script(script, sizeof script)) {
        printf("FAILED: tests/ref/nn_torch_state.py not found (set SEGLOSS_ROOT)\n");
        return 1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sl_nn_torch_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        printf("FAILED: cannot create a temporary folder\n");
        return 1;
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' > '%s/list.txt'", script, dir, dir);
    int rc = system(cmd);
    if (rc != 0) {
        printf("FAILED: %s exited with %d (needs Debian's python3-torch)\n", script, rc);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        (void)system(cmd);
        return 1;
    }
    worst wst = {0};
    int nfiles = 0;
    for (int k = 0;; k++) {
        snprintf(path, sizeof path, "%s/state_%d.bin", dir, k);
        if (access(path, R_OK) != 0) break;
        run_state(path, &wst);
        remove(path);
        nfiles++;
    }
    snprintf(path, sizeof path, "%s/list.txt", dir);
    remove(path);
    rmdir(dir);
    CHECK(nfiles >= 5, "expected 5 state files, found %d", nfiles);
    printf("max |diff| logits                      %.3g\n", wst.logits);
    printf("max |diff| loss                        %.3g\n", wst.loss);
    printf("max |diff| gradient / max|grad| (per tensor) %.3g\n", wst.grad_rel);
    printf("max |diff| params after 3 Adam steps   %.3g\n", wst.params);
    printf("max |diff| params, noise-floor gradients %.3g (%lld params > 1e-5 in the worst file)\n",
           wst.params_noise, (long long)wst.over);
    printf("max |diff| BatchNorm running stats     %.3g\n", wst.buffers);
    printf("%d state files\n", nfiles);
    return test_report("test_nn_torch");
}
