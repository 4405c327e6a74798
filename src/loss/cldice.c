/*
 * cldice: 1 − soft clDice (Shit et al. 2021, "clDice — a novel topology-
 * preserving loss function for tubular structure segmentation", CVPR), with
 * the paper's soft skeleton (its Algorithm 1) and MONAI's SoftclDiceLoss
 * conventions (monai.losses.cldice), which it reproduces with
 * include_background=false, batch=true, pool_classes=true (the defaults
 * smooth_nr = smooth_dr = 1 are MONAI's smooth).
 *
 * Soft morphology on a map x (per sample and class):
 *     erode(x)  = min over the voxel and its 2·ndim face neighbours
 *                 (MONAI: the min of 3×1 and 1×3 min-pools, i.e. the cross)
 *     dilate(x) = max over the 3^ndim box
 *     open(x)   = dilate(erode(x))
 * both over the neighbours inside the image (pooling pads with ∓inf).
 * Soft skeleton with K = iters:
 *     skel = relu(x − open(x))
 *     repeat K times:  x = erode(x);  δ = relu(x − open(x));
 *                      skel = skel + relu(δ − skel·δ)
 *
 * With S_p = skel(p), S_g = skel(g), per group:
 *     Tprec = (Σ S_p·g + s_nr) / (Σ S_p + s_dr)
 *     Tsens = (Σ S_g·p + s_nr) / (Σ S_g + s_dr)
 *     L     = 1 − 2·Tprec·Tsens / (Tprec + Tsens)     (L = 1 when both are 0)
 * A group is (sample, class) by default, (class) with batch=true; with
 * pool_classes=true the sums of the included classes are added first, so a
 * group is a sample (or the whole batch). Then, as the other region losses,
 * the mean over included groups of w_c·L (pool_classes: the plain mean over
 * groups; it refuses class weights). Defaults follow docs/losses.md's
 * region conventions: per (sample, class), background included.
 *
 * Gradient: exact reverse mode through the skeleton. min and max route the
 * gradient to one voxel of their window, the arg-min / arg-max; among equal
 * values the first in raster order (lowest linear index) wins, which is the
 * voxel PyTorch's max_pool picks within a window. Ties between different
 * voxels only arise with exactly equal probabilities; those are the
 * non-smooth points, as are the zeros of the relus, where the gradient is 0
 * (PyTorch's relu). The target's skeleton is a constant.
 *
 * ignore_index: ignored voxels get p = g = 0 before the skeletons (so they
 * add nothing to any sum) and receive no gradient.
 *
 * A voxel mask m (sl_target.mask) weights the four sums: Σ m·S_p·g,
 * Σ m·S_p, Σ m·S_g·p, Σ m·S_g. The skeletons are those of the whole maps
 * (the mask weights, it does not cut the morphology), so a voxel of weight
 * 0 can still receive gradient through its neighbours' skeleton values.
 */
#include <stdlib.h>
#include <string.h>
#include "term.h"

typedef struct {
    int64_t ext[3], stride[3], S;
    int first_axis;
    /* neighbour tables in ascending linear offset: the cross (erosion) and the box (dilation) */
    int ncross, nbox;
    int dcross[7][3], dbox[27][3];
    int64_t ocross[7], obox[27];
} grid3;

