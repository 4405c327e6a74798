/*
 * The procedural 3-D phantom: volumes (D, H, W) with a chosen class ratio,
 * the volumetric counterpart of phantom.c with the same options (ratio,
 * small_fraction, n_train/n_val/n_test, contrast, noise, blur, bias,
 * texture, irregularity, size_jitter, p_inside, max_lesions, distractors,
 * seed) and the same model, one dimension up (docs/data.md, "phantom3d").
 *
 * Labels. Class 1 is one irregular region near the centre; each class
 * c >= 2 lies inside class c-1 (probability p_inside) or beside it,
 * touching it from outside; the last class (the small structure) has
 * 1..max_lesions components. Every object is a star-shaped blob
 *     rho(p) = |E Q (p - centre)| / r(u),  u = (p - centre) / |p - centre|,
 *     r(u) = 1 + irregularity * mean_j cos(2 pi k_j (u . v_j) + phi_j),
 * (Q a random rotation, E an elongation, v_j random directions, k_j in
 * {1, 2}) and takes exactly its `area` allowed voxels of smallest rho, so
 * class volumes hit their targets to the voxel unless the volume runs out
 * of room. Targets are the shares times a lognormal jitter of mean 1.
 *
 * Image. Tissue means 1 + c * contrast (jittered per volume), elongated
 * distractor blobs in the background with the small class's mean and size
 * (label 0), a smooth random texture, a Gaussian blur (partial volume), a
 * multiplicative bias field exp(bias * g), additive Gaussian noise, and a
 * z-score over the volume.
 *
 * Randomness. Volume i of split s draws from RNG stream (s << 56 | i) of
 * the dataset seed (labels) and from a second stream (intensities): splits
 * come from disjoint streams and no volume depends on another. The spacing
 * is 1 mm isotropic.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"
#include "sources.h"

#define P3_MIN_SIZE 8
#define P3_DEFAULT_SIZE 64
#define P3_HARMONICS 4
#define OBJ_ASPECT_HI 1.8
#define DIS_ASPECT_LO 3.0
#define DIS_ASPECT_HI 5.0

static sl_status phantom3d_generate(const sl_dataset *ds, int split, int64_t index, float *img, int32_t *lab);

sl_status sld_open_phantom3d(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen)
{
    (void)arg;
    double frac[SLD_MAX_PHANTOM_CLASSES];
    int K;
    sl_status st = sld_parse_ratio(o->ratio, frac, &K, msg, msglen);
    if (st != SL_OK) return st;
    if (o->small_fraction > 0) {
        double rest = 0.0;
        for (int c = 0; c < K - 1; c++) rest += frac[c];
        for (int c = 0; c < K - 1; c++) frac[c] *= (1.0 - o->small_fraction) / rest;
        frac[K - 1] = o->small_fraction;
    }
    if (frac[0] < 0.1)
        return sl_errf(msg, msglen, SL_ERANGE, "phantom3d ratio '%s': background share %.3g is below 0.1", o->ratio, frac[0]);
    const int64_t H = o->height ? o->height : P3_DEFAULT_SIZE, W = o->width ? o->width : P3_DEFAULT_SIZE;
    const int64_t D = o->depth ? o->depth : (o->height ? o->height : P3_DEFAULT_SIZE);
    if (D < P3_MIN_SIZE || H < P3_MIN_SIZE || W < P3_MIN_SIZE)
        return sl_errf(msg, msglen, SL_ERANGE, "phantom3d size %lldx%lldx%lld: each side must be at least %d",
                       (long long)D, (long long)H, (long long)W, P3_MIN_SIZE);
    if ((double)D * (double)H * (double)W > (double)(1 << 27))
        return sl_errf(msg, msglen, SL_ERANGE, "phantom3d size %lldx%lldx%lld: more than 2^27 voxels", (long long)D,
                       (long long)H, (long long)W);
    if (o->n_train >= ((int64_t)1 << 48) || o->n_val >= ((int64_t)1 << 48) || o->n_test >= ((int64_t)1 << 48))
        return sl_errf(msg, msglen, SL_ERANGE, "phantom3d: split sizes must be below 2^48");
    sl_dataset *ds = sld_alloc(SLD_PHANTOM, o);
    if (!ds) return sl_errf(msg, msglen, SL_ENOMEM, "phantom3d: out of memory");
    snprintf(ds->source, sizeof ds->source, "phantom3d");
    ds->generate = phantom3d_generate;
    ds->ndim = 3;
    ds->D = D;
    ds->H = H;
    ds->W = W;
    ds->pk = K;
    memcpy(ds->pfrac, frac, sizeof frac);
    uint64_t sm = o->seed ^ 0x70686e746d336421ULL; /* "phntm3d!": apart from the 2-D phantom */
    ds->pseed = sl_splitmix64(&sm);
    ds->n[0] = o->n_train;
    ds->n[1] = o->n_val;
    ds->n[2] = o->n_test;
    const char *names[SLD_MAX_PHANTOM_CLASSES] = {"background"};
    char buf[SLD_MAX_PHANTOM_CLASSES][24];
    for (int c = 1; c < K; c++) {
        if (c == K - 1) snprintf(buf[c], sizeof buf[c], K == 2 ? "lesion" : "core");
        else if (K == 3) snprintf(buf[c], sizeof buf[c], "large");
        else snprintf(buf[c], sizeof buf[c], "region%d", c);
        names[c] = buf[c];
    }
    if (sld_set_classes(ds, K, names) != SL_OK) {
        sl_dataset_free(ds);
        return sl_errf(msg, msglen, SL_ENOMEM, "phantom3d: out of memory");
    }
    if ((st = sld_finish(ds, msg, msglen)) != SL_OK) {
        sl_dataset_free(ds);
        return st;
    }
    *out = ds;
    return SL_OK;
}

