/*
 * Training-step speed of the 3-D segloss U-Net, its peak memory, and the
 * sgemm peak of this machine's OpenBLAS for comparison.
 * perf/train_speed3d.py runs this next to the same network in PyTorch and
 * prints the ratio.
 *
 *   build/perf/train_speed3d [--threads N] [--batch B] [--size S | --size D,H,W]
 *                             [--steps K] [--warmup W] [--depth D] [--width F]
 *                             [--classes C] [--no-peak]
 *
 * The network: spatial_ndim 3, InstanceNorm + LeakyReLU, 2x2x2 max-pool,
 * 2x2x2 transposed-conv up, 3x3x3 convolutions, one input channel. One step
 * = zero_grad, forward, softmax cross-entropy (written here, averaged over
 * voxels) and its gradient, backward, Adam step. Prints one JSON object:
 * seconds per step and per phase, the convolution FLOPs of a step (counted
 * from the architecture: 2 * Cout * Cin * 27 per output voxel forward,
 * twice that backward, once for the first layer that needs no input
 * gradient), the GFLOP/s they make, the sgemm peak on square 2048 products
 * at the same thread count, and the peak resident memory (VmHWM of
 * /proc/self/status: ru_maxrss would carry over the parent's peak across
 * fork and exec when a Python script starts this program).
 * The JSON also names the kernel set OpenBLAS picked for this CPU
 * (openblas_get_corename): every convolution and the sgemm peak depend on
 * it, and the OPENBLAS_CORETYPE environment variable overrides it.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "segloss/nn.h"
#include "segloss/rng.h"

/* CPU time of the whole process (all threads): on a shared machine it
 * does not count the time other programs run. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Peak resident memory of this program in MiB: VmHWM (Linux), else
 * ru_maxrss. */
static double peak_rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lld kB", &kb) == 1) break;
    if (f) fclose(f);
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return (double)kb / 1024.0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Softmax cross-entropy over (B, C, N) logits, mean over voxels, with its
 * gradient; voxel-parallel, partial sums per block added in order. */
static double ce_loss(const float *z, const int32_t *y, int64_t B, int64_t C, int64_t HW, float *g,
                      int threads)
{
    const int64_t N = B * HW, blk = 4096, nblk = (N + blk - 1) / blk;
    double *part = calloc((size_t)nblk, sizeof(double));
    if (!part) return NAN;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t k = 0; k < nblk; k++) {
        double s = 0.0;
        for (int64_t i = k * blk; i < (k + 1) * blk && i < N; i++) {
            const int64_t b = i / HW, p = i % HW;
            const float *zp = z + b * C * HW + p;
            float *gp = g + b * C * HW + p;
            float m = zp[0];
            for (int64_t c = 1; c < C; c++) m = zp[c * HW] > m ? zp[c * HW] : m;
            float sum = 0.0f;
            for (int64_t c = 0; c < C; c++) sum += expf(zp[c * HW] - m);
            const float lse = m + logf(sum);
            s += (double)(lse - zp[y[i] * HW]);
            for (int64_t c = 0; c < C; c++)
                gp[c * HW] = (expf(zp[c * HW] - lse) - (c == y[i] ? 1.0f : 0.0f)) / (float)N;
        }
        part[k] = s;
    }
    double tot = 0.0;
    for (int64_t k = 0; k < nblk; k++) tot += part[k];
    free(part);
    return tot / (double)N;
}

/* Convolution FLOPs of one training step (forward + backward). */
static double step_flops(int64_t B, const int64_t e[3], int cin, int classes, int depth, int base)
{
    double f = 0.0, w[16];
    for (int s = 0; s < depth; s++) w[s] = (double)((int64_t)base << s);
    for (int s = 0; s < depth; s++) {
        double vx = (double)B * (double)(e[0] >> s) * (double)(e[1] >> s) * (double)(e[2] >> s);
        double c_in = s == 0 ? cin : w[s - 1];
        double f1 = 2.0 * vx * w[s] * c_in * 27, f2 = 2.0 * vx * w[s] * w[s] * 27;
        f += (s == 0 ? 2.0 : 3.0) * f1 + 3.0 * f2; /* the first conv needs no input gradient */
    }
    for (int s = depth - 2; s >= 0; s--) {
        double vx = (double)B * (double)(e[0] >> s) * (double)(e[1] >> s) * (double)(e[2] >> s);
        f += 3.0 * 2.0 * vx * w[s] * w[s + 1];          /* transposed conv: 8 taps / 8 */
        f += 3.0 * 2.0 * vx * w[s] * 2.0 * w[s] * 27;  /* conv on the concatenation */
        f += 3.0 * 2.0 * vx * w[s] * w[s] * 27;
    }
    f += 3.0 * 2.0 * (double)B * (double)(e[0] * e[1] * e[2]) * (double)classes * w[0];
    return f;
}

/* Which kernels run the 3x3x3 convolutions: the library's own AVX-512 ones
 * (src/nn/conv_same.c) where the CPU has AVX-512 (the test the library's
 * sl_isa makes), else im2col and OpenBLAS's sgemm. */
static const char *conv_kernels(void)
{
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "segloss AVX-512";
#endif
    return "im2col + OpenBLAS sgemm";
}

