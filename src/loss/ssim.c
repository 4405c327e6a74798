/*
 * ssim: 1 − SSIM between each class's probability map and its target map,
 * the SSIM term of the hybrid loss of Huang et al. 2020 (UNet 3+, ICASSP;
 * after Qin et al.'s BASNet BCE + SSIM + IoU), with the SSIM of Wang et al.
 * 2004 as MONAI computes it (monai.losses.SSIMLoss over
 * monai.metrics.regression.compute_ssim_and_cs), whose numbers it reproduces
 * with the defaults:
 *
 *     μx = K ⊛ x, μy = K ⊛ y, σx = K ⊛ x² − μx², σy = K ⊛ y² − μy²,
 *     σxy = K ⊛ (x·y) − μx·μy
 *     SSIM = (2μxμy + c1)(2σxy + c2) / ((μx² + μy² + c1)(σx + σy + c2))
 *     c1 = (0.01·R)², c2 = (0.03·R)², data range R = 1 (probabilities)
 *
 * K is the separable Gaussian window: per axis w_j ∝ exp(−((j − (k−1)/2)/σ)²/2),
 * j = 0..k−1, normalised to sum 1 (MONAI's gaussian_1d), k = window (11),
 * σ = sigma (1.5). padding=valid (default, MONAI: a convolution without
 * padding) keeps only the positions where the window fits, and needs every
 * spatial extent ≥ window; padding=zero keeps every voxel with zeros outside
 * (an odd window). No covariance normalisation k^d/(k^d − 1) and no
 * clamping of σ, as MONAI.
 *
 * Per group (sample n, class c): L_nc = 1 − mean over positions of SSIM,
 * then the mean over the included groups of w_c·L_nc (region.c's reduction).
 * With every channel included (include_background=true, the default) that
 * is MONAI's 1 − mean over samples, channels and positions. A single sigmoid
 * channel is the foreground map, as everywhere in segloss.
 *
 * Gradient with respect to x = p, per position, through the five filtered
 * maps: only μx, K ⊛ x² and K ⊛ (x·y) depend on x, with
 *     ∂S/∂μx      = 2μy(A2 − A1)/(B1B2) − 2μx·S·(1/B1 − 1/B2)
 *     ∂S/∂(K⊛x²)  = −S/B2
 *     ∂S/∂(K⊛xy)  = 2·A1/(B1B2)
 * (A1, A2, B1, B2 the four factors above), then dL/dx = Kᵀ a + 2x·Kᵀ b + y·Kᵀ c.
 * Smooth everywhere (B1 ≥ c1 > 0, B2 ≥ c2 − rounding > 0).
 *
 * ignore_index: ignored voxels get p = g = 0 before the filters and receive
 * no gradient; the mean still runs over every position.
 *
 * A voxel mask m (sl_target.mask) weights the positions: the mean over
 * positions becomes Σ_o ω_o·SSIM_o / Σ_o ω_o with ω_o the weight of the
 * voxel at the centre of window o (index o + (window − 1)/2 per axis, rounded
 * down, with padding=valid; o itself with padding=zero). The windows are
 * those of the whole maps (the mask weights, it does not cut the windows, as
 * the distance maps of the boundary losses). A group whose weights are all 0
 * has value 0 and no gradient.
 */
#include <stdlib.h>
#include <string.h>
#include "term.h"

enum { PAD_VALID = 0, PAD_ZERO = 1 };

#define SSIM_K1 0.01
#define SSIM_K2 0.03
#define SSIM_RANGE 1.0

typedef struct {
    int first_axis;
    int64_t ein[3], eout[3]; /* extents of a map and of the SSIM map */
    int64_t S, O;
    int k;
    int64_t off;             /* 0 (valid) or (k − 1)/2 (zero) */
    double w[256];
} ssim_geo;

/* One axis of the separable filter: out[.., o, ..] = Σ_j w_j in[.., o + j − off, ..]
 * (zero outside), or its transpose (adjoint = 1: in and out swap roles, the
 * extents stay those of the forward). */