/* ------------------------------------------------------------ shapes */

typedef struct blob3 {
    double c[3];          /* centre (z, y, x) */
    double m[3][3];       /* E Q: rotation then elongation */
    double v[P3_HARMONICS][3], k[P3_HARMONICS], phi[P3_HARMONICS];
    double irr;
} blob3;

typedef struct cand3 {
    double rho;
    int64_t i;
} cand3;

static int cmp_cand(const void *a, const void *b)
{
    const cand3 *x = a, *y = b;
    if (x->rho != y->rho) return x->rho < y->rho ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i); /* ties by index: deterministic */
}

static void unit_vector(sl_rng *r, double v[3])
{
    double n;
    do {
        for (int a = 0; a < 3; a++) v[a] = sl_rng_normal(r);
        n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    } while (n < 1e-9);
    for (int a = 0; a < 3; a++) v[a] /= n;
}

/* A random shape at centre c: a rotation from a random unit quaternion,
 * elongation 1 / U(1, aspect_hi) on two axes, P3_HARMONICS radial waves. */
static void random_blob(sl_rng *r, const double c[3], double irregularity, double aspect_lo, double aspect_hi,
                        blob3 *b)
{
    double q[4];
    double n;
    do {
        for (int a = 0; a < 4; a++) q[a] = sl_rng_normal(r);
        n = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    } while (n < 1e-9);
    for (int a = 0; a < 4; a++) q[a] /= n;
    const double w = q[0], x = q[1], y = q[2], z = q[3];
    const double R[3][3] = {{1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)},
                            {2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)},
                            {2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)}};
    const double e[3] = {1.0, aspect_lo + (aspect_hi - aspect_lo) * sl_rng_uniform(r),
                         1.0 + (aspect_hi - 1.0) * sl_rng_uniform(r)};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) b->m[i][j] = e[i] * R[i][j];
    for (int j = 0; j < P3_HARMONICS; j++) {
        unit_vector(r, b->v[j]);
        b->k[j] = 1.0 + (double)sl_rng_below(r, 2);
        b->phi[j] = 2.0 * 3.14159265358979323846 * sl_rng_uniform(r);
    }
    memcpy(b->c, c, sizeof b->c);
    b->irr = irregularity;
}

static double blob_rho(const blob3 *b, double z, double y, double x)
{
    const double d[3] = {z - b->c[0], y - b->c[1], x - b->c[2]};
    const double len = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    if (len == 0.0) return 0.0;
    double s = 0.0;
    for (int j = 0; j < P3_HARMONICS; j++) {
        const double u = (d[0] * b->v[j][0] + d[1] * b->v[j][1] + d[2] * b->v[j][2]) / len;
        s += cos(2.0 * 3.14159265358979323846 * b->k[j] * u + b->phi[j]);
    }
    const double rad = 1.0 + b->irr * s / P3_HARMONICS;
    double ed = 0.0;
    for (int i = 0; i < 3; i++) {
        const double t = b->m[i][0] * d[0] + b->m[i][1] * d[1] + b->m[i][2] * d[2];
        ed += t * t;
    }
    return sqrt(ed) / rad;
}

typedef struct p3_work {
    int64_t D, H, W, N;
    cand3 *cands;
} p3_work;

