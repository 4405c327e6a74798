/*
 * The dense CRF's mean field (segloss/crf.h): Krähenbühl & Koltun 2011,
 * Potts compatibility, an appearance and a smoothness Gaussian kernel, each
 * message normalised by the kernel's mass (densecrf's NORMALIZE_BEFORE).
 *
 * Both kernels are computed on their own permutohedral lattice, built once:
 * features (p / theta_alpha, I / theta_beta) of dimension ndim + M for the
 * appearance kernel and p / theta_gamma of dimension ndim for the
 * smoothness kernel; each iteration filters the C marginals on both.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/crf.h"
#include "../core/internal.h"
#include "geom_internal.h"
#include "lattice.h"

#define CRF_MAX_CLASSES 1024
#define CRF_MAX_CHANNELS 8
/* the floor of a probability before its log: a zero softmax value is an
 * underflow, not a certainty, and must not make the unary infinite */
#define CRF_P_FLOOR 1e-30f

typedef struct crf_kernel {
    double w;
    slg_lattice lat;
    float *norm;     /* (n) 1 / the kernel's mass at each voxel */
} crf_kernel;

sl_status slg_crf_check_params(const sl_crf_params *p, char *msg, size_t msglen)
{
    const double th[3] = {p->theta_alpha, p->theta_beta, p->theta_gamma};
    static const char *const thn[3] = {"theta_alpha", "theta_beta", "theta_gamma"};
    for (int k = 0; k < 3; k++)
        if (!(th[k] > 0) || !isfinite(th[k]))
            return sl_errf(msg, msglen, SL_EINVAL, "crf: %s must be finite and > 0, got %g", thn[k], th[k]);
    if (!(p->w_appearance >= 0) || !isfinite(p->w_appearance) || !(p->w_smoothness >= 0) || !isfinite(p->w_smoothness))
        return sl_errf(msg, msglen, SL_EINVAL, "crf: kernel weights must be finite and >= 0, got w_appearance %g, w_smoothness %g",
                       p->w_appearance, p->w_smoothness);
    if (p->iterations < 0 || p->iterations > 1000)
        return sl_errf(msg, msglen, SL_EINVAL, "crf: iterations must be in 0..1000, got %d", p->iterations);
    if (p->threads < 0) return sl_errf(msg, msglen, SL_EINVAL, "crf: threads must be >= 0, got %d", p->threads);
    return SL_OK;
}

/* Features beyond this (in kernel widths) are refused before the float
 * cast, which would make them infinite; the lattice refuses smaller ones
 * whose coordinates do not fit (SL_ERANGE both). */
#define CRF_FEATURE_MAX 1e6

/* features (n, d): the voxel's position in mm over theta_s, then the M
 * intensities over theta_i (image NULL: positions only). 0, or -1 when a
 * feature exceeds CRF_FEATURE_MAX. */
static int make_features(const slg_vol *v, const float *image, int M, double theta_s, double theta_i, float *f, int d)
{
    const int64_t n = v->count;
    for (int64_t z = 0, i = 0; z < v->n[0]; z++)
        for (int64_t y = 0; y < v->n[1]; y++)
            for (int64_t x = 0; x < v->n[2]; x++, i++) {
                const double pos[3] = {z * v->sp[0], y * v->sp[1], x * v->sp[2]};
                float *o = f + i * d;
                int k = 0;
                double mx = 0.0;
                /* only the grid's own axes: a 2-D image has no z feature */
                for (int a = 3 - v->ndim; a < 3; a++) {
                    mx = fmax(mx, pos[a] / theta_s);
                    o[k++] = (float)(pos[a] / theta_s);
                }
                for (int c = 0; image && c < M; c++) {
                    mx = fmax(mx, fabs(image[c * n + i] / theta_i));
                    o[k++] = (float)(image[c * n + i] / theta_i);
                }
                if (!(mx <= CRF_FEATURE_MAX)) return -1;
            }
    return 0;
}