static grid3 grid_of(const sl_dims *d)
{
    grid3 g;
    memset(&g, 0, sizeof g);
    g.first_axis = 3 - d->spatial_ndim;
    for (int a = 0; a < 3; a++) g.ext[a] = a < g.first_axis ? 1 : d->spatial[a - g.first_axis];
    g.stride[2] = 1;
    g.stride[1] = g.ext[2];
    g.stride[0] = g.ext[1] * g.ext[2];
    g.S = g.ext[0] * g.ext[1] * g.ext[2];
    /* cross: −axis0, −axis1, −axis2, centre, +axis2, +axis1, +axis0 */
    for (int a = g.first_axis; a < 3; a++) {
        int *dd = g.dcross[g.ncross];
        dd[a] = -1;
        g.ocross[g.ncross++] = -g.stride[a];
    }
    g.ocross[g.ncross++] = 0;
    for (int a = 2; a >= g.first_axis; a--) {
        int *dd = g.dcross[g.ncross];
        dd[a] = 1;
        g.ocross[g.ncross++] = g.stride[a];
    }
    /* box, lexicographic in (axis0, axis1, axis2) = ascending linear offset */
    int lo[3], hi[3];
    for (int a = 0; a < 3; a++) lo[a] = a < g.first_axis ? 0 : -1, hi[a] = a < g.first_axis ? 0 : 1;
    for (int z = lo[0]; z <= hi[0]; z++)
        for (int y = lo[1]; y <= hi[1]; y++)
            for (int x = lo[2]; x <= hi[2]; x++) {
                g.dbox[g.nbox][0] = z, g.dbox[g.nbox][1] = y, g.dbox[g.nbox][2] = x;
                g.obox[g.nbox++] = z * g.stride[0] + y * g.stride[1] + x;
            }
    return g;
}

/* out[i] = min (erosion, is_max = 0) or max (dilation) of in over the table's
 * neighbours inside the image; code[i] (if not NULL) = the table index of the
 * first voxel (lowest linear index) attaining it. */
static void morph(const grid3 *g, int is_max, const double *in, double *out, unsigned char *code)
{
    const int n = is_max ? g->nbox : g->ncross;
    const int(*dd)[3] = is_max ? g->dbox : g->dcross;
    const int64_t *off = is_max ? g->obox : g->ocross;
    for (int64_t z = 0; z < g->ext[0]; z++)
        for (int64_t y = 0; y < g->ext[1]; y++)
            for (int64_t x = 0; x < g->ext[2]; x++) {
                const int64_t i = z * g->stride[0] + y * g->stride[1] + x;
                const int64_t pos[3] = {z, y, x};
                double best = is_max ? -INFINITY : INFINITY;
                int bc = 0;
                for (int k = 0; k < n; k++) {
                    int inside = 1;
                    for (int a = 0; a < 3; a++) {
                        int64_t q = pos[a] + dd[k][a];
                        inside &= q >= 0 && q < g->ext[a];
                    }
                    if (!inside) continue;
                    double v = in[i + off[k]];
                    if (is_max ? v > best : v < best) best = v, bc = k;
                }
                out[i] = best;
                if (code) code[i] = (unsigned char)bc;
            }
}

/* What the reverse pass needs from a forward skeleton (K = iters):
 * img_k (k = 0..K+1; img_{k+1} = erode(img_k)), open_k = dilate(img_{k+1})
 * (k = 0..K), skel_k (k = 0..K), and the erosion / dilation choices. */
typedef struct {
    int K;
    double *img, *open, *skel;
    unsigned char *ecode, *dcode;
} tape;

static double relu(double v) { return v > 0 ? v : 0.0; }

/* Soft skeleton of x into skel (S). With t, records the tape (skel then
 * points into it); without, uses work (3·S) and writes skel. */
static void skeleton(const grid3 *g, int K, const double *x, double *skel, double *work, tape *t)
{
    const int64_t S = g->S;
    double *img = t ? t->img : work, *er = t ? NULL : work + S, *op = t ? NULL : work + 2 * S;
    memcpy(img, x, (size_t)S * sizeof(double));
    for (int k = 0; k <= K; k++) {
        const double *cur = t ? t->img + (int64_t)k * S : img;
        double *e = t ? t->img + (int64_t)(k + 1) * S : er;
        double *o = t ? t->open + (int64_t)k * S : op;
        double *sk = t ? t->skel + (int64_t)k * S : skel;
        const double *prev = t ? (k ? t->skel + (int64_t)(k - 1) * S : NULL) : skel;
        morph(g, 0, cur, e, t ? t->ecode + (int64_t)k * S : NULL);
        morph(g, 1, e, o, t ? t->dcode + (int64_t)k * S : NULL);
        for (int64_t i = 0; i < S; i++) {
            double d = relu(cur[i] - o[i]);
            sk[i] = k == 0 ? d : prev[i] + relu(d - prev[i] * d);
        }
        if (!t) memcpy(img, er, (size_t)S * sizeof(double)); /* next: x = erode(x) */
    }
    if (t) memcpy(skel, t->skel + (int64_t)K * S, (size_t)S * sizeof(double));
}

