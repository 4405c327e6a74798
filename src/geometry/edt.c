/*
 * Exact Euclidean distance transform, separable, anisotropic, threaded.
 *
 * Method: Felzenszwalb & Huttenlocher, "Distance transforms of sampled
 * functions" (Theory of Computing 8, 2012). The squared EDT is separable:
 *   D(x) = min_y sum_a (s_a (x_a - y_a))^2   over feature voxels y
 * is computed one axis at a time, each pass taking per line the lower
 * envelope of the parabolas  q -> (s (x - q))^2 + f(q)  of the previous
 * pass's values f. Each pass is linear in the line length, and lines are
 * independent, so they are spread over threads with no effect on the result.
 *
 * Labels. Every voxel carries a label (geom_internal.h: binary, signed pair
 * or multi-label) and wants the distance to the nearest voxel with a
 * different label. That is not separable as it stands (which voxels are
 * "features" depends on the voxel asking), but it is per run: along a line,
 * a maximal run [a, e] of one label L only needs the previous pass's values
 * of its own voxels (those already measure the distance to non-L voxels in
 * their hyperplane) plus the two voxels just outside the run, which have a
 * different label and hence a distance of 0 *for L* — any voxel further out
 * is farther along this axis and contributes at least as much. So each run
 * is one envelope over its finite values plus two virtual zero-valued
 * parabolas at a-1 and e+1 (where they exist). This is the idea of the
 * multi-label mode of seung-lab's edt; binary EDT is the special case of
 * labels {0, 1}, and the signed map is one pass over labels {1, 2}.
 *
 * Numbers. The squared distances are accumulated as (s * dx)^2 terms in
 * double, axis by axis; a float32 output also holds the intermediate
 * squared distances between passes (relative rounding 6e-8, well inside
 * the 1e-5 promised). Infinity means "no voxel of another label in this
 * line so far" and simply contributes no parabola.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "geom_internal.h"

#define TILE 16 /* lines per tile in the strided passes (one 64-byte line of floats) */

/* Per-thread work buffers for one tile of TILE lines of length <= cap. */
typedef struct line_buf {
    int64_t *lab; /* labels of the tile */
    double *f;    /* previous pass (squared distances) */
    double *g;    /* this pass */
    double *v;    /* positions of the envelope's parabolas (n + 2) */
    double *vf;   /* their values (n + 2) */
    double *h;    /* their keys f / s^2 + q^2 (n + 2) */
    double *z;    /* boundaries between consecutive parabolas (n + 3) */
} line_buf;

/* cap: the longest line; tile: the most elements one tile holds (a single
 * row for the contiguous pass, TILE lines for the strided ones). */
static int line_buf_alloc(line_buf *b, int64_t cap, int64_t tile)
{
    b->lab = sl_malloc(tile, sizeof(int64_t));
    b->f = sl_malloc(tile, sizeof(double));
    b->g = sl_malloc(tile, sizeof(double));
    b->v = sl_malloc(cap + 2, sizeof(double));
    b->vf = sl_malloc(cap + 2, sizeof(double));
    b->h = sl_malloc(cap + 2, sizeof(double));
    b->z = sl_malloc(cap + 3, sizeof(double));
    return b->lab && b->f && b->g && b->v && b->vf && b->h && b->z;
}

static void line_buf_free(line_buf *b)
{
    free(b->lab);
    free(b->f);
    free(b->g);
    free(b->v);
    free(b->vf);
    free(b->h);
    free(b->z);
}

/*
 * Tiles. A pass along a strided axis reads its lines TILE at a time: lines
 * that are neighbours in the last axis, so that each row of the tile is one
 * contiguous read (a cache line) instead of TILE reads a stride apart. With
 * power-of-two extents the strides alias to the same cache sets, and
 * reading single columns would miss on almost every element.
 * Tile layout: element i of line j is at [j * n + i].
 */

/* Labels of `w` lines of n voxels: line j starts at start + j, its voxels are
 * `stride` apart. The dtype switch sits outside the loops. */