/* Writes `value` into `out` at the `area` voxels with allow[i] of smallest
 * rho (all allowed voxels when fewer); returns the count written. */
static int64_t place(p3_work *w, const blob3 *b, int64_t area, const uint8_t *allow, int32_t *out, int32_t value)
{
    int64_t n = 0;
    for (int64_t z = 0, i = 0; z < w->D; z++)
        for (int64_t y = 0; y < w->H; y++)
            for (int64_t x = 0; x < w->W; x++, i++)
                if (allow[i]) {
                    w->cands[n].rho = blob_rho(b, (double)z, (double)y, (double)x);
                    w->cands[n].i = i;
                    n++;
                }
    if (area > n) area = n;
    if (area <= 0) return 0;
    qsort(w->cands, (size_t)n, sizeof *w->cands, cmp_cand);
    for (int64_t k = 0; k < area; k++) out[w->cands[k].i] = value;
    return area;
}

/* A uniformly drawn voxel with lab == cls (-1 if none), as (z, y, x). */
static int pick_voxel(sl_rng *r, const int32_t *lab, int64_t N, int64_t H, int64_t W, int32_t cls, double c[3])
{
    int64_t n = 0;
    for (int64_t i = 0; i < N; i++) n += lab[i] == cls;
    if (n == 0) return -1;
    int64_t k = (int64_t)sl_rng_below(r, (uint64_t)n);
    for (int64_t i = 0; i < N; i++)
        if (lab[i] == cls && k-- == 0) {
            c[0] = (double)(i / (H * W));
            c[1] = (double)(i / W % H);
            c[2] = (double)(i % W);
            return 0;
        }
    return -1;
}

/* ------------------------------------------------------------ fields */

/* A smooth random field of unit RMS: three plane waves of wavelength
 * between a third and the whole of the largest side. */
static void smooth_field(sl_rng *r, int64_t D, int64_t H, int64_t W, float *out)
{
    const double L = (double)(D > H ? (D > W ? D : W) : (H > W ? H : W));
    double f[3][3], ph[3];
    for (int j = 0; j < 3; j++) {
        unit_vector(r, f[j]);
        const double lam = L * (1.0 / 3.0 + (2.0 / 3.0) * sl_rng_uniform(r));
        for (int a = 0; a < 3; a++) f[j][a] *= 2.0 * 3.14159265358979323846 / lam;
        ph[j] = 2.0 * 3.14159265358979323846 * sl_rng_uniform(r);
    }
    for (int64_t z = 0, i = 0; z < D; z++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++, i++) {
                double s = 0.0;
                for (int j = 0; j < 3; j++) s += cos(f[j][0] * (double)z + f[j][1] * (double)y + f[j][2] * (double)x + ph[j]);
                out[i] = (float)(s * sqrt(2.0 / 3.0));
            }
}

static uint64_t poisson(sl_rng *r, double mean)
{
    const double l = exp(-mean);
    uint64_t k = 0;
    double p = sl_rng_uniform(r);
    while (p > l && k < 1000) {
        k++;
        p *= sl_rng_uniform(r);
    }
    return k;
}

/* ------------------------------------------------------------ a volume */

