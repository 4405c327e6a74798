/*
 * hausdorff_er: the erosion-based Hausdorff loss of Karimi & Salcudean 2019
 * ("Reducing the Hausdorff distance in medical image segmentation with
 * convolutional neural networks", IEEE TMI 39(2)), in the form of kornia's
 * HausdorffERLoss (2-D) / HausdorffERLoss3D (kornia.losses.hausdorff), whose
 * numbers it reproduces.
 *
 * Per group (sample n, class c), with p the probabilities and g the target
 * of class c:
 *
 *     b_0 = (p − g)²
 *     for k = 1 .. K  (K = erosions):
 *         r_k = B ⊛ b_{k−1} − 0.5      B = the cross: the voxel and its 2·ndim
 *                                      face neighbours, each weighing 1/(2·ndim+1)
 *                                      (0.2 in 2-D, 1/7 in 3-D), zero padding
 *         e_k = max(r_k, 0)
 *         b_k = (e_k − min e_k) / (max e_k − min e_k)   (min/max over the map;
 *               b_k = e_k when max e_k = min e_k)
 *     L_nc = mean over the voxels of Σ_k k^α · b_k
 *
 * and the loss is the mean over the included groups of w_c·L_nc (region.c's
 * reduction). kornia averages over every channel, background included: that
 * is include_background=true, the default. kornia's loops count k from 0
 * and weigh (k+1)^α: the same weights 1^α .. K^α.
 *
 * Where we differ from kornia, and why:
 *   - a single sigmoid channel (C = 1) is the foreground (label 1), as
 *     everywhere in segloss; kornia compares channel i with target == i, so
 *     its C = 1 compares with the background;
 *   - kornia takes its input as given; we apply the activation first (use
 *     activation=none to pass probabilities);
 *   - soft targets are allowed (b_0 = (p − g)² is defined for them);
 *   - 1-D data uses the same rule (the cross has weight 1/3);
 *   - ignore_index: ignored voxels get p = g = 0 (so no error there) and are
 *     left out of the mean over voxels; the erosions still run over the whole
 *     map and the min/max normalisation sees every voxel.
 *   - a voxel mask m (sl_target.mask) weights the mean over voxels:
 *     L_nc = Σ_i m_i·Σ_k k^α b_k,i / Σ_i m_i; as with ignore_index the
 *     erosions and the normalisation run over the whole map (the mask
 *     weights, it does not cut the geometry). All weights 0: L_nc = 0.
 *
 * Gradient (exact, reverse mode through the K steps). The clamp passes the
 * gradient where r_k ≥ 0 (PyTorch's `e[e < 0] = 0` keeps r = 0). The
 * normalisation depends on max and min of the map: its subgradient goes to
 * one arg-max and one arg-min voxel, the first in raster order (lowest linear
 * index) among ties, as PyTorch's max over a flattened map does. These are
 * the non-smooth points of the loss; between them it is smooth.
 */
#include <stdlib.h>
#include <string.h>
#include "term.h"

/* Spatial extents padded to 3 axes (leading 1s) and which axes are real. */
typedef struct {
    int64_t ext[3], stride[3], S;
    int first_axis; /* 3 − ndim */
} grid3;

static grid3 grid_of(const sl_dims *d)
{
    grid3 g;
    int nd = d->spatial_ndim;
    g.first_axis = 3 - nd;
    for (int a = 0; a < 3; a++) g.ext[a] = a < g.first_axis ? 1 : d->spatial[a - g.first_axis];
    g.stride[2] = 1;
    g.stride[1] = g.ext[2];
    g.stride[0] = g.ext[1] * g.ext[2];
    g.S = g.ext[0] * g.ext[1] * g.ext[2];
    return g;
}

/* out = B ⊛ in: the cross with weight wgt, zero padding. Self-adjoint (the
 * cross is symmetric), so it also back-propagates. in and out are (S). */
static void cross_conv(const grid3 *g, const double *in, double *out, double wgt)
{
    for (int64_t z = 0; z < g->ext[0]; z++)
        for (int64_t y = 0; y < g->ext[1]; y++)
            for (int64_t x = 0; x < g->ext[2]; x++) {
                int64_t i = z * g->stride[0] + y * g->stride[1] + x;
                int64_t pos[3] = {z, y, x};
                double s = in[i];
                for (int a = g->first_axis; a < 3; a++) {
                    if (pos[a] > 0) s += in[i - g->stride[a]];
                    if (pos[a] + 1 < g->ext[a]) s += in[i + g->stride[a]];
                }
                out[i] = wgt * s;
            }
}