#define GATHER_INT(T)                                                                       \
    do {                                                                                    \
        const T *p = (const T *)in + start;                                                 \
        for (int64_t i = 0; i < n; i++) {                                                   \
            const T *r = p + i * stride;                                                    \
            if (lm == SLG_LAB_MULTI)                                                        \
                for (int j = 0; j < w; j++) lab[j * n + i] = (int64_t)r[j];                 \
            else if (lm == SLG_LAB_BINARY)                                                  \
                for (int j = 0; j < w; j++) lab[j * n + i] = r[j] != 0;                     \
            else if (lm == SLG_LAB_INVERT)                                                  \
                for (int j = 0; j < w; j++) lab[j * n + i] = r[j] == 0;                     \
            else                                                                            \
                for (int j = 0; j < w; j++) lab[j * n + i] = r[j] != 0 ? 1 : 2;             \
        }                                                                                   \
    } while (0)
/* Floats never come in MULTI mode (sl_edt refuses them): a NaN cast to an
 * integer would be undefined. A NaN is non-zero, as in numpy's bool(). */
#define GATHER_FLOAT(T)                                                                     \
    do {                                                                                    \
        const T *p = (const T *)in + start;                                                 \
        for (int64_t i = 0; i < n; i++) {                                                   \
            const T *r = p + i * stride;                                                    \
            if (lm == SLG_LAB_SIGNED)                                                       \
                for (int j = 0; j < w; j++) lab[j * n + i] = r[j] != 0 ? 1 : 2;             \
            else if (lm == SLG_LAB_INVERT)                                                  \
                for (int j = 0; j < w; j++) lab[j * n + i] = r[j] == 0;                     \
            else                                                                            \
                for (int j = 0; j < w; j++) lab[j * n + i] = r[j] != 0;                     \
        }                                                                                   \
    } while (0)

static void gather_labels(const void *in, sl_dtype dt, slg_labmode lm, int64_t start, int64_t stride,
                          int64_t n, int w, int64_t *lab)
{
    switch (dt) {
    case SL_DT_F32: GATHER_FLOAT(float); break;
    case SL_DT_F64: GATHER_FLOAT(double); break;
    case SL_DT_BOOL:
    case SL_DT_U8: GATHER_INT(uint8_t); break;
    case SL_DT_I8: GATHER_INT(int8_t); break;
    case SL_DT_U16: GATHER_INT(uint16_t); break;
    case SL_DT_I16: GATHER_INT(int16_t); break;
    case SL_DT_U32: GATHER_INT(uint32_t); break;
    case SL_DT_I32: GATHER_INT(int32_t); break;
    case SL_DT_U64: GATHER_INT(uint64_t); break; /* wraps above 2^63: equality is all we need */
    case SL_DT_I64: GATHER_INT(int64_t); break;
    }
}

static inline double finish_value(double sq, int64_t lab, slg_finish fin)
{
    switch (fin) {
    case SLG_FIN_SQ: return sq;
    case SLG_FIN_SQRT: return sqrt(sq);
    case SLG_FIN_SIGNED: return lab == 1 ? -sqrt(sq) : sqrt(sq);
    case SLG_FIN_KERVADEC: return lab == 1 ? -(sqrt(sq) - 1.0) : sqrt(sq);
    }
    return sq;
}

static void load_tile(const void *buf, int f32, int64_t start, int64_t stride, int64_t n, int w, double *f)
{
    for (int64_t i = 0; i < n; i++) {
        if (f32) {
            const float *r = (const float *)buf + start + i * stride;
            for (int j = 0; j < w; j++) f[j * n + i] = r[j];
        } else {
            const double *r = (const double *)buf + start + i * stride;
            for (int j = 0; j < w; j++) f[j * n + i] = r[j];
        }
    }
}