/* The kernel's lattice and its normaliser 1 / sum_j k(f_i, f_j). */
static sl_status kernel_init(crf_kernel *k, double w, const slg_vol *v, const float *image, int M, double theta_s,
                             double theta_i, int threads, char *msg, size_t msglen)
{
    const int d = v->ndim + (image ? M : 0);
    const int64_t n = v->count;
    k->w = w;
    float *f = sl_malloc(n * d, sizeof *f), *ones = sl_malloc(n, sizeof *ones);
    k->norm = sl_malloc(n, sizeof *k->norm);
    sl_status st = SL_OK;
    if (!f || !ones || !k->norm) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "crf: out of memory");
        goto done;
    }
    if (make_features(v, image, M, theta_s, theta_i, f, d) != 0) {
        st = sl_errf(msg, msglen, SL_ERANGE, "crf: a kernel width is too small for the image (features beyond %g widths)",
                     CRF_FEATURE_MAX);
        goto done;
    }
    if ((st = slg_lattice_build(&k->lat, f, n, d, threads, msg, msglen)) != SL_OK) goto done;
    for (int64_t i = 0; i < n; i++) ones[i] = 1.0f;
    if ((st = slg_lattice_filter(&k->lat, ones, 1, k->norm)) != SL_OK) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "crf: out of memory");
        goto done;
    }
    /* the mass includes the voxel itself, so it is about 1 or more */
    for (int64_t i = 0; i < n; i++) k->norm[i] = 1.0f / (k->norm[i] + 1e-20f);
done:
    free(f);
    free(ones);
    return st;
}

/* unary (C, n) = -log P with P renormalised per voxel; q = P. */
static sl_status init_unary(const float *probs, int64_t C, int64_t n, float *unary, float *q, char *msg, size_t msglen)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t c = 0; c < C; c++) {
            const float p = probs[c * n + i];
            if (!isfinite(p))
                return sl_errf(msg, msglen, SL_ENONFINITE, "crf: non-finite probability at class %lld, voxel %lld",
                               (long long)c, (long long)i);
            if (p < 0)
                return sl_errf(msg, msglen, SL_ERANGE, "crf: negative probability %g at class %lld, voxel %lld", p,
                               (long long)c, (long long)i);
            s += p;
        }
        if (!(s > 0)) return sl_errf(msg, msglen, SL_ERANGE, "crf: the probabilities of voxel %lld sum to 0", (long long)i);
    }
    /* a second pass, so that a refused input leaves q (which may be probs) untouched */
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t c = 0; c < C; c++) s += probs[c * n + i];
        for (int64_t c = 0; c < C; c++) {
            float p = (float)(probs[c * n + i] / s);
            q[c * n + i] = p;
            unary[c * n + i] = -logf(p > CRF_P_FLOOR ? p : CRF_P_FLOOR);
        }
    }
    return SL_OK;
}

/* q_i = softmax(-unary_i + sum_m w_m Qbar^m_i), Qbar^m = msg[m] * norm_m */
static void update(const crf_kernel *ks, const float *const *flt, const float *unary, int64_t C, int64_t n, float *q,
                   int threads)
{
#pragma omp parallel for num_threads(threads) if (n >= SLG_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double e[CRF_MAX_CLASSES], mx = -INFINITY, z = 0.0;
        for (int64_t c = 0; c < C; c++) {
            double v = -(double)unary[c * n + i];
            for (int m = 0; m < 2; m++)
                if (flt[m]) v += ks[m].w * (double)flt[m][c * n + i] * (double)ks[m].norm[i];
            e[c] = v;
            mx = v > mx ? v : mx;
        }
        for (int64_t c = 0; c < C; c++) z += (e[c] = exp(e[c] - mx));
        for (int64_t c = 0; c < C; c++) q[c * n + i] = (float)(e[c] / z);
    }
}