static void filt_axis(const ssim_geo *G, int a, const double *src, const int64_t *esrc, double *dst,
                      const int64_t *edst, int adjoint)
{
    const int64_t ss[3] = {esrc[1] * esrc[2], esrc[2], 1};
    const int64_t Lsrc = esrc[a];
    for (int64_t z = 0; z < edst[0]; z++)
        for (int64_t y = 0; y < edst[1]; y++)
            for (int64_t x = 0; x < edst[2]; x++) {
                const int64_t pos[3] = {z, y, x};
                int64_t base = 0;
                for (int b = 0; b < 3; b++)
                    if (b != a) base += pos[b] * ss[b];
                double s = 0;
                for (int j = 0; j < G->k; j++) {
                    /* forward: source index o + j − off; transpose: o = i − j + off */
                    int64_t q = adjoint ? pos[a] - j + G->off : pos[a] + j - G->off;
                    if (q >= 0 && q < Lsrc) s += G->w[j] * src[base + q * ss[a]];
                }
                dst[(z * edst[1] + y) * edst[2] + x] = s;
            }
}

/* out (O) = K ⊛ in (S); t1, t2 scratch of S. */
static void filt(const ssim_geo *G, const double *in, double *out, double *t1, double *t2)
{
    int64_t e[3] = {G->ein[0], G->ein[1], G->ein[2]};
    const double *src = in;
    int last = 2;
    for (int a = G->first_axis; a <= last; a++) {
        int64_t e2[3] = {e[0], e[1], e[2]};
        e2[a] = G->eout[a];
        double *dst = a == last ? out : (src == t1 ? t2 : t1);
        filt_axis(G, a, src, e, dst, e2, 0);
        memcpy(e, e2, sizeof e);
        src = dst;
    }
}

/* out (S) = Kᵀ in (O): the axes in reverse order, each transposed. */
static void filt_t(const ssim_geo *G, const double *in, double *out, double *t1, double *t2)
{
    int64_t e[3] = {G->eout[0], G->eout[1], G->eout[2]};
    const double *src = in;
    for (int a = 2; a >= G->first_axis; a--) {
        int64_t e2[3] = {e[0], e[1], e[2]};
        e2[a] = G->ein[a];
        double *dst = a == G->first_axis ? out : (src == t1 ? t2 : t1);
        filt_axis(G, a, src, e, dst, e2, 1);
        memcpy(e, e2, sizeof e);
        src = dst;
    }
}

/* One group: returns 1 − mean SSIM (weighted by pw (O) when not NULL); with
 * dp, adds gscale·dL/dp. buf: 12·S doubles. */