/* gx = d/dx of Σ gsk·skel(x), from the tape. gsk is consumed; buf is 3·S. */
static void skeleton_backward(const grid3 *g, const tape *t, double *gsk, double *gx, double *buf)
{
    const int64_t S = g->S;
    const int K = t->K;
    double *gb = buf, *gE = buf + S, *R = gx;
    memset(R, 0, (size_t)S * sizeof(double)); /* d/d img_{K+1}: unused above */
    for (int k = K; k >= 0; k--) {
        const double *img = t->img + (int64_t)k * S, *op = t->open + (int64_t)k * S;
        if (k > 0) {
            const double *prev = t->skel + (int64_t)(k - 1) * S;
            for (int64_t i = 0; i < S; i++) {
                double b = img[i] - op[i], d = relu(b), c = d - prev[i] * d;
                double gc = c > 0 ? gsk[i] : 0.0;
                gb[i] = b > 0 ? gc * (1 - prev[i]) : 0.0;
                gsk[i] -= gc * d;
            }
        } else {
            for (int64_t i = 0; i < S; i++) gb[i] = img[i] - op[i] > 0 ? gsk[i] : 0.0;
        }
        /* open_k = dilate(E_k), E_k = img_{k+1}: d/dE_k = R (from above) + dilateᵀ(−gb) */
        memcpy(gE, R, (size_t)S * sizeof(double));
        const unsigned char *dc = t->dcode + (int64_t)k * S, *ec = t->ecode + (int64_t)k * S;
        for (int64_t i = 0; i < S; i++) gE[i + g->obox[dc[i]]] -= gb[i];
        /* d/d img_k = gb (direct) + erodeᵀ(gE) */
        memcpy(R, gb, (size_t)S * sizeof(double));
        for (int64_t i = 0; i < S; i++) R[i + g->ocross[ec[i]]] += gE[i];
    }
}

enum { NS = 4 }; /* Σ S_p·g, Σ S_p, Σ S_g·p, Σ S_g */

static void load_maps(const sl_ctx *cx, const sl_params *pr, int has_ignore, int64_t n, int64_t c, double *p,
                      double *gm)
{
    const float *pp = cx->p + (n * cx->C + c) * cx->S;
    for (int64_t s = 0; s < cx->S; s++) {
        int ok = !has_ignore || sl_valid(cx, pr, n, s);
        p[s] = ok ? pp[s] : 0.0;
        gm[s] = ok ? sl_g(cx, n, c, s) : 0.0;
    }
}

/* L and its partials with respect to Tprec and Tsens. */
static double cl_value(double tp, double ts, double *dtp, double *dts)
{
    double s = tp + ts;
    if (!(s > 0)) {
        *dtp = *dts = 0;
        return 1.0;
    }
    *dtp = -2 * ts * ts / (s * s);
    *dts = -2 * tp * tp / (s * s);
    return 1 - 2 * tp * ts / s;
}

/*
 * auto_iters: the largest city-block distance from a target voxel (g > 0.5)
 * to the nearest background voxel of its map, over the maps in use. An
 * object survives exactly that many erosions by the cross minus one, so a
 * skeleton with K >= it reaches the core of every object; with fewer, the
 * interior of a thick object adds nothing to S_g and a missed object of
 * radius > K barely moves Tsens. Maps without background are skipped (the
 * erosion never shrinks them). Two raster passes over face neighbours give
 * the exact city-block distance.
 */