static sl_status phantom3d_generate(const sl_dataset *ds, int split, int64_t index, float *img, int32_t *lab_out)
{
    const sl_data_opts *o = &ds->opts;
    const int K = ds->pk;
    p3_work w = {ds->D, ds->H, ds->W, ds->D * ds->H * ds->W, NULL};
    const int64_t N = w.N, n3[3] = {w.D, w.H, w.W};
    w.cands = sl_malloc(N, sizeof *w.cands);
    uint8_t *allow = sl_malloc(N, 1);
    int32_t *tissue = sl_malloc(N, sizeof *tissue);
    int32_t *lab = lab_out ? lab_out : sl_malloc(N, sizeof *lab);
    float *tex = img ? sl_malloc(N, sizeof *tex) : NULL;
    sl_status st = SL_OK;
    if (!w.cands || !allow || !tissue || !lab || (img && !tex)) {
        st = SL_ENOMEM;
        goto done;
    }
    memset(lab, 0, (size_t)N * sizeof *lab);
    const uint64_t stream = ((uint64_t)split << 56) | (uint64_t)index;
    sl_rng r;
    sl_rng_seed_stream(&r, ds->pseed, 2 * stream);
    const double sj = o->size_jitter;
    int64_t area[SLD_MAX_PHANTOM_CLASSES];
    for (int c = 1; c < K; c++) {
        const double jit = exp(sj * sl_rng_normal(&r) - 0.5 * sj * sj);
        area[c] = (int64_t)llround(ds->pfrac[c] * (double)N * jit);
        if (area[c] < 1) area[c] = 1;
    }
    /* class 1 near the centre */
    double c0[3] = {(double)w.D * (0.35 + 0.3 * sl_rng_uniform(&r)), (double)w.H * (0.35 + 0.3 * sl_rng_uniform(&r)),
                    (double)w.W * (0.35 + 0.3 * sl_rng_uniform(&r))};
    blob3 b;
    random_blob(&r, c0, o->irregularity, 1.0, OBJ_ASPECT_HI, &b);
    memset(allow, 1, (size_t)N);
    place(&w, &b, area[1], allow, lab, 1);
    /* classes 2..K-1: inside the previous class or beside it */
    for (int c = 2; c < K; c++) {
        const int inside = sl_rng_uniform(&r) < o->p_inside;
        const int ncomp = c == K - 1 ? 1 + (int)sl_rng_below(&r, (uint64_t)o->max_lesions) : 1;
        for (int64_t i = 0; i < N; i++) allow[i] = inside ? lab[i] == c - 1 : lab[i] == 0;
        for (int k = 0; k < ncomp; k++) {
            double cc[3];
            if (pick_voxel(&r, lab, N, w.H, w.W, c - 1, cc) != 0) break; /* the parent got no room */
            random_blob(&r, cc, o->irregularity, 1.0, OBJ_ASPECT_HI, &b);
            const int64_t a = area[c] / ncomp + (k < area[c] % ncomp);
            place(&w, &b, a, allow, lab, c);
            for (int64_t i = 0; i < N; i++) allow[i] &= lab[i] != c; /* components do not overwrite each other */
        }
    }
    if (!img) goto done;

    /* tissue = labels plus distractors: small-class look-alikes in the
     * background, elongated, each of one small component's size */
    memcpy(tissue, lab, (size_t)N * sizeof *tissue);
    sl_rng ri;
    sl_rng_seed_stream(&ri, ds->pseed, 2 * stream + 1);
    const uint64_t ndis = o->distractors > 0 ? poisson(&ri, o->distractors) : 0;
    for (int64_t i = 0; i < N; i++) allow[i] = lab[i] == 0;
    for (uint64_t k = 0; k < ndis; k++) {
        double cc[3];
        if (pick_voxel(&ri, tissue, N, w.H, w.W, 0, cc) != 0) break;
        random_blob(&ri, cc, o->irregularity, DIS_ASPECT_LO, DIS_ASPECT_HI, &b);
        int64_t a = area[K - 1] / (1 + (int64_t)sl_rng_below(&ri, (uint64_t)o->max_lesions));
        place(&w, &b, a > 0 ? a : 1, allow, tissue, K - 1);
        for (int64_t i = 0; i < N; i++) allow[i] &= tissue[i] == 0;
    }
    double mean[SLD_MAX_PHANTOM_CLASSES];
    for (int c = 0; c < K; c++) mean[c] = 1.0 + c * o->contrast * (1.0 + 0.1 * sl_rng_normal(&ri));
    for (int64_t i = 0; i < N; i++) img[i] = (float)mean[tissue[i]];
    if (o->texture > 0) {
        for (int64_t i = 0; i < N; i++) tex[i] = (float)sl_rng_normal(&ri);
        if ((st = sld_blur3d(tex, n3, 2.0)) != SL_OK) goto done;
        double m, s;
        sld_mean_std(tex, N, &m, &s);
        for (int64_t i = 0; i < N; i++) img[i] += (float)(o->texture * (tex[i] - m) / (s > 0 ? s : 1.0));
    }
    if ((st = sld_blur3d(img, n3, o->blur)) != SL_OK) goto done;
    if (o->bias > 0) {
        smooth_field(&ri, w.D, w.H, w.W, tex);
        for (int64_t i = 0; i < N; i++) img[i] *= (float)exp(o->bias * tex[i]);
    }
    for (int64_t i = 0; i < N; i++) img[i] += (float)(o->noise * sl_rng_normal(&ri));
    double m, s;
    sld_mean_std(img, N, &m, &s);
    for (int64_t i = 0; i < N; i++) img[i] = (float)((img[i] - m) / (s > 0 ? s : 1.0));
done:
    free(w.cands);
    free(allow);
    free(tissue);
    free(tex);
    if (lab != lab_out) free(lab);
    return st;
}