static double ssim_group(const ssim_geo *G, const double *x, const double *y, const unsigned char *valid,
                         const double *pw, double gscale, float *dp, double *buf)
{
    const int64_t S = G->S, O = G->O;
    const double c1 = (SSIM_K1 * SSIM_RANGE) * (SSIM_K1 * SSIM_RANGE), c2 = (SSIM_K2 * SSIM_RANGE) * (SSIM_K2 * SSIM_RANGE);
    double *t1 = buf, *t2 = buf + S, *prod = buf + 2 * S;
    double *mx = buf + 3 * S, *my = buf + 4 * S, *mxx = buf + 5 * S, *myy = buf + 6 * S, *mxy = buf + 7 * S;
    filt(G, x, mx, t1, t2);
    filt(G, y, my, t1, t2);
    for (int64_t i = 0; i < S; i++) prod[i] = x[i] * x[i];
    filt(G, prod, mxx, t1, t2);
    for (int64_t i = 0; i < S; i++) prod[i] = y[i] * y[i];
    filt(G, prod, myy, t1, t2);
    for (int64_t i = 0; i < S; i++) prod[i] = x[i] * y[i];
    filt(G, prod, mxy, t1, t2);
    double sum = 0, W = (double)O;
    if (pw) {
        W = 0;
        for (int64_t o = 0; o < O; o++) W += pw[o];
        if (!(W > 0)) return 0; /* nothing weighs: value 0, no gradient */
    }
    const double k0 = -gscale / W; /* d(value)/d(SSIM at a position) of weight 1 */
    for (int64_t o = 0; o < O; o++) {
        const double wo = pw ? pw[o] : 1.0, k = k0 * wo;
        double ux = mx[o], uy = my[o];
        double sx = mxx[o] - ux * ux, sy = myy[o] - uy * uy, sxy = mxy[o] - ux * uy;
        double A1 = 2 * ux * uy + c1, A2 = 2 * sxy + c2, B1 = ux * ux + uy * uy + c1, B2 = sx + sy + c2;
        double s = A1 * A2 / (B1 * B2);
        sum += wo * s;
        if (dp) {
            /* overwrite the filtered maps with the three adjoint inputs */
            mx[o] = k * (2 * uy * (A2 - A1) / (B1 * B2) - 2 * ux * s * (1 / B1 - 1 / B2));
            mxx[o] = k * (-s / B2);
            mxy[o] = k * (2 * A1 / (B1 * B2));
        }
    }
    if (dp) {
        double *ga = buf + 8 * S, *gb = buf + 9 * S, *gc = buf + 10 * S;
        filt_t(G, mx, ga, t1, t2);
        filt_t(G, mxx, gb, t1, t2);
        filt_t(G, mxy, gc, t1, t2);
        for (int64_t i = 0; i < S; i++)
            if (!valid || valid[i]) dp[i] += (float)(ga[i] + 2 * x[i] * gb[i] + y[i] * gc[i]);
    }
    return 1 - sum / W;
}

/* Position weights of sample n: the mask at each window's centre voxel. */
static void ssim_position_weights(const ssim_geo *G, const float *mask, double *pw)
{
    const int64_t sh = G->off ? 0 : (G->k - 1) / 2; /* padding=valid: window o starts at o */
    int64_t sa[3] = {0, 0, 0};
    for (int a = 0; a < 3; a++) sa[a] = a < G->first_axis ? 0 : sh;
    int64_t o = 0;
    for (int64_t z = 0; z < G->eout[0]; z++)
        for (int64_t y = 0; y < G->eout[1]; y++)
            for (int64_t x = 0; x < G->eout[2]; x++, o++)
                pw[o] = mask[((z + sa[0]) * G->ein[1] + (y + sa[1])) * G->ein[2] + (x + sa[2])];
}