typedef struct {
    double lo, hi;     /* min and max of e_k */
    int64_t ilo, ihi;  /* their first positions */
    int normalised;    /* hi != lo */
} er_norm;

/*
 * One group: value L (mean over valid voxels of Σ k^α b_k, weighted by mw)
 * and, when dp is not NULL, dp += gscale · dL/dp. p, g, valid, mw are the
 * group's maps (S); valid may be NULL (all valid), mw NULL (weights 1).
 * work holds (K + 3)·S doubles.
 */
static double er_group(const grid3 *gr, const sl_params *pr, const float *p, const double *gmap,
                       const unsigned char *valid, const float *mw, double gscale, float *dp, double *work,
                       er_norm *nm)
{
    const int64_t S = gr->S;
    const int K = pr->iters;
    const double wgt = 1.0 / (2.0 * (double)(3 - gr->first_axis) + 1.0);
    double *r = work;               /* r_k for k = 1..K at r + (k−1)·S */
    double *b = work + (int64_t)K * S; /* current b */
    double *t = b + S, *u = t + S;  /* scratch */
    double nvalid = 0; /* Σ of the weights of the valid voxels */
    for (int64_t i = 0; i < S; i++) {
        double d = (double)p[i] - gmap[i];
        b[i] = d * d;
        if (!valid || valid[i]) nvalid += mw ? mw[i] : 1.0;
    }
    if (!(nvalid > 0)) return 0;
    double L = 0;
    for (int k = 1; k <= K; k++) {
        double *rk = r + (int64_t)(k - 1) * S;
        cross_conv(gr, b, rk, wgt);
        er_norm *n = &nm[k - 1];
        n->lo = INFINITY, n->hi = -INFINITY, n->ilo = n->ihi = 0;
        for (int64_t i = 0; i < S; i++) {
            rk[i] -= 0.5;
            double e = rk[i] > 0 ? rk[i] : 0.0;
            if (e < n->lo) n->lo = e, n->ilo = i;
            if (e > n->hi) n->hi = e, n->ihi = i;
        }
        n->normalised = n->hi != n->lo;
        const double span = n->hi - n->lo, wk = pow((double)k, pr->alpha);
        double acc = 0;
        for (int64_t i = 0; i < S; i++) {
            double e = rk[i] > 0 ? rk[i] : 0.0;
            b[i] = n->normalised ? (e - n->lo) / span : e;
            if (!valid || valid[i]) acc += (mw ? mw[i] : 1.0) * b[i];
        }
        L += wk * acc;
    }
    L /= nvalid;
    if (!dp || gscale == 0) return L;

    /* Reverse pass. t = dL/db_k (carried down), u = scratch. */
    const double c0 = gscale / nvalid;
    memset(t, 0, (size_t)S * sizeof(double));
    for (int k = K; k >= 1; k--) {
        const double *rk = r + (int64_t)(k - 1) * S;
        const er_norm *n = &nm[k - 1];
        const double wk = pow((double)k, pr->alpha) * c0;
        for (int64_t i = 0; i < S; i++)
            if (!valid || valid[i]) t[i] += wk * (mw ? mw[i] : 1.0);
        /* through the normalisation: u = dL/de_k */
        if (n->normalised) {
            const double span = n->hi - n->lo;
            double to_lo = 0, to_hi = 0;
            for (int64_t i = 0; i < S; i++) {
                double e = rk[i] > 0 ? rk[i] : 0.0;
                u[i] = t[i] / span;
                to_lo += t[i] * (e - n->hi);
                to_hi -= t[i] * (e - n->lo);
            }
            u[n->ilo] += to_lo / (span * span);
            u[n->ihi] += to_hi / (span * span);
        } else {
            memcpy(u, t, (size_t)S * sizeof(double));
        }
        /* through the clamp (r = 0 passes, as PyTorch's e[e < 0] = 0) */
        for (int64_t i = 0; i < S; i++)
            if (rk[i] < 0) u[i] = 0;
        /* through the cross (self-adjoint): dL/db_{k−1} */
        cross_conv(gr, u, t, wgt);
    }
    for (int64_t i = 0; i < S; i++)
        if (!valid || valid[i]) dp[i] += (float)(t[i] * 2.0 * ((double)p[i] - gmap[i]));
    return L;
}