/* lab may be NULL when the finish does not depend on the label (SQ, SQRT) */
static void store_tile(void *buf, int f32, int64_t start, int64_t stride, int64_t n, int w, const double *g,
                       const int64_t *lab, slg_finish fin)
{
    for (int64_t i = 0; i < n; i++) {
        if (f32) {
            float *r = (float *)buf + start + i * stride;
            for (int j = 0; j < w; j++) r[j] = (float)finish_value(g[j * n + i], lab ? lab[j * n + i] : 0, fin);
        } else {
            double *r = (double *)buf + start + i * stride;
            for (int j = 0; j < w; j++) r[j] = finish_value(g[j * n + i], lab ? lab[j * n + i] : 0, fin);
        }
    }
}

/* First pass, along a line of the last (contiguous) axis: per run of label
 * L != 0, the distance to the nearest voxel just outside the run. */
static void first_pass_line(const int64_t *lab, double *g, int64_t n, double s)
{
    int64_t a = 0;
    while (a < n) {
        int64_t L = lab[a], e = a;
        while (e + 1 < n && lab[e + 1] == L) e++;
        if (L == 0) {
            for (int64_t x = a; x <= e; x++) g[x] = 0.0;
        } else {
            for (int64_t x = a; x <= e; x++) {
                int64_t d = INT64_MAX;
                if (a > 0) d = x - a + 1;
                if (e < n - 1 && e + 1 - x < d) d = e + 1 - x;
                if (d == INT64_MAX) {
                    g[x] = INFINITY;
                } else {
                    double t = s * (double)d;
                    g[x] = t * t;
                }
            }
        }
        a = e + 1;
    }
}

/*
 * Later passes: per run, the lower envelope of the parabolas
 * (s (x - q))^2 + f(q) over the run's finite values and the two zero-valued
 * neighbours just outside it. Positions are in index units; a parabola is
 * kept as its apex q and key h = f / s^2 + q^2, so that the intersection of
 * parabolas p < q is at (h_q - h_p) / (2 (q - p)). The test "the new
 * parabola hides the last one" compares without dividing (q > p), and the
 * one division per parabola is the boundary that is stored.
 */
typedef struct envelope {
    double *v, *vf, *h, *z;
    int64_t k;
    double inv_s2;
} envelope;

static inline void envelope_push(envelope *E, double q, double fq)
{
    const double hq = fq * E->inv_s2 + q * q;
    int64_t k = E->k;
    if (k < 0) {
        E->k = 0;
        E->v[0] = q;
        E->vf[0] = fq;
        E->h[0] = hq;
        E->z[0] = -INFINITY;
        E->z[1] = INFINITY;
        return;
    }
    double num, den;
    for (;;) {
        num = hq - E->h[k];
        den = 2.0 * (q - E->v[k]);
        /* z[0] is -inf: the comparison fails there, so k stays >= 0 */
        if (num <= E->z[k] * den) k--;
        else break;
    }
    k++;
    E->v[k] = q;
    E->vf[k] = fq;
    E->h[k] = hq;
    E->z[k] = num / den;
    E->z[k + 1] = INFINITY;
    E->k = k;
}

static void envelope_line(const int64_t *lab, const double *f, double *g, int64_t n, double s,
                          line_buf *b)
{
    envelope E = {b->v, b->vf, b->h, b->z, -1, 1.0 / (s * s)};
    int64_t a = 0;
    while (a < n) {
        const int64_t L = lab[a];
        int64_t e = a;
        while (e + 1 < n && lab[e + 1] == L) e++;
        if (L == 0) {
            for (int64_t x = a; x <= e; x++) g[x] = 0.0;
            a = e + 1;
            continue;
        }
        E.k = -1;
        if (a > 0) envelope_push(&E, (double)(a - 1), 0.0);
        for (int64_t q = a; q <= e; q++)
            if (f[q] < INFINITY) envelope_push(&E, (double)q, f[q]);
        if (e < n - 1) envelope_push(&E, (double)(e + 1), 0.0);
        if (E.k < 0) {
            for (int64_t x = a; x <= e; x++) g[x] = INFINITY;
        } else {
            const double *v = E.v, *vf = E.vf, *z = E.z;
            int64_t j = 0;
            for (int64_t x = a; x <= e; x++) {
                double xd = (double)x;
                while (z[j + 1] < xd) j++;
                double t = s * (xd - v[j]);
                g[x] = t * t + vf[j];
            }
        }
        a = e + 1;
    }
}