static sl_status eval_ssim(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S, M = N * C;
    const int has_ignore = !isnan(pr->ignore_index) && cx->target->kind == SL_TARGET_LABELS;
    ssim_geo G;
    memset(&G, 0, sizeof G);
    G.first_axis = 3 - cx->dims.spatial_ndim;
    G.k = pr->window;
    G.off = pr->mode == PAD_ZERO ? (pr->window - 1) / 2 : 0;
    G.O = 1;
    for (int a = 0; a < 3; a++) {
        G.ein[a] = a < G.first_axis ? 1 : cx->dims.spatial[a - G.first_axis];
        G.eout[a] = a < G.first_axis || pr->mode == PAD_ZERO ? G.ein[a] : G.ein[a] - G.k + 1;
        if (G.eout[a] < 1)
            return sl_errf(msg, msglen, SL_ESHAPE,
                           "ssim: window %d does not fit spatial axis %d of extent %lld with padding=valid "
                           "(use a smaller window or padding=zero)",
                           G.k, a - G.first_axis, (long long)G.ein[a]);
        G.O *= G.eout[a];
    }
    G.S = S;
    double wsum = 0;
    for (int j = 0; j < G.k; j++) {
        double d = ((double)j - (G.k - 1) / 2.0) / pr->sigma;
        G.w[j] = exp(-0.5 * d * d);
        wsum += G.w[j];
    }
    for (int j = 0; j < G.k; j++) G.w[j] /= wsum;

    sl_region reg;
    if (sl_region_alloc(&reg, M, 0) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "ssim: out of memory");
    double *lg = sl_calloc(2 * M, sizeof(double));
    if (!lg) {
        sl_region_free(&reg);
        return sl_errf(msg, msglen, SL_ENOMEM, "ssim: out of memory");
    }
    double *dl = lg + M;
    /* the mean over groups is linear: its coefficients are known before the values */
    double dummy;
    sl_status st = sl_region_mean(cx, pr, &reg, lg, dl, &dummy, msg, msglen);
    int oom = 0;
    if (st == SL_OK) {
#pragma omp parallel for num_threads(cx->threads) schedule(dynamic, 1)
        for (int64_t m = 0; m < M; m++) {
            int failed;
#pragma omp atomic read
            failed = oom;
            if (failed || (dl[m] == 0 && !cx->cls)) continue; /* reduction=none wants every value */
            const int masked = cx->target->mask != NULL;
            double *buf = sl_malloc((masked ? 14 : 13) * S, sizeof(double)); /* O <= S: pw fits in S */
            unsigned char *valid = has_ignore ? sl_malloc(S, 1) : NULL;
            if (!buf || (has_ignore && !valid)) {
#pragma omp atomic write
                oom = 1;
                free(buf), free(valid);
                continue;
            }
            double *x = buf + 11 * S, *y = buf + 12 * S, *pw = masked ? buf + 13 * S : NULL;
            const int64_t n = m / C, c = m % C;
            if (pw) ssim_position_weights(&G, cx->target->mask + n * S, pw);
            const float *p = cx->p + m * S;
            for (int64_t s = 0; s < S; s++) {
                int ok = !has_ignore || sl_valid(cx, pr, n, s);
                if (valid) valid[s] = (unsigned char)ok;
                x[s] = ok ? p[s] : 0.0;
                y[s] = ok ? sl_g(cx, n, c, s) : 0.0;
            }
            lg[m] = ssim_group(&G, x, y, valid, pw, cx->scale * dl[m], cx->dp ? cx->dp + m * S : NULL, buf);
            free(buf), free(valid);
        }
        if (oom) st = sl_errf(msg, msglen, SL_ENOMEM, "ssim: out of memory");
        else st = sl_region_mean(cx, pr, &reg, lg, dl, value, msg, msglen);
    }
    free(lg);
    sl_region_free(&reg);
    return st;
}

static sl_status validate_ssim(const sl_params *p, char *msg, size_t msglen)
{
    if (p->mode == PAD_ZERO && p->window % 2 == 0)
        return sl_errf(msg, msglen, SL_EINVAL, "ssim: padding=zero needs an odd window (got window=%d)", p->window);
    return SL_OK;
}

static const sl_key ssim_keys[] = {
    SL_KEY_ACTIVATION,
    {"include_background", SL_KEY_BOOL, SL_P(include_background), 1, 0, 1, NULL,
     "false drops class 0 from the average (C > 1); MONAI averages every channel"},
    {"weight", SL_KEY_WEIGHT, SL_P(weight), 0, 0, 1e6, NULL, "class weights [w0,...] or inverse|median"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels get p = g = 0"},
    {"window", SL_KEY_INT, SL_P(window), 11, 1, 255, NULL, "Gaussian window size per axis"},
    {"sigma", SL_KEY_NUMBER, SL_P(sigma), 1.5, 1e-3, 1e3, NULL, "Gaussian standard deviation (voxels)"},
    {"padding", SL_KEY_ENUM, SL_P(mode), PAD_VALID, 0, 0, "valid|zero",
     "valid: positions where the window fits (MONAI); zero: every voxel, zeros outside"},
    SL_KEY_END};

const sl_term_class sl_loss_ssim = {
    {"ssim", "boundary", "1 − SSIM(p_c, g_c) with a Gaussian window, mean over samples and classes",
     "Huang et al. 2020 (UNet 3+ hybrid loss), SSIM of Wang et al. 2004; matches MONAI SSIMLoss"},
    ssim_keys, SL_TAKES_MASK | SL_PER_CLASS, validate_ssim, eval_ssim, NULL, NULL};