static int object_depth(const sl_ctx *cx, const sl_params *pr, int has_ignore, const grid3 *gr, int64_t first,
                        double *p, double *gm, int32_t *d)
{
    const int64_t S = gr->S, C = cx->C;
    const int32_t big = INT32_MAX / 2;
    int32_t depth = 0;
    for (int64_t m = 0; m < cx->N * C; m++) {
        if (m % C < first) continue;
        load_maps(cx, pr, has_ignore, m / C, m % C, p, gm);
        int any_bg = 0;
        for (int64_t i = 0; i < S; i++) any_bg |= !(d[i] = gm[i] > 0.5 ? big : 0);
        if (!any_bg) continue;
        for (int pass = 0; pass < 2; pass++)
            for (int64_t k = 0; k < S; k++) {
                const int64_t i = pass ? S - 1 - k : k;
                int64_t rest = i;
                for (int a = 0; a < 3; a++) {
                    const int64_t co = rest / gr->stride[a];
                    rest -= co * gr->stride[a];
                    if (a < gr->first_axis) continue;
                    if (!pass && co > 0 && d[i - gr->stride[a]] + 1 < d[i]) d[i] = d[i - gr->stride[a]] + 1;
                    if (pass && co < gr->ext[a] - 1 && d[i + gr->stride[a]] + 1 < d[i]) d[i] = d[i + gr->stride[a]] + 1;
                }
            }
        for (int64_t i = 0; i < S; i++)
            if (d[i] > depth) depth = d[i];
    }
    return depth;
}