/*
 * Two classes (binary and inverted modes): every feature voxel has f = 0 and
 * is its own parabola, so the envelope over the whole line is the answer —
 * no labels, no runs (the separable EDT in its textbook form).
 */
static void envelope_line_plain(const double *f, double *g, int64_t n, double s, line_buf *b)
{
    envelope E = {b->v, b->vf, b->h, b->z, -1, 1.0 / (s * s)};
    for (int64_t q = 0; q < n; q++)
        if (f[q] < INFINITY) envelope_push(&E, (double)q, f[q]);
    if (E.k < 0) {
        for (int64_t x = 0; x < n; x++) g[x] = INFINITY;
        return;
    }
    const double *v = E.v, *vf = E.vf, *z = E.z;
    int64_t j = 0;
    for (int64_t x = 0; x < n; x++) {
        double xd = (double)x;
        while (z[j + 1] < xd) j++;
        double t = s * (xd - v[j]);
        g[x] = t * t + vf[j];
    }
}

sl_status slg_edt(const void *in, sl_dtype dt, slg_labmode lm, const slg_vol *vol, void *out,
                  int out_f32, slg_finish fin, int threads)
{
    const int64_t n0 = vol->n[0], n1 = vol->n[1], n2 = vol->n[2];
    int64_t cap = n0 > n1 ? n0 : n1;
    if (n2 > cap) cap = n2;
    /* a long 1-D image must not cost TILE times its length */
    if (cap > INT64_MAX / TILE) return SL_ENOMEM; /* no such memory anyway; keeps TILE * n defined */
    int64_t tile = n2;
    if (n1 > 1 && TILE * n1 > tile) tile = TILE * n1;
    if (n0 > 1 && TILE * n0 > tile) tile = TILE * n0;
    /* Passes run along axis 2, then 1, then 0; axes of extent 1 need no
     * envelope pass. The last pass writes the finished value. */
    const int last = n0 > 1 ? 0 : (n1 > 1 ? 1 : 2);
    /* Two classes whose finish ignores the label: the later passes need no
     * labels at all (envelope_line_plain). */
    const int plain = (lm == SLG_LAB_BINARY || lm == SLG_LAB_INVERT) && (fin == SLG_FIN_SQ || fin == SLG_FIN_SQRT);
    int fail = 0;

#pragma omp parallel num_threads(sl_threads(threads)) if (vol->count >= SLG_PAR_MIN)
    {
        line_buf b;
        int ok = line_buf_alloc(&b, cap, tile);
        if (!ok) {
#pragma omp atomic write
            fail = 1;
        }
        /* axis 2: contiguous rows, one at a time */
#pragma omp for collapse(2) schedule(static)
        for (int64_t i0 = 0; i0 < n0; i0++)
            for (int64_t i1 = 0; i1 < n1; i1++) {
                if (!ok) continue;
                int64_t start = (i0 * n1 + i1) * n2;
                gather_labels(in, dt, lm, start, 1, n2, 1, b.lab);
                first_pass_line(b.lab, b.g, n2, vol->sp[2]);
                store_tile(out, out_f32, start, 1, n2, 1, b.g, b.lab, last == 2 ? fin : SLG_FIN_SQ);
            }
        /* axis 1: tiles of lines (i0, *, i2..i2+TILE) */
        const int64_t nt2 = (n2 + TILE - 1) / TILE;
        if (n1 > 1) {
#pragma omp for collapse(2) schedule(static)
            for (int64_t i0 = 0; i0 < n0; i0++)
                for (int64_t t = 0; t < nt2; t++) {
                    if (!ok) continue;
                    int64_t i2 = t * TILE, start = i0 * n1 * n2 + i2;
                    int w = (int)(n2 - i2 < TILE ? n2 - i2 : TILE);
                    load_tile(out, out_f32, start, n2, n1, w, b.f);
                    if (plain) {
                        for (int j = 0; j < w; j++)
                            envelope_line_plain(b.f + j * n1, b.g + j * n1, n1, vol->sp[1], &b);
                    } else {
                        gather_labels(in, dt, lm, start, n2, n1, w, b.lab);
                        for (int j = 0; j < w; j++)
                            envelope_line(b.lab + j * n1, b.f + j * n1, b.g + j * n1, n1, vol->sp[1], &b);
                    }
                    store_tile(out, out_f32, start, n2, n1, w, b.g, plain ? NULL : b.lab,
                               last == 1 ? fin : SLG_FIN_SQ);
                }
        }
        /* axis 0: tiles of lines (*, i1, i2..i2+TILE) */
        if (n0 > 1) {
#pragma omp for collapse(2) schedule(static)
            for (int64_t i1 = 0; i1 < n1; i1++)
                for (int64_t t = 0; t < nt2; t++) {
                    if (!ok) continue;
                    int64_t i2 = t * TILE, start = i1 * n2 + i2;
                    int w = (int)(n2 - i2 < TILE ? n2 - i2 : TILE);
                    load_tile(out, out_f32, start, n1 * n2, n0, w, b.f);
                    if (plain) {
                        for (int j = 0; j < w; j++)
                            envelope_line_plain(b.f + j * n0, b.g + j * n0, n0, vol->sp[0], &b);
                    } else {
                        gather_labels(in, dt, lm, start, n1 * n2, n0, w, b.lab);
                        for (int j = 0; j < w; j++)
                            envelope_line(b.lab + j * n0, b.f + j * n0, b.g + j * n0, n0, vol->sp[0], &b);
                    }
                    store_tile(out, out_f32, start, n1 * n2, n0, w, b.g, plain ? NULL : b.lab, fin);
                }
        }
        line_buf_free(&b);
    }
    return fail ? SL_ENOMEM : SL_OK;
}