static sl_status eval_hausdorff_er(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S, G = N * C;
    const grid3 gr = grid_of(&cx->dims);
    const int has_ignore = !isnan(pr->ignore_index) && cx->target->kind == SL_TARGET_LABELS;
    sl_region reg;
    if (sl_region_alloc(&reg, G, 0) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "hausdorff_er: out of memory");
    double *lg = sl_calloc(2 * G, sizeof(double));
    if (!lg) {
        sl_region_free(&reg);
        return sl_errf(msg, msglen, SL_ENOMEM, "hausdorff_er: out of memory");
    }
    double *dl = lg + G;
    /* The mean over groups is linear in the group values: its coefficients
     * (the class weights over the group count) are known before the values. */
    double dummy;
    sl_status st = sl_region_mean(cx, pr, &reg, lg, dl, &dummy, msg, msglen);
    int oom = 0;
    if (st == SL_OK) {
#pragma omp parallel for num_threads(cx->threads) schedule(dynamic, 1)
        for (int64_t gi = 0; gi < G; gi++) {
            int failed;
#pragma omp atomic read
            failed = oom;
            /* an excluded group (or weight 0) adds nothing to the value or the gradient */
            if (failed || (dl[gi] == 0 && !cx->cls)) continue; /* reduction=none wants every value */
            const int64_t n = gi / C, c = gi % C;
            double *work = sl_malloc((int64_t)(pr->iters + 4) * S, sizeof(double));
            unsigned char *valid = has_ignore ? sl_malloc(S, 1) : NULL;
            er_norm *nm = sl_malloc(pr->iters, sizeof(er_norm));
            float *pz = has_ignore ? sl_malloc(S, sizeof(float)) : NULL;
            if (!work || !nm || (has_ignore && (!valid || !pz))) {
#pragma omp atomic write
                oom = 1;
                free(work), free(valid), free(nm), free(pz);
                continue;
            }
            double *gmap = work + (int64_t)(pr->iters + 3) * S;
            const float *p = cx->p + gi * S;
            for (int64_t s = 0; s < S; s++) {
                int ok = !has_ignore || sl_valid(cx, pr, n, s);
                if (valid) valid[s] = (unsigned char)ok;
                if (pz) pz[s] = ok ? p[s] : 0.0f;
                gmap[s] = ok ? sl_g(cx, n, c, s) : 0.0;
            }
            const float *mw = cx->target->mask ? cx->target->mask + n * S : NULL;
            lg[gi] = er_group(&gr, pr, pz ? pz : p, gmap, valid, mw, cx->scale * dl[gi],
                              cx->dp ? cx->dp + gi * S : NULL, work, nm);
            free(work), free(valid), free(nm), free(pz);
        }
        if (oom) st = sl_errf(msg, msglen, SL_ENOMEM, "hausdorff_er: out of memory");
        else st = sl_region_mean(cx, pr, &reg, lg, dl, value, msg, msglen);
    }
    free(lg);
    sl_region_free(&reg);
    return st;
}

static const sl_key hausdorff_er_keys[] = {
    SL_KEY_ACTIVATION,
    {"include_background", SL_KEY_BOOL, SL_P(include_background), 1, 0, 1, NULL,
     "false drops class 0 from the average (C > 1); kornia averages every channel"},
    {"weight", SL_KEY_WEIGHT, SL_P(weight), 0, 0, 1e6, NULL, "class weights [w0,...] or inverse|median"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL,
     "label whose voxels get p = g = 0 and leave the mean"},
    {"alpha", SL_KEY_NUMBER, SL_P(alpha), 2, 0, 10, NULL, "the k-th erosion weighs k^alpha"},
    {"erosions", SL_KEY_INT, SL_P(iters), 10, 1, 100, NULL, "number of erosions K"},
    SL_KEY_END};

const sl_term_class sl_loss_hausdorff_er = {
    {"hausdorff_er", "boundary",
     "erosion-based Hausdorff loss: mean of Σ_k k^alpha · (normalised k-th soft erosion of (p − g)²)",
     "Karimi & Salcudean 2019 (IEEE TMI); matches kornia HausdorffERLoss / HausdorffERLoss3D"},
    hausdorff_er_keys, SL_TAKES_MASK | SL_PER_CLASS, NULL, eval_hausdorff_er, NULL, NULL};