static sl_status eval_cldice(sl_term *t, const sl_ctx *cx, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    const int64_t N = cx->N, C = cx->C, S = cx->S, M = N * C;
    const int pool = pr->pool_classes;
    const int64_t first = (!pr->include_background && C > 1) ? 1 : 0;
    const int has_ignore = !isnan(pr->ignore_index) && cx->target->kind == SL_TARGET_LABELS;
    const grid3 gr = grid_of(&cx->dims);
    int K = pr->iters;
    if (pr->auto_iters) {
        double *buf = sl_malloc(2 * S, sizeof(double));
        int32_t *d = sl_malloc(S, sizeof(int32_t));
        if (!buf || !d) {
            free(buf), free(d);
            return sl_errf(msg, msglen, SL_ENOMEM, "cldice: out of memory");
        }
        int depth = object_depth(cx, pr, has_ignore, &gr, first, buf, buf + S, d);
        free(buf), free(d);
        if (depth > K) K = depth < 100 ? depth : 100;
    }
    const int64_t G = pool ? (pr->batch ? 1 : N) : (pr->batch ? C : M);
    double *sums = sl_calloc(M * NS + G * (NS + 4), sizeof(double));
    if (!sums) return sl_errf(msg, msglen, SL_ENOMEM, "cldice: out of memory");
    double *gs = sums + M * NS;   /* [G][NS] */
    double *lg = gs + G * NS;     /* [G] */
    double *dl = lg + G;          /* [G] */
    double *kk = dl + G;          /* [G][2]: dL/dTprec, dL/dTsens times dl and the term weight */
    int oom = 0;

#define GROUP_OF(m) (pool ? (pr->batch ? 0 : (m) / C) : (pr->batch ? (m) % C : (m)))
#define USED(m) (!pool || (m) % C >= first)

    /* pass 1: the four sums of every map */
#pragma omp parallel for num_threads(cx->threads) schedule(dynamic, 1)
    for (int64_t m = 0; m < M; m++) {
        int failed;
#pragma omp atomic read
        failed = oom;
        if (failed || !USED(m)) continue;
        double *buf = sl_malloc(7 * S, sizeof(double));
        if (!buf) {
#pragma omp atomic write
            oom = 1;
            continue;
        }
        double *p = buf, *gm = buf + S, *skp = buf + 2 * S, *skg = buf + 3 * S, *work = buf + 4 * S;
        load_maps(cx, pr, has_ignore, m / C, m % C, p, gm);
        skeleton(&gr, K, p, skp, work, NULL);
        skeleton(&gr, K, gm, skg, work, NULL);
        double s[NS] = {0};
        const float *mw = cx->target->mask ? cx->target->mask + (m / C) * S : NULL;
        if (mw)
            for (int64_t i = 0; i < S; i++) {
                const double w = mw[i];
                s[0] += w * skp[i] * gm[i], s[1] += w * skp[i], s[2] += w * skg[i] * p[i], s[3] += w * skg[i];
            }
        else
            for (int64_t i = 0; i < S; i++) s[0] += skp[i] * gm[i], s[1] += skp[i], s[2] += skg[i] * p[i], s[3] += skg[i];
        memcpy(sums + m * NS, s, sizeof s);
        free(buf);
    }
    if (oom) {
        free(sums);
        return sl_errf(msg, msglen, SL_ENOMEM, "cldice: out of memory");
    }
    for (int64_t m = 0; m < M; m++)
        if (USED(m))
            for (int j = 0; j < NS; j++) gs[GROUP_OF(m) * NS + j] += sums[m * NS + j];
    double *tp = sl_calloc(2 * G, sizeof(double));
    if (!tp) {
        free(sums);
        return sl_errf(msg, msglen, SL_ENOMEM, "cldice: out of memory");
    }
    double *ts = tp + G;
    for (int64_t g = 0; g < G; g++) {
        const double *q = gs + g * NS;
        tp[g] = (q[0] + pr->smooth_nr) / (q[1] + pr->smooth_dr);
        ts[g] = (q[2] + pr->smooth_nr) / (q[3] + pr->smooth_dr);
        lg[g] = cl_value(tp[g], ts[g], &kk[2 * g], &kk[2 * g + 1]);
    }
    sl_status st = SL_OK;
    if (pool) {
        double sum = 0;
        for (int64_t g = 0; g < G; g++) sum += lg[g], dl[g] = 1.0 / (double)G;
        *value = sum / (double)G;
    } else {
        sl_region r;
        if (sl_region_alloc(&r, G, pr->batch) != SL_OK) st = sl_errf(msg, msglen, SL_ENOMEM, "cldice: out of memory");
        else st = sl_region_mean(cx, pr, &r, lg, dl, value, msg, msglen);
        sl_region_free(&r);
    }
    if (st != SL_OK || !cx->dp) {
        free(sums), free(tp);
        return st;
    }

    /* pass 2: per map, dL/dp = kC·S_g + skelᵀ(kA·g + kB) */
#pragma omp parallel for num_threads(cx->threads) schedule(dynamic, 1)
    for (int64_t m = 0; m < M; m++) {
        int failed;
#pragma omp atomic read
        failed = oom;
        const int64_t g = GROUP_OF(m);
        const double w = cx->scale * dl[g];
        if (failed || !USED(m) || w == 0) continue;
        const double *q = gs + g * NS;
        const double kA = w * kk[2 * g] / (q[1] + pr->smooth_dr);
        const double kB = -w * kk[2 * g] * tp[g] / (q[1] + pr->smooth_dr);
        const double kC = w * kk[2 * g + 1] / (q[3] + pr->smooth_dr);
        if (kA == 0 && kB == 0 && kC == 0) continue;
        tape tp_ = {K, NULL, NULL, NULL, NULL, NULL};
        double *buf = sl_malloc((int64_t)(3 * K + 4 + 9) * S, sizeof(double));
        unsigned char *codes = sl_malloc(2 * (int64_t)(K + 1) * S, 1);
        if (!buf || !codes) {
#pragma omp atomic write
            oom = 1;
            free(buf), free(codes);
            continue;
        }
        tp_.img = buf;                                   /* (K + 2)·S */
        tp_.open = tp_.img + (int64_t)(K + 2) * S;       /* (K + 1)·S */
        tp_.skel = tp_.open + (int64_t)(K + 1) * S;      /* (K + 1)·S */
        tp_.ecode = codes;
        tp_.dcode = codes + (int64_t)(K + 1) * S;
        double *p = tp_.skel + (int64_t)(K + 1) * S, *gm = p + S, *skp = gm + S, *skg = skp + S;
        double *gsk = skg + S, *gx = gsk + S, *work = gx + S; /* work: 3·S */
        load_maps(cx, pr, has_ignore, m / C, m % C, p, gm);
        skeleton(&gr, K, gm, skg, work, NULL);
        skeleton(&gr, K, p, skp, NULL, &tp_);
        const int64_t n = m / C;
        const float *mw = cx->target->mask ? cx->target->mask + n * S : NULL;
        for (int64_t i = 0; i < S; i++) gsk[i] = (mw ? mw[i] : 1.0) * (kA * gm[i] + kB);
        skeleton_backward(&gr, &tp_, gsk, gx, work);
        float *dp = cx->dp + m * S;
        for (int64_t i = 0; i < S; i++)
            if (!has_ignore || sl_valid(cx, pr, n, i)) dp[i] += (float)(gx[i] + (mw ? mw[i] : 1.0) * kC * skg[i]);
        free(buf), free(codes);
    }
#undef GROUP_OF
#undef USED
    free(sums), free(tp);
    if (oom) return sl_errf(msg, msglen, SL_ENOMEM, "cldice: out of memory");
    return SL_OK;
}