/* Number of non-zero voxels of a typed array (for the Kervadec special
 * cases). */
#define COUNT_NZ(T)                                                    \
    do {                                                               \
        const T *p = (const T *)in;                                    \
        for (int64_t i = 0; i < n; i++) c += p[i] != 0;                \
    } while (0)
static int64_t count_nonzero(const void *in, sl_dtype dt, int64_t n)
{
    int64_t c = 0;
    switch (dt) {
    case SL_DT_F32: COUNT_NZ(float); break;
    case SL_DT_F64: COUNT_NZ(double); break;
    case SL_DT_BOOL:
    case SL_DT_U8: COUNT_NZ(uint8_t); break;
    case SL_DT_I8: COUNT_NZ(int8_t); break;
    case SL_DT_U16: COUNT_NZ(uint16_t); break;
    case SL_DT_I16: COUNT_NZ(int16_t); break;
    case SL_DT_U32: COUNT_NZ(uint32_t); break;
    case SL_DT_I32: COUNT_NZ(int32_t); break;
    case SL_DT_U64: COUNT_NZ(uint64_t); break;
    case SL_DT_I64: COUNT_NZ(int64_t); break;
    }
    return c;
}

static int dtype_valid(sl_dtype dt)
{
    return (int)dt >= (int)SL_DT_F32 && (int)dt <= (int)SL_DT_I64;
}