sl_status sl_crf(const float *probs, int64_t C, const float *image, int M, const sl_grid *grid,
                 const sl_crf_params *params, float *q, char *msg, size_t msglen)
{
    if (!probs || !image || !grid || !q) return sl_errf(msg, msglen, SL_EINVAL, "crf: NULL argument");
    sl_crf_params p = SL_CRF_PARAMS_DEFAULT;
    if (params) p = *params;
    sl_status st = slg_crf_check_params(&p, msg, msglen);
    if (st != SL_OK) return st;
    if (C < 1 || C > CRF_MAX_CLASSES) return sl_errf(msg, msglen, SL_ESHAPE, "crf: %lld classes (1..%d)", (long long)C, CRF_MAX_CLASSES);
    if (M < 1 || M > CRF_MAX_CHANNELS) return sl_errf(msg, msglen, SL_ESHAPE, "crf: %d image channels (1..%d)", M, CRF_MAX_CHANNELS);
    slg_vol v;
    if ((st = slg_vol_from_grid(grid, &v, msg, msglen)) != SL_OK) return st;
    const int64_t n = v.count;
    const int threads = sl_threads(p.threads);
    if (!sl_all_finite(image, n * M, threads)) return sl_errf(msg, msglen, SL_ENONFINITE, "crf: non-finite intensity in the image");
    crf_kernel ks[2];
    memset(ks, 0, sizeof ks);
    float *unary = sl_malloc(C * n, sizeof *unary), *flt[2] = {NULL, NULL};
    if (!unary) return sl_errf(msg, msglen, SL_ENOMEM, "crf: out of memory");
    /* q may alias probs: unary is read from probs before q is written */
    if ((st = init_unary(probs, C, n, unary, q, msg, msglen)) != SL_OK || p.iterations == 0) goto done;
    /* a kernel of weight 0 is skipped (no lattice, no filtering) */
    if (p.w_appearance > 0 &&
        (st = kernel_init(&ks[0], p.w_appearance, &v, image, M, p.theta_alpha, p.theta_beta, p.threads, msg, msglen)) != SL_OK)
        goto done;
    if (p.w_smoothness > 0 &&
        (st = kernel_init(&ks[1], p.w_smoothness, &v, NULL, 0, p.theta_gamma, 1.0, p.threads, msg, msglen)) != SL_OK)
        goto done;
    for (int m = 0; m < 2; m++)
        if (ks[m].norm && !(flt[m] = sl_malloc(C * n, sizeof *flt[m]))) goto nomem;
    for (int it = 0; it < p.iterations; it++) {
        for (int m = 0; m < 2; m++)
            if (flt[m] && slg_lattice_filter(&ks[m].lat, q, (int)C, flt[m]) != SL_OK) goto nomem;
        update(ks, (const float *const *)flt, unary, C, n, q, threads);
    }
    goto done;
nomem:
    st = sl_errf(msg, msglen, SL_ENOMEM, "crf: out of memory");
done:
    for (int m = 0; m < 2; m++) {
        slg_lattice_free(&ks[m].lat);
        free(ks[m].norm);
        free(flt[m]);
    }
    free(unary);
    return st;
}

sl_status sl_lattice_filter(const float *features, int64_t n, int d, const float *values, int nv, float *out,
                            int threads, char *msg, size_t msglen)
{
    if (!features || !values || !out) return sl_errf(msg, msglen, SL_EINVAL, "lattice: NULL argument");
    if (nv < 1) return sl_errf(msg, msglen, SL_EINVAL, "lattice: %d value channels (>= 1)", nv);
    if (threads < 0) return sl_errf(msg, msglen, SL_EINVAL, "lattice: threads must be >= 0, got %d", threads);
    slg_lattice L;
    sl_status st = slg_lattice_build(&L, features, n, d, threads, msg, msglen);
    if (st != SL_OK) return st;
    if (slg_lattice_filter(&L, values, nv, out) != SL_OK) st = sl_errf(msg, msglen, SL_ENOMEM, "lattice: out of memory");
    slg_lattice_free(&L);
    return st;
}