static double sgemm_peak(int threads)
{
    const int n = 2048;
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float));
    float *c = malloc((size_t)n * n * sizeof(float));
    if (!a || !b || !c) return 0.0;
    for (int i = 0; i < n * n; i++) {
        a[i] = (float)((i % 7) - 3) * 0.1f;
        b[i] = (float)((i % 5) - 2) * 0.1f;
    }
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 0.0;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * (double)n * n / (now() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

int main(int argc, char **argv)
{
    int threads = 2, steps = 5, warmup = 1, depth = 4, width = 16, classes = 3, peak = 1;
    int64_t B = 2, e[3] = {48, 48, 48};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "--threads")) threads = atoi(v), i++;
        else if (!strcmp(a, "--batch")) B = atoll(v), i++;
        else if (!strcmp(a, "--size")) {
            long long d, h, w;
            if (sscanf(v, "%lld,%lld,%lld", &d, &h, &w) == 3) e[0] = d, e[1] = h, e[2] = w;
            else e[0] = e[1] = e[2] = atoll(v);
            i++;
        } else if (!strcmp(a, "--steps")) steps = atoi(v), i++;
        else if (!strcmp(a, "--warmup")) warmup = atoi(v), i++;
        else if (!strcmp(a, "--depth")) depth = atoi(v), i++;
        else if (!strcmp(a, "--width")) width = atoi(v), i++;
        else if (!strcmp(a, "--classes")) classes = atoi(v), i++;
        else if (!strcmp(a, "--no-peak")) peak = 0;
        else {
            fprintf(stderr, "usage: %s [--threads N] [--batch B] [--size S|D,H,W] [--steps K] [--warmup W] "
                            "[--depth D] [--width F] [--classes C] [--no-peak]\n", argv[0]);
            return 2;
        }
    }
    if (steps < 1 || steps > 40 || B < 1 || e[0] < 1 || e[1] < 1 || e[2] < 1 || threads < 1 || depth < 1 ||
        depth > 8) {
        fprintf(stderr, "bad arguments (steps 1..40, depth 1..8)\n");
        return 2;
    }
    sl_unet_config cfg = SL_UNET_CONFIG_DEFAULT;
    cfg.spatial_ndim = 3;
    cfg.in_channels = 1;
    cfg.num_classes = classes;
    cfg.depth = depth;
    cfg.base_width = width;
    cfg.seed = 1;
    char msg[256];
    sl_unet *net;
    sl_optim *opt;
    if (sl_unet_create(&net, &cfg, msg, sizeof msg)) {
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    sl_unet_set_threads(net, threads);
    sl_optim_config oc = SL_OPTIM_CONFIG_DEFAULT;
    if (sl_optim_create(&opt, net, &oc, msg, sizeof msg)) {
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    sl_optim_set_threads(opt, threads);
    const int64_t N = e[0] * e[1] * e[2];
    float *img = malloc((size_t)(B * N) * sizeof(float));
    float *logits = malloc((size_t)(B * classes * N) * sizeof(float));
    float *dl = malloc((size_t)(B * classes * N) * sizeof(float));
    int32_t *lab = malloc((size_t)(B * N) * sizeof(int32_t));
    if (!img || !logits || !dl || !lab) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    sl_rng r;
    sl_rng_seed(&r, 42);
    for (int64_t i = 0; i < B * N; i++) {
        img[i] = (float)sl_rng_normal(&r);
        lab[i] = (int32_t)sl_rng_below(&r, (uint64_t)classes);
    }
    sl_dims d = {B, 1, 3, {e[0], e[1], e[2]}};
    double t_fwd = 0, t_loss = 0, t_bwd = 0, t_opt = 0, loss = 0, t_all = 0, best = 1e30, cpu = 0;
    for (int s = 0; s < warmup + steps; s++) {
        double c0 = cpu_now();
        double t0 = now();
        sl_unet_zero_grad(net);
        if (sl_unet_forward(net, img, &d, logits, msg, sizeof msg)) {
            fprintf(stderr, "%s\n", msg);
            return 1;
        }
        double t1 = now();
        loss = ce_loss(logits, lab, B, classes, N, dl, threads);
        double t2 = now();
        sl_unet_backward(net, dl, msg, sizeof msg);
        double t3 = now();
        sl_optim_step(opt, NULL);
        double t4 = now();
        if (s >= warmup) {
            t_fwd += t1 - t0;
            t_loss += t2 - t1;
            t_bwd += t3 - t2;
            t_opt += t4 - t3;
            t_all += t4 - t0;
            best = t4 - t0 < best ? t4 - t0 : best;
            cpu += cpu_now() - c0;
        }
    }
    const double rss = peak_rss_mib();
    const double per_step = t_all / steps;
    const double flops = step_flops(B, e, 1, classes, depth, width);
    double pk = peak ? sgemm_peak(threads) : 0.0;
    printf("{\"threads\": %d, \"batch\": %lld, \"size\": [%lld, %lld, %lld], \"steps\": %d, \"params\": %lld, "
           "\"s_per_step\": %.5f, \"best_s_per_step\": %.5f, \"cpu_s_per_step\": %.5f, \"s_forward\": %.5f, \"s_loss\": %.5f, "
           "\"s_backward\": %.5f, \"s_optim\": %.5f, \"gflop_per_step\": %.3f, \"gflops\": %.2f, "
           "\"sgemm_peak_gflops\": %.2f, \"maxrss_mib\": %.1f, \"final_loss\": %.5f, \"openblas_core\": \"%s\", "
           "\"conv_kernels\": \"%s\"}\n",
           threads, (long long)B, (long long)e[0], (long long)e[1], (long long)e[2], steps,
           (long long)sl_unet_num_params(net), per_step, best, cpu / steps, t_fwd / steps, t_loss / steps, t_bwd / steps,
           t_opt / steps, flops / 1e9, flops / best / 1e9, pk, rss, loss, openblas_get_corename(),
           conv_kernels());
    free(img);
    free(logits);
    free(dl);
    free(lab);
    sl_optim_free(opt);
    sl_unet_free(net);
    return 0;
}