static sl_status validate_cldice(const sl_params *p, char *msg, size_t msglen)
{
    if (!(p->smooth_dr > 0))
        return sl_errf(msg, msglen, SL_EINVAL, "cldice: smooth_dr must be > 0 (an empty skeleton would give 0/0)");
    if (p->pool_classes && p->weight_mode != SL_WEIGHT_NONE)
        return sl_errf(msg, msglen, SL_EINVAL, "cldice: weight has no meaning with pool_classes=true");
    return SL_OK;
}

static const sl_key cldice_keys[] = {
    SL_KEY_ACTIVATION,
    {"include_background", SL_KEY_BOOL, SL_P(include_background), 1, 0, 1, NULL,
     "false drops class 0 (C > 1); MONAI drops it"},
    {"batch", SL_KEY_BOOL, SL_P(batch), 0, 0, 1, NULL, "pool the sums over the batch"},
    {"pool_classes", SL_KEY_BOOL, SL_P(pool_classes), 0, 0, 1, NULL,
     "add the sums of the included classes before the ratios (MONAI, with batch=true)"},
    {"smooth_nr", SL_KEY_NUMBER, SL_P(smooth_nr), 1, 0, 1e6, NULL, "added to the numerators of Tprec and Tsens"},
    {"smooth_dr", SL_KEY_NUMBER, SL_P(smooth_dr), 1, 0, 1e6, NULL, "added to their denominators (> 0)"},
    {"weight", SL_KEY_WEIGHT, SL_P(weight), 0, 0, 1e6, NULL, "class weights [w0,...] or inverse|median"},
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels get p = g = 0"},
    {"iters", SL_KEY_INT, SL_P(iters), 3, 0, 100, NULL, "soft-skeleton iterations"},
    {"auto_iters", SL_KEY_BOOL, SL_P(auto_iters), 0, 0, 1, NULL,
     "raise iters to the target's deepest object (city-block radius, at most 100)"},
    SL_KEY_END};

const sl_term_class sl_loss_cldice = {
    {"cldice", "boundary", "1 − soft clDice: topology precision/sensitivity of soft skeletons (min/max pooling)",
     "Shit et al. 2021 (CVPR); matches MONAI SoftclDiceLoss with include_background=false, batch=true, "
     "pool_classes=true"},
    cldice_keys, SL_TAKES_MASK | SL_PER_CLASS, validate_cldice, eval_cldice, NULL, NULL};