sl_status sl_edt(const void *in, sl_dtype in_dtype, const sl_grid *grid, const sl_edt_opts *opts,
                 void *out, sl_dtype out_dtype, char *msg, size_t msglen)
{
    sl_edt_opts o = SL_EDT_OPTS_DEFAULT;
    if (opts) o = *opts;
    if (!in || !out) return sl_errf(msg, msglen, SL_EINVAL, "edt: input or output is NULL");
    slg_vol v;
    sl_status st = slg_vol_from_grid(grid, &v, msg, msglen);
    if (st != SL_OK) return st;
    if (!dtype_valid(in_dtype)) return sl_errf(msg, msglen, SL_EDTYPE, "edt: unknown input dtype %d", (int)in_dtype);
    if (out_dtype != SL_DT_F32 && out_dtype != SL_DT_F64)
        return sl_errf(msg, msglen, SL_EDTYPE, "edt: output must be float32 or float64, not %s",
                       sl_dtype_name(out_dtype));
    if ((int)o.mode < (int)SL_EDT_PLAIN || (int)o.mode > (int)SL_EDT_SIGNED_KERVADEC)
        return sl_errf(msg, msglen, SL_EINVAL, "edt: unknown mode %d", (int)o.mode);
    if (o.mode == SL_EDT_MULTILABEL && (in_dtype == SL_DT_F32 || in_dtype == SL_DT_F64))
        return sl_errf(msg, msglen, SL_EDTYPE, "edt: multi-label mode needs an integer label map, not %s",
                       sl_dtype_name(in_dtype));
    size_t ib = sl_dtype_size(in_dtype) * (size_t)v.count, ob = sl_dtype_size(out_dtype) * (size_t)v.count;
    const char *ia = (const char *)in, *oa = (const char *)out;
    if (ia < oa + ob && oa < ia + ib) return sl_errf(msg, msglen, SL_EINVAL, "edt: input and output overlap");

    int f32 = out_dtype == SL_DT_F32;
    switch (o.mode) {
    case SL_EDT_PLAIN: st = slg_edt(in, in_dtype, SLG_LAB_BINARY, &v, out, f32, SLG_FIN_SQRT, o.threads); break;
    case SL_EDT_MULTILABEL: st = slg_edt(in, in_dtype, SLG_LAB_MULTI, &v, out, f32, SLG_FIN_SQRT, o.threads); break;
    case SL_EDT_SIGNED: st = slg_edt(in, in_dtype, SLG_LAB_SIGNED, &v, out, f32, SLG_FIN_SIGNED, o.threads); break;
    case SL_EDT_SIGNED_KERVADEC: {
        /* No boundary (all background or all foreground): 0 everywhere, as
         * one_hot2dist does for an empty mask. */
        int64_t nz = count_nonzero(in, in_dtype, v.count);
        if (nz == 0 || nz == v.count) {
            if (f32) memset(out, 0, (size_t)v.count * sizeof(float)); /* all-zero bits = +0.0f */
            else memset(out, 0, (size_t)v.count * sizeof(double));
            st = SL_OK;
        } else {
            st = slg_edt(in, in_dtype, SLG_LAB_SIGNED, &v, out, f32, SLG_FIN_KERVADEC, o.threads);
        }
        break;
    }
    }
    if (st == SL_ENOMEM) return sl_errf(msg, msglen, SL_ENOMEM, "edt: out of memory for line buffers");
    return st;
}

const char *sl_edt_mode_name(sl_edt_mode mode)
{
    switch (mode) {
    case SL_EDT_PLAIN: return "plain";
    case SL_EDT_MULTILABEL: return "multilabel";
    case SL_EDT_SIGNED: return "signed";
    case SL_EDT_SIGNED_KERVADEC: return "kervadec";
    }
    return "unknown";
}

sl_status sl_edt_mode_parse(const char *name, sl_edt_mode *out)
{
    static const sl_edt_mode all[] = {SL_EDT_PLAIN, SL_EDT_MULTILABEL, SL_EDT_SIGNED, SL_EDT_SIGNED_KERVADEC};
    if (!name || !out) return SL_EINVAL;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, sl_edt_mode_name(all[i])) == 0) {
            *out = all[i];
            return SL_OK;
        }
    return SL_EUNKNOWN;
}
